"""Everything that reaches the terminal passes here, so no print site can forget the two promises
about what is shown: nothing from outside drives the terminal (control, bidi and invisible
characters are made visible: chat/sanitize.py), and no secret the client holds is shown
(chat/redact.py).

- ``Screen`` is the only rich Console: it makes the text of every segment safe just before its
  style is rendered — after layout, so nothing a renderable builds can slip past — and renders no
  hyperlinks. Secrets are blanked before layout too, in every Text it lays out (a key that layout
  folds over two lines, or crops in a narrow column, is whole in no segment) (a link's target is shown as text by chat/render.py instead). A terminal that went
  away (a closed window) ends its output quietly: what is being recorded is recorded all the same.
- ``say`` writes a plain line to stderr (or stdout), ``Writer`` a reply to a pipe or file.
- ``formatted`` builds prompt_toolkit's formatted text; and every character prompt_toolkit draws —
  prompt, toolbar, completion menu, the text being typed — shows bidi and invisible characters as
  ⟨U+202E⟩ too (its own table already shows control characters as ^X).

tests/test_output_boundary.py fails on any other way to the terminal: a bare ``print``,
``sys.stdout.write``, a ``Console`` built elsewhere, a ``FormattedText`` built elsewhere.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Callable
from typing import TextIO

from rich.console import Console
from rich.protocol import rich_cast
from rich.text import Text

from .redact import MASK, found, redact
from .sanitize import sanitize

__all__ = ["Parser", "Screen", "Writer", "clean", "formatted", "say", "unless_a_bug"]

_GONE = (errno.EIO, errno.ENXIO, errno.EBADF)  # the terminal is no more (hang-up, closed window)


def clean(text: str) -> str:
    """What of ``text`` may be shown: made visible, secrets blanked."""
    return redact(sanitize(text))


class Screen(Console):
    """The client's terminal output (see the module's docstring). No markup, no automatic
    highlighting, no emoji codes: text is shown as it is."""

    def __init__(self, **options) -> None:
        options.setdefault("highlight", False)
        options.setdefault("emoji", False)
        super().__init__(markup=False, **options)
        self.gone = False

    def render(self, renderable, options=None):
        renderable = rich_cast(renderable)
        if isinstance(renderable, Text):
            renderable = _masked(renderable)
        elif isinstance(renderable, str):
            renderable = redact(renderable)
        return super().render(renderable, options)

    def _render_buffer(self, buffer) -> str:
        return super()._render_buffer(self._safe(buffer))

    @staticmethod
    def _safe(buffer):
        for text, style, control in buffer:
            if control:  # rich's own cursor movements (a live view redrawing): not text
                yield text, style, control
                continue
            if style is not None and style.link:
                style = style.update_link(None)
            yield clean(text), style, control

    def _check_buffer(self) -> None:
        try:
            super()._check_buffer()
        except OSError as e:
            if e.errno not in _GONE:
                raise
            self.gone, self.quiet = True, True  # nothing more is drawn; the buffer is dropped next time
            del self._buffer[:]


def _masked(text: Text) -> Text:
    """``text`` with each secret held replaced by the mask, its styles kept; ``text`` itself if none."""
    spans = found(text.plain)
    if not spans:
        return text
    out, at = text[0:0], 0
    for start, end in spans:
        out += text[at:start]
        out += Text(MASK)
        at = end
    return out + text[at:]


def say(message: str, *, err: bool = True) -> None:
    """One plain line to stderr (or stdout), made safe; nothing when that stream is gone."""
    stream = sys.stderr if err else sys.stdout
    if stream is None:
        return
    try:
        stream.write(clean(message) + "\n")
        stream.flush()
    except OSError as e:
        if err and e.errno in (*_GONE, errno.EPIPE):
            return  # nowhere left to complain to
        raise


class Parser(argparse.ArgumentParser):
    """argparse's parser, whose usage, help and errors (which echo what was typed: a key given to the
    wrong flag) are made safe and redacted as every line is."""

    def _print_message(self, message: str, file: TextIO | None = None) -> None:
        stream = file or sys.stderr
        if message and stream is not None:
            stream.write(clean(message))


def unless_a_bug(command: str, body: Callable[[], int], after: str = "") -> int:
    """``body()``'s exit status; an exception no error mapping knew — only a bug of ours: every known
    error is a ChatError or the command's own — is one line saying so (made safe and redacted as every
    line is: a traceback would print a refused header's key), status 1. GRIDCHAT_DEBUG=1 raises it."""
    try:
        return body()
    except BrokenPipeError:  # the reader left: the process's to handle (chat.cli.main)
        raise
    except Exception as exc:
        if os.environ.get("GRIDCHAT_DEBUG", "0") not in ("", "0"):
            raise
        say(f"{command}: internal error (a bug in gridchat): {type(exc).__name__}: {exc}.{after} "
            "GRIDCHAT_DEBUG=1 shows the traceback")
        return 1


class Writer:
    """Text to a plain stream (a one-shot reply to a pipe or a file), made safe piece by piece."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def write(self, text: str) -> None:
        self.stream.write(clean(text))
        self.stream.flush()

    def fileno(self) -> int:
        return self.stream.fileno()


_guarded = False


def formatted(*parts: tuple[str, str] | str):
    """prompt_toolkit formatted text from ``(style, text)`` parts (or plain strings), made safe."""
    from prompt_toolkit.formatted_text import FormattedText

    _guard_prompt_toolkit()
    return FormattedText([("", clean(p)) if isinstance(p, str) else (p[0], clean(p[1])) for p in parts])


def _guard_prompt_toolkit() -> None:
    """Make prompt_toolkit draw bidi and invisible characters as ⟨U+XXXX⟩ wherever it draws them:
    its screen maps each character through ``Char.display_mappings`` (control characters are
    already there, as ^X)."""
    global _guarded
    if _guarded:
        return
    from prompt_toolkit.layout.screen import Char

    from .sanitize import BIDI, _INVISIBLE_RANGES

    shown = {c: f"⟨U+{ord(c):04X}⟩" for c in BIDI}
    shown.update({chr(c): f"⟨U+{c:04X}⟩" for a, b in _INVISIBLE_RANGES for c in range(a, b + 1)
                  if c not in (0xFE0E, 0xFE0F)})  # a lone emoji selector draws as part of its emoji
    Char.display_mappings.update({k: v for k, v in shown.items() if k not in Char.display_mappings})
    _guarded = True
