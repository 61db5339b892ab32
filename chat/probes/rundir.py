"""A probe run's directory and its files: what each must hold (schemas, as chat/transcript.py has for
transcripts), read through the one damage policy (datafile.py) and written through the one writer
(chat/files.py).

    OUT/.lock             held while `chat probe run` runs: a second run on OUT is refused
    OUT/run.json          the run (RunHeader): replaced whole
    OUT/cells/…/*.jsonl   one event log per cell (CELL_SCHEMAS): a line that doesn't fit is skipped
    OUT/hand-order.json   the blind order of hand judging (HandOrder): replaced whole

Warnings go to ``warn`` as ``file:line: why``; what can't be used at all is a RunDirError.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..datafile import DataFileError, load_json
from ..errors import RunDirError
from ..eventlog import append_events, read_log
from ..files import Lock, hold_lock, write_whole
from ..transcript import SCHEMAS

__all__ = ["CELL_SCHEMAS", "HandOrder", "RunDirError", "RunHeader", "append_event", "cell_events", "lock_run",
           "read_hand_order", "read_run", "write_hand_order", "write_run"]

Warn = Callable[[str], None]
Number = int | Annotated[float, Field(allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")  # extra: newer versions' additions


class RunHeader(_Strict):
    """run.json: what was run, where and how. Every field has a default: older runs lack some."""

    set: str = ""
    title: str = ""
    kind: Literal["sycophancy", "refusal"] = "sycophancy"
    labels: dict[str, str] = {}
    source: str = ""
    probes: list[str] = []  # the probes run (--probes, --limit): the set's, or some of them
    model: str = ""
    servers: list[str] = []
    api: str = "chat"
    personas: list[str] = []
    samples: int = Field(1, ge=1)
    params: dict[str, Number] = {}
    seed: int | None = None
    judge: str = "none"
    started: str = ""


class HandOrder(_Strict):
    seed: int
    order: list[str]


# -- a cell's events: a transcript's, plus the cell's own ------------------------------------------------

class _CellMessage(SCHEMAS["message"]):
    step: int | None = Field(default=None, ge=0)  # the probe step it belongs to


class _Cell(_Strict):
    set: str = ""
    kind: str = ""
    probe: str
    category: str = ""
    control: bool = False
    expect: str | None = None
    persona: str
    system: str | None = None
    sample: int = Field(ge=0)
    model: str = ""
    server: str = ""
    params: dict[str, Number] = {}
    seed: int | None = None
    traps: list[int] = []


class _Scored(_Strict):
    step: int = Field(ge=0)
    trap: bool = False
    label: str | None = None  # the score rules' label (chat/probes/spec.py)
    held: list[str] = []  # the labels whose patterns the reply held: two or more is a hedge


class _Branch(_Strict):
    step: int = Field(ge=0)
    branch: str | None = None


class _Done(_Strict):
    branch: str | None = None
    extraction: str = ""
    trap_ran: bool = False


class _Error(_Strict):
    step: int | None = None
    message: str = ""


class _Verdict(_Strict):
    label: str | None = None
    by: str
    parsed: bool = True
    note: str = ""
    raw: str = ""
    blind: bool | None = None  # hand verdicts: given before any machine label or the cell's identity was shown


CELL_SCHEMAS = {**SCHEMAS, "message": _CellMessage, "cell": _Cell, "scored": _Scored, "branch": _Branch,
                "done": _Done, "error": _Error, "verdict": _Verdict}


def _ignore(message: str) -> None:
    pass


def cell_events(path: Path, warn: Warn = _ignore) -> list[dict]:
    """A cell file's events that fit their schemas; each line skipped is a warning (a torn last line,
    what a kill leaves, is skipped without one). An unreadable file is a warning and no events."""
    try:
        log = read_log(path, CELL_SCHEMAS)
    except DataFileError as e:
        warn(str(e))
        return []
    for problem in log.problems:
        warn(problem)
    return log.events


def append_event(path: Path, event: dict) -> None:
    append_events(path, event)


# -- run.json, hand-order.json and the lock ----------------------------------------------------------------

def read_run(out: Path) -> dict:
    """OUT/run.json (as RunHeader validates it); RunDirError (one line) when OUT is not a run directory
    or its run.json is unusable."""
    path = Path(out) / "run.json"
    if not path.exists():
        raise RunDirError(f"{out}: not a probe run directory (no run.json)")
    try:
        return load_json(path, RunHeader).model_dump()
    except DataFileError as e:
        raise RunDirError(str(e)) from None


def write_run(out: Path, header: dict) -> None:
    write_whole(Path(out) / "run.json", json.dumps(header, indent=2, ensure_ascii=False).encode("utf-8"), parents=True)


def read_hand_order(out: Path, warn: Warn = _ignore) -> HandOrder | None:
    """The saved blind order, or None when there is none yet (or it is unusable: a warning)."""
    path = Path(out) / "hand-order.json"
    if not path.exists():
        return None
    try:
        return load_json(path, HandOrder)
    except DataFileError as e:
        warn(f"{e}: a new order is made")
        return None


def write_hand_order(out: Path, order: HandOrder) -> None:
    write_whole(Path(out) / "hand-order.json", order.model_dump_json(indent=1).encode("utf-8"))


def lock_run(out: Path) -> Lock:
    """Hold OUT for one run: Locked (one line naming the other process) while another runs there."""
    return hold_lock(Path(out) / ".lock", f"the run directory {out}")
