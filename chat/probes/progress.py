"""The progress line of a probe run: cells done of all to do, the rate so far, the reply tokens a second
it takes in, and when the rest should be done (`1,200/40,000 cells · 30.0 cells/s ·
9,310 tok/s · ETA 22 min`), so a run too big for the machine shows it early."""

from __future__ import annotations

from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn
from rich.text import Text

__all__ = ["CellsColumn", "cells_progress", "duration", "pace"]


def duration(seconds: float) -> str:
    """A rough human duration: `40 s`, `9 min`, `2 h 05 min`."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{round(seconds / 60)} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min"


def pace(done: int, total: int | None, elapsed: float | None, unit: str = "cells", tokens: int | None = None) -> str:
    """`done/total cells · rate · tokens/s · ETA …`; the rates are this run's averages so far (cells
    finish in bursts); tokens: the replies' tokens so far, when counted."""
    line = f"{done:,}/{f'{total:,}' if total is not None else '?'} {unit}"
    if not done or not elapsed:
        return line + " · ETA …"  # nothing finished yet: no rate to go by
    per_second = done / elapsed
    rate = f"{per_second:.1f} {unit}/s" if per_second >= 1 else f"{per_second * 60:.1f} {unit}/min"
    if tokens is not None:
        rate += f" · {tokens / elapsed:,.0f} tok/s"
    left = max(0, (total or done) - done)
    return f"{line} · {rate} · " + ("done" if not left else f"ETA {duration(left / per_second)}")


class CellsColumn(ProgressColumn):
    """rich's column for `pace`."""

    def __init__(self, unit: str = "cells"):
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        total = int(task.total) if task.total is not None else None
        return Text(pace(int(task.completed), total, task.elapsed, self.unit, task.fields.get("tokens")))


def cells_progress(console, doing: str = "running") -> Progress:
    """A transient progress line: what is being done, a bar, and the pace."""
    return Progress(TextColumn(doing), BarColumn(), CellsColumn(), console=console, transient=True)
