"""The model's tools — bash, read_file, write_file, edit_file — and running a call of one.

Each tool is a module with an argument model (its JSON schema is what the model sees), a preview
for the approval prompt and a run function. ``execute()`` turns any call, however malformed, into
a result string for the model: a call never crashes the session.
"""

from __future__ import annotations

import json

from pydantic import ValidationError

from . import bash, edit_file, read_file, write_file
from .base import Preview, Tool, ToolError, Workspace

__all__ = ["TOOLS", "Preview", "Tool", "ToolError", "Workspace", "parse_call", "execute"]

TOOLS: dict[str, Tool] = {t.name: t for t in (bash.TOOL, read_file.TOOL, write_file.TOOL, edit_file.TOOL)}


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
        return tool, tool.args.model_validate(raw)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'arguments'}: {err['msg']}" for err in e.errors())
        raise ToolError(f"invalid arguments for {name}: {problems}") from None


def execute(tool: Tool, args, ws: Workspace) -> str:
    """Run a parsed call. A ToolError becomes an error result; KeyboardInterrupt propagates."""
    try:
        return tool.run(args, ws)
    except ToolError as e:
        return f"error: {e}"
    except OSError as e:
        return f"error: {e.strerror or e}"
