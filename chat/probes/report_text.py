"""A probe run's report in the terminal: per probe × persona the full label distribution and the
headline rate with its interval, per persona the difference from the reference, hand against judge,
where answers turned, a legend for every symbol, and what is left to do."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..sanitize import sanitize
from .report import NA, Dist, Report, Section

__all__ = ["abbreviations", "distribution", "headline", "pct", "render", "signed"]


def abbreviations(labels: list[str]) -> dict[str, str]:
    """A short, unique code per label: initials ("full refusal" → "fr"), else more letters."""
    codes: dict[str, str] = {}
    for label in labels:
        if label == NA:
            codes[label] = "n/a"
            continue
        words = label.split()
        for code in ("".join(w[0] for w in words), label.replace(" ", "")[:2], label.replace(" ", "")[:3], label):
            if code not in codes.values():
                codes[label] = code
                break
    return codes


def pct(x: float) -> str:
    return f"{100 * x:.0f}"


def headline(dist: Dist) -> str:
    """``3/5 60% [23–88]``; ``–`` where nothing is counted."""
    if not dist.n:
        return "–"
    low, high = dist.interval
    return f"{dist.k}/{dist.n} {dist.k / dist.n:.0%} [{pct(low)}–{pct(high)}]"


def distribution(dist: Dist, codes: dict[str, str]) -> str:
    parts = [f"{code}{dist.labels[label]}" for label, code in codes.items() if dist.labels[label]]
    if dist.unjudged:
        parts.append(f"?{dist.unjudged}")
    if dist.unfinished:
        parts.append(f"…{dist.unfinished}")
    return " ".join(parts)


def _cell(dist: Dist, codes: dict[str, str], bold: bool = False) -> Text:
    if not dist.cells:
        return Text("–", style="dim")
    text = Text(headline(dist), style=("bold " if bold else "") + ("dim" if dist.small else ""))
    text.append("\n" + distribution(dist, codes), style="dim")
    return text


def _grid(section: Section, personas: list[str], codes: dict[str, str], width: int) -> Table:
    probe_w = max([len(r.probe) + 2 for r in section.rows] + [len(r.category) for r in section.rows] + [10])
    split = probe_w + sum(max(len(p), 16) + 3 for p in personas) > width  # names break at "_" when too wide
    table = Table(title=Text(section.title, style="bold"), title_justify="left", collapse_padding=True)
    table.add_column("probe", no_wrap=probe_w <= 30, overflow="fold")
    for persona in personas:
        name = sanitize(persona)
        table.add_column(Text(name.replace("_", "_\n") if split else name), justify="right", overflow="fold")
    previous = None
    for row in section.rows:
        if row.category != previous:
            table.add_row(Text(sanitize(row.category) or "(no category)", style="cyan italic"))
            previous = row.category
        table.add_row(Text("  " + sanitize(row.probe)), *(_cell(row.cells[p], codes) for p in personas))
    table.add_section()
    table.add_row(Text("all probes", style="bold"), *(_cell(section.totals[p], codes, True) for p in personas))
    return table


def signed(x: float) -> str:
    return f"{'+' if x > 0 else '−' if x < 0 else '±'}{pct(abs(x))}"


def _comparisons(section: Section, reference: str) -> Table:
    base = section.totals[reference]
    table = Table(title=Text(f"{section.measure}: each persona against {reference} ({headline(base)})", style="bold"),
                  title_justify="left", box=None, padding=(0, 2), header_style="dim")
    for col in ("persona", section.measure, "difference", "95% (Newcombe)", "p (Fisher)", "p (Holm)", ""):
        table.add_column(col, justify="left" if col in ("persona", "") else "right")
    for c in section.comparisons:
        if c.difference is None:
            table.add_row(Text(sanitize(c.persona)), headline(c.dist), "n/a", "", "", "", Text("nothing to compare", style="dim"))
            continue
        low, high = c.interval
        verdict = ("not distinguishable at this n" if c.p_holm is None or c.p_holm >= 0.05
                   else "differs (Holm-adjusted p < 0.05)")
        table.add_row(Text(sanitize(c.persona)), headline(c.dist), f"{signed(c.difference)} pts",
                      f"[{signed(low)}, {signed(high)}]", f"{c.p:.3f}", f"{c.p_holm:.3f}",
                      Text(verdict, style="dim" if verdict.startswith("not") else "bold"))
    return table


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


def _legend(report: Report, codes: dict[str, str]) -> str:
    names = " · ".join(f"{code} {label}" for label, code in codes.items() if label != NA)
    return (f"legend: k/n rate [Wilson 95% interval] of the headline label (n: finished cells labelled other "
            f"than n/a) · {names} · n/a not applicable · ? unjudged · … unfinished · – no cells · "
            f"dim: n < 10, a wide interval (add --samples) · pts: percentage points")


def render(console: Console, report: Report, out: Path) -> None:
    run = report.run
    header = Text()
    for key in ("set", "title", "kind", "model", "servers", "personas", "samples", "seed", "judge", "started"):
        value = run.get(key) if key != "servers" else run.get("servers") or run.get("server")
        if value not in (None, "", []):
            shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
            header.append(f"{key} ", style="dim").append(sanitize(shown)).append("   ")
    console.print(header)
    codes = abbreviations(report.sections[0].labels if report.sections else [NA])
    if not report.sections:
        console.print(Text("no cells yet", style="dim"))
    for section in report.sections:
        console.print(_grid(section, report.personas, codes, console.width))
        if report.reference:
            console.print(_comparisons(section, report.reference))
        if section.flips:
            console.print(_flips(section))
    if report.sections and not report.reference:
        console.print(Text("no comparison: the run has no persona none; --reference NAME picks one", style="dim"))
    if report.agreement is not None:
        a = report.agreement
        shown = "n/a (one label only)" if a.kappa is None else f"{a.kappa:.2f} [{a.interval[0]:.2f}, {a.interval[1]:.2f}]"
        console.print(Text(f"hand against judge: Cohen's κ {shown} over {a.n} cells both labelled, {a.agreed} agreeing"))
    console.print(Text(_legend(report, codes), style="dim"))
    counts = (f"{len(report.cells)} cells: {report.count('finished')} finished, {report.count('unfinished')} unfinished"
              + (f" ({report.count('failed')} failed: run the same command again)" if report.count("failed") else "")
              + f", {report.count('na')} n/a")
    console.print(Text(counts))
    for reason, n in report.na_reasons.items():
        console.print(Text(sanitize(f"  n/a by construction, {n} cells: {reason} (no label can be given)"), style="dim"))
    if report.count("unjudged"):
        console.print(Text(sanitize(f"{report.count('unjudged')} cells unjudged: chat probe judge {out} --judge hand "
                                    "(or --judge URL for a judge model)"), style="yellow"))
