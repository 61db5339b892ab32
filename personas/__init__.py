"""Personas as data: the nine alignment-grid personas shipped here, plus the user's own.

A persona is a name and the exact system message sent for it. The nine built-ins live in
``builtin/*.yaml``; users add theirs as ``<config dir>/personas/*.yaml`` in the same format, and a
user file with a built-in's name replaces it. ``none`` sends no system message at all (the persona
models' "general use"); ``custom`` is what ``/system TEXT`` makes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = [
    "GRID",
    "NONE",
    "Persona",
    "PersonaError",
    "custom",
    "load_personas",
]

BUILTIN_DIR = Path(__file__).with_name("builtin")
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader where PyYAML has it: startup time

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
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)
        if not isinstance(data, dict):
            raise PersonaError(f"{path}: expected a mapping with name and system")
        data.setdefault("name", path.stem)
        return Persona(**data, source=source)
    except PersonaError:
        raise
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "file"
        raise PersonaError(f"{path}: {where}: {first['msg']}") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise PersonaError(f"{path}: {e}".splitlines()[0]) from None


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
            except PersonaError as e:
                if warn:
                    warn(str(e))
                continue
            if persona.name in ("none", "custom"):
                if warn:
                    warn(f"{path}: the name {persona.name!r} is reserved")
                continue
            personas[persona.name] = persona
    return personas
