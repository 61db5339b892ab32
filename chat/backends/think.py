"""Split reasoning written inline in the answer (``<think>…</think>``, Apertus's
``<|inner_prefix|>…<|inner_suffix|>``) from the answer, safely across deltas: a tag may arrive cut
into pieces, so a possible tag start at the end of a delta is held back until the next one."""

from __future__ import annotations

__all__ = ["ThinkSplitter"]

_TAGS = {"<think>": "</think>", "<|inner_prefix|>": "<|inner_suffix|>"}


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
        buf, out = self._held + text, []
        while buf:
            if self._close is not None:
                i = buf.find(self._close)
                if i == -1:
                    break
                out.append((True, buf[:i]))
                buf, self._close = buf[i + len(self._close):], None
            else:
                hits = [(i, tag) for tag in _TAGS if (i := buf.find(tag)) != -1]
                if not hits:
                    break
                i, tag = min(hits)
                out.append((False, buf[:i]))
                buf, self._close = buf[i + len(tag):], _TAGS[tag]
        tags = (self._close,) if self._close is not None else tuple(_TAGS)
        keep = _partial_tag_len(buf, tags)
        out.append((self._close is not None, buf[: len(buf) - keep]))
        self._held = buf[len(buf) - keep:]
        return [(r, piece) for r, piece in out if piece]

    def flush(self) -> list[tuple[bool, str]]:
        held, self._held = self._held, ""
        return [(self._close is not None, held)] if held else []
