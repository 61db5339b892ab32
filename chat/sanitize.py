"""The one sanitizer for text from outside — models, servers, tools, files, transcripts — on its way
to a terminal or an export: nothing in it may drive the terminal or hide what it says.

Control characters (C0 but tab and newline, DEL, C1) become visible symbols, so escape sequences
can't move the cursor, recolour, retitle or ring the bell; bidirectional controls (which can make a
command read differently from what runs) are shown as ⟨U+202E⟩ and the like. Markup is never
interpreted: callers put the result in rich ``Text``, never in markup strings; Markdown goes through
chat/render.py, which also shows link targets and raw HTML as text.
"""

from __future__ import annotations

import re

__all__ = ["BIDI", "sanitize", "valid_text"]

BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"

_VISIBLE = {c: 0x2400 + c for c in range(0x20) if c not in (0x09, 0x0A)}  # ␀ … ␟ (ESC shows as ␛)
_VISIBLE[0x7F] = "␡"
_VISIBLE.update({c: f"⟨U+{c:04X}⟩" for c in range(0x80, 0xA0)})
_VISIBLE.update({ord(c): f"⟨U+{ord(c):04X}⟩" for c in BIDI})
_VISIBLE.update({c: "\ufffd" for c in range(0xD800, 0xE000)})  # lone surrogates can't even be written out
_NEEDS = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{BIDI}\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def valid_text(text: str) -> str:
    """Text that can be encoded: lone surrogates (undecodable bytes from argv or stdin, JSON escapes
    from a server or a transcript) become U+FFFD. Cheap when there are none."""
    return _SURROGATE.sub("\ufffd", text) if not text.isascii() and _SURROGATE.search(text) else text


def sanitize(text: str) -> str:
    """``text`` with every control and bidi character made visible; cheap when there are none."""
    return text.translate(_VISIBLE) if _NEEDS.search(text) else text
