"""Reading what a server sends: JSON whose every field is checked for the shape it must have, so a
malformed stream or a lying /v1/models is one StreamError — never a TypeError deep in a parser, a
RecursionError, a number too big to print or a lone surrogate that can't be written back out.
Missing fields (None) read as empty."""

from __future__ import annotations

import json
import re
from urllib.parse import quote, urlsplit, urlunsplit

from .errors import StreamError

__all__ = ["MAX_COUNT", "WEB_ADDRESS_RULE", "count", "load_json", "load_object", "obj", "seq", "text", "web_address"]

WEB_ADDRESS_RULE = "not an http:// or https:// address"


_URL_SAFE = "/%:@!$&'()*+,;=~"  # kept as they are in a path or query: what a URL may hold unescaped


def web_address(value: str | None) -> str | None:
    """``value`` if it is an http:// or https:// address (or None), its path and query percent-encoded
    as the openai SDK sends them (``/€/v1`` → ``/%E2%82%AC/v1``: a request line is ASCII); ValueError
    otherwise: a server's address, typed or read from a file."""
    if value is None:
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 — a port that is no number is refused here, not at the first request
    except ValueError:
        raise ValueError(WEB_ADDRESS_RULE) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(WEB_ADDRESS_RULE)
    if not parts.netloc.isascii() or not parts.netloc.isprintable() or " " in parts.netloc:
        raise ValueError(f"{WEB_ADDRESS_RULE}: its host part must be ASCII (a host name in its xn-- form, "
                         "a password's other characters %-encoded)")
    return urlunsplit(parts._replace(path=quote(parts.path, _URL_SAFE), query=quote(parts.query, _URL_SAFE + "?")))

MAX_COUNT = 10**12  # tokens, windows, speeds: anything bigger is not a real figure
_SURROGATE = re.compile("[\ud800-\udfff]")


def load_json(data: str | bytes, what: str = "the server") -> object:
    try:
        return json.loads(data)
    except (ValueError, RecursionError):  # bad JSON, bad UTF-8, or nesting deeper than Python recurses
        shown = data[:80] if isinstance(data, str) else data[:80].decode("utf-8", "replace")
        raise StreamError(f"{what} sent something that is not JSON: {shown!r}") from None


def load_object(data: str, what: str = "the server") -> dict:
    value = load_json(data, what)
    if not isinstance(value, dict):
        raise StreamError(f"{what} sent an unexpected value: {data[:80]!r}")
    return value


def _unreadable(what: str, value: object, expected: str) -> StreamError:
    return StreamError(f"the server sent something unreadable: {what} is {type(value).__name__}, not {expected}")


def obj(value: object, what: str) -> dict:
    if isinstance(value, dict):
        return value
    if value is None:
        return {}
    raise _unreadable(what, value, "an object")


def seq(value: object, what: str) -> list:
    if isinstance(value, list):
        return value
    if value is None:
        return []
    raise _unreadable(what, value, "a list")


def text(value: object, what: str) -> str:
    """A string; lone surrogates (JSON allows "\\ud800") become U+FFFD, so it can be printed and sent."""
    if isinstance(value, str):
        if not value.isascii() and _SURROGATE.search(value):
            return _SURROGATE.sub("\ufffd", value)
        return value
    if value is None:
        return ""
    raise _unreadable(what, value, "text")


def count(value: object, what: str) -> int | float | None:
    """A number of tokens, a window, a speed: finite and of a believable size."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value == value and -MAX_COUNT < value < MAX_COUNT:  # NaN fails the first test
            return value
        raise StreamError(f"the server sent something unreadable: {what} is {str(value)[:20]}…, not a real figure")
    raise _unreadable(what, value, "a number")
