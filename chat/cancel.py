"""The one way a reply is cancelled: a token the turn runner honours.

Ctrl-C in the REPL, a parallel run (/compare, /retry N, probes) and anything else that wants to stop
requests calls ``cancel()``; every connection registered with the token is shut down at once, so a
stream stalled in a read (or still waiting for the server's headers) ends now, not at the next
token or the read timeout. Whoever streams registers what to close with ``on_cancel``; the HTTP
transport finds the token of the turn it serves through ``current`` (set by the turn runner).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["CancelToken", "Cancelled", "Terminated", "current", "interrupts_cancel", "streaming", "terminate",
           "terminated"]


class Cancelled(Exception):
    """A stream ended because its token was cancelled (not a ChatError: nothing went wrong)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP: stop like Ctrl-C (what streamed so far is kept and saved), then leave."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


_terminated: list[int] = []


def terminate(signum: int) -> None:
    """From a signal handler: note that the client must leave, and interrupt what runs now."""
    _terminated.append(signum)
    raise Terminated(signum)


def terminated() -> int | None:
    """The signal that asked the client to leave, if one did."""
    return _terminated[0] if _terminated else None


_streams = [0]  # turns streaming now, in any thread


def streaming() -> bool:
    """Whether a reply is streaming (stopping it keeps what came; nothing else needs stopping)."""
    return _streams[0] > 0


class CancelToken:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancelled = False
        self._hooks: dict[int, Callable[[], None]] = {}
        self._next = 0

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        with self._lock:
            if self._cancelled:
                return
            self._cancelled = True
            hooks, self._hooks = list(self._hooks.values()), {}
        for hook in hooks:
            hook()

    def on_cancel(self, hook: Callable[[], None]) -> Callable[[], None]:
        """Call ``hook`` when the token is cancelled (at once if it already is); returns a function
        that unregisters it."""
        with self._lock:
            if not self._cancelled:
                key, self._next = self._next, self._next + 1
                self._hooks[key] = hook
                return lambda: self._hooks.pop(key, None)
        hook()
        return lambda: None

    @contextmanager
    def closing(self, close: Callable[[], None]) -> Iterator[None]:
        """While inside, cancelling calls ``close``."""
        remove = self.on_cancel(close)
        try:
            yield
        finally:
            remove()

    @contextmanager
    def active(self) -> Iterator["CancelToken"]:
        """Make this the token of the current thread's turn (for the HTTP transport)."""
        reset = current.set(self)
        _streams[0] += 1
        try:
            yield self
        finally:
            _streams[0] -= 1
            current.reset(reset)


current: ContextVar[CancelToken | None] = ContextVar("gridchat_cancel", default=None)


@contextmanager
def interrupts_cancel(token: CancelToken) -> Iterator[CancelToken]:
    """While inside, Ctrl-C cancels ``token`` instead of raising KeyboardInterrupt: work made of
    several steps (a panel's round, a replay) stops at once yet is wrapped up whole, however many
    times the key is pressed. Only the main thread gets signals; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield token
        return
    # cancel() takes the token's lock: from a thread, so a handler run while it is held can't deadlock
    previous = signal.signal(signal.SIGINT, lambda signum, frame: threading.Thread(target=token.cancel).start())
    try:
        yield token
    finally:
        signal.signal(signal.SIGINT, previous)
