"""The one sanitizer for text from outside — models, servers, tools, files, transcripts — on its way
to a terminal or an export: nothing in it may drive the terminal or hide what it says.

Control characters (C0 but tab and newline, DEL, C1) become visible symbols, so escape sequences
can't move the cursor, recolour, retitle or ring the bell; bidirectional controls (which can make a
command read differently from what runs) and invisible characters (zero-width spaces, tag
characters …, which can hide text) are shown as ⟨U+202E⟩ and the like. Markup is never
interpreted: callers put the result in rich ``Text``, never in markup strings; Markdown goes through
chat/render.py, which also shows link targets and raw HTML as text.
"""

from __future__ import annotations

import re

__all__ = ["BIDI", "INVISIBLE", "sanitize", "valid_text"]

BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"

_VISIBLE = {c: 0x2400 + c for c in range(0x20) if c not in (0x09, 0x0A)}  # ␀ … ␟ (ESC shows as ␛)
_VISIBLE[0x7F] = "␡"
_VISIBLE.update({c: f"⟨U+{c:04X}⟩" for c in range(0x80, 0xA0)})
_VISIBLE.update({ord(c): f"⟨U+{ord(c):04X}⟩" for c in BIDI})
# Invisible characters that can hide text or change how it reads (ZWJ and ZWNJ stay: emoji and
# several scripts need them): soft hyphen, zero-width space, word joiner and the invisible
# operators, deprecated format controls, byte order mark, interlinear annotation, line and paragraph
# separators, Mongolian vowel separator, and the tag characters (invisible ASCII look-alikes).
INVISIBLE = ("\u00ad\u180e\u200b\u2028\u2029\u2060-\u2064\u206a-\u206f\ufeff\ufff9-\ufffb"
             "\U000e0000-\U000e007f")
_VISIBLE.update({c: f"⟨U+{c:04X}⟩" for c in [0xAD, 0x180E, 0x200B, 0x2028, 0x2029, *range(0x2060, 0x2065),
                                                *range(0x206A, 0x2070), 0xFEFF, *range(0xFFF9, 0xFFFC),
                                                *range(0xE0000, 0xE0080)]})
_VISIBLE.update({c: "\ufffd" for c in range(0xD800, 0xE000)})  # lone surrogates can't even be written out
_NEEDS = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{BIDI}{INVISIBLE}\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def valid_text(text: str) -> str:
    """Text that can be encoded: lone surrogates (undecodable bytes from argv or stdin, JSON escapes
    from a server or a transcript) become U+FFFD. Cheap when there are none."""
    return _SURROGATE.sub("\ufffd", text) if not text.isascii() and _SURROGATE.search(text) else text


def sanitize(text: str) -> str:
    """``text`` with every control and bidi character made visible; cheap when there are none."""
    return text.translate(_VISIBLE) if _NEEDS.search(text) else text
