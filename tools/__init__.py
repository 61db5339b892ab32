"""The model's tools — bash, read_file, write_file, edit_file — and running a call of one.

Each tool is a module with an argument model (its JSON schema is what the model sees), a preview
for the approval prompt and a run function. ``prepare()`` and ``execute()`` turn any call, however
malformed, and any failure inside a tool into an error the model is told: a call never ends the
session. A stop token (chat/cancel.py's, duck-typed here) ends a running command at once.
"""

from __future__ import annotations

import json
import re

from pydantic import ValidationError

from . import bash, edit_file, read_file, write_file
from .base import Args, Preview, Tool, ToolError, Workspace

__all__ = ["TOOLS", "Preview", "Tool", "ToolError", "Workspace", "execute", "parse_call", "prepare"]

TOOLS: dict[str, Tool] = {t.name: t for t in (bash.TOOL, read_file.TOOL, write_file.TOOL, edit_file.TOOL)}

_SURROGATE = re.compile("[\ud800-\udfff]")


def parse_call(name: str, arguments: str):
    """The tool and its validated arguments, or a ToolError saying what is wrong with the call."""
    tool = TOOLS.get(name)
    if tool is None:
        raise ToolError(f"unknown tool {name!r}; the tools are: {', '.join(TOOLS)}")
    try:
        raw = json.loads(arguments or "{}")
    except ValueError as e:
        raise ToolError(f"arguments are not valid JSON ({e}); send a JSON object") from None
    if not isinstance(raw, dict):
        raise ToolError("arguments must be a JSON object")
    try:
        args = tool.args.model_validate(raw)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'arguments'}: {err['msg']}" for err in e.errors())
        raise ToolError(f"invalid arguments for {name}: {problems}") from None
    _require_unicode(args)
    return tool, args


def _require_unicode(args: Args) -> None:
    """JSON can carry a lone surrogate ("\\ud800"), which no file, command or terminal can take."""
    for field, value in args:
        found = _SURROGATE.search(value) if isinstance(value, str) else None
        if found:
            at = found.start()
            line = value.count("\n", 0, at) + 1
            column = at - value.rfind("\n", 0, at)
            raise ToolError(f"{field} is not valid Unicode: lone surrogate \\u{ord(found.group()):04x} at line "
                            f"{line}, column {column}; send the text as proper Unicode")


def _described(e: Exception) -> ToolError:
    """A failure nobody foresaw (a bug, an odd OS error), named by its type for the model and the user."""
    return e if isinstance(e, ToolError) else ToolError(f"{type(e).__name__}: {e}")


def prepare(name: str, arguments: str, ws: Workspace) -> tuple[Tool, Args, Preview]:
    """Parse, check and preview a call: what the user is asked to approve. Anything that goes wrong,
    a malformed call or a call bound to fail, is a ToolError: there is nothing to approve."""
    try:
        tool, args = parse_call(name, arguments)
        if tool.check:
            tool.check(args, ws)
        return tool, args, tool.preview(args, ws)
    except Exception as e:
        raise _described(e) from e


def execute(tool: Tool, args, ws: Workspace, approved: Preview | None = None, stop=None) -> str:
    """Run a parsed call, as ``approved`` showed it (None: nobody was asked); ``stop``, a cancel token
    (chat/cancel.py's, duck-typed here), ends it early. Any failure becomes an error result."""
    try:
        return tool.run(args, ws, approved, stop)
    except Exception as e:  # noqa: BLE001 - the one boundary: a failed tool is the model's result, not the session's end
        return f"error: {_described(e)}"
