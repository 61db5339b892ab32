"""What every tool is made of, and the workspace its file access is confined to."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
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
    command, a new file). The body is always whole: what is approved must be all there to see,
    even where the UI shows a part of it first."""

    summary: str
    body: str = ""
    language: str = ""  # for highlighting the body: "diff", "bash", ...
    target: str = ""  # the file a call writes, its symlinks followed as the preview was made

    def require_still(self, now: "Preview", tool: str, path: str) -> None:
        """Refuse a call whose preview, made again just before it runs (``now``), is not this one, the
        approved: its file was re-pointed or changed while the user was asked. The model is told to
        call again, so that the user is asked about what would happen now."""
        if now == self:
            return
        what = f"it now leads to {now.target}, not {self.target}" if now.target != self.target else \
            "someone changed the file meanwhile"
        raise ToolError(f"{path}: changed while the user was asked ({what}); nothing was written. Call {tool} "
                        "again: the user will be asked about it as it is now")

    @property
    def lines(self) -> int:
        """How many lines the body has, for a UI that shows some and pages through the rest."""
        return len(self.body.splitlines())


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    args: type[Args]
    preview: Callable[[Args, "Workspace"], Preview]
    # Gets the preview the user approved (None: nobody was asked); a tool whose effect is what it
    # previewed (a diff) makes it again and writes only if it is still the same (Preview.require_still);
    # and a cancel token (or None) that ends a running command.
    run: Callable[[Args, "Workspace", Preview | None, object], str]
    # Raises ToolError for a call bound to fail (a path outside the workspace): refused before
    # the user is asked, since there is nothing to approve.
    check: Callable[[Args, "Workspace"], None] | None = None
    # The exit code a result reports, for tools that run commands (shown with the result).
    exit_code: Callable[[str], int | None] | None = None

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


def _limit(root: Path, name: str, default: int) -> int:
    try:
        return os.pathconf(root, name)
    except (OSError, ValueError):
        return default


class Workspace:
    """The directory tools work in. Every path a tool touches must resolve inside it: ``..``,
    absolute paths elsewhere and symlinks leading out are refused.

    ``secrets`` are the client's credentials (the API key): tools run without them."""

    def __init__(self, root: str | os.PathLike, secrets: Iterable[str] = ()):
        self.root = Path(os.path.realpath(root))
        self.secrets = tuple(s for s in secrets if s)
        # checked up front: past them the OS fails on any call, exists() and stat() included
        self.name_max = _limit(self.root, "PC_NAME_MAX", 255)
        self.path_max = _limit(self.root, "PC_PATH_MAX", 4096)

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
        self._check_length(path, real)
        return real

    def _check_length(self, path: str, real: Path) -> None:
        shown = path if len(path) <= 60 else path[:60] + "…"
        longest = max(len(os.fsencode(part)) for part in real.parts)
        if longest > self.name_max:
            raise ToolError(f"{shown}: file name too long: a name of {longest} bytes in the path "
                            f"(the limit is {self.name_max} bytes a name)")
        if len(os.fsencode(real)) >= self.path_max:
            raise ToolError(f"{shown}: path too long: {len(os.fsencode(real))} bytes "
                            f"(the limit is {self.path_max - 1} bytes)")

    def show(self, path: Path) -> str:
        """A path as the user and model should see it: relative to the workspace."""
        try:
            return str(path.relative_to(self.root)) or "."
        except ValueError:
            return str(path)
