"""The one sanitizer for text from outside — models, servers, tools, files, transcripts — on its way
to a terminal or an export: nothing in it may drive the terminal or hide what it says.

Control characters (C0 but tab and newline, DEL, C1) become visible symbols, so escape sequences
can't move the cursor, recolour, retitle or ring the bell; bidirectional controls (which can make a
command read differently from what runs) and invisible characters are shown as ⟨U+202E⟩ and the
like. Invisible means every default-ignorable code point of Unicode and the blank fillers: soft
hyphen, zero-width spaces and joiners' look-alikes, word joiner and the invisible operators, the
deprecated format controls, byte order marks, interlinear annotation, line and paragraph
separators, Mongolian and Hangul fillers, the tag characters (invisible ASCII look-alikes) and the
variation selectors — which can smuggle any bytes behind a visible character. Two exceptions keep
ordinary text whole: ZWJ and ZWNJ (emoji and several scripts need them), and one emoji
presentation selector (U+FE0E, U+FE0F) right after a visible character ("❤️"); a run of selectors,
or of joiners, is shown (one is all any text needs; a run can carry hidden bits).

Markup is never interpreted: callers put the result in rich ``Text``, never in markup strings;
Markdown goes through chat/render.py, which also shows link targets and raw HTML as text. Every
terminal write passes chat/output.py, which applies this to whatever reaches it.
"""

from __future__ import annotations

import re

__all__ = ["BIDI", "INVISIBLE", "sanitize", "valid_text"]

BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"

# (first, last) code points shown as ⟨U+XXXX⟩: Unicode's Default_Ignorable_Code_Point set (less ZWJ,
# ZWNJ and the bidi controls above), the Hangul fillers, the noncharacters U+FFFE/U+FFFF, and what
# draws nothing though it is no format character: braille blank, the Egyptian hieroglyph format
# controls, the musical null notehead.
_INVISIBLE_RANGES = [
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F),
    (0x200B, 0x200B), (0x2028, 0x2029), (0x2800, 0x2800), (0x2060, 0x2065), (0x206A, 0x206F), (0x3164, 0x3164),
    (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFFB), (0xFFFE, 0xFFFF),
    (0x13430, 0x1343F), (0x1BCA0, 0x1BCA3), (0x1D159, 0x1D159), (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
]
INVISIBLE = "".join(f"{chr(a)}-{chr(b)}" if a != b else chr(a) for a, b in _INVISIBLE_RANGES)

_VISIBLE = {c: 0x2400 + c for c in range(0x20) if c not in (0x09, 0x0A)}  # ␀ … ␟ (ESC shows as ␛)
_VISIBLE[0x7F] = "␡"
_VISIBLE.update({c: f"⟨U+{c:04X}⟩" for c in range(0x80, 0xA0)})
_VISIBLE.update({ord(c): f"⟨U+{ord(c):04X}⟩" for c in BIDI})
_VISIBLE.update({c: f"⟨U+{c:04X}⟩" for a, b in _INVISIBLE_RANGES for c in range(a, b + 1)})
_VISIBLE.update({c: "\ufffd" for c in range(0xD800, 0xE000)})  # lone surrogates can't even be written out
_NEEDS = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{BIDI}{INVISIBLE}\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_SELECTORS = "\ufe00-\ufe0f\U000e0100-\U000e01ef"
# one emoji presentation selector after something visible, not part of a run of selectors
_PRESENTATION = re.compile(f"(?<=[^{_SELECTORS}{INVISIBLE}{BIDI}\x00-\x1f\x7f-\x9f])[\ufe0e\ufe0f](?![{_SELECTORS}])")
_JOINERS = re.compile("[\u200c\u200d]{2,}")
_KEEP = "\x00"  # stands in for a kept selector while the rest is translated (NUL itself is translated first)


def valid_text(text: str) -> str:
    """Text that can be encoded: lone surrogates (undecodable bytes from argv or stdin, JSON escapes
    from a server or a transcript) become U+FFFD. Cheap when there are none."""
    return _SURROGATE.sub("\ufffd", text) if not text.isascii() and _SURROGATE.search(text) else text


def sanitize(text: str) -> str:
    """``text`` with every control, bidi and invisible character made visible; cheap when there are none."""
    if ("\u200c" in text or "\u200d" in text) and _JOINERS.search(text):
        text = _JOINERS.sub(lambda run: "".join(f"⟨U+{ord(c):04X}⟩" for c in run.group()), text)
    if not _NEEDS.search(text):
        return text
    if "\ufe0e" not in text and "\ufe0f" not in text:
        return text.translate(_VISIBLE)
    kept = [m.group() for m in _PRESENTATION.finditer(text)]
    if not kept:
        return text.translate(_VISIBLE)
    shown = _PRESENTATION.sub(_KEEP, text.replace(_KEEP, "␀")).translate(_VISIBLE | {0: _KEEP})
    pieces = shown.split(_KEEP)
    return "".join(p + (kept[i] if i < len(kept) else "") for i, p in enumerate(pieces))
