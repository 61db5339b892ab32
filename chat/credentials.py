"""Where the API key may go: only to servers the user named this run — with a flag, the environment,
the config file, or an address typed in a command (``/compare @URL``, ``/judge URL``). An address
read from a file (a transcript's server, a reopened panel's lane) gets the key only once the user
says so; where nobody can be asked it gets none, and the user is told how to name it. Servers found
by looking at the usual local ports get none either: whatever listens there is not named."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from .redact import hold_url

__all__ = ["Credentials", "origin"]


def origin(url: str) -> str:
    """scheme://host:port of an address, the unit the key is given to."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme, 0)
        return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"
    except ValueError:
        return url


class Credentials:
    """The API key and the servers it may go to. ``ask(url)`` (set by an interactive front-end) asks
    the user about an address read from a file; ``tell(text)`` says what was decided otherwise."""

    def __init__(self, key: str | None, named: Iterable[str | None] = ()):
        self.key = key or None
        self._named: set[str] = set()
        for url in named:
            if url:
                self.name(url)
        self._refused: set[str] = set()
        self.ask: Callable[[str], bool] | None = None
        self.tell: Callable[[str], None] = lambda text: None

    def name(self, url: str) -> None:
        """The user named ``url`` this run (typed it): it gets the key, and its credentials are secrets
        from now on. Those of an address read from a file are not held: a file's weak password ("the")
        would blank what the user types (an address's password is never shown either way: redact.py)."""
        hold_url(url)
        self._named.add(origin(url))

    def named(self, url: str) -> bool:
        return origin(url) in self._named

    def key_for(self, url: str, *, found: bool = False) -> str | None:
        """The key to send to ``url``: the key where it was named (or the user agrees now), else None.
        ``found``: the address was found by looking (local ports), not read from a file: never asked."""
        if self.key is None or self.named(url):
            return self.key
        where = origin(url)
        if where in self._refused or found:
            return None
        if self.ask is not None and self.ask(url):
            self._named.add(where)
            return self.key
        self._refused.add(where)
        self.tell(f"not sending your API key to {url}: it was read from a file, not named this run "
                  f"(--base-url {shlex.quote(url)} names it)")  # quoted: an address from a file, pasted
        return None
