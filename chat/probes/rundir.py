"""A probe run's directory and its files: what each must hold (as chat/records.py says for the
cells' events), read through the one damage policy (datafile.py) and written through the one writer
(chat/files.py).

    OUT/.lock             held while `chat probe run` runs: a second run on OUT is refused
    OUT/run.json          the run (RunHeader): replaced whole
    OUT/cells/<probe>/<persona>--<sample>.jsonl
                          one event log per cell (CELL_RECORDS): a line that doesn't fit is skipped
    OUT/hand-order.json   the blind order of hand judging (HandOrder): replaced whole

RunDir knows where each lives; warnings go to ``warn`` as ``file:line: why``; what can't be used at
all is a RunDirError.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Literal
from urllib.parse import unquote

from pydantic import BaseModel, ConfigDict, Field

from ..datafile import DataFileError, load_json
from ..errors import RunDirError
from ..eventlog import append_events, read_log
from ..files import Lock, hold_lock, write_whole
from ..limits import listed
from ..records import CELL_RECORDS, Number, Record

__all__ = ["BY_CONSTRUCTION", "HandOrder", "RunDir", "RunDirError", "RunHeader", "append_records", "cell_events",
           "cell_key"]

Warn = Callable[[str], None]
BY_CONSTRUCTION = "construction"  # who gives the n/a verdict of a cell whose trap never ran


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
    params: dict[str, Number | str] = {}  # str: tool_choice
    seed: int | None = None
    judge: str = "none"
    started: str = ""
    answer_probability: bool = False  # measured at each probe's first answer and extraction turn


class HandOrder(_Strict):
    seed: int
    order: list[str]


def _ignore(message: str) -> None:
    pass


def _file_name(name: str) -> str:
    """``name`` (a probe id, a persona name: data from files) as one file name, so a cell's file is
    always directly in its folder and seen by the readers' glob: ``%``, ``/`` and NUL are escaped
    as ``%XX``, and so is a leading dot (``..``, a hidden file). Other names are left as they are,
    so earlier runs keep their files."""
    return re.sub(r"[%/\x00]|^\.", lambda m: f"%{ord(m.group()):02X}", name)


def cell_key(path: Path) -> tuple[str, str, str]:
    """(probe, persona, sample) as a cell's path names them: RunDir.cell_path read back."""
    persona, _, sample = path.stem.rpartition("--")
    return unquote(path.parent.name), unquote(persona), sample


def cell_events(path: Path, warn: Warn = _ignore, labels: Collection[str] = ()) -> list[dict]:
    """A cell file's events that fit their schemas; each line skipped is a warning (a torn last line,
    what a kill leaves, is skipped without one). An unreadable file is a warning and no events. Given
    the run's ``labels``, a verdict with another label (a hand edit, a renamed label) is skipped too:
    it would count as a label the run doesn't have."""
    try:
        log = read_log(path, CELL_RECORDS)
    except DataFileError as e:
        warn(str(e))
        return []
    for problem in log.problems:
        warn(problem)
    if not labels:
        return log.events
    kept = []
    for event, line in zip(log.events, log.lines):
        label = event.get("label") if event["event"] == "verdict" else None
        if label is None or label in labels or event.get("by") == BY_CONSTRUCTION:
            kept.append(event)
        else:
            warn(f"{path}:{line}: verdict {label!r} is not one of the run's labels ({listed(labels)}): skipped")
    return kept


def append_records(path: Path, *records: Record) -> None:
    """Append to a cell's file in one write: FileError if it could not be written."""
    append_events(path, *(record.line() for record in records))


# -- the directory ------------------------------------------------------------------------------------------

class RunDir:
    """A probe run's directory: where each of its files lives (the layout above), and reading and
    writing run.json and hand-order.json, and holding the lock."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @property
    def _header(self) -> Path:
        return self.path / "run.json"

    def has_header(self) -> bool:
        return self._header.exists()

    def header(self) -> dict:
        """run.json (as RunHeader validates it); RunDirError (one line) when this is not a run directory
        or its run.json is unusable."""
        if not self.has_header():
            raise RunDirError(f"{self.path}: not a probe run directory (no run.json)")
        try:
            return load_json(self._header, RunHeader).model_dump()
        except DataFileError as e:
            raise RunDirError(str(e)) from None

    def write_header(self, header: RunHeader) -> None:
        data = json.dumps(header.model_dump(), indent=2, ensure_ascii=False)
        write_whole(self._header, data.encode("utf-8"), parents=True)

    def cell_path(self, probe: str, persona: str, sample: int) -> Path:
        return self.path / "cells" / _file_name(probe) / f"{_file_name(persona)}--{sample}.jsonl"

    def cell_paths(self) -> list[Path]:
        """Every cell's file there is, sorted by path."""
        return sorted((self.path / "cells").glob("*/*.jsonl"))

    def hand_order(self, warn: Warn = _ignore) -> HandOrder | None:
        """The saved blind order, or None when there is none yet (or it is unusable: a warning)."""
        path = self.path / "hand-order.json"
        if not path.exists():
            return None
        try:
            return load_json(path, HandOrder)
        except DataFileError as e:
            warn(f"{e}: a new order is made")
            return None

    def write_hand_order(self, order: HandOrder) -> None:
        write_whole(self.path / "hand-order.json", order.model_dump_json(indent=1).encode("utf-8"))

    def lock(self) -> Lock:
        """Hold the directory for one run: Locked (one line naming the other process) while another runs there."""
        return hold_lock(self.path / ".lock", f"the run directory {self.path}")
