"""One-shot mode (`chat -p TEXT`, or text on stdin): the reply to stdout, everything else to stderr."""

from __future__ import annotations

import sys

from .advice import worded
from .cancel import Cancelled
from .errors import ChatError
from .output import say
from .session import Session
from .toolbox import Decision

__all__ = ["StderrDecliner", "run_oneshot"]


class StderrDecliner:
    """Nobody can be asked here: a tool that is not pre-approved is declined, and stderr says so."""

    def ask(self, call, preview) -> Decision:
        say(f"chat: declined {call.name}: not pre-approved (--approve {call.name} runs it without asking)")
        return Decision(False, reason="nobody was there to approve it (non-interactive run)")


def run_oneshot(session: Session, text: str) -> int:
    """Exit status: 0 on a complete reply, 1 on an error, 130 when interrupted."""
    if not text.strip():
        say("chat: error: nothing to send (empty prompt)")
        return 1
    session.notify = lambda text: say(f"chat: {text}")
    try:
        session.connect()
    except ChatError as err:
        say(f"chat: error: {worded(err, interactive=False)}")
        return 1
    except Cancelled:
        say("chat: interrupted while connecting")
        return 130
    if sys.stdout.isatty():
        from .output import Screen
        from .sinks import TerminalSink

        err = Screen(stderr=True)
        sink = TerminalSink(Screen(), window=session.window, reasoning_console=err,
                            show_reasoning=session.settings.show_reasoning and err.is_terminal)
    else:
        from .sinks import PlainSink

        sink = PlainSink(sys.stdout, sys.stderr)
    result = session.send(text, sink, StderrDecliner())
    if result.error is not None:
        return 1
    return 130 if result.interrupted else 0
