"""write_file: create or overwrite a text file, atomically."""

from __future__ import annotations

import stat
from pathlib import Path

from pydantic import Field

from .base import Args, Preview, Tool, ToolError, Workspace
from .files import atomic_write, file_status, read_text, unified_diff

__all__ = ["TOOL", "WriteFileArgs"]


class WriteFileArgs(Args):
    path: str = Field(description="File to write, relative to the workspace; parent directories are created")
    content: str = Field(description="The file's complete new content")


def _target(args: WriteFileArgs, ws: Workspace) -> tuple[Path, str | None]:
    """The path and the text it holds now (None: a new file), or a ToolError for a target that must
    not be replaced: a directory, a FIFO or device, a binary file, one too large to diff."""
    path = ws.resolve(args.path)
    st = file_status(path, ws)
    if st is None:
        return path, None
    if stat.S_ISDIR(st.st_mode):
        raise ToolError(f"{args.path}: is a directory")
    return path, read_text(path, ws)


def _preview(path: Path, old: str | None, args: WriteFileArgs, ws: Workspace) -> Preview:
    shown = ws.show(path)
    if old is not None:
        return Preview(f"overwrite {shown}", unified_diff(old, args.content, shown) or "(no change)", "diff", shown)
    lines = len(args.content.splitlines())
    return Preview(f"create {shown} ({lines} line{'s' if lines != 1 else ''})", args.content, target=shown)  # all of it


def preview(args: WriteFileArgs, ws: Workspace) -> Preview:
    return _preview(*_target(args, ws), args, ws)


def run(args: WriteFileArgs, ws: Workspace, approved: Preview | None = None, stop=None) -> str:
    path, old = _target(args, ws)  # one look: what is checked against the approval is what is written
    if approved is not None:
        approved.require_still(_preview(path, old, args, ws), "write_file", args.path)
    atomic_write(path, args.content, ws)
    lines = args.content.count("\n") + (0 if args.content.endswith("\n") or not args.content else 1)
    return f"{'created' if old is None else 'overwrote'} {ws.show(path)} ({lines} lines, {len(args.content.encode()):,} bytes)"


TOOL = Tool(
    name="write_file",
    description="Create a text file in the workspace, or replace one's whole content.",
    args=WriteFileArgs,
    preview=preview,
    run=run,
    check=lambda args, ws: _target(args, ws) and None,
)
