"""Reading files, with one damage policy for every file the client reads — transcripts and probe
cells (through chat/eventlog.py), run.json, hand-order.json, probe sets, imports (CSV, JSON Lines), the
config file, persona files:

- what can't be used at all (unreadable, not UTF-8, not JSON, not YAML, the wrong shape) is one
  ``DataFileError`` whose message is one line naming the file (``file:line`` where a line is known);
- in a file of rows (JSON Lines, CSV), a row that doesn't fit is skipped and reported as one problem
  ``file:line: why``, and every other row still loads; ``Rows`` holds both;
- nothing else escapes: no traceback, whatever the bytes (truncated, flipped, junk lines, wrong types,
  a byte order mark, huge numbers, NaN, deep nesting).

For YAML, ``load_yaml`` returns the data and the line of every key (a key that is not a name is left
out and noted); ``problem`` turns a pydantic error into a line of text at the right place. Callers
decide what a problem costs: a persona file is skipped, a config setting is ignored, a probe set is
refused.
"""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from .limits import MAX_IMPORT, MAX_SMALL_FILE, size

__all__ = ["DataFileError", "Lines", "Rows", "load_json", "load_yaml", "problem", "read_bytes", "read_csv", "read_jsonl",
           "reason"]


class DataFileError(ValueError):
    """A file that can't be used; the message is one line: ``file:line: what is wrong``."""


@dataclass
class Rows:
    """What a file of rows held: the rows that fit, and one ``file:line: why`` per row skipped."""

    items: list = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    torn: bool = False  # the last line was cut off mid-write and skipped without a word
    lines: list[int] = field(default_factory=list)  # the line each item was read from


def reason(error: BaseException) -> str:
    """Why a value was refused, on one line: a validation's first problem and where, else the error's
    first line."""
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        return f"{where}: {message}" if where else message
    if isinstance(error, RecursionError):
        return "nested too deeply"
    return (str(error).splitlines() or [type(error).__name__])[0][:120]


def read_bytes(path: Path, cap: int = MAX_SMALL_FILE, tail: bool = False) -> bytes:
    """A regular file's bytes, a byte order mark an editor added left out; DataFileError if it can't
    be read at all, or is bigger than ``cap`` (checked before reading: chat/limits.py has the caps).
    ``tail``: of a bigger file, its last ``cap`` bytes instead (a log read for its newest entries)."""
    path = Path(path)
    try:  # non-blocking: a FIFO put where a file was expected must not hang the read
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise DataFileError(f"{path}: not a regular file")
            if st.st_size > cap and not tail:  # a sparse terabyte is never read
                raise DataFileError(f"{path}: cannot read: bigger than the {size(cap)} chat reads")
            f.seek(max(0, st.st_size - cap))
            data = f.read(cap + 1)
    except DataFileError:
        raise
    except (OSError, ValueError) as e:  # ValueError: a NUL in the name
        raise DataFileError(f"{path}: cannot read: {getattr(e, 'strerror', None) or e}") from None
    if len(data) > cap:  # it grew while being read
        if tail:
            return data[-cap:]
        raise DataFileError(f"{path}: cannot read: bigger than the {size(cap)} chat reads")
    return data.removeprefix(b"\xef\xbb\xbf")


def read_jsonl(path: Path, check: Callable[[object], object], torn_tail: bool = False,
               cap: int = MAX_SMALL_FILE) -> Rows:
    """The lines of a JSON Lines file that ``check`` takes (it returns the row, or raises ValueError —
    a pydantic ValidationError is one — saying why not). ``torn_tail``: a last line that is not JSON,
    what a kill mid-append leaves, is skipped silently (``torn``), not reported."""
    rows = Rows()
    lines = read_bytes(path, cap).split(b"\n")
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError) as e:  # bad JSON, bad UTF-8, a number too long, nesting too deep
            if torn_tail and number == len(lines):
                rows.torn = True
            else:
                rows.problems.append(f"{path}:{number}: not JSON ({reason(e)})")
            continue
        try:
            rows.items.append(check(value))
            rows.lines.append(number)
        except (ValueError, TypeError, RecursionError) as e:
            rows.problems.append(f"{path}:{number}: {reason(e)}")
    return rows


