"""The one redactor: the client knows every secret it holds, and blanks them out of any text before
it is shown, recorded in a transcript or a probe cell, exported, or logged.

A secret is held once it is known: the API key (flag, environment, config file), the
``user:password`` of an address (and the Basic credentials made of them), any ``Authorization``
value the client sends. Servers echo them back in error messages ("bad key Bearer sk-…"), so the
two places every outside text ends up — the terminal (chat/output.py) and the files the client
writes (chat/files.py, chat/eventlog.py) — pass their text through ``redact``. A secret is matched
where it stands as a whole token (not inside a longer word), so a short password can't blank out
every word it happens to be part of.
"""

from __future__ import annotations

import base64
import html
import json
import re
import threading
from urllib.parse import unquote, urlsplit

__all__ = ["MASK", "hold", "hold_given", "hold_url", "redact", "redact_tokens", "redact_value", "secrets"]

MASK = "***"

_lock = threading.Lock()
_held: set[str] = set()
_pattern: re.Pattern | None = None


def secrets() -> frozenset[str]:
    """Every secret held now."""
    return frozenset(_held)


def hold_given(argv: list[str], env) -> None:
    """Hold the keys a command line (``--api-key KEY``) and the environment give, before anything
    parses them: a parser's error echoes what was typed."""
    for name in ("OPENAI_API_KEY", "GRIDCHAT_API_KEY"):
        hold(env.get(name))
    def key(flag: str, value: str) -> bool:
        """Whether ``value`` is given to --api-key or an abbreviation of it: --api-k, or --ap, which
        `chat` finds ambiguous (and echoes) but `chat probe run` reads as --api (auto, chat, responses:
        no key, and held they would be blanked from every line)."""
        if not (len(flag) > 2 and "--api-key".startswith(flag)):
            return False
        return flag.startswith("--api-") or value not in ("auto", "chat", "responses")

    for flag, value in zip(argv, argv[1:]):
        if key(flag, value):
            hold(value)
    for arg in argv:
        flag, equals, value = arg.partition("=")
        if equals and key(flag, value):
            hold(value)


def hold(secret: str | None) -> None:
    """Remember ``secret`` (and its Bearer form): from now on it never leaves in text."""
    global _pattern
    if not secret or not secret.strip() or secret in _held:
        return
    with _lock:
        _held.add(secret)
        _held.add(json.dumps(secret, ensure_ascii=False)[1:-1])  # as it stands inside a JSON line (logs)
        _held.add(html.escape(secret))  # as it stands in an HTML page (an export, a report)
        _held.add(html.escape(secret, quote=False))
        tokens = sorted(_held, key=len, reverse=True)  # the longest first: a key containing another
        _pattern = re.compile("|".join(f"(?<![A-Za-z0-9]){re.escape(t)}(?![A-Za-z0-9])" for t in tokens))


def hold_url(url: str | None) -> None:
    """Remember the credentials of an address (``http://user:password@host/…``), as typed and as the
    Basic ``Authorization`` value they become."""
    if not url:
        return
    try:
        parts = urlsplit(url)
        user, password = parts.username, parts.password
    except ValueError:
        return
    if password:
        hold(password)
        hold(unquote(password))
        pair = f"{unquote(user or '')}:{unquote(password)}"
        hold(pair)
        hold(base64.b64encode(pair.encode()).decode())
    elif user:  # a token given as the user part
        hold(user)
        hold(unquote(user))


# The password of any address with credentials (scheme://user:password@host), held or not: an address
# read from a file is shown without its password, and a typed one is blanked even before it is held
# (the input history is written as the line is accepted).
_USERINFO = re.compile(r"(://[^/\s:@]*:)[^/\s@]+@")


def redact(text: str) -> str:
    """``text`` with every secret held, and every password in an address, replaced by ``***``; the
    same object when there is none."""
    if not text:
        return text
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    if "@" in text and "://" in text:
        text = _USERINFO.sub(rf"\1{MASK}@", text)
    return text


def found(text: str) -> list[tuple[int, int]]:
    """Where in ``text`` the secrets held, and the passwords in addresses, are: (start, end) pairs,
    left to right, not overlapping."""
    spans = [m.span() for m in _pattern.finditer(text)] if _pattern is not None and text else []
    if "@" in text and "://" in text:
        spans += [(m.end(1), m.end() - 1) for m in _USERINFO.finditer(text)]
        spans.sort()
        spans = [s for i, s in enumerate(spans) if i == 0 or s[0] >= spans[i - 1][1]]
    return spans


def redact_tokens(tokens: list[dict]) -> list[dict]:
    """A reply's tokens (the logprobs setting) with every token that carries part of a secret blanked,
    alternatives and all: a secret split across tokens is whole only in their joined text."""
    pattern = _pattern
    if pattern is None or not tokens:
        return tokens
    spans = [m.span() for m in pattern.finditer("".join(t["token"] for t in tokens))]
    if not spans:
        return tokens
    out, at = [], 0
    for token in tokens:
        end = at + len(token["token"])
        hit = any(start < end and at < stop for start, stop in spans)
        out.append({**token, "token": MASK, "top": {}} if hit else token)
        at = end
    return out


def redact_value(value):
    """A JSON-like value (an event, a request body) with every string in it redacted."""
    if _pattern is None:
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(k) if isinstance(k, str) else k: redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(v) for v in value]
    return value


def _forget_all() -> None:
    """For tests: hold nothing."""
    global _pattern
    with _lock:
        _held.clear()
        _pattern = None
