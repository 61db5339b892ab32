"""How the commands that ask several replies at once show them: a progress line while they come,
then each reply under its title — side by side when each gets 40 columns or more, else one under
the other — with its reasoning (the first lines, dim), its stats and finish reason, and a mark
when it was cut short."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from ..advice import worded
from ..render import markdown
from ..sanitize import sanitize
from ..sinks import format_stats

if TYPE_CHECKING:
    from ..turn import TurnResult
    from .context import SlashContext

__all__ = ["REASONING_LINES", "columns", "progress", "reply_body"]

REASONING_LINES = 3  # of each reply's reasoning, before "… more": the whole of it is a command away


def progress(ctx: "SlashContext", what: str):
    """A status line, and the function that updates it with ``k/n done``."""
    status = ctx.console.status(what)

    def update(done: int, total: int) -> None:
        status.update(f"{what} {done}/{total} done")

    return status, update


def reply_body(ctx: "SlashContext", result: "TurnResult | None", extra: list[RenderableType] = (),
               whole: str = "") -> RenderableType:
    """One reply of several: reasoning (``whole`` names the command that shows all of it), text,
    the tools it wants, errors, a cut-short mark, ``extra`` lines, then stats and finish reason."""
    if result is None or (result.interrupted and not result.started):
        return Text("(stopped before its first word)", style="yellow")
    parts: list[RenderableType] = []
    message = result.message
    if message.reasoning.strip() and ctx.show_reasoning:
        lines = message.reasoning.strip().splitlines()
        shown = "\n".join(lines[:REASONING_LINES])
        if len(lines) > REASONING_LINES:
            shown += f"\n… ({len(lines) - REASONING_LINES} more lines of reasoning{': ' + whole if whole else ''})"
        parts.append(Text(sanitize(shown), style="dim italic"))
    if message.content:
        parts.append(markdown(sanitize(message.content)))
    for call in message.tool_calls:
        parts.append(Text(f"⚙ wants {sanitize(call.name)}({sanitize(call.arguments)[:120]})", style="yellow"))
    if result.error is not None:
        parts.append(Text(sanitize(f"error: {worded(result.error, interactive=True)}"), style="red"))
    finish = result.stats.finish_reason
    if result.interrupted:
        parts.append(Text("✂ cut short (interrupted)", style="bold yellow"))
    elif result.shortfall:
        parts.append(Text(sanitize(f"✂ {result.shortfall}"), style="bold yellow"))
    parts += list(extra)
    if result.started:
        parts.append(Text(f"{format_stats(result.stats, None)} · finish: {finish or '—'}", style="dim"))
    return Group(*parts) if parts else Text("(empty reply)", style="dim")


def columns(ctx: "SlashContext", items: list[tuple[str, RenderableType]]) -> None:
    """Titled renderables, side by side when wide enough, else stacked under their titles."""
    if len(items) > 1 and ctx.console.width // len(items) >= 40:
        table = Table(show_lines=False, expand=True, header_style="bold magenta")
        for title, _ in items:
            table.add_column(Text(sanitize(title)), ratio=1)
        table.add_row(*[body for _, body in items])
        ctx.console.print(table)
    else:
        for title, body in items:
            ctx.console.print(Rule(Text(sanitize(title), style="bold magenta"), align="left"))
            ctx.console.print(body)
