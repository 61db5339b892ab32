"""Where a streamed reply goes: a terminal (rich, Markdown) or a plain stream (pipes, files)."""

from __future__ import annotations

import itertools
import os
import sys
import time
from contextlib import nullcontext
from typing import TextIO

from rich.console import Console, ConsoleDimensions
from rich.padding import Padding
from rich.text import Text

from ..tools import Preview
from .advice import worded
from .errors import OutputError
from .events import Event, ReasoningDelta, TextDelta, ToolCall
from .output import Writer
from .render import MarkdownStream
from .sanitize import sanitize
from .toolbox import Outcome
from .turn import TurnResult, TurnStats

PREVIEW_LINES = 60  # of a diff or a new file, before approval
RESULT_LINES = 8  # of a tool's result, shown collapsed

__all__ = ["PREVIEW_LINES", "PlainSink", "PreviewPages", "TerminalSink", "format_stats", "show_lines"]


def format_stats(stats: TurnStats, window: int | None) -> str:
    parts = [f"{'~' if stats.counted else ''}{stats.completion_tokens:,} tokens"]
    if stats.time_to_first_token is not None:
        parts.append(f"{stats.time_to_first_token:.2f} s to first token")
    if stats.tokens_per_second:
        parts.append(f"{stats.tokens_per_second:.1f} tok/s")
    used = stats.context_used
    if used is not None and window:
        parts.append(f"context {used:,} / {window:,} ({100 * used / window:.0f}%)")
    elif used is not None:
        parts.append(f"context {used:,}")
    elif window:
        parts.append(f"window {window:,}")
    return " · ".join(parts)


class TerminalSink:
    """Renders a reply on a terminal: reasoning dim and apart, the answer as streamed Markdown,
    then a dim line of figures. Reasoning may go to another console (stderr in one-shot mode)."""

    def __init__(self, console: Console, *, show_reasoning: bool = True, window: int | None = None,
                 reasoning_console: Console | None = None, interactive: bool = False):
        self.console = console
        self.interactive = interactive  # errors advise slash commands (the REPL) or flags (one-shot)
        self.reasoning_console = reasoning_console or console
        self.show_reasoning = show_reasoning
        self.window = window
        self._reasoning: MarkdownStream | None = None
        self._answer: MarkdownStream | None = None

    def event(self, event: Event) -> None:
        kind = type(event)
        if kind is TextDelta:
            if self._answer is None:
                self._end_reasoning()
                self._answer = MarkdownStream(self.console)
            self._answer.feed(sanitize(event.text))
        elif kind is ReasoningDelta and self.show_reasoning:
            if self._reasoning is None:
                self._reasoning = MarkdownStream(self.reasoning_console, markdown=False, style="dim italic")
            self._reasoning.feed(sanitize(event.text))
        elif kind is ToolCall:
            self._end_reasoning()

    def _end_reasoning(self) -> None:
        if self._reasoning is not None:
            self._reasoning.close()
            self._reasoning = None
            self.reasoning_console.print()

    def tool_call(self, call: ToolCall, preview: Preview) -> None:
        self.console.print(Text.assemble(("⚙ ", "yellow"), (sanitize(call.name), "bold yellow"), "  ",
                                         (sanitize(preview.summary), "")))
        if preview.body:
            # the first page, which fits the screen under this line and above the question; the
            # approval prompt pages through the rest (PreviewPages)
            show_lines(self.console, PreviewPages(preview, self.console.size).first, preview.language)

    def tool_running(self, call: ToolCall):
        """A line that counts the seconds while the call runs (gone once it is done)."""
        from rich.live import Live

        return Live(_Running(call.name), console=self.console, refresh_per_second=4, transient=True)

    def tool_result(self, call: ToolCall, outcome: Outcome) -> None:
        failed = outcome.status == "error" or (outcome.exit_code or 0) != 0
        style = "red" if failed else {"ran": "green", "declined": "yellow", "interrupted": "yellow"}[outcome.status]
        line = f"  ↳ {outcome.status}"
        if outcome.exit_code is not None:
            line += f" · exit {outcome.exit_code}"
        if outcome.elapsed >= 0.5:
            line += f" · {outcome.elapsed:.1f} s"
        self.console.print(Text(line, style=style))
        if outcome.content and outcome.status != "declined":
            self.console.print(Padding(Text(_collapse(sanitize(outcome.content), RESULT_LINES), style="dim"), (0, 4)))

    def notice(self, text: str) -> None:
        self.console.print(Text(sanitize(text), style="yellow"))

    def end(self, result: TurnResult) -> None:
        self._end_reasoning()
        if self._answer is not None:
            self._answer.close()
            self._answer = None
        if result.interrupted:
            self.console.print(Text("[interrupted]", style="yellow"))
        if result.error is not None:
            self.console.print(Text(sanitize(f"error: {worded(result.error, interactive=self.interactive)}"),
                                    style="bold red"))
        if result.started and not result.message.tool_calls:  # a tool round's figures would only come between
            self.console.print(Text(format_stats(result.stats, self.window), style="dim"))
        short = result.shortfall
        if short:  # a cut reply is dim news; no answer at all is a warning
            self.console.print(Text(sanitize(f"✂ {short}"), style="dim" if result.message.content.strip() else "yellow"))


