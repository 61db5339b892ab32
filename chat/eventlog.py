"""The JSONL event log: one JSON object per line, appended and fsync'd per write (through the one
writer, chat/files.py). Session transcripts and probe cells are both kept in it; this module is the
only one that reads or appends those files.

One policy for damage, applied on every read (the file policy of datafile.py, for logs):
- a torn last line (a kill or a full disk mid-write) is skipped without a word: it is what a
  crash leaves and it holds no complete event;
- any other line that is not a JSON object with an ``event`` name, or that does not validate
  against its event's schema, is skipped and reported as a problem (``file:line: why``), so the
  rest of the file still loads;
- before appending to a file whose last line is torn, the torn tail is cut off (a complete last
  line that only lacks its newline gets one), so new events never merge into it.

Writes never raise: the first failure (a full disk, a read-only directory, another chat holding
the log's lock) is reported once through ``on_error`` and the log stops writing (a gap would make
later events meaningless); whatever a failed write managed to put on disk is truncated away.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel

from .datafile import read_jsonl, reason
from .limits import MAX_LOG_FILE
from .files import AppendFile, FileError, Lock, Locked, hold_lock, lock_path

__all__ = ["EventLog", "LogRead", "append_events", "encode_log", "read_log"]


@dataclass
class LogRead:
    events: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # "path:line: why", one per skipped line
    torn: bool = False  # the last line was torn and skipped
    lines: list[int] = field(default_factory=list)  # the line of each event, to name where a misfit is


def _checker(schemas: Mapping[str, type[BaseModel]]):
    def check(event):
        if not isinstance(event, dict) or not isinstance(event.get("event"), str):
            raise ValueError("not a readable event (not an event object)")
        schema = schemas.get(event["event"])
        if schema is not None:
            try:
                schema.model_validate(event)
            except (ValueError, RecursionError) as e:
                raise ValueError(f"{event['event']}: {reason(e)}") from None
        return event
    return check


def read_log(path: Path, schemas: Mapping[str, type[BaseModel]] = {}) -> LogRead:
    """Every readable event of the file, validated against ``schemas`` (event name → model; events
    of other names pass as they are). DataFileError if the file can't be read at all."""
    rows = read_jsonl(path, _checker(schemas), torn_tail=True, cap=MAX_LOG_FILE)
    return LogRead(rows.items, rows.problems, rows.torn, rows.lines)


_CHUNK = 64 << 10  # read at a time when looking for the start of a torn last line


def _line(event: dict) -> bytes:
    try:
        return (json.dumps(event, ensure_ascii=False) + "\n").encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (from a model or a tool): kept as a JSON escape
        return (json.dumps(event) + "\n").encode("ascii")


def encode_log(events: list[dict]) -> bytes:
    """A whole log as bytes (a snapshot for /save, written with chat/files.py)."""
    return b"".join(_line(e) for e in events)


class EventLog:
    """Appends events to one file, each write fsync'd before ``append`` returns. With ``lock_as`` (what
    the log is, for the message), the log is locked while open (chat/files.py): a second writer is
    refused rather than interleaved — at ``claim()``, or at its first write (reported as a failure)."""

    def __init__(self, path: Path, on_error: Callable[[str], None] = lambda message: None,
                 lock_as: str | None = None):
        self.path = Path(path)
        self.on_error = on_error
        self.failed: str | None = None  # why the log stopped writing, once it has
        self._file: AppendFile | None = None
        self._lock_as = lock_as
        self._lock: Lock | None = None

    def claim(self) -> None:
        """Take the log's lock now: Locked (naming the other process) if another has it; any other
        failure stops the log, reported once."""
        if self._lock_as is None or self._lock is not None or self.failed is not None:
            return
        try:
            self._lock = hold_lock(lock_path(self.path), self._lock_as)
        except Locked:
            raise
        except FileError as e:
            self._fail(e)

    def append(self, *events: dict) -> bool:
        """Write the events as one block; False (reported once) if it could not be written."""
        if self.failed is not None:
            return False
        try:
            if self._file is None:
                self.claim()
                if self.failed is not None:
                    return False
                self._file = AppendFile(self.path)
                self._mend_tail()
            self._file.write(b"".join(_line(e) for e in events))
        except FileError as e:
            self._fail(e)
            return False
        return True

    def _mend_tail(self) -> None:
        """Cut a torn last line off (or end a complete one), so the next event starts a line of its own.
        The file is read backwards a chunk at a time, each chunk once: a long torn line costs its length."""
        log = self._file
        end = start = log.size()
        chunks: list[bytes] = []
        while start > 0:
            at = max(0, start - _CHUNK)
            chunk = log.read(at, start - at)
            if start == end and chunk.endswith(b"\n"):
                return
            cut = chunk.rfind(b"\n")
            chunks.append(chunk[cut + 1:])
            start = at + cut + 1  # the torn line's start, once its newline is found
            if cut != -1:
                break
        if not chunks:
            return
        try:
            complete = isinstance(json.loads(b"".join(reversed(chunks)).decode("utf-8")), dict)
        except (ValueError, RecursionError):
            complete = False
        if complete:
            log.write(b"\n")
        else:
            log.truncate(start)

    def _fail(self, error: FileError) -> None:
        self.failed = str(error)
        self.close()
        self.on_error(self.failed)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None


def append_events(path: Path, *events: dict) -> None:
    """Append to a log in one go, for writers that must know it worked (probe cells): FileError if not."""
    log = EventLog(path)
    ok = log.append(*events)
    log.close()
    if not ok:
        raise FileError(log.failed)
