"""Personas as data: the nine alignment-grid personas shipped here, plus the user's own.

A persona is a name and the exact system message sent for it. The nine built-ins live in
``builtin/*.yaml``; users add theirs as ``<config dir>/personas/*.yaml`` in the same format, and a
user file with a built-in's name replaces it. ``none`` sends no system message at all (the persona
models' "general use"); ``custom`` is what ``/system TEXT`` makes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from ..chat.datafile import DataFileError, load_yaml, problem

__all__ = [
    "GRID",
    "NONE",
    "Persona",
    "PersonaError",
    "custom",
    "load_personas",
]

BUILTIN_DIR = Path(__file__).with_name("builtin")

# The alignment grid in its canonical order, row by row.
GRID = [
    "lawful_good", "neutral_good", "chaotic_good",
    "lawful_neutral", "true_neutral", "chaotic_neutral",
    "lawful_evil", "neutral_evil", "chaotic_evil",
]


class PersonaError(ValueError):
    """A persona file that cannot be used; the message names the file and the problem."""


class GridPosition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    law: Literal["lawful", "neutral", "chaotic"]
    moral: Literal["good", "neutral", "evil"]


class Persona(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    system: str | None  # None: no system message is sent
    description: str = ""
    grid: GridPosition | None = None
    source: str = "builtin"  # builtin | a user file's path | custom


NONE = Persona(name="none", system=None, description="No system message (the model's general use).")


def custom(system: str) -> Persona:
    """The persona ``/system TEXT`` makes."""
    return Persona(name="custom", system=system, description="Custom system prompt", source="custom")


def _load_file(path: Path, source: str) -> Persona:
    data, lines = load_yaml(path)
    if lines.problems:
        raise PersonaError(lines.problems[0])
    if not isinstance(data, dict):
        raise PersonaError(f"{path}:1: expected a mapping with name and system")
    data.setdefault("name", path.stem)
    if "source" in data:  # ours to set: where the persona came from
        raise PersonaError(f"{path}:{lines.of(('source',))}: source: not a persona setting (name, system, "
                           "description, grid)")
    try:
        return Persona.model_validate({**data, "source": source})
    except ValidationError as e:
        raise PersonaError(problem(path, lines, e)) from None


def load_personas(user_dir: Path | None = None, warn=None) -> dict[str, Persona]:
    """All personas by name: the nine in grid order, ``none``, then the user's in name order.

    A broken user file is skipped and reported through ``warn(message)``, so that one typo does
    not keep the client from starting.
    """
    personas = {name: _load_file(BUILTIN_DIR / f"{name}.yaml", "builtin") for name in GRID}
    personas["none"] = NONE
    if user_dir is not None and user_dir.is_dir():
        for path in sorted(user_dir.glob("*.y*ml")):
            try:
                persona = _load_file(path, str(path))
            except (PersonaError, DataFileError) as e:
                if warn:
                    warn(str(e))
                continue
            if persona.name in ("none", "custom"):
                if warn:
                    warn(f"{path}: the name {persona.name!r} is reserved")
                continue
            personas[persona.name] = persona
    return personas
