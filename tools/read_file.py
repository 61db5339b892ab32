"""read_file: a text file's lines, numbered, a page at a time."""

from __future__ import annotations

from pydantic import Field

from .base import Args, Preview, Tool, Workspace
from .files import read_text

__all__ = ["ReadFileArgs", "TOOL"]

MAX_LINES = 2000  # a page
MAX_LINE_CHARS = 2000
MAX_OUTPUT_CHARS = 100_000


class ReadFileArgs(Args):
    path: str = Field(description="File to read, relative to the workspace")
    offset: int | None = Field(None, ge=1, description="First line to read (1-based); default 1")
    limit: int | None = Field(None, ge=1, description=f"How many lines to read; default {MAX_LINES}")


def preview(args: ReadFileArgs, ws: Workspace) -> Preview:
    start = args.offset or 1
    span = f"lines {start}–{start + args.limit - 1}" if args.limit else f"from line {start}" if args.offset else "whole file"
    return Preview(f"{args.path} ({span})")


def run(args: ReadFileArgs, ws: Workspace) -> str:
    path = ws.resolve(args.path)
    lines = read_text(path, ws).splitlines()
    start = (args.offset or 1) - 1
    count = min(args.limit or MAX_LINES, MAX_LINES)
    if lines and start >= len(lines):
        return f"{ws.show(path)} has {len(lines)} lines; offset {start + 1} is past the end"
    out, size, end = [], 0, start
    for number, line in enumerate(lines[start:start + count], start + 1):
        if len(line) > MAX_LINE_CHARS:
            line = line[:MAX_LINE_CHARS] + f"… [{len(line) - MAX_LINE_CHARS:,} more characters]"
        entry = f"{number:6}\t{line}"
        if size + len(entry) > MAX_OUTPUT_CHARS:
            break
        out.append(entry)
        size, end = size + len(entry) + 1, number
    if not lines:
        return f"{ws.show(path)} is empty"
    if end < len(lines):
        out.append(f"[lines {start + 1}–{end} of {len(lines)}; read on with offset {end + 1}]")
    return "\n".join(out)


TOOL = Tool(
    name="read_file",
    description="Read a text file in the workspace. Lines come numbered; long files a page at a time "
                "(use offset and limit to read more).",
    args=ReadFileArgs,
    preview=preview,
    run=run,
    check=lambda args, ws: ws.resolve(args.path) and None,
)
