"""The columns of a probe report: each a lane, a persona at an adapter setting where the run has an
adapter axis (``chat probe run --lora 0,1`` names them ``persona+ADAPTER@SCALE``), else the persona
alone; and which lane each is compared with — the reference's at the same setting, or its own
persona's at the base setting (report.py's docstring says how they are compared)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..adapters import Lora
from .verdicts import Cell

__all__ = ["Lane", "adapter_text", "against_base", "base", "lanes", "references"]


@dataclass(frozen=True)
class Lane:
    """A column of the report: a persona, at an adapter setting where the run has an adapter axis."""

    name: str  # lawful_good, lawful_good+ke@1
    persona: str
    adapter: Lora | None = None


def _parsed(name: str) -> Lane:
    """A column named as the runner names one (``persona+ADAPTER@SCALE``) that has no cell to tell it."""
    persona, plus, rest = name.rpartition("+")
    adapter, at, scale = rest.rpartition("@")
    try:
        value = float(scale)
    except ValueError:
        return Lane(name, name)
    return Lane(name, persona, Lora(adapter, value)) if plus and at and persona and math.isfinite(value) else \
        Lane(name, name)


def lanes(names: list[str], cells: list[Cell]) -> dict[str, Lane]:
    known = {c.lane: Lane(c.lane, c.persona, c.adapter) for c in cells}
    return {name: known.get(name) or _parsed(name) for name in names}


def references(columns: dict[str, Lane], reference: str) -> dict[str, str]:
    """lane -> the reference lane it is compared with: the one lane ``reference`` names, else the
    reference persona's lane at the same adapter setting."""
    if reference in columns:
        return {name: reference for name in columns if name != reference}
    theirs = {lane.adapter: name for name, lane in columns.items() if lane.persona == reference}
    return {name: theirs[lane.adapter] for name, lane in columns.items()
            if lane.adapter in theirs and name != theirs[lane.adapter]}


def base(adapters: list[Lora | None]) -> Lora | None:
    """The setting the adapter is compared against: the base model (scale 0) where the axis has it."""
    return next((a for a in adapters if a is not None and a.scale == 0), adapters[0])


def against_base(columns: dict[str, Lane], setting: Lora | None) -> dict[str, str]:
    """lane -> its persona's lane at the base setting."""
    at_base = {lane.persona: name for name, lane in columns.items() if lane.adapter == setting}
    return {name: at_base[lane.persona] for name, lane in columns.items()
            if lane.adapter != setting and lane.persona in at_base}


def adapter_text(adapter: Lora | None, base: Lora | None = None) -> str:
    """``adapter ke×1``; the base setting says so."""
    if adapter is None:
        return "no adapter"
    return f"adapter {adapter}" + (" (the base)" if adapter == base else "")
