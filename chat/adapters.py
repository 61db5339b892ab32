"""LoRA adapters a server offers, and the one a request is asked with at a scale: base, fine-tune, or
anything between. How a server applies one is its flavor's (chat/flavors.py): llama-server per
request (``"lora": [{"id": N, "scale": S}]``), vLLM as the adapter's own model name (full strength
only). Here: what an adapter is, and reading what the user typed (``0.5``, ``NAME``, ``NAME:0.5``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import UsageError
from .limits import MAX_ADAPTERS, listed

__all__ = ["Adapter", "Lora", "choose", "lora_from", "named", "scale_text", "unread_note"]


def scale_text(scale: float) -> str:
    """A scale as names and headers say it: 0, 0.5, 1 as ever, and a finer one exactly (0.1234561, never
    the 6 digits of ``:g``), so that two scales never share a lane's name or its cells' files."""
    short = f"{scale:g}"
    return short if float(short) == scale else repr(scale)


@dataclass(frozen=True)
class Adapter:
    """A LoRA adapter loaded by a server."""

    name: str  # as the user names it: its file's stem (llama-server), its model name (vLLM)
    id: int | str  # as a request names it: llama-server's index, vLLM's model name
    scale: float = 1.0  # the scale the server applies when a request says nothing (llama-server)
    base: str | None = None  # the model it adapts (vLLM)


@dataclass(frozen=True)
class Lora:
    """An adapter a request is asked with, and its scale (0: the base model)."""

    name: str
    scale: float

    def __str__(self) -> str:
        return f"{self.name}×{scale_text(self.scale)}"

    def record(self) -> dict:
        return {"name": self.name, "scale": self.scale}


def lora_from(record: object) -> Lora | None:
    """A Lora as a transcript or probe cell recorded it ({"name", "scale"}), or None."""
    if isinstance(record, dict) and isinstance(record.get("name"), str) and isinstance(record.get("scale"), (int, float)):
        scale = _scale(str(record["scale"]))
        if scale is not None:
            return Lora(record["name"], scale)
    return None


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _scale(text: str) -> float | None:
    try:
        value = float(text)
    except (ValueError, OverflowError):
        return None
    return value + 0.0 if math.isfinite(value) and 0 <= value <= 4 else None  # -0 is 0: one base lane


USAGE = "a scale (0: the base model, 1: the adapter), an adapter's name, or NAME:SCALE, scales from 0 to 4"


def choose(text: str, adapters: list[Adapter], unread: int = 0) -> Lora:
    """The adapter and scale ``text`` names among a server's ``adapters`` (``unread``: how many more it
    lists, past chat's cap): ``0.5`` (its only adapter), ``NAME`` (at scale 1) or ``NAME:0.5``.
    UsageError saying what is wrong."""
    if not adapters:
        raise UsageError("the server has no LoRA adapters (serve llama MODEL.gguf --lora FILE, serve vllm MODEL "
                         "--lora NAME=PATH start one with them)")
    name, colon, given = text.strip().rpartition(":")
    if not colon and not _number(given):  # a name alone: at full strength
        name, given = given, "1"
    scale = _scale(given)
    if scale is None:
        raise UsageError(f"lora {text.strip()!r}: {USAGE}")
    if not name:
        if len(adapters) + unread > 1:
            raise UsageError(f"the server has {len(adapters) + unread:,} adapters ({_names(adapters, unread)}): name "
                             f"one, NAME:{scale_text(scale)}")
        name = adapters[0].name
    return Lora(named(name, adapters, unread).name, scale)


def named(name: str, adapters: list[Adapter], unread: int = 0) -> Adapter:
    """The adapter called ``name`` among a server's ``adapters``; UsageError if it has none of that name
    (a request asked with it would get the base model, as if it had)."""
    found = next((a for a in adapters if a.name == name), None)
    if found is None:
        if not adapters:
            raise UsageError(f"no adapter {name!r} on the server: it has no LoRA adapters")
        where = f"among the first {MAX_ADAPTERS:,} the server lists (chat reads no more)" if unread else "on the server"
        raise UsageError(f"no adapter {name!r} {where}; it has: {listed((a.name for a in adapters), unread=unread)}")
    return found


def _names(adapters: list[Adapter], unread: int) -> str:
    """A server's adapters in one short line, saying where chat stopped reading them."""
    return listed((a.name for a in adapters), unread=unread) + unread_note(unread)


def unread_note(unread: int) -> str:
    """What a list of a server's adapters adds when chat left some unread (detect.py's cap)."""
    return f"; chat reads the first {MAX_ADAPTERS:,} a server lists" if unread else ""
