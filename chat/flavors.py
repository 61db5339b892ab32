"""What differs between the servers chat speaks to: one small class per flavor.

Each flavor knows how to recognise itself from what a server answers (its /v1/models entries, and a
look at one of its own endpoints), its serving context window and version, the API a model is best
spoken to in, how to show the prompt it renders from a request (/prompt), whether it takes a GBNF
grammar, and how it says that tool calling is off and how to turn it on. Adding a flavor is a class
here, in FLAVORS, and its tests.

Nothing here talks to the network itself: ``recognise`` gets a ``look(path)`` that returns the JSON
object at one of the server's root paths (or {}), ``render_prompt`` a ``post(path, body)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from .adapters import Adapter, Lora, named
from .errors import ChatError, HTTPError, ToolsNotEnabled, UsageError
from .wire import text

__all__ = ["FLAVORS", "Facts", "Flavor", "Generic", "LlamaServer", "Ollama", "VLLM", "flavor_named", "refine"]

Look = Callable[..., dict | list]  # look(path) -> a JSON object; look(path, list) -> a JSON list
Post = Callable[[str, dict], dict]


@dataclass
class Facts:
    """What a flavor read off a server: windows by model ("*": every model), its version, its LoRA adapters."""

    windows: dict[str, int] = field(default_factory=dict)
    version: str | None = None
    adapters: list[Adapter] = field(default_factory=list)


def _window(value) -> int | None:
    """A context window as a server states it, if it is a believable one."""
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 10**9 else None


def _version(value) -> str | None:
    return text(value, "a version") if isinstance(value, str) else None


class Flavor:
    """A generic OpenAI-compatible server: Chat Completions, nothing else assumed."""

    name = "openai-compatible"
    title = "an OpenAI-compatible server"  # as the user is told
    local_url: str | None = None  # where it listens when started with its defaults: chat looks there
    grammar = False  # takes a GBNF grammar in the request body
    tools_marker: str | None = None  # what its error says when tool calling is off
    tools_missing = ""  # what it was started without, then
    tools_advice = "restart it with tool calling on"

    def recognise(self, entries: list[dict], look: Look) -> Facts | None:
        return Facts()

    def api(self, model: str | None) -> tuple[str, str]:
        """The API ``--api auto`` picks for ``model``, and why."""
        return "chat", f"auto: Chat Completions, which {self.name} speaks for every model"

    def render_prompt(self, post: Post, model: str, chat: dict) -> tuple[str, str]:
        """The prompt the server renders from a chat request (messages, tools), and how it was found."""
        raise UsageError(f"this server ({self.name}) has no way to show the prompt it renders; "
                         "llama-server and vLLM do")

    logprobs_with_tools = True  # it sends token probabilities on a streamed reply to a request with tools

    def logprobs_missing(self, api: str, model: str | None, tools: bool = False) -> str | None:
        """Why this server sends no token probabilities in ``api`` for ``model`` (``tools``: with the tools
        offered); None: it does, or may."""
        return None

    lora_how = ""  # how it applies an adapter, as the user is told
    lora_scales = False  # whether it applies one at any scale (else only off or at full strength)

    def apply_lora(self, lora: Lora, adapters: list[Adapter], model: str) -> tuple[str, dict]:
        """The model to ask and the body's extra fields that apply ``lora`` to a request for ``model``."""
        raise UsageError(f"this server ({self.name}) applies no LoRA adapters that chat knows of; llama-server "
                         "and vLLM do")

    def tools_off(self, err: ChatError | None) -> bool:
        return (self.tools_marker is not None and isinstance(err, HTTPError) and not isinstance(err, ToolsNotEnabled)
                and self.tools_marker in str(err))


class VLLM(Flavor):
    name = "vllm"
    title = "vLLM"
    local_url = "http://127.0.0.1:8000/v1"
    tools_marker = "--enable-auto-tool-choice"
    tools_missing = "vLLM was started without --enable-auto-tool-choice --tool-call-parser"
    tools_advice = "restart the server with --enable-auto-tool-choice --tool-call-parser P (openai for gpt-oss models)"

    def recognise(self, entries, look):
        if not any(e.get("owned_by") == "vllm" or "max_model_len" in e for e in entries):
            return None
        windows = {e["id"]: w for e in entries if (w := _window(e.get("max_model_len")))}
        adapters = [Adapter(e["id"], e["id"], base=text(e["parent"], "a model's parent"))  # a LoRA: its base
                    for e in entries if isinstance(e.get("parent"), str) and e["parent"]]
        return Facts(windows, _version(look("/version").get("version")), adapters)

    lora_how = "as its own model name (vLLM serves an adapter at full strength)"

    def apply_lora(self, lora, adapters, model):
        adapter = named(lora.name, adapters)
        if lora.scale == 0:
            return adapter.base or model, {}
        if lora.scale == 1:
            return adapter.id, {}
        raise UsageError(f"vLLM serves an adapter at full strength only, as its own model name: {lora.name}:0 (the "
                         f"base model) or {lora.name}:1, not {lora}; llama-server scales adapters per request")

    def api(self, model):
        if model and "gpt-oss" in model.lower():  # the persona series' base: its native format
            return "responses", "auto: a gpt-oss model on vLLM, used through the Responses API as its card shows"
        return super().api(model)

    def logprobs_missing(self, api, model, tools=False):
        if api == "responses" and model and "gpt-oss" in model.lower():
            return "vLLM refuses token probabilities for gpt-oss models on the Responses API: --api chat has them"
        return None

    def render_prompt(self, post, model, chat):
        tokens = post("/tokenize", {"model": model, **chat, "add_generation_prompt": True}).get("tokens")
        prompt = post("/detokenize", {"model": model, "tokens": tokens}).get("prompt")
        return text(prompt, "the rendered prompt"), "vLLM's /tokenize and /detokenize"


