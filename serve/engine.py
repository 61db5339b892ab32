"""The built-in llama.cpp engine: llama.cpp's own HTTP server from the prebuilt xllamacpp wheel,
run as a process of its own (`python -m gridchat.serve.engine -m MODEL.gguf --port N …`).

It takes the llama-server flags that `serve` and `chat --local` use, so that everything above it
sees an ordinary llama-server on a loopback port. Being a separate process, a crash in native code
can't take the client down, and the client's process-group kill (and PR_SET_PDEATHSIG) ends it.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from importlib import metadata

__all__ = ["NAME", "main", "parser", "version"]

NAME = "llama.cpp engine"
_REASONING = {"none": "NONE", "deepseek": "DEEPSEEK", "deepseek-legacy": "DEEPSEEK_LEGACY", "auto": "AUTO"}


def version() -> str | None:
    """xllamacpp's version, without importing it (its native library takes a moment to load)."""
    try:
        return metadata.version("xllamacpp")
    except metadata.PackageNotFoundError:
        return None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, as the rest of gridchat words errors
        raise SystemExit(f"{self.prog}: error: {message} (a llama-server on PATH or in LLAMA_SERVER takes every flag)")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="gridchat-engine", allow_abbrev=False, description="llama.cpp's server from the xllamacpp "
                "wheel, with llama-server's flags (the ones gridchat uses).")
    p.add_argument("-m", "--model", required=True, help="a .gguf file")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("-c", "--ctx-size", type=int, default=0, help="context window (0: the model's)")
    p.add_argument("--jinja", action="store_true", help="accepted for llama-server compatibility: always on")
    p.add_argument("--alias", help="the model name the server reports")
    p.add_argument("--reasoning-format", choices=list(_REASONING))
    p.add_argument("--chat-template", help="a built-in template name or a Jinja template")
    p.add_argument("--chat-template-file")
    p.add_argument("-t", "--threads", type=int)
    p.add_argument("-np", "--parallel", type=int, default=4, help="requests decoded at once (default 4)")
    p.add_argument("-ngl", "--n-gpu-layers", "--gpu-layers", type=int, dest="n_gpu_layers")
    p.add_argument("--api-key")
    p.add_argument("--lora", action="append", default=[], metavar="FILE", help="a LoRA adapter (GGUF), applied at scale 1")
    p.add_argument("--lora-scaled", action="append", nargs=2, default=[], metavar=("FILE", "SCALE"),
                   help="a LoRA adapter applied at SCALE")
    p.add_argument("--lora-init-without-apply", action="store_true",
                   help="load the adapters at scale 0 (a request's lora field applies them)")
    p.add_argument("-v", "--verbose", action="store_true", help="log every request and the prompt it rendered")
    return p


def _params(args: argparse.Namespace):
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.hostnames = [args.host]
    params.port = args.port
    params.use_jinja = True
    params.n_parallel = args.parallel
    params.kv_unified = True  # parallel requests share the whole window, as llama-server's default does
    if args.ctx_size:
        params.n_ctx = args.ctx_size
    if args.alias:
        params.model_alias = {args.alias}
    if args.reasoning_format:
        params.reasoning_format = getattr(xllamacpp.common_reasoning_format,
                                          f"COMMON_REASONING_FORMAT_{_REASONING[args.reasoning_format]}")
    if args.chat_template_file:
        with open(args.chat_template_file, encoding="utf-8") as f:
            params.chat_template = f.read()
    elif args.chat_template:
        params.chat_template = args.chat_template
    if args.threads:
        params.cpuparams.n_threads = params.cpuparams_batch.n_threads = args.threads
    if args.n_gpu_layers is not None:
        params.n_gpu_layers = args.n_gpu_layers
    if args.api_key:
        params.api_keys = [args.api_key]
    adapters = [(path, 1.0) for path in args.lora] + [(path, float(scale)) for path, scale in args.lora_scaled]
    if adapters:  # each a GGUF adapter; a request's "lora": [{"id": N, "scale": S}] sets their scales
        # loaded without applying: at scale 0 until a request asks (the engine's flag alone leaves them at theirs)
        params.lora_adapters = [_adapter(xllamacpp, path, 0.0 if args.lora_init_without_apply else scale)
                                for path, scale in adapters]
        params.lora_init_without_apply = args.lora_init_without_apply
    if args.verbose:
        params.verbosity = 100  # the server then adds each request's rendered prompt to its log
    return params


def _adapter(xllamacpp, path: str, scale: float):
    if not os.path.isfile(path):
        raise OSError(f"{path}: no such LoRA adapter file")
    adapter = xllamacpp.CommonAdapterLoraInfo()
    adapter.path, adapter.scale = path, scale
    return adapter


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        params = _params(args)
    except ImportError:
        print("gridchat-engine: error: xllamacpp is not installed: pip install 'gridchat[local]'", file=sys.stderr)
        return 1
    except (OSError, ValueError) as e:  # ValueError: a --lora-scaled SCALE that is no number
        print(f"gridchat-engine: error: {e}", file=sys.stderr)
        return 1
    import xllamacpp

    # SIGTERM (the client stopping it, or dying: PR_SET_PDEATHSIG) and SIGHUP end it like Ctrl-C
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.default_int_handler)
    try:
        server = xllamacpp.Server(params)
    except KeyboardInterrupt:
        return 0
    except Exception as e:  # the engine reports a model it can't load as an exception
        print(f"gridchat-engine: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(f"gridchat-engine: xllamacpp {version()} listening on {server.listening_address}", flush=True)
    try:
        while True:
            signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        del server  # stops the HTTP server and frees the model
    return 0


if __name__ == "__main__":
    sys.exit(main())
