"""write_file: create or overwrite a text file, atomically."""

from __future__ import annotations

from pydantic import Field

from .base import Args, Preview, Tool, ToolError, Workspace
from .files import atomic_write, read_text, unified_diff

__all__ = ["TOOL", "WriteFileArgs"]

NEW_FILE_HEAD = 40  # lines of a new file shown for approval


class WriteFileArgs(Args):
    path: str = Field(description="File to write, relative to the workspace; parent directories are created")
    content: str = Field(description="The file's complete new content")


def preview(args: WriteFileArgs, ws: Workspace) -> Preview:
    try:
        path = ws.resolve(args.path)
        if path.exists():
            old = read_text(path, ws)
            diff = unified_diff(old, args.content, ws.show(path))
            return Preview(f"overwrite {ws.show(path)}", diff or "(no change)", "diff")
    except ToolError as e:
        return Preview(f"{args.path}: {e}")
    lines = args.content.splitlines()
    head = "\n".join(lines[:NEW_FILE_HEAD])
    more = f"\n… ({len(lines) - NEW_FILE_HEAD} more lines)" if len(lines) > NEW_FILE_HEAD else ""
    return Preview(f"create {ws.show(path)} ({len(lines)} lines)", head + more)


def run(args: WriteFileArgs, ws: Workspace) -> str:
    path = ws.resolve(args.path)
    if path.is_dir():
        raise ToolError(f"{args.path}: is a directory")
    existed = path.exists()
    if existed:
        read_text(path, ws)  # refuse to overwrite a binary file
    atomic_write(path, args.content, ws)
    lines = args.content.count("\n") + (0 if args.content.endswith("\n") or not args.content else 1)
    return f"{'overwrote' if existed else 'created'} {ws.show(path)} ({lines} lines, {len(args.content.encode()):,} bytes)"


TOOL = Tool(
    name="write_file",
    description="Create a text file in the workspace, or replace one's whole content.",
    args=WriteFileArgs,
    preview=preview,
    run=run,
    check=lambda args, ws: ws.resolve(args.path) and None,
)
