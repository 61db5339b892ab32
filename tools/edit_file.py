"""edit_file: replace an exact string in a text file, atomically."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from .base import Args, Preview, Tool, ToolError, Workspace
from .files import atomic_write, read_text, unified_diff

__all__ = ["EditFileArgs", "TOOL"]


class EditFileArgs(Args):
    path: str = Field(description="File to edit, relative to the workspace")
    old_string: str = Field(description="Exact text to replace; must occur exactly once unless replace_all")
    new_string: str = Field(description="Text to put in its place")
    replace_all: bool = Field(False, description="Replace every occurrence")


def _edited(args: EditFileArgs, ws: Workspace) -> tuple[Path, str, str]:
    """(path, old text, new text), or a ToolError saying why the edit cannot apply."""
    path = ws.resolve(args.path)
    old = read_text(path, ws)
    if not args.old_string:
        raise ToolError("old_string is empty; use write_file to create or replace a whole file")
    count = old.count(args.old_string)
    if count == 0:
        raise ToolError(f"{ws.show(path)}: old_string not found (it must match exactly, whitespace included)")
    if count > 1 and not args.replace_all:
        raise ToolError(f"{ws.show(path)}: old_string occurs {count} times; give more context to make it "
                        "unique, or set replace_all")
    new = old.replace(args.old_string, args.new_string, -1 if args.replace_all else 1)
    return path, old, new


def _preview(path: Path, old: str, new: str, ws: Workspace) -> Preview:
    shown = ws.show(path)
    return Preview(f"edit {shown}", unified_diff(old, new, shown), "diff", shown)


def preview(args: EditFileArgs, ws: Workspace) -> Preview:
    return _preview(*_edited(args, ws), ws)


def run(args: EditFileArgs, ws: Workspace, approved: Preview | None = None, stop=None) -> str:
    path, old, new = _edited(args, ws)  # one look: what is checked against the approval is what is written
    if approved is not None:
        approved.require_still(_preview(path, old, new, ws), "edit_file", args.path)
    atomic_write(path, new, ws)
    replaced = old.count(args.old_string) if args.replace_all else 1
    return f"edited {ws.show(path)}: {replaced} replacement{'s' if replaced != 1 else ''}"


TOOL = Tool(
    name="edit_file",
    description="Edit a text file in the workspace by replacing an exact string with another.",
    args=EditFileArgs,
    preview=preview,
    run=run,
    check=lambda args, ws: _edited(args, ws) and None,
)
