"""read_file: a text file's lines, numbered, a page at a time.

The file is streamed, never loaded whole: the caps are on what one call returns, so a text file of
any size can be paged through."""

from __future__ import annotations

import codecs
from typing import BinaryIO

from pydantic import Field

from .base import Args, Preview, Tool, ToolError, Workspace
from .files import open_text

__all__ = ["TOOL", "ReadFileArgs"]

MAX_LINES = 2000  # a page
MAX_LINE_CHARS = 2000
MAX_OUTPUT_CHARS = 100_000
CHUNK = 1 << 20
COUNT_LIMIT = 256 << 20  # bytes past a page read to count the file's lines; beyond, "more than N"


class ReadFileArgs(Args):
    path: str = Field(description="File to read, relative to the workspace")
    offset: int | None = Field(None, ge=1, description="First line to read (1-based); default 1")
    limit: int | None = Field(None, ge=1, description=f"How many lines to read; default {MAX_LINES}")


def preview(args: ReadFileArgs, ws: Workspace) -> Preview:
    start = args.offset or 1
    span = f"lines {start}–{start + args.limit - 1}" if args.limit else f"from line {start}" if args.offset else "whole file"
    return Preview(f"{args.path} ({span})")


def _skip(f: BinaryIO, n: int) -> int:
    """Move past n lines; how many there were (fewer at the end of the file)."""
    passed, last = 0, b""
    while passed < n:
        chunk = f.read(CHUNK)
        if not chunk:
            return passed + (last not in (b"", b"\n"))  # an unterminated last line counts
        found = chunk.count(b"\n")
        if passed + found >= n:
            rest = chunk.split(b"\n", n - passed)[-1]
            f.seek(-len(rest), 1)
            return n
        passed, last = passed + found, chunk[-1:]
    return passed


def _count(f: BinaryIO) -> tuple[int, bool]:
    """Lines from here to the end, and whether the end was reached within COUNT_LIMIT bytes."""
    lines, last, read = 0, b"", 0
    while read < COUNT_LIMIT:
        chunk = f.read(CHUNK)
        if not chunk:
            return lines + (last not in (b"", b"\n")), True
        lines, last, read = lines + chunk.count(b"\n"), chunk[-1:], read + len(chunk)
    return lines, False


def _line(f: BinaryIO) -> tuple[str, int] | None:
    """The next line without its end: at most MAX_LINE_CHARS characters of it, and how many more it
    has. Read in bounded pieces, so one enormous line costs no more memory than a page. None at the
    end of the file; UnicodeDecodeError for broken UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    kept, size, more = [], 0, 0
    while piece := f.readline(CHUNK):
        ended = piece.endswith(b"\n")
        text = decoder.decode(piece[:-1] if ended else piece, final=ended)
        if size <= MAX_LINE_CHARS:
            kept.append(text)
            size += len(text)
        else:
            more += len(text)
        if ended:
            break
    else:
        if not kept:
            return None
        decoder.decode(b"", final=True)  # a character cut off by the end of the file
    line = "".join(kept).removesuffix("\r")
    return line[:MAX_LINE_CHARS], more + max(0, len(line) - MAX_LINE_CHARS)


def run(args: ReadFileArgs, ws: Workspace, approved: Preview | None = None, stop=None) -> str:
    path = ws.resolve(args.path)
    shown = ws.show(path)
    start = args.offset or 1
    count = min(args.limit or MAX_LINES, MAX_LINES)
    out, size, read = [], 0, 0
    with open_text(path, ws) as f:
        before = _skip(f, start - 1)
        while read < count:
            try:
                line = _line(f)
            except UnicodeDecodeError:
                raise ToolError(f"{shown}: line {start + read} is not UTF-8 text; only text files can be read") from None
            if line is None:
                break
            read += 1
            text, more = line
            entry = f"{start + read - 1:6}\t{text}" + (f"… [{more:,} more characters]" if more else "")
            if size + len(entry) > MAX_OUTPUT_CHARS:
                break
            out.append(entry)
            size += len(entry) + 1
        rest, counted = _count(f)
    total = before + read + rest
    if not total:
        return f"{shown} is empty"
    if not out and start > total:
        return f"{shown} has {total} lines; offset {start} is past the end"
    end = start + len(out) - 1
    if end < total or not counted:
        of = f"{total}" if counted else f"more than {total}"
        out.append(f"[lines {start}–{end} of {of}; read on with offset {end + 1}]")
    return "\n".join(out)


def _check(args: ReadFileArgs, ws: Workspace) -> None:
    open_text(ws.resolve(args.path), ws).close()  # missing, a FIFO, binary: refused before anyone is asked


TOOL = Tool(
    name="read_file",
    description="Read a text file in the workspace. Lines come numbered; long files a page at a time "
                "(use offset and limit to read more).",
    args=ReadFileArgs,
    preview=preview,
    run=run,
    check=_check,
)
