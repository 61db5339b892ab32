"""File handling shared by the file tools: text-only reads, atomic writes that keep the mode, diffs."""

from __future__ import annotations

import difflib
import os
import stat
import tempfile
from pathlib import Path

from .base import ToolError, Workspace

__all__ = ["MAX_FILE_BYTES", "atomic_write", "read_text", "unified_diff"]

MAX_FILE_BYTES = 10 * 1024 * 1024  # files past this are not loaded whole (read_file pages instead)


def read_text(path: Path, ws: Workspace, *, limit: int | None = MAX_FILE_BYTES) -> str:
    """The file's text, or a ToolError the model can act on (missing, a directory, binary, huge)."""
    shown = ws.show(path)
    if not path.exists():
        raise ToolError(f"{shown}: no such file")
    if path.is_dir():
        raise ToolError(f"{shown}: is a directory")
    try:
        size = path.stat().st_size
        if limit is not None and size > limit:
            raise ToolError(f"{shown}: {size:,} bytes is too large to load whole (limit {limit:,})")
        data = path.read_bytes()
    except OSError as e:
        raise ToolError(f"{shown}: {e.strerror or e}") from None
    if b"\0" in data[:8192]:
        raise ToolError(f"{shown}: a binary file; only text files can be read or edited")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ToolError(f"{shown}: not UTF-8 text; only text files can be read or edited") from None


def atomic_write(path: Path, text: str, ws: Workspace) -> None:
    """Write via a temporary file in the same directory and a rename: a reader never sees half a
    file, and a failure leaves the old one. An existing file keeps its permission bits."""
    shown = ws.show(path)
    try:
        mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else None
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
                f.write(text)
            if mode is None:
                umask = os.umask(0)
                os.umask(umask)
                mode = 0o666 & ~umask
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as e:
        raise ToolError(f"{shown}: cannot write: {e.strerror or e}") from None


def unified_diff(old: str, new: str, name: str, context: int = 3) -> str:
    lines = difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                 fromfile=f"a/{name}", tofile=f"b/{name}", n=context)
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)
