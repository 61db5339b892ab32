"""Panel specs (``/compare SPEC MESSAGE``, ``/replay SPEC``): which lanes a panel has.

A spec is comma lists of items, crossed with ``*``; an item is ``persona``, ``@model``,
``@http://server/v1`` or a mix (``chaotic_evil@my-lora``); ``all`` is the nine personas. A group that
starts with ``lora=`` is LoRA adapters at scales instead: ``lora=0,0.5,1`` (the server's one adapter at
each scale), ``lora=NAME`` (at scale 1), ``lora=NAME:0.5``. ``lawful_good,chaotic_evil*@base,@lora``
is four lanes, ``lawful_good,chaotic_evil*lora=0,1`` four too. What each lane's server makes of an
adapter is found when its lanes are made (chat/panel.py).
"""

from __future__ import annotations

import itertools
import math

from ..personas import GRID, Persona
from .errors import UsageError

__all__ = ["MAX_LANES", "lane_fields"]

MAX_LANES = 32
LORA = "lora="


def _item(personas: dict[str, Persona], text: str) -> dict:
    """One item of a spec as the fields it sets: persona, model, server."""
    fields: dict = {}
    name, *rest = text.strip().split("@")
    if name:
        if name not in personas:
            raise UsageError(f"unknown persona {name!r}; known: all, {', '.join(personas)}")
        fields["persona"] = personas[name]
    for part in filter(None, rest):  # a bare "@": this session's model
        key = "server" if part.startswith(("http://", "https://")) else "model"
        if key in fields:
            raise UsageError(f"{text.strip()!r}: an item is persona@model@URL, each part at most once")
        fields[key] = part.rstrip("/") if key == "server" else part
    return fields


def _group(personas: dict[str, Persona], items: list[str]) -> list[dict]:
    """A comma group's items as field sets; a ``lora=`` group's as adapters at scales."""
    if items[0].strip().startswith(LORA):
        items = [items[0].strip().removeprefix(LORA), *items[1:]]
        return [{"lora": item.strip()} for item in items if item.strip()]
    expanded = []
    for item in items:
        if item.strip() == "all":
            expanded += [{"persona": personas[n]} for n in GRID]
        else:
            expanded.append(_item(personas, item))
    return expanded


def lane_fields(personas: dict[str, Persona], spec: str) -> list[dict]:
    """The spec's lanes as field sets (persona, model, server, lora): each comma group expanded, the
    groups crossed."""
    groups = []
    for group in spec.split("*"):
        items = [i for i in group.split(",") if i.strip()]
        if not items:
            raise UsageError(f"usage: a comma list of personas, @models or @URLs (or lora=SCALES), crossed with * "
                             f"(not {spec!r})")
        groups.append(_group(personas, items))
    count = math.prod(len(group) for group in groups)
    if not 1 <= count <= MAX_LANES:
        raise UsageError(f"{count} lanes: a panel takes 1 to {MAX_LANES}")
    combos = []
    for combo in itertools.product(*groups):
        fields = [k for item in combo for k in item]
        if len(fields) != len(set(fields)):
            raise UsageError(f"{spec!r}: crossed groups both set the {next(k for k in fields if fields.count(k) > 1)}")
        combos.append(dict(kv for item in combo for kv in item.items()))
    return combos
