"""Reading the YAML files people write — the config file, persona files, probe sets — so that any
problem is one line naming ``file:line``.

``load_yaml`` returns the data and the line of every key (a key that is not a name is left out and
noted); ``problem`` turns a pydantic error into a line of text at the right place. Callers decide what a problem costs: a persona file is skipped, a
config setting is ignored, a probe set is refused.
"""

from __future__ import annotations

import stat
from pathlib import Path

import yaml
from pydantic import ValidationError

from .chat.limits import read_file

__all__ = ["DataFileError", "Lines", "load_yaml", "problem"]


class DataFileError(ValueError):
    """A file that can't be used; the message is one line: ``file:line: what is wrong``."""


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
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO would block the read for ever
            raise DataFileError(f"{path}: not a regular file")
        text = read_file(path).decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataFileError(f"{path}: cannot read: {getattr(e, 'strerror', None) or e}") from None
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
    first = error.errors()[0]
    loc = tuple(first["loc"])
    where = ".".join(str(p) for p in loc) or "file"
    message = first["msg"].removeprefix("Value error, ")
    return f"{path}:{lines.of(loc)}: {where}: {message}"
