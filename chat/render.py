"""Streaming Markdown to a terminal at a flat cost per token.

A reply is printed in finished blocks (text up to a blank line outside a code fence, or a closed
fence), each rendered once; only the unfinished tail lives in a small ``rich.live.Live`` view,
redrawn on a clock and cut to the screen's height, so a 20,000-token reply costs per token what a
short one does. On a terminal, finished blocks are printed together on a clock too: one Markdown
render of several blocks costs far less than one per block (each print also redraws the live view).
"""

from __future__ import annotations

import re
import time

from rich.console import Console
from rich.live import Live
from rich.text import Text

__all__ = ["MarkdownStream", "markdown"]

def markdown(text: str, **options):
    """A rich Markdown renderable of model text that shows everything the text says: no terminal
    hyperlinks (a link whose target differs from its text reads "text (target)"), and raw HTML,
    comments included, shown as it is instead of dropped. ``text`` must already be sanitized."""
    from rich.markdown import Markdown  # ~0.1 s to import: only once a reply arrives

    rendered = Markdown(text, hyperlinks=False, **options)
    _show_everything(rendered.parsed)
    return rendered


def _show_everything(tokens) -> None:
    for i, token in enumerate(tokens):
        if token.type == "image":  # rich shows only the alt text: show where it points too
            alt, src = token.content, str(token.attrs.get("src", ""))
            token.type, token.tag, token.children = "text", "", None
            token.content = f"[image: {alt}] ({src})" if alt and alt != src else f"[image: {src}]"
        elif token.type == "html_block":  # rich drops these: show them as the text they are
            token.type, token.tag = "code_block", "code"
        elif token.type == "html_inline":
            token.type = "text"
        elif token.type == "link_open" and token.children is None:
            closing = next((j for j in range(i + 1, len(tokens)) if tokens[j].type == "link_close"), None)
            inner = "".join(t.content for t in tokens[i + 1:closing] if t.type in ("text", "code_inline"))
            if closing is not None and inner == token.attrs.get("href"):
                token.type = tokens[closing].type = "text"  # its text is its target: once is enough
                token.content = tokens[closing].content = ""
        if token.children:
            _show_everything(token.children)


COMMIT_EVERY = 0.2  # seconds between commits of finished blocks while the live view runs
_FENCE_RE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
# Blocks rich already renders with space above (lists, quotes) or padding (code)
_SPACED_RE = re.compile(r"\s*(?:[-*+] |\d+[.)] |>|```|~~~)")


