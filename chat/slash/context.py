"""What a slash command may use of the interactive client. The REPL implements it; commands never
import the REPL (nor each other), so the client's layers stay one-way: repl → slash → session."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from rich.console import Console

    from ..conversation import Message
    from ..panel import Panels
    from ..session import Session
    from ..sinks import TerminalSink
    from ..toolbox import Approver

__all__ = ["SlashContext"]


class SlashContext(Protocol):
    session: "Session"
    panels: "Panels"
    console: "Console"
    approver: "Approver"
    show_reasoning: bool

    def error(self, message: str) -> None:
        """One line in red."""

    def note(self, message: str) -> None:
        """One dim line."""

    def ask(self, question: str) -> str | None:
        """A one-line answer from the user; None for Ctrl-C or Ctrl-D."""

    def stream(self, run: Callable[["TerminalSink"], object]) -> object:
        """Connect if needed, then ``run(sink)`` with a terminal sink, keys quiet meanwhile; None if
        the server could not be reached (already said)."""

    def send(self, text: str) -> None:
        """Send a user message as if typed at the prompt."""

    def offer(self, text: str) -> None:
        """Put ``text`` at the next prompt to be sent again (saying so)."""

    def moving(self) -> AbstractContextManager:
        """Held while a command moves the conversation (its branch, persona or model): an open panel
        closes first, and opens again if the command is refused (raises a ChatError)."""

    def edit_inline(self, old: "Message") -> None:
        """Offer ``old``'s text at the next prompt; sending it replaces ``old`` as a sibling."""
