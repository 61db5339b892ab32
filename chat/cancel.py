"""The one way work is stopped: a token that streams, tools and parallel runs honour.

Only the front-end turns a key or a signal into a cancel (chat/interrupts.py): each user action —
a message, a command, a probe run — gets a token of its own and makes it the *action* token of its
thread while it runs. Work started meanwhile takes a token with ``new_token()``, which is cancelled
with the action's, so nothing in the core needs to know where a stop comes from, and no
KeyboardInterrupt is ever raised in the middle of it.

Cancelling calls every hook registered with ``on_cancel`` at once: a stream stalled in a read (or
still waiting for the server's headers) is shut down now, a running command is told to end, not at
the next token or the read timeout. The HTTP transport finds the token of the turn it serves
through ``current`` (set by the turn runner). A token says why it was cancelled (``reason``), so
that what is recorded can say it too, and whether the client is leaving.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

__all__ = ["CancelToken", "Cancelled", "LEAVING", "acting", "current", "new_token", "stoppable", "stopped"]

T = TypeVar("T")

LEAVING = ("terminated", "hung up")  # reasons the client ends after the action wraps up


class Cancelled(Exception):
    """A stream ended because its token was cancelled (not a ChatError: nothing went wrong)."""


class CancelToken:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancelled = False
        self._asked = False  # a signal handler asked: cancelled from now on, its hooks run in a moment
        self.reason: str | None = None  # "interrupted" (Ctrl-C), "terminated", "hung up" …
        self._hooks: dict[int, Callable[[], None]] = {}
        self._next = 0

    @property
    def cancelled(self) -> bool:
        return self._cancelled or self._asked

    def cancel_soon(self, reason: str) -> None:
        """From a signal handler: cancelled at once for whoever looks, the hooks run from a thread (the
        handler may have interrupted code holding the token's lock)."""
        if not self._cancelled and not self._asked:
            self.reason, self._asked = reason, True
        threading.Thread(target=self.cancel, args=(reason,), daemon=True).start()

    @property
    def why(self) -> str:
        """Why it was cancelled, as a model or a transcript is told."""
        return {"interrupted": "the user interrupted the turn (Ctrl-C)",
                "terminated": "chat was told to end (SIGTERM)",
                "hung up": "chat's terminal was closed (SIGHUP)"}.get(self.reason or "", f"it was stopped ({self.reason})")

    @property
    def leaving(self) -> bool:
        """Cancelled because the client must end (SIGTERM, a closed terminal)."""
        return self.reason in LEAVING

    def cancel(self, reason: str = "interrupted") -> None:
        with self._lock:
            if self._cancelled:
                return
            self._cancelled, self.reason = True, self.reason if self._asked else reason
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

    def child(self) -> "CancelToken":
        """A token cancelled (for the same reason) when this one is; cancelling it alone leaves this one."""
        token = CancelToken()
        token._unlink = self.on_cancel(lambda: token.cancel(self.reason or "interrupted"))
        return token

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
        try:
            yield self
        finally:
            current.reset(reset)


current: ContextVar[CancelToken | None] = ContextVar("gridchat_cancel", default=None)
_action: ContextVar[CancelToken | None] = ContextVar("gridchat_action", default=None)


@contextmanager
def acting(token: CancelToken) -> Iterator[CancelToken]:
    """Make ``token`` the action token of this thread while inside (the front-end's job)."""
    reset = _action.set(token)
    try:
        yield token
    finally:
        _action.reset(reset)


def stopped() -> bool:
    """Whether the action under way has been cancelled."""
    action = _action.get()
    return action is not None and action.cancelled


def new_token() -> CancelToken:
    """A token for work starting now: cancelled with the action under way, if there is one. Take it
    in the thread that starts the work (worker threads don't see the action)."""
    action = _action.get()
    return action.child() if action is not None else CancelToken()


def stoppable(call: Callable[[], T]) -> T:
    """``call()`` — a blocking request with a timeout of its own (server detection) — stopped at once
    by the action's cancel: it runs in a worker thread, and Cancelled is raised as soon as the action
    is cancelled (the worker ends on its own timeout, its result dropped). Outside an action: just
    ``call()``."""
    action = _action.get()
    if action is None:
        return call()
    done = threading.Event()
    outcome: list = []

    def work() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as e:  # noqa: BLE001 - handed over to the waiting thread as it is
            outcome.append((False, e))
        done.set()

    release = action.on_cancel(done.set)
    try:
        threading.Thread(target=work, daemon=True).start()
        done.wait()
    finally:
        release()
    if not outcome:
        raise Cancelled
    ok, value = outcome[0]
    if not ok:
        raise value
    return value
