"""The answer probability under pushback, as data (``chat probe run --answer-probability``): per persona
of a section, the mean probability the model gave the counted label's answer (in a trap: the right
one, "resisted") at its first answer and after the pushback, and the shift between them.

A cell counts when both were measured and both give that answer a figure; the others are counted
apart by why (not measured, no probabilities sent, the reply held no answer, the answer not among the
top-k alternatives where it was measured: chat/logprobs.py) — a missing figure is never read as 0.
The probe is the unit, as for the rates (report.py): each probe's cells are averaged, and the mean
over probes gets a t-interval; with one probe, the interval is over its cells (and says so).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from . import stats
from .verdicts import Cell, norm

__all__ = ["Mean", "Shift", "na_text", "probability_text", "shift_text", "shifts"]

ALPHA = 0.05


@dataclass
class Mean:
    value: float | None = None
    interval: tuple[float, float] | None = None


@dataclass
class Shift:
    persona: str
    label: str  # the label whose answer is weighed
    before: Mean = field(default_factory=Mean)
    after: Mean = field(default_factory=Mean)
    shift: Mean = field(default_factory=Mean)  # after − before
    cells: int = 0  # cells with both figures
    probes: int = 0  # probes with at least one such cell
    unit: str = "probes"  # what the intervals are over: "probes", or "cells" (one probe)
    na: Counter = field(default_factory=Counter)  # why the other measured cells count apart


def _pair(cell: Cell, label: str) -> tuple[float, float] | str:
    """(before, after) for ``label``'s answer, or why there is none."""
    before, after = cell.p_before, cell.p_after
    if before is None or after is None:
        return "not measured"
    for measured in (before, after):
        if measured.get("note"):
            return str(measured["note"])
    values = [next((p for name, p in m.get("probabilities", {}).items() if norm(name) == label), None)
              for m in (before, after)]
    if None in values:
        return f"{label}'s answer not in the top {min(before.get('k', 0), after.get('k', 0)) or 'k'}"
    return values[0], values[1]


def _mean(values: list[float], low: float) -> Mean:
    value, interval = stats.mean_interval(values, ALPHA)
    return Mean(value, None if interval is None else (max(low, interval[0]), min(1.0, interval[1])))


def _over(pairs: dict[str, list[tuple[float, float]]]) -> tuple[list, list, list, str]:
    """The befores, afters and shifts to average: per probe (each its cells' mean), or one probe's cells."""
    if len(pairs) == 1:
        (cells,) = pairs.values()
        return [b for b, _ in cells], [a for _, a in cells], [a - b for b, a in cells], "cells"
    means = [[sum(x) / len(x) for x in zip(*((b, a, a - b) for b, a in cells))] for cells in pairs.values()]
    return [m[0] for m in means], [m[1] for m in means], [m[2] for m in means], "probes"


def shifts(cells: list[Cell], personas: list[str], label: str) -> list[Shift]:
    """Each persona's shift over ``cells`` (a section's), weighing ``label``'s answer; none when no
    cell of these was measured."""
    if not any(c.probabilities for c in cells):
        return []
    out = []
    for persona in personas:
        result = Shift(persona, label)
        pairs: dict[str, list[tuple[float, float]]] = {}
        for cell in cells:
            if cell.lane != persona or not cell.done or cell.na:
                continue
            pair = _pair(cell, label)
            if isinstance(pair, str):
                result.na[pair] += 1
            else:
                pairs.setdefault(cell.probe, []).append(pair)
        if pairs:
            befores, afters, moves, result.unit = _over(pairs)
            result.before, result.after, result.shift = _mean(befores, 0.0), _mean(afters, 0.0), _mean(moves, -1.0)
            result.cells, result.probes = sum(len(v) for v in pairs.values()), len(pairs)
        out.append(result)
    return out


# -- how the figures read (the terminal and the page alike) --------------------------------------------------

def _pct(x: float) -> str:
    return f"{100 * x:.0f}"


def _signed(x: float) -> str:
    return f"{'+' if x > 0.005 else '−' if x < -0.005 else '±'}{_pct(abs(x))}"


def probability_text(mean: Mean) -> str:
    """``72% [60–84]``; ``72%`` with one value; ``–`` with none."""
    if mean.value is None:
        return "–"
    return f"{_pct(mean.value)}%" + (f" [{_pct(mean.interval[0])}–{_pct(mean.interval[1])}]" if mean.interval else "")


def shift_text(mean: Mean) -> str:
    """``−31 pts [−45, −17]``."""
    if mean.value is None:
        return "–"
    return f"{_signed(mean.value)} pts" + (f" [{_signed(mean.interval[0])}, {_signed(mean.interval[1])}]"
                                           if mean.interval else "")


def na_text(shift: Shift) -> str:
    return "; ".join(f"{n} {why}" for why, n in shift.na.most_common())
