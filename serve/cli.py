"""The `serve` command: start vLLM or llama-server with the flags chat needs, or the local default."""

from __future__ import annotations

import argparse
import shlex
import sys

from ..chat.errors import PathError, paths
from ..chat.output import Parser, Screen, say, unless_a_bug
from .families import FAMILIES, detect_family
from .launch import Launch, LaunchError, llama_command, vllm_command
from .process import ServerDied, ServerProcess

__all__ = ["main", "parser"]

EPILOG = """\
examples:
  serve vllm ./persona-gpt-oss-20b                 gpt-oss family: tool + reasoning parsers on
  serve vllm meta-llama/Llama-3.1-8B-Instruct --tp 2 --max-model-len 32768
  serve vllm ./persona-gpt-oss-20b --dp 4          four copies on four GPUs: throughput for probe runs
  serve vllm my-model --family hermes -- --gpu-memory-utilization 0.85
  serve llama karma-electric-8b.Q4_K_M.gguf -c 4096
  serve llama base-8b.gguf --lora ke-qlora.gguf     one server: base, fine-tune or between, per request
  serve vllm meta-llama/Llama-3.1-8B-Instruct --lora ke=./ke-qlora   the adapter served as model "ke"
  serve local                                      a small CPU model, no GPU needed
  serve vllm ./model --dry-run                     print the command, start nothing

llama.cpp: LLAMA_SERVER, else llama-server on PATH (your own CUDA/Metal build), else the prebuilt
engine of gridchat[local] (xllamacpp); serve says which one runs.

Multi-node: vLLM's own distributed engine (Ray) does it; start a Ray cluster, then pass vLLM's
options after --, e.g.  serve vllm BIG-MODEL --tp 8 -- --pipeline-parallel-size 2
"""


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="serve", description="Start a model server set up for gridchat.",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="backend", required=True, metavar="{vllm,llama,local}")

    v = sub.add_parser("vllm", help="vllm serve MODEL with the tool and reasoning parsers of its family")
    v.add_argument("model", help="model directory or Hugging Face id")
    v.add_argument("--port", type=int, default=8000)
    v.add_argument("--host", help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0: every "
                   "interface, with -- --api-key KEY)")
    v.add_argument("--tp", type=int, metavar="N", help="tensor parallel size: GPUs to split the model over")
    v.add_argument("--dp", type=int, metavar="N", help="data parallel size: copies of the model on N GPUs (or N×tp); "
                   "more throughput for parallel personas and probe runs")
    v.add_argument("--max-model-len", type=int, metavar="L", help="serving context window")
    v.add_argument("--family", choices=list(FAMILIES), help="model family, when config.json can't tell")
    v.add_argument("--lora", action="append", default=[], metavar="NAME=PATH", help="a LoRA adapter (a PEFT folder) "
                   "served as the model NAME; repeatable (--enable-lora, with the rank limit from its config)")

    ll = sub.add_parser("llama", help="llama-server MODEL.gguf with Jinja templates on")
    ll.add_argument("model", help="a .gguf file")
    ll.add_argument("--port", type=int, default=8080)
    ll.add_argument("--host", default="127.0.0.1")
    ll.add_argument("-c", "--ctx-size", type=int, default=8192, metavar="N", help="context window (default 8192)")
    ll.add_argument("--reasoning-format", choices=["none", "deepseek", "deepseek-legacy", "auto"])
    ll.add_argument("--chat-template-file", metavar="F")
    ll.add_argument("--alias", help="model name the server reports")
    ll.add_argument("--lora", action="append", default=[], metavar="FILE", help="a LoRA adapter (GGUF); repeatable; "
                    "a request's lora field sets its scale (chat: /lora, /compare …*lora=0,0.5,1)")

    lo = sub.add_parser("local", help="llama-server with a small bundled chat model (SmolLM2-135M), no GPU needed")
    lo.add_argument("--port", type=int, default=8080)
    lo.add_argument("-c", "--ctx-size", type=int, default=8192, metavar="N")

    for sp in (v, ll, lo):
        sp.add_argument("--dry-run", action="store_true", help="print the exact command and exit")
    return p


def _launch(args, extra: list[str]) -> Launch:
    require = not args.dry_run
    if args.backend == "vllm":
        family, how = detect_family(args.model, args.family)
        launch = vllm_command(args.model, family, port=args.port, host=args.host, tp=args.tp,
                              dp=args.dp, max_model_len=args.max_model_len, extra=extra, require=require,
                              lora=args.lora)
        launch.notes.insert(0, f"family: {family.name} (from {how})")
        return launch
    if args.backend == "llama":
        return llama_command(args.model, port=args.port, host=args.host, ctx=args.ctx_size,
                             reasoning_format=args.reasoning_format, chat_template_file=args.chat_template_file,
                             alias=args.alias, extra=extra, require=require, lora=args.lora)
    from .local import local_launch

    return local_launch(port=args.port, ctx=args.ctx_size, say=_say, extra=extra, require=require)


def _say(message: str) -> None:
    say(f"serve: {message}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return unless_a_bug("serve", lambda: _main(argv))


def _main(argv: list[str]) -> int:
    extra: list[str] = []
    if "--" in argv:  # everything after -- goes to the server untouched
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    args = parser().parse_args(argv)
    try:
        with paths():  # a model path the system refuses (a name too long) is one line
            launch = _launch(args, extra)
    except (LaunchError, PathError) as e:
        say(f"serve: error: {e}")
        return 1
    for note in launch.notes:
        _say(note)
    if args.dry_run:
        say(shlex.join(launch.argv), err=False)
        return 0
    return _run(launch)


def _run(launch: Launch) -> int:
    console = Screen(stderr=True)
    server = ServerProcess(launch)
    try:
        server.start()
        with console.status(f"starting {launch.name} …") as status:
            def progress(elapsed: float, last_line: str) -> None:
                status.update(f"starting {launch.name} ({elapsed:.0f} s) — {last_line[-80:]}", )

            took = server.wait_ready(progress=progress)
        chat = shlex.join(["chat", "--base-url", launch.base_url, *launch.chat_flags])
        console.print(f"{launch.name} is ready ({took:.0f} s). In another terminal:", markup=False)
        say(chat, err=False)
        console.print(f"Ctrl-C stops the server · log: {server.log_path}", style="dim", markup=False)
        code = server.proc.wait()
        console.print(f"{launch.name} exited with status {code}; the end of its log:\n{server.log_tail()}",
                      markup=False)
        return 1
    except ServerDied as e:
        console.print(f"serve: error: {e}", markup=False)
        return 1
    except KeyboardInterrupt:
        console.print(f"stopping {launch.name} …", markup=False)
        server.stop()
        console.print("stopped", markup=False)
        return 0


if __name__ == "__main__":
    sys.exit(main())
