"""What every tool is made of, and the workspace its file access is confined to."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict

__all__ = ["Args", "Preview", "Tool", "ToolError", "Workspace"]


class ToolError(Exception):
    """A call that cannot be carried out; the message goes to the model as the call's result."""


class Args(BaseModel):
    """Base of every tool's argument model: its JSON schema is what the model sees."""

    model_config = ConfigDict(extra="ignore")  # a stray extra argument is not worth failing a call


@dataclass(frozen=True, slots=True)
class Preview:
    """What the user sees before approving: a one-line summary and an optional body (a diff, a
    command, the head of a new file)."""

    summary: str
    body: str = ""
    language: str = ""  # for highlighting the body: "diff", "bash", ...


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    args: type[Args]
    preview: Callable[[Args, "Workspace"], Preview]
    run: Callable[[Args, "Workspace"], str]
    # Raises ToolError for a call bound to fail (a path outside the workspace): refused before
    # the user is asked, since there is nothing to approve.
    check: Callable[[Args, "Workspace"], None] | None = None

    def schema(self) -> dict:
        """The argument model's JSON schema, in the plain shape tool-call parsers and grammars
        handle best: optional fields as their own type (not anyOf with null), no titles."""
        schema = self.args.model_json_schema()
        schema.pop("title", None)
        for name, prop in schema.get("properties", {}).items():
            prop.pop("title", None)
            options = [o for o in prop.pop("anyOf", []) if o.get("type") != "null"]
            if options:
                prop.update(options[0])
            if prop.get("default", 0) is None:
                del prop["default"]
        return schema


class Workspace:
    """The directory tools work in. Every path a tool touches must resolve inside it: ``..``,
    absolute paths elsewhere and symlinks leading out are refused."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(os.path.realpath(root))

    def resolve(self, path: str) -> Path:
        if not isinstance(path, str) or not path.strip():
            raise ToolError("path is empty")
        if "\0" in path:
            raise ToolError("path contains a NUL byte")
        candidate = Path(path).expanduser()
        if not candidate.is_absolute():
            candidate = self.root / candidate
        real = Path(os.path.realpath(candidate))  # follows every symlink on the way
        if real != self.root and self.root not in real.parents:
            raise ToolError(f"{path}: outside the workspace ({self.root}); only files inside it can be used")
        return real

    def show(self, path: Path) -> str:
        """A path as the user and model should see it: relative to the workspace."""
        try:
            return str(path.relative_to(self.root)) or "."
        except ValueError:
            return str(path)
