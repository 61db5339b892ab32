"""The JSONL event log: one JSON object per line, appended and flushed per write. Session
transcripts and probe cells are both kept in it; this module is the only one that reads or
appends those files.

One policy for damage, applied on every read:
- a torn last line (a kill or a full disk mid-write) is skipped without a word: it is what a
  crash leaves and it holds no complete event;
- any other line that is not a JSON object with an ``event`` name, or that does not validate
  against its event's schema, is skipped and reported as a problem (``file:line: why``), so the
  rest of the file still loads;
- before appending to a file whose last line is torn, the torn tail is cut off (a complete last
  line that only lacks its newline gets one), so new events never merge into it.

Writes never raise: the first failure (a full disk, a read-only directory) is reported once
through ``on_error`` and the log stops writing (a gap would make later events meaningless);
whatever a failed write managed to put on disk is truncated away.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ValidationError

from .limits import MAX_LOG_FILE, read_file

__all__ = ["EventLog", "LogRead", "append_events", "encode_log", "read_log"]


@dataclass
class LogRead:
    events: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # "path:line: why", one per skipped line
    torn: bool = False  # the last line was torn and skipped


def _why(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "event"
    return f"{where}: {first['msg']}"


def read_log(path: Path, schemas: Mapping[str, type[BaseModel]] = {}) -> LogRead:
    """Every readable event of the file, validated against ``schemas`` (event name → model; events
    of other names pass as they are). OSError if the file can't be read at all."""
    if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would block the read for ever
        raise IsADirectoryError(errno.EISDIR if Path(path).is_dir() else errno.EINVAL, "not a regular file", str(path))
    data = read_file(path, MAX_LOG_FILE).removeprefix(b"\xef\xbb\xbf")  # a byte order mark an editor added
    out = LogRead()
    lines = data.split(b"\n")
    last = len(lines) - 1  # the part after the final newline: empty, or a torn line
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            event = json.loads(raw.decode("utf-8"))
            if not isinstance(event, dict) or not isinstance(event.get("event"), str):
                raise ValueError("not an event object")
        except (ValueError, RecursionError) as e:  # bad JSON, bad UTF-8, nesting too deep, or not an event
            if number - 1 == last:
                out.torn = True
                continue
            out.problems.append(f"{path}:{number}: not a readable event ({str(e).splitlines()[0][:80]})")
            continue
        schema = schemas.get(event["event"])
        if schema is not None:
            try:
                schema.model_validate(event)
            except ValidationError as e:
                out.problems.append(f"{path}:{number}: {event['event']}: {_why(e)}")
                continue
        out.events.append(event)
    return out


def _line(event: dict) -> bytes:
    try:
        return (json.dumps(event, ensure_ascii=False) + "\n").encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (from a model or a tool): kept as a JSON escape
        return (json.dumps(event) + "\n").encode("ascii")


def encode_log(events: list[dict]) -> bytes:
    """A whole log as bytes (a snapshot for /save, written with chat/files.py)."""
    return b"".join(_line(e) for e in events)


class EventLog:
    """Appends events to one file, each write flushed to the OS before ``append`` returns."""

    def __init__(self, path: Path, on_error: Callable[[str], None] = lambda message: None):
        self.path = Path(path)
        self.on_error = on_error
        self.failed: str | None = None  # why the log stopped writing, once it has
        self._fd: int | None = None

    def append(self, *events: dict) -> bool:
        """Write the events as one block; False (reported once) if it could not be written."""
        if self.failed is not None:
            return False
        data = b"".join(_line(e) for e in events)
        size = None
        try:
            if self._fd is None:
                self._open()
            size = os.lseek(self._fd, 0, os.SEEK_END)
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
        except OSError as e:
            self._fail(e, size)
            return False
        return True

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        self._mend_tail()

    def _mend_tail(self) -> None:
        """Cut a torn last line off (or end a complete one), so the next event starts a line of its own."""
        end = os.lseek(self._fd, 0, os.SEEK_END)
        if end == 0:
            return
        tail_start = max(0, end - 65536)
        while True:
            os.lseek(self._fd, tail_start, os.SEEK_SET)
            tail = os.read(self._fd, end - tail_start)
            if tail.endswith(b"\n"):
                return
            cut = tail.rfind(b"\n")
            if cut != -1 or tail_start == 0:
                break
            tail_start = max(0, tail_start - 65536)
        line_start = tail_start + cut + 1
        try:
            complete = isinstance(json.loads(tail[cut + 1:].decode("utf-8")), dict)
        except ValueError:
            complete = False
        if complete:
            os.write(self._fd, b"\n")
        else:
            os.ftruncate(self._fd, line_start)

    def _fail(self, error: OSError, size: int | None) -> None:
        if self._fd is not None and size is not None:
            try:
                os.ftruncate(self._fd, size)  # no half event left behind
            except OSError:
                pass
        self.failed = f"cannot write {self.path}: {error.strerror or error}"
        self.close()
        self.on_error(self.failed)

    def close(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None


def append_events(path: Path, *events: dict) -> None:
    """Append to a log in one go, for writers that must know it worked (probe cells): OSError if not."""
    log = EventLog(path)
    ok = log.append(*events)
    log.close()
    if not ok:
        raise OSError(log.failed)