def read_csv(path: Path, columns: tuple[str, ...], check: Callable[[dict], object], cap: int = MAX_IMPORT) -> Rows:
    """The rows of a CSV file with a header naming at least ``columns`` that ``check`` takes (as for
    read_jsonl), each as a dict of the header's names; a file without those columns is a DataFileError.
    A row is named by the line it starts on, a row csv refuses too (csv.DictReader's count stops
    short there)."""
    try:
        text = read_bytes(path, cap).decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataFileError(f"{path}: not UTF-8 text (at byte {e.start:,})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next((row for row in reader if row), [])  # blank lines before it are skipped
    except csv.Error as e:
        raise DataFileError(f"{path}:1: not CSV: {e}") from None
    missing = [c for c in columns if c not in header]
    if missing:
        wanted = " and ".join([", ".join(columns[:-1]), columns[-1]] if len(columns) > 1 else columns)
        raise DataFileError(f"{path}:1: needs the columns {wanted} (missing: {', '.join(missing)})")
    rows = Rows()
    while True:
        line = reader.line_num + 1  # where the next row starts (a quoted field can span lines)
        try:
            fields = next(reader)
        except StopIteration:
            return rows
        except csv.Error as e:
            rows.problems.append(f"{path}:{line}: not a CSV row: {e}")
            continue
        if not fields:  # a blank line
            continue
        try:
            rows.items.append(check(dict(zip(header, fields))))
            rows.lines.append(line)
        except (ValueError, TypeError) as e:
            rows.problems.append(f"{path}:{line}: {reason(e)}")


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def load_json(path: Path, schema: type[BaseModel]) -> BaseModel:
    """A JSON document validated against ``schema``; DataFileError naming the file (and the line, for
    bad JSON) if it can't be used."""
    data = read_bytes(path)
    try:
        value = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise DataFileError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from None
    except (ValueError, RecursionError) as e:
        raise DataFileError(f"{path}: not valid JSON: {reason(e)}") from None
    try:
        return schema.model_validate(value)
    except (ValueError, RecursionError) as e:
        raise DataFileError(f"{path}: {reason(e)}") from None


class Lines:
    """The line each key (by its path of keys and indexes) was written on, and the keys that were
    left out because they are not names (``problems``: one ``file:line: …`` each)."""

    def __init__(self) -> None:
        self._lines: dict[tuple, int] = {(): 1}
        self.problems: list[str] = []

    def set(self, loc: tuple, line: int) -> None:
        self._lines[loc] = line

    def of(self, loc: tuple) -> int:
        """The line of ``loc``, or of the nearest enclosing key that has one."""
        for i in range(len(loc), -1, -1):
            if tuple(loc[:i]) in self._lines:
                return self._lines[tuple(loc[:i])]
        return 1


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # the C loader where PyYAML has it
    pass


MAX_VALUES = 100_000  # a hand-written file never holds more; aliases can make billions


class _Budget:
    def __init__(self, path: Path):
        self.path = path
        self.values = 0
        self.open: set[int] = set()  # the nodes being built: meeting one again is an alias loop

    def enter(self, node) -> None:
        self.values += 1
        if self.values > MAX_VALUES:
            raise DataFileError(f"{self.path}: too big: its aliases expand to more than {MAX_VALUES:,} values")
        if id(node) in self.open:
            raise DataFileError(f"{self.path}:{node.start_mark.line + 1}: an alias refers to itself")


def _construct(node, loader, loc: tuple, lines: Lines, path: Path, budget: _Budget):
    budget.enter(node)
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
        budget.open.add(id(node))
        try:
            return _construct_collection(node, loader, loc, lines, path, budget)
        finally:
            budget.open.discard(id(node))
    return loader.construct_object(node, deep=True)


def _construct_collection(node, loader, loc: tuple, lines: Lines, path: Path, budget: _Budget):
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        data = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                lines.problems.append(f"{path}:{line}: the key {key!r} is not a name")
                continue
            lines.set((*loc, key), line)
            data[key] = _construct(value_node, loader, (*loc, key), lines, path, budget)
        return data
    items = []
    for i, item in enumerate(node.value):
        lines.set((*loc, i), item.start_mark.line + 1)
        items.append(_construct(item, loader, (*loc, i), lines, path, budget))
    return items


def load_yaml(path: Path) -> tuple[object, Lines]:
    """The file's data and its keys' lines; DataFileError for a file that can't be read or parsed."""
    path = Path(path)
    try:
        text = read_bytes(path).decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataFileError(f"{path}: cannot read: {e}") from None
    lines = Lines()
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            data = None if node is None else _construct(node, loader, (), lines, path, _Budget(path))
        finally:
            loader.dispose()
    except ValueError as e:  # a constructor's own: an integer too long to convert, a bad date …
        raise DataFileError(f"{path}: not a value YAML can read: {str(e).splitlines()[0][:120]}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        reason = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise DataFileError(f"{path}{where}: not valid YAML: {reason}") from None
    return data, lines


def problem(path: Path, lines: Lines, error: ValidationError) -> str:
    """The first problem of a validation as ``file:line: where: what``."""
    loc = tuple(error.errors()[0]["loc"])
    why = reason(error)
    return f"{path}:{lines.of(loc)}: {why if loc else 'file: ' + why}"