class MarkdownStream:
    """Feed text as it arrives; ``close()`` prints the rest. ``markdown=False`` streams plain
    styled text (reasoning), committed line by line."""

    def __init__(self, console: Console, *, markdown: bool = True, style: str = "", fps: float = 10.0):
        self.console = console
        self.markdown = markdown
        self.style = style
        self._ready = ""  # finished blocks waiting for the next commit
        self._next_commit = 0.0  # monotonic time of the next commit while the live view runs
        # Complete lines not yet printed for good, in the pieces they came in: a reply with no block
        # boundary (one long paragraph, an unclosed code block) is appended to, never copied per line.
        self._lines: list[str] = []
        self._partial: list[str] = []  # what came after the last newline
        self._fence: str | None = None  # the marker of the open code fence, if inside one
        self._fence_line = ""  # its opening line, to keep the live tail rendering as code
        self._fps = fps
        self._live: Live | None = None
        self._version = 0  # bumped on every change, so the live view redraws only then
        self._shown: tuple[int, int] | None = None
        self._view = None
        self._padded = False  # the last block printed ended with a code block's padding line
        self.blocks_rendered = 0  # work counters: rendering must stay proportional to blocks
        self.tail_renders = 0

    # -- feeding ---------------------------------------------------------------------------------
    def feed(self, text: str) -> None:
        if not text:
            return
        self._version += 1
        self._partial.append(text)  # pieces after the last newline: no copying per token
        if "\n" in text:
            joined = "".join(self._partial)
            nl = joined.rfind("\n") + 1
            self._partial = [joined[nl:]] if nl < len(joined) else []
            self._commit_finished(joined[:nl])
        if self._live is None and self.console.is_terminal:
            self._live = Live(
                get_renderable=self._tail_view,
                console=self.console,
                refresh_per_second=self._fps,
                transient=True,
                vertical_overflow="crop",
            )
            self._live.start()

    def close(self) -> None:
        """Stop the live view and print what is left, rendered in full once."""
        if self._live is not None:
            self._live.stop()
            self._live = None
        rest = self._pending()
        self._ready, self._lines, self._partial, self._fence = "", [], [], None
        if rest.strip():
            self._print(rest)

    # -- committing finished blocks ------------------------------------------------------------
    def _pending(self) -> str:
        return self._ready + "".join(self._lines) + "".join(self._partial)

    def _commit_finished(self, lines: str) -> None:
        """Print the complete lines up to the last block boundary among the newly completed ``lines``."""
        cut, pos = 0, 0
        while pos < len(lines):
            nl = lines.index("\n", pos)
            line = lines[pos:nl]
            pos = nl + 1
            if not self.markdown:
                cut = pos
                continue
            fence = _FENCE_RE.match(line)
            if self._fence is not None:
                marker = fence.group(1) if fence else ""
                if marker[:1] == self._fence[0] and len(marker) >= len(self._fence) and not line.strip().strip(marker[0]):
                    self._fence, cut = None, pos
            elif fence:
                self._fence, self._fence_line = fence.group(1), line
            elif not line.strip():
                cut = pos
        if cut:
            self._ready += "".join(self._lines) + lines[:cut]
            self._lines = [lines[cut:]] if cut < len(lines) else []
        else:
            self._lines.append(lines)
        if self._ready and (self._live is None or time.monotonic() >= self._next_commit):
            ready, self._ready = self._ready, ""
            if ready.strip():
                self._print(ready)
            self._next_commit = time.monotonic() + COMMIT_EVERY

    def _render(self, text: str):
        if self.markdown:
            return markdown(text, justify="default")  # no padding to the full width: fewer bytes, clean copy
        return Text(text.rstrip("\n"), style=self.style)

    def _print(self, text: str) -> None:
        if self.markdown and self.blocks_rendered and not self._padded and not _SPACED_RE.match(text):
            self.console.print()  # the gap Markdown puts between blocks rendered together
        self._padded = bool(_FENCE_RE.match(text.rstrip().rsplit("\n", 1)[-1]))  # code ends in padding
        self.blocks_rendered += 1
        self.console.print(self._render(text))

    # -- the live tail -----------------------------------------------------------------------------
    def _tail_view(self):
        """What the live view shows: the unfinished tail, cut to the last screen's worth of lines."""
        height = max(4, self.console.size.height - 2)
        key = (self._version, height)
        if key == self._shown:
            return self._view
        pending = self._pending()
        opener = pending.rfind(self._fence_line + "\n") if self._fence is not None else -1
        if opener != -1:  # a code block is streaming: shown plain until it is done (no highlighting per frame)
            code = _last_lines(pending[opener + len(self._fence_line) + 1:], height)
            head = _last_lines(pending[:opener], max(0, height - code.count("\n") - 1))
            from rich.console import Group

            self.tail_renders += 1
            parts = [self._render(head)] if head.strip() else []
            self._shown, self._view = key, Group(*parts, Text(code, style="dim"))
            return self._view
        tail = _last_lines(pending, height)
        if len(tail) < len(pending) and self._fence is not None:  # keep rendering it as code
            tail = self._fence_line + "\n" + tail
        self.tail_renders += 1
        self._shown, self._view = key, self._render(tail)
        return self._view


def _last_lines(text: str, count: int) -> str:
    """The last ``count`` lines of ``text``, found from the end (a tail may be one long block)."""
    start = len(text)
    for _ in range(count):
        start = text.rfind("\n", 0, start)
        if start == -1:
            return text
    return text[start + 1:]