class LlamaServer(Flavor):
    name = "llama-server"
    title = "llama-server"
    local_url = "http://127.0.0.1:8080/v1"
    grammar = True
    tools_marker = "requires --jinja"
    tools_missing = "llama-server was started without --jinja"
    tools_advice = "restart the server with --jinja"

    def recognise(self, entries, look):
        props = look("/props")
        if "default_generation_settings" in props:
            settings = props.get("default_generation_settings")
            window = _window(settings.get("n_ctx")) if isinstance(settings, dict) else None
            # the serving window; /v1/models' n_ctx_train is the training one
            return Facts({"*": window} if window else {}, _version(props.get("build_info")),
                         self._adapters(look("/lora-adapters", list)))
        if any(e.get("owned_by") == "llamacpp" or "meta" in e for e in entries):
            return Facts()
        return None

    @staticmethod
    def _adapters(listed: list) -> list[Adapter]:
        """/lora-adapters' entries ({id, path, scale}), each named by its file's stem; others left out."""
        adapters = []
        for entry in listed:  # each a few fields, within /lora-adapters' MAX_JSON; detect.py caps how many are kept
            index, path, scale = (entry.get(k) for k in ("id", "path", "scale")) if isinstance(entry, dict) else ((),) * 3
            if type(index) is int and isinstance(path, str) and path:
                stem = text(path, "an adapter's path").replace("\\", "/").rsplit("/", 1)[-1].removesuffix(".gguf")
                ok = isinstance(scale, (int, float)) and not isinstance(scale, bool) and math.isfinite(scale)
                adapters.append(Adapter(stem or str(index), index, float(scale) if ok else 1.0))
        return adapters

    lora_how = "per request (llama-server's lora field)"
    lora_scales = True

    def apply_lora(self, lora, adapters, model):
        named(lora.name, adapters)  # one it doesn't list would be left out of the field: the base model, unsaid
        return model, {"lora": [{"id": a.id, "scale": lora.scale if a.name == lora.name else 0.0} for a in adapters]}

    logprobs_with_tools = False  # "logprobs is not supported with tools + stream" (400)

    def logprobs_missing(self, api, model, tools=False):
        if api == "responses":
            return "llama-server's /v1/responses leaves token probabilities out: --api chat has them"
        if tools:
            return ("llama-server sends no token probabilities on a streamed reply offered tools: a panel (which "
                    "offers none), /tools off with --no-tools, or a probe run has them")
        return None

    def render_prompt(self, post, model, chat):
        prompt = post("/apply-template", chat).get("prompt")
        return text(prompt, "the rendered prompt"), "llama-server's /apply-template"


class Ollama(Flavor):
    """Ollama's OpenAI-compatible API (WIRE.md): its window only through its own /api/show (and then
    the model's trained length, not what a request gets by default), no grammar; a prompt beyond the
    window is cut silently rather than refused."""

    name = "ollama"
    title = "Ollama"
    local_url = "http://127.0.0.1:11434/v1"

    def recognise(self, entries, look):
        version = look("/api/version").get("version")
        if not isinstance(version, str) and not any(e.get("owned_by") in ("library", "ollama") for e in entries):
            return None
        return Facts(version=_version(version))


class Generic(Flavor):
    """Any other OpenAI-compatible server (the last resort: it recognises every one)."""


FLAVORS: tuple[Flavor, ...] = (VLLM(), LlamaServer(), Ollama(), Generic())  # the first to recognise a server wins


def flavor_named(name: str | None) -> Flavor:
    """The flavor recorded by ``name`` (a transcript's), the generic one if none matches."""
    return next((f for f in FLAVORS if f.name == name), FLAVORS[-1])


def refine(err: ChatError) -> ChatError:
    """A server's error that says its tool calling is off, as ToolsNotEnabled naming the flavor (the
    advice on how to turn it on is the flavor's)."""
    flavor = next((f for f in FLAVORS if f.tools_off(err)), None)
    if flavor is None:
        return err
    return ToolsNotEnabled(f"the server has tool calling off ({flavor.tools_missing})", getattr(err, "status", None),
                           server=flavor.name)
