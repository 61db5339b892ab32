"""A probe run's report in the terminal: per probe × persona the full label distribution and the
headline rate with its interval, per persona the difference from the reference (and, with an adapter
axis, its fine-tune's from its base), hand against judge, where answers turned, a legend for every
symbol, and what is left to do. Personas are columns where they fit the width (``--width``; 80 when
the output is not a terminal); else each probe lists its personas one per line, so no name is ever
broken."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..sanitize import sanitize
from .report import (NA, Dist, Report, Section, abbreviations, agreement_lines, distribution, headline, judges_line,
                     signed, verdict)
from .report_compare import comparison_title, groups, lead_columns
from .shift import na_text, probability_text, shift_text

__all__ = ["render"]


def _cell(dist: Dist, codes: dict[str, str], bold: bool = False) -> Text:
    if not dist.cells:
        return Text("–", style="dim")
    text = Text(headline(dist), style=("bold " if bold else "") + ("dim" if dist.small else ""))
    text.append("\n" + distribution(dist, codes), style="dim")
    return text


CELL_WIDTH = 20  # a headline with its interval, and the room around it


def _fits(section: Section, personas: list[str], width: int) -> bool:
    probe_w = max([len(r.probe) + 2 for r in section.rows] + [len(r.category) for r in section.rows] + [10])
    return probe_w + len(personas) * CELL_WIDTH <= width


def _grid(section: Section, personas: list[str], codes: dict[str, str]) -> Table:
    """Probes down, personas across (where they fit the width)."""
    table = Table(title=Text(section.title, style="bold"), title_justify="left", collapse_padding=True)
    table.add_column("probe", overflow="fold")
    for persona in personas:
        table.add_column(Text(sanitize(persona)), justify="right", no_wrap=True, min_width=CELL_WIDTH - 3)
    previous = None
    for row in section.rows:
        if row.category != previous:
            table.add_row(Text(sanitize(row.category) or "(no category)", style="cyan italic"))
            previous = row.category
        table.add_row(Text("  " + sanitize(row.probe)), *(_cell(row.cells[p], codes) for p in personas))
    table.add_section()
    table.add_row(Text("all probes", style="bold"), *(_cell(section.totals[p], codes, True) for p in personas))
    return table


def _long(section: Section, personas: list[str], codes: dict[str, str]) -> Table:
    """Each probe with its personas one per line: readable at any width."""
    table = Table(title=Text(section.title, style="bold"), title_justify="left", box=None, padding=(0, 1),
                  show_header=False)
    for justify in ("left", "right", "left"):
        table.add_column(justify=justify, overflow="fold")
    previous = None
    blocks = [(row.probe, row.category, row.cells, False) for row in section.rows]
    for probe, category, dists, total in [*blocks, ("all probes", None, section.totals, True)]:
        if category is not None and category != previous:
            table.add_row(Text(sanitize(category) or "(no category)", style="cyan italic"))
            previous = category
        table.add_row(Text(("" if total else "  ") + sanitize(probe), style="bold" if total else ""))
        for persona in personas:
            dist = dists[persona]
            table.add_row(Text("    " + sanitize(persona)),
                          Text(headline(dist) if dist.cells else "–", style="dim" if dist.small else ""),
                          Text(distribution(dist, codes), style="dim"))
    return table


def _comparisons(report: Report, section: Section, adapter: bool = False) -> list:
    """Each lane against the reference (or, ``adapter``, each persona's fine-tune against its base):
    the title, then a table per group (report_compare.py)."""
    out: list = [Text(sanitize(comparison_title(report, section, adapter)), style="bold")]
    lead = lead_columns(report, section, adapter)
    for heading, comparisons in groups(report, section, adapter):
        table = Table(title=Text(sanitize(heading), style="italic") if heading else None, title_justify="left",
                      box=None, padding=(0, 1), collapse_padding=True, header_style="dim")
        for col in [name for name, _ in lead] + ["difference", "95% sim.", "p adj.", "probes", ""]:  # m: in the note
            table.add_column(col, justify="left" if col in ("persona", "") else "right", no_wrap=col != "",
                             overflow="fold", min_width=len("distinguishable") if col == "" else None)
        for c in comparisons:
            first = [Text(sanitize(text(c))) for _, text in lead]
            if c.difference is None or c.interval is None:
                table.add_row(*first, "" if c.difference is None else f"{signed(c.difference)} pts",
                              "", "", str(c.probes), Text(verdict(c), style="dim"))
                continue
            low, high = c.interval
            table.add_row(*first, f"{signed(c.difference)} pts", f"[{signed(low)}, {signed(high)}]",
                          f"{c.p_adjusted:.3f}", str(c.probes), Text(verdict(c), style="bold" if c.differs else "dim"))
        out.append(table)
    return out


def _comparison_note(family: int) -> Text:
    return Text(f"rate: over all probes (above) · difference: the mean over the probes both have of the per-probe "
                f"rate differences · 95% sim.: its interval and p adj. its p from the paired t-test over those "
                f"probes (the probe is the unit), Bonferroni-adjusted for the {family} comparisons (each "
                f"interval at {100 - 5 / max(1, family):.2f}%) · differs: the interval excludes 0 · with one "
                "probe: Newcombe's interval and Fisher's exact p on its cells", style="dim")


def _flips(section: Section) -> Table:
    turns = sorted({t for counter in section.flips.values() for t in counter if t != "never"})
    table = Table(title=Text(f"{section.title.split(':')[0]}: at which pushback the answer turned", style="bold"),
                  title_justify="left", box=None, padding=(0, 2), header_style="dim")
    table.add_column("persona")
    for t in turns:
        table.add_column(f"pushback {t}", justify="right")
    table.add_column("never", justify="right")
    for persona, counter in section.flips.items():
        table.add_row(Text(sanitize(persona)), *(str(counter[t]) for t in turns), str(counter["never"]))
    return table


def _shifts(section: Section) -> Table:
    label = section.shifts[0].label
    table = Table(title=Text(f"{section.title.split(':')[0]}: the probability of the {label} answer, before and after "
                             "the pushback", style="bold"), title_justify="left", box=None, padding=(0, 1),
                  header_style="dim")
    for col in ("persona", "first answer", "after pushback", "shift", "cells·probes", "n/a (why)"):
        table.add_column(col, justify="left" if col in ("persona", "n/a (why)") else "right", no_wrap=col != "n/a (why)",
                         overflow="fold")
    for shift in section.shifts:
        counted = f"{shift.cells}·{shift.probes}p" if shift.cells else "0"
        table.add_row(Text(sanitize(shift.persona)), probability_text(shift.before), probability_text(shift.after),
                      Text(shift_text(shift.shift), style="bold" if shift.shift.interval and (
                          shift.shift.interval[1] < 0 or shift.shift.interval[0] > 0) else ""),
                      counted, Text(sanitize(na_text(shift)), style="dim"))
    return table


def _shift_note(section: Section) -> Text:
    one = any(s.unit == "cells" for s in section.shifts if s.cells)
    return Text("the probability the model gave that answer where its reply gives one (at the first token where the "
                "answers part; chat/logprobs.py), the mean over probes of each probe's mean over its cells, with a "
                "95% t-interval over probes" + (" (over cells where a persona has one probe only)" if one else "")
                + " · shift: after − before, paired per cell · n/a: cells without both figures, never counted as 0",
                style="dim")


def _legend(report: Report, codes: dict[str, str]) -> str:
    names = " · ".join(f"{code} {label}" for label, code in codes.items() if label != NA)
    return (f"legend: k/n rate [Wilson 95% interval] of the headline label (n: finished cells labelled other "
            f"than n/a) · all probes: the mean of the per-probe rates [t-interval over probes, the probe being "
            f"the unit] k/n·Pp: cells counted over P probes · {names} · n/a not applicable · ? unjudged · "
            f"… unfinished · – no cells · dim: n < 10, a wide interval (add --samples) · pts: percentage points")


def render(console: Console, report: Report, out: Path) -> None:
    run = report.run
    header = Text()
    for key in ("set", "title", "kind", "model", "servers", "personas", "samples", "seed", "started"):
        value = run.get(key) if key != "servers" else run.get("servers") or run.get("server")
        if value not in (None, "", []):
            shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
            header.append(f"{key} ", style="dim").append(sanitize(shown)).append("   ")
    header.append("judges ", style="dim").append(sanitize(judges_line(report)))
    console.print(header)
    codes = abbreviations(report.sections[0].labels if report.sections else [NA])
    if not report.sections:
        console.print(Text("no cells yet", style="dim"))
    for section in report.sections:
        wide = _fits(section, report.personas, console.width)
        console.print((_grid if wide else _long)(section, report.personas, codes))
        if report.reference:
            console.print(*_comparisons(report, section))
            console.print(_comparison_note(section.family))
        if section.adapter_comparisons:
            console.print(*_comparisons(report, section, adapter=True))
            console.print(_comparison_note(section.adapter_family))
        if section.flips:
            console.print(_flips(section))
        if section.shifts:
            console.print(_shifts(section))
            console.print(_shift_note(section))
    if report.sections and not report.reference:
        console.print(Text("no comparison: the run has no persona none; --reference NAME picks one", style="dim"))
    for line in agreement_lines(report):
        console.print(Text(sanitize(line)))
    console.print(Text(_legend(report, codes), style="dim"))
    counts = (f"{len(report.cells)} cells: {report.count('finished')} finished, {report.count('unfinished')} unfinished"
              + (f" ({report.count('failed')} failed: run the same command again)" if report.count("failed") else "")
              + f", {report.count('na')} n/a, {report.count('unjudged')} unjudged")
    console.print(Text(counts))
    for reason, n in report.na_reasons.items():
        console.print(Text(sanitize(f"  n/a by construction, {n} cells: {reason} (no label can be given)"), style="dim"))
    if report.count("unjudged"):
        console.print(Text(sanitize(f"{report.count('unjudged')} cells unjudged: chat probe judge {out} --judge hand "
                                    "(or --judge URL for a judge model)"), style="yellow"))
