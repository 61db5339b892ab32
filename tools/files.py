"""File handling shared by the file tools: regular files only, opened so that nothing can block;
text-only reads; atomic writes that keep the mode; diffs."""

from __future__ import annotations

import codecs
import difflib
import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO

from .base import ToolError, Workspace

__all__ = ["MAX_FILE_BYTES", "SNIFF_BYTES", "atomic_write", "file_status", "open_text", "read_text", "unified_diff"]

MAX_FILE_BYTES = 10 * 1024 * 1024  # edited or overwritten files are loaded whole; read_file pages any size
SNIFF_BYTES = 8192  # a NUL or broken UTF-8 in this much of the start: a binary file

_KINDS = ((stat.S_ISDIR, "is a directory"), (stat.S_ISFIFO, "is a FIFO (named pipe)"), (stat.S_ISSOCK, "is a socket"),
          (stat.S_ISCHR, "is a character device"), (stat.S_ISBLK, "is a block device"))


def file_status(path: Path, ws: Workspace) -> os.stat_result | None:
    """The file's status, symlinks followed; None when there is no such file."""
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise ToolError(f"{ws.show(path)}: {e.strerror or e}") from None


def _require_regular(st: os.stat_result, shown: str) -> None:
    if not stat.S_ISREG(st.st_mode):
        kind = next((what for test, what in _KINDS if test(st.st_mode)), "is not a regular file")
        raise ToolError(f"{shown}: {kind}, not a regular file; only regular files can be read or written")


def _open_regular(path: Path, ws: Workspace) -> BinaryIO:
    """A regular file opened for reading. Anything else is refused before it is opened (a device may
    act on open) and, should it be swapped in between, after: O_NONBLOCK keeps a FIFO's open from
    waiting for a writer."""
    shown = ws.show(path)
    st = file_status(path, ws)
    if st is None:
        raise ToolError(f"{shown}: no such file")
    _require_regular(st, shown)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        raise ToolError(f"{shown}: {e.strerror or e}") from None
    try:
        _require_regular(os.fstat(fd), shown)
        _require_inside(fd, ws, shown)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def _require_inside(fd: int, ws: Workspace, shown: str) -> None:
    """What was opened is inside the workspace: a symlink swapped in after the path was checked (to
    the client's own /proc files, say) is refused here, where it can no longer change."""
    try:
        opened = Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:  # no /proc (not Linux): the check before opening stands alone
        return
    if opened != ws.root and ws.root not in opened.parents:
        raise ToolError(f"{shown}: outside the workspace ({ws.root}); only files inside it can be used")


def open_text(path: Path, ws: Workspace) -> BinaryIO:
    """A regular file, opened for reading at its start, that does not look binary there."""
    shown = ws.show(path)
    f = _open_regular(path, ws)
    try:
        head = f.read(SNIFF_BYTES)
        if b"\0" in head:
            raise ToolError(f"{shown}: a binary file; only text files can be read or edited")
        try:
            codecs.getincrementaldecoder("utf-8")().decode(head)  # a character cut at the end is fine
        except UnicodeDecodeError:
            raise ToolError(f"{shown}: not UTF-8 text; only text files can be read or edited") from None
        f.seek(0)
    except OSError as e:
        f.close()
        raise ToolError(f"{shown}: {e.strerror or e}") from None
    except BaseException:
        f.close()
        raise
    return f


def read_text(path: Path, ws: Workspace, *, limit: int = MAX_FILE_BYTES) -> str:
    """The whole file's text, for an edit or an overwrite; a ToolError the model can act on otherwise
    (missing, a directory or FIFO, binary, past the limit)."""
    shown = ws.show(path)
    with open_text(path, ws) as f:
        size = os.fstat(f.fileno()).st_size
        if size > limit:
            raise ToolError(f"{shown}: {size:,} bytes, over the limit of {limit:,} bytes for a file edited or "
                            "overwritten whole (read_file still reads it a page at a time)")
        try:
            data = f.read(limit + 1)
        except OSError as e:
            raise ToolError(f"{shown}: {e.strerror or e}") from None
    if len(data) > limit:  # it grew since the stat
        raise ToolError(f"{shown}: over the limit of {limit:,} bytes for a file edited or overwritten whole")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ToolError(f"{shown}: not UTF-8 text (at byte {e.start:,}); only text files can be read or edited") from None


def atomic_write(path: Path, text: str, ws: Workspace) -> None:
    """Write via a temporary file in the same directory and a rename: a reader never sees half a
    file, and a failure leaves the old one. An existing file keeps its permission bits."""
    shown = ws.show(path)
    try:
        st = file_status(path, ws)
        mode = stat.S_IMODE(st.st_mode) if st else None
        path.parent.mkdir(parents=True, exist_ok=True)
        # the name's start only: a name near the length limit must still leave room for the temp suffix
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:32]}.", suffix=".tmp", dir=path.parent)
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