def show_lines(console: Console, lines: list[str | int], language: str) -> None:
    """Lines of a preview (a command, a diff, a file), made safe and highlighted; a run of blank
    lines (an int: how many) is one dim line that says so, apart from the highlighted text."""
    for blank, group in itertools.groupby(lines, key=lambda item: isinstance(item, int)):
        if blank:
            for n in group:
                console.print(Padding(Text(f"⟨{n:,} blank lines⟩", style="dim yellow"), (0, 2)))
            continue
        body = sanitize("\n".join(group))
        if language:
            from rich.syntax import Syntax

            console.print(Syntax(body, language, theme="ansi_dark", word_wrap=True, padding=(0, 2)))
        else:
            console.print(Padding(Text(body), (0, 2)))


def _collapsed(body: str) -> list[str | int]:
    """A preview's lines with each run of two or more blank lines as its length: a command padded
    with blank lines can't push its start off the screen."""
    out: list[str | int] = []
    for blank, group in itertools.groupby(body.rstrip("\n").split("\n"), key=lambda line: not line.strip()):
        run = list(group)
        out.extend([len(run)] if blank and len(run) > 1 else run)
    return out


def _rows(lines: list[str | int], width: int) -> list[str | int]:
    """Each line cut into the screen rows it takes (made safe first, as it will be shown): pages count
    rows, so one line longer than the screen can't scroll a command's start away."""
    from rich.cells import cell_len, chop_cells

    out: list[str | int] = []
    for line in lines:
        if isinstance(line, int):
            out.append(line)
            continue
        line = sanitize(line.expandtabs(8))
        out.extend(chop_cells(line, width) if cell_len(line) > width else [line])
    return out


class PreviewPages:
    """A preview's body a page of screen rows at a time: the first (at most PREVIEW_LINES) fits the
    screen with the call's line above it and the question below; the approval prompt shows the rest on
    ``m``."""

    def __init__(self, preview: Preview, size: ConsoleDimensions):
        width, height = size
        lines = _rows(_collapsed(preview.body), max(10, width - 4)) if preview.body else []  # 4: the padding
        self.language = preview.language
        self.lines = preview.body.rstrip("\n").count("\n") + 1 if preview.body else 0
        first = max(5, min(PREVIEW_LINES, height - 6))
        self.first, self.rest = lines[:first], lines[first:]
        self.page = max(5, height - 4)

    @property
    def not_shown(self) -> int:
        """Screen rows of the body not shown yet (a blank run counts as the lines it stands for)."""
        return sum(item if isinstance(item, int) else 1 for item in self.rest)

    def show_next(self, console: Console) -> None:
        shown, self.rest = self.rest[:self.page], self.rest[self.page:]
        show_lines(console, shown, self.language)


def _collapse(text: str, keep: int) -> str:
    """The first ``keep`` lines, and how many more there were."""
    lines = text.rstrip("\n").split("\n")
    if len(lines) <= keep:
        return "\n".join(lines)
    return "\n".join(lines[:keep]) + f"\n… ({len(lines) - keep} more lines: /expand shows all)"


class _Running:
    """``running bash · 3.2 s``, worked out afresh at each refresh of the live line."""

    def __init__(self, name: str):
        self.name = sanitize(name)
        self.started = time.monotonic()

    def __rich__(self) -> Text:
        return Text(f"  running {self.name} · {time.monotonic() - self.started:.1f} s (Ctrl-C stops it)", style="dim")


class PlainSink:
    """Plain text for pipes: the answer to ``out``, nothing else there; errors to ``err``. Both pass
    the output boundary (chat/output.py)."""

    def __init__(self, out: TextIO = sys.stdout, err: TextIO = sys.stderr):
        self.out = Writer(out)
        self.err = Writer(err)
        self._last = "\n"
        self._started = False
        self._gone = False  # the output failed (a full disk behind it): nothing more goes there

    def _write(self, text: str) -> None:
        if self._gone:
            return
        try:
            self.out.write(text)
        except BrokenPipeError:  # the reader left (`| head`): the CLI ends quietly
            raise
        except OSError as e:
            self._gone = True
            try:  # what is still buffered must not fail again when Python exits
                os.dup2(os.open(os.devnull, os.O_WRONLY), self.out.fileno())
            except (OSError, ValueError):
                pass
            raise OutputError(f"cannot write the reply to standard output: {e.strerror or e}") from None

    def event(self, event: Event) -> None:
        if type(event) is TextDelta and event.text:
            text = event.text
            if not self._started:  # drop the blank lines a <think> block leaves before the answer
                text = text.lstrip("\n")
            if text:
                self._started = True
                self._write(text)
                self._last = text[-1]

    def tool_call(self, call: ToolCall, preview: Preview) -> None:
        self.err.write(f"chat: tool call {call.name}: {preview.summary}\n")
        if preview.body and preview.language == "bash":
            self.err.write(f"  {preview.body}\n")

    def tool_running(self, call: ToolCall):
        return nullcontext()

    def tool_result(self, call: ToolCall, outcome: Outcome) -> None:
        code = f" (exit {outcome.exit_code})" if outcome.exit_code is not None else ""
        self.err.write(f"chat: {call.name}: {outcome.status}{code}\n")

    def notice(self, text: str) -> None:
        self.err.write(f"chat: {text}\n")

    def end(self, result: TurnResult) -> None:
        if self._last != "\n" and not self._gone:
            try:
                self._write("\n")
            except OutputError:
                pass  # already the turn's error
        if result.interrupted:
            self.err.write("chat: interrupted\n")
        if result.error is not None:
            self.err.write(f"chat: error: {worded(result.error, interactive=False)}\n")
        if result.shortfall:
            self.err.write(f"chat: {result.shortfall}\n")
