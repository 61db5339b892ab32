"""Where a streamed reply goes: a terminal (rich, Markdown) or a plain stream (pipes, files)."""

from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console
from rich.text import Text

from .events import Event, ReasoningDelta, TextDelta, ToolCall
from .render import MarkdownStream, sanitize
from .turn import TurnResult, TurnStats

__all__ = ["PlainSink", "TerminalSink", "format_stats"]


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
                 reasoning_console: Console | None = None):
        self.console = console
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
            self.console.print(Text(f"tool call: {sanitize(event.name)}({sanitize(event.arguments)[:200]})", style="yellow"))

    def _end_reasoning(self) -> None:
        if self._reasoning is not None:
            self._reasoning.close()
            self._reasoning = None
            self.reasoning_console.print()

    def end(self, result: TurnResult) -> None:
        self._end_reasoning()
        if self._answer is not None:
            self._answer.close()
            self._answer = None
        if result.interrupted:
            self.console.print(Text("[interrupted]", style="yellow"))
        if result.error is not None:
            self.console.print(Text(f"error: {result.error}", style="bold red"))
        if result.started:
            self.console.print(Text(format_stats(result.stats, self.window), style="dim"))


class PlainSink:
    """Plain text for pipes: the answer to ``out``, nothing else there; errors to ``err``."""

    def __init__(self, out: TextIO = sys.stdout, err: TextIO = sys.stderr):
        self.out = out
        self.err = err
        self._last = "\n"
        self._started = False

    def event(self, event: Event) -> None:
        if type(event) is TextDelta and event.text:
            text = sanitize(event.text)
            if not self._started:  # drop the blank lines a <think> block leaves before the answer
                text = text.lstrip("\n")
            if text:
                self._started = True
                self.out.write(text)
                self.out.flush()
                self._last = text[-1]

    def end(self, result: TurnResult) -> None:
        if self._last != "\n":
            self.out.write("\n")
            self.out.flush()
        if result.interrupted:
            self.err.write("chat: interrupted\n")
        if result.error is not None:
            self.err.write(f"chat: error: {result.error}\n")
