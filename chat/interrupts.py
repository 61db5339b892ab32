"""Keys and signals into cancels: the only place the client handles SIGINT, SIGTERM and SIGHUP.

Each user action runs under ``action()``: its token is the action token of the thread
(chat/cancel.py), and while it runs SIGINT cancels that token instead of raising KeyboardInterrupt.
So Ctrl-C stops streams, tools and parallel requests at once, and the action wraps up whole —
every reply, result and record kept — however often the key is pressed, and no KeyboardInterrupt
can land in a live view's start or halfway through a record. Between actions prompt_toolkit reads
Ctrl-C as a key; a question asked during an action (a tool's approval, a verdict) runs under
``asking()`` and is a prompt_toolkit prompt too, where Ctrl-C is the prompt's to answer.

SIGTERM and SIGHUP (the window closed), once ``install()``ed, end every process a tool started, then
stop the action as Ctrl-C would — for the reason they give, so what is recorded says so — and the
client leaves once the action is wrapped up, with 128 + the signal (``left()``). A question on
screen, or the prompt between actions, is ended at once (``Left``); SIGHUP at the prompt leaves at
once (every event is on disk, and there is no terminal left to restore). A second one leaves at once.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from .cancel import CancelToken, acting

__all__ = ["Left", "action", "asking", "install", "left"]

_REASONS = {signal.SIGTERM: "terminated", signal.SIGHUP: "hung up"}


class Left(KeyboardInterrupt):
    """SIGTERM or SIGHUP at a prompt (nothing to wrap up): end the prompt; the client leaves."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class _State:
    left: int | None = None  # the signal that asked the client to leave
    token: CancelToken | None = None  # the action running now
    asking = 0  # questions on screen during the action: a signal must end them


_state = _State()


def install() -> None:
    """Handle SIGTERM and SIGHUP from now on (the front-end, once, at start-up)."""
    for sig in _REASONS:
        signal.signal(sig, _leave)


def left() -> int | None:
    """The signal that asked the client to leave, if one did."""
    return _state.left


@contextmanager
def action() -> Iterator[CancelToken]:
    """Run one user action: Ctrl-C cancels its token (never raises). Only the main thread gets
    signals; elsewhere this only sets the action token."""
    token = CancelToken()
    outer, _state.token = _state.token, token
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, lambda signum, frame: _cancel(token, "interrupted")) if main else None
    try:
        with acting(token):
            yield token
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)
        _state.token = outer


@contextmanager
def asking() -> Iterator[None]:
    """A question is on screen during an action: SIGTERM or SIGHUP must end it, not wait for it."""
    _state.asking += 1
    try:
        yield
    finally:
        _state.asking -= 1


def _cancel(token: CancelToken, reason: str) -> None:
    token.cancel_soon(reason)


def _leave(signum, frame) -> None:
    from ..supervise.processes import end_all

    end_all()
    if _state.left is not None:  # asked twice: go now
        os._exit(128 + signum)
    _state.left = signum
    if _state.token is None and signum == signal.SIGHUP:
        os._exit(128 + signum)  # at the prompt with the window gone: nothing to save, nothing to restore
    if _state.token is not None:
        _cancel(_state.token, _REASONS[signum])
    if _state.token is None or _state.asking:
        raise Left(signum)  # a prompt is waiting for keys nobody will type
