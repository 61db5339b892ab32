"""Split reasoning written inline in the answer (``<think>…</think>``, Apertus's
``<|inner_prefix|>…<|inner_suffix|>``) from the answer, safely across deltas: a tag may arrive cut
into pieces, so a possible tag start at the end of a delta is held back until the next one."""

from __future__ import annotations

import re

__all__ = ["ThinkSplitter"]

_TAGS = {"<think>": "</think>", "<|inner_prefix|>": "<|inner_suffix|>"}
_OPEN = re.compile("|".join(map(re.escape, _TAGS)))  # the first opening tag of any kind, in one scan


def _partial_tag_len(text: str, tags) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of one of ``tags``."""
    start = text.rfind("<", max(0, len(text) - max(map(len, tags)) + 1))
    while start != -1:
        tail = text[start:]
        if any(tag.startswith(tail) and tag != tail for tag in tags):
            return len(tail)
        start = text.find("<", start + 1)
    return 0


class ThinkSplitter:
    """``feed(text)`` returns ``[(is_reasoning, piece), ...]``; ``flush()`` returns what is held."""

    __slots__ = ("_held", "_close")

    def __init__(self) -> None:
        self._held = ""
        self._close: str | None = None  # the closing tag while inside reasoning

    def feed(self, text: str) -> list[tuple[bool, str]]:
        if not self._held and self._close is None and "<" not in text:
            return [(False, text)]  # the common case, kept cheap
        # One pass with a moving start: no slicing of the rest, no search past the first tag (text
        # from a server may hold many thousands of pairs in one delta).
        buf, out, at = self._held + text, [], 0
        while True:
            if self._close is not None:
                i = buf.find(self._close, at)
                if i == -1:
                    break
                out.append((True, buf[at:i]))
                at, self._close = i + len(self._close), None
            else:
                m = _OPEN.search(buf, at)
                if m is None:
                    break
                out.append((False, buf[at:m.start()]))
                at, self._close = m.end(), _TAGS[m.group()]
        buf = buf[at:]
        tags = (self._close,) if self._close is not None else tuple(_TAGS)
        keep = _partial_tag_len(buf, tags)
        out.append((self._close is not None, buf[: len(buf) - keep]))
        self._held = buf[len(buf) - keep:]
        return [(r, piece) for r, piece in out if piece]

    def flush(self) -> list[tuple[bool, str]]:
        held, self._held = self._held, ""
        return [(self._close is not None, held)] if held else []
