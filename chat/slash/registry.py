"""The slash command registry: each command module registers its handlers with ``@command``;
``dispatch`` runs one line. Handlers take a ``SlashContext`` and the argument text."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from rich.text import Text

from ..advice import worded
from ..errors import ChatError, paths
from ..sanitize import sanitize

if TYPE_CHECKING:
    from .context import SlashContext

__all__ = ["ALIASES", "COMMANDS", "EXIT", "Arg", "Command", "command", "dispatch", "line", "number", "one_line"]

EXIT = object()  # returned by a handler to end the session


class Arg(str, Enum):
    """What an argument can be, for Tab completion: one of these kinds, which the completer knows how to
    list (chat/completion.py), a list of literal words, or a tuple of those (any of them)."""

    PERSONAS = "personas"
    SPEC = "spec"  # a panel's lanes: personas, @models, crossed
    MODELS = "models"
    PARAMETERS = "parameters"
    LABELS = "labels"  # /mark's
    LANES = "lanes"  # an open panel's numbers
    BRANCHES = "branches"  # numbers and fork names
    PATH = "path"


@dataclass(frozen=True)
class Command:
    name: str
    usage: str
    help: str
    handler: Callable[["SlashContext", str], object]
    example: str = ""
    args: tuple = ()  # what each argument can be, in order (see above)
    moves: str = ""  # "always" or "with an argument": it changes the branch, persona or model (it runs inside
    # the context's moving(): an open panel closes first, the next message then going to one branch only)


COMMANDS: dict[str, Command] = {}
ALIASES = {"/quit": "/exit", "/q": "/exit", "/?": "/help"}


def command(name: str, usage: str, help: str, example: str = "", moves: str = "", args: tuple = ()):
    def register(handler):
        COMMANDS[name] = Command(name, usage, help, handler, example, args, moves)
        return handler

    return register


def dispatch(ctx: "SlashContext", text: str) -> object:
    """Run one slash command line. Errors are shown as one line; nothing is ever sent to the model."""
    name, _, arg = text.strip().partition(" ")
    name = ALIASES.get(name.lower(), name.lower())
    cmd = COMMANDS.get(name)
    if cmd is None:
        ctx.error(f"unknown command {name} — /help lists them (start a message with // to send a literal /)")
        return None
    moves = cmd.moves == "always" or bool(cmd.moves and arg.strip())
    try:
        # what moving the conversation means is the context's; a path the system refuses is one line
        with ctx.moving() if moves else nullcontext(), paths():
            return cmd.handler(ctx, arg.strip())
    except ChatError as err:
        ctx.error(worded(err, interactive=True))
        return None


def line(*parts: tuple[str, str] | str) -> Text:
    """A Text from (text, style) parts, with every text made safe: names can come from servers and files."""
    return Text.assemble(*[(sanitize(p), "") if isinstance(p, str) else (sanitize(p[0]), p[1]) for p in parts])


def one_line(text: str, width: int = 60) -> str:
    """Text on one line, cut to ``width`` with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def number(text: str) -> int | None:
    """A whole number typed as ASCII digits (str.isdigit also takes "²", which int() refuses)."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else None
