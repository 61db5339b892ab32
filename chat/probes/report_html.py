"""A probe run's report as one self-contained HTML page: inline CSS, no scripts, nothing fetched.

Per section the nine personas are laid out as the alignment grid (law ↔ chaos across, good ↔ evil
down), "none" and any others beside it — one grid per adapter setting, headed by it, where the run
has an adapter axis; a tile's colour says how good its rate is, and how sure: it
is shaded by the Wilson interval, so a tile with n=1 stays pale whatever its rate, and its interval
is drawn as a bar. A run that measured the answer probability gets a second view: the same grid, each
tile the probability of the right answer before and after the pushback, coloured by the shift. Every
tile links to its persona's cells, each cell to its conversation, rendered
as /export renders one. Then the probe × persona table with the full distributions, the comparisons
with the reference (and, with an adapter axis, of each persona's fine-tune against its base),
agreement and the legend. Every string from the run is escaped. Fits a 1200 px
window (checked in a real browser by tests/test_report_page.py).
"""

from __future__ import annotations

import shlex
from html import escape

from ...personas import GRID
from ..export import MESSAGES_CSS, messages_html
from ..sanitize import sanitize
from ..transcript import TranscriptError, load_transcript
from .report import (NA, Comparison, Dist, Report, Section, abbreviations, adapter_text, agreement_lines, distribution,
                     headline, judges_line, pct, signed, verdict)
from .report_compare import comparison_title, groups, lead_columns
from .shift import na_text, probability_text, shift_text

__all__ = ["page"]

CSS = """
* { box-sizing: border-box; }
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 auto; padding: 1em 1.5em; max-width: 1200px; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; } h3 { font-size: 1em; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: .2em 1em; }
dl.meta dt { color: #666; } dl.meta dd { margin: 0; font-family: ui-monospace, monospace; overflow-wrap: anywhere; }
.grid { display: grid; grid-template-columns: 5.5em repeat(3, minmax(0, 13em)) 2em minmax(0, 13em); gap: 6px;
        align-items: stretch; margin: .8em 0; }
.axis { color: #666; font-size: .85em; align-self: center; text-align: center; }
.tile { display: block; border: 1px solid #888; border-radius: 6px; padding: .4em .5em; color: #111;
        text-decoration: none; min-height: 5.2em; }
.tile:hover { outline: 2px solid #333; }
.tile .name { font-weight: bold; overflow-wrap: anywhere; } .tile .rate { font-size: 1.15em; }
.tile .small { font-size: .8em; color: #333; }
.bar { position: relative; height: 6px; background: rgba(0,0,0,.08); border-radius: 3px; margin-top: .3em; }
.bar span { position: absolute; top: 0; bottom: 0; background: rgba(0,0,0,.45); border-radius: 3px; }
.bar i { position: absolute; top: -2px; width: 2px; height: 10px; background: #000; }
.empty { background: #eee; color: #777; }
.badge { font-size: .75em; border: 1px solid #555; border-radius: 3px; padding: 0 .2em; margin-left: .3em; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin: .6em 0; }
table.dist { table-layout: fixed; width: 100%; font-size: 12px; }
table.dist th { overflow-wrap: anywhere; }
th, td { border: 1px solid #ccc; padding: .2em .4em; text-align: right; vertical-align: top; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
td.cat { font-style: italic; color: #666; text-align: left; }
th.group { text-align: left; font-style: italic; font-weight: normal; }
td .d { display: block; color: #666; font-size: .9em; }
td.smalln { color: #777; }
.note { color: #555; font-size: .9em; }
.cells h3 { margin-top: 1.5em; } .cells li { margin: .2em 0; }
details.cell { border: 1px solid #ddd; border-radius: 6px; padding: .3em .8em; margin: .4em 0; max-width: 52rem; }
details.cell > summary { font-style: normal; color: #222; }
""" + MESSAGES_CSS


def _e(value) -> str:
    """Text from the run, as a page shows it: escaped, and its control, bidi and invisible characters
    made visible as on the terminal (a right-to-left override would disguise a name)."""
    return escape(sanitize(str(value)), quote=True)


def _slug(*parts: str) -> str:
    return "-".join("".join(ch if ch.isalnum() else "_" for ch in str(p)) for p in parts)


def _colour(dist: Dist, good_high: bool) -> str:
    """Hue by how good the rate is; saturation by how sure the interval says it is."""
    if not dist.n:
        return ""
    low, high = dist.interval
    rate = dist.k / dist.n
    good = rate if good_high else 1 - rate
    certainty = max(0.0, 1 - (high - low))  # n=1 gives an interval about 80 points wide: nearly grey
    return f"background: hsl({120 * good:.0f}, {70 * certainty:.0f}%, {88 - 25 * certainty:.0f}%);"


def _tile(section: Section, lane: str, persona: str) -> str:
    """``lane``'s tile, named ``persona`` (its grid is headed by the adapter setting)."""
    dist = section.totals.get(lane)
    href = f"#{_slug('cells', section.key, lane)}"
    if dist is None or not dist.cells:
        return f'<a class="tile empty" href="{href}"><div class="name">{_e(persona)}</div><div>no cells</div></a>'
    if not dist.n:
        return (f'<a class="tile empty" href="{href}"><div class="name">{_e(persona)}</div>'
                f'<div class="small">nothing counted yet ({dist.na} n/a, {dist.unjudged} unjudged)</div></a>')
    low, high = dist.interval
    badge = '<span class="badge" title="n &lt; 10: a wide interval">small n</span>' if dist.small else ""
    probes = len(dist.rates)
    over = f" · {probes} probes" if probes > 1 else ""
    left = [f"{n} {what}" for n, what in ((dist.na, "n/a"), (dist.unjudged, "unjudged"), (dist.unfinished, "unfinished"))
            if n]
    return (f'<a class="tile" style="{_colour(dist, section.good_high)}" href="{href}" '
            f'title="{_e(lane)}: {_e(headline(dist))}">'
            f'<div class="name">{_e(persona)}{badge}</div>'
            f'<div class="rate">{dist.rate:.0%} · {dist.k}/{dist.n}{over}</div>'
            f'<div class="small">95% {pct(low)}–{pct(high)}%</div>'
            f'<div class="bar"><span style="left:{100 * low:.1f}%;width:{100 * (high - low):.1f}%"></span>'
            f'<i style="left:calc({100 * dist.rate:.1f}% - 1px)"></i></div>'
            + (f'<div class="small">{_e(", ".join(left))}</div>' if left else "") + "</a>")


def _shift_tile(section: Section, lane: str, persona: str) -> str:
    """The second view's tile: the probability of the counted answer at the first answer and after the
    pushback, coloured by the shift (red: it fell) and shaded by how sure its interval is."""
    shift = next((s for s in section.shifts if s.persona == lane), None)
    href = f"#{_slug('cells', section.key, lane)}"
    if shift is None or not shift.cells:
        why = _e(na_text(shift)) if shift is not None and shift.na else "nothing measured"
        return f'<a class="tile empty" href="{href}"><div class="name">{_e(persona)}</div><div class="small">{why}</div></a>'
    move, interval = shift.shift.value, shift.shift.interval
    certainty = max(0.0, 1 - (interval[1] - interval[0]) / 2) if interval else 0.0
    hue = 120 if move >= 0 else 0
    style = f"background: hsl({hue}, {70 * certainty * min(1, 4 * abs(move)):.0f}%, {88 - 20 * certainty:.0f}%);"
    left = f'<div class="small">{_e(na_text(shift))} n/a</div>' if shift.na else ""
    return (f'<a class="tile" style="{style}" href="{href}"><div class="name">{_e(persona)}</div>'
            f'<div class="rate">{_e(probability_text(shift.before).split(" ")[0])} → '
            f'{_e(probability_text(shift.after).split(" ")[0])}</div>'
            f'<div class="small">shift {_e(shift_text(shift.shift))} · {shift.cells} cells · {shift.probes} probes</div>'
            f"{left}</a>")


def _shifts(report: Report, section: Section) -> str:
    label = section.shifts[0].label
    rows = "".join(f"<tr><td>{_e(s.persona)}</td><td>{_e(probability_text(s.before))}</td>"
                   f"<td>{_e(probability_text(s.after))}</td><td>{_e(shift_text(s.shift))}</td>"
                   f"<td>{s.cells}·{s.probes}p</td><td>{_e(na_text(s))}</td></tr>" for s in section.shifts)
    return (f"<h3>Second view: the probability of the {_e(label)} answer, before and after the pushback</h3>"
            f"{_grids(report, section, _shift_tile)}<div class='scroll'><table><tr><th>persona</th>"
            f"<th>first answer</th><th>after pushback</th><th>shift</th><th>cells·probes</th><th>n/a (why)</th></tr>"
            f"{rows}</table></div><p class=\"note\">The probability the model gave that answer where its reply gives "
            f"one (at the first token where the answers part), the mean over probes of each probe's mean over its "
            f"cells, with its 95% t-interval over probes (over cells where a persona has one probe); shift: after − "
            f"before, paired per cell; a tile is red where the answer lost probability, the paler the less sure. "
            f"Cells without both figures are counted apart (n/a), never as 0.</p>")


def _grids(report: Report, section: Section, tile=_tile) -> str:
    """One grid per adapter setting, headed by it; without an adapter axis, one."""
    if report.adapters == [None]:
        return _grid(section, report.at(None), tile)
    return "".join(f'<h4 class="adapter">{_e(adapter_text(adapter, report.base))}</h4>'
                   f"{_grid(section, report.at(adapter), tile)}" for adapter in report.adapters)


def _grid(section: Section, lanes: dict[str, str], tile=_tile) -> str:
    """law across, morality down; "none" (and any other persona) in a column of its own. ``lanes``:
    persona -> its column at this grid's adapter setting."""
    personas = list(lanes)
    others = [p for p in personas if p not in GRID]
    out = ['<div class="grid"><div></div>', *(f'<div class="axis">{law}</div>' for law in ("lawful", "neutral", "chaotic")),
           '<div></div><div class="axis">other</div>']
    for row, moral in enumerate(("good", "neutral", "evil")):
        out.append(f'<div class="axis">{moral}</div>')
        out += [tile(section, lanes[name], name) if name in lanes else '<div></div>'
                for name in GRID[row * 3: row * 3 + 3]]
        out.append("<div></div>")
        out.append(tile(section, lanes[others[row]], others[row]) if row < len(others) else "<div></div>")
    out.append("</div>")
    for extra in others[3:]:
        out.append(f'<div class="grid"><div></div>{tile(section, lanes[extra], extra)}</div>')
    return "".join(out)


def _table(section: Section, personas: list[str], codes: dict[str, str]) -> str:
    head = "".join(f"<th>{_e(p)}</th>" for p in personas)
    rows, previous = [], None

    def cell(dist: Dist, href: str) -> str:
        if not dist.cells:
            return "<td>–</td>"
        return (f'<td class="{"smalln" if dist.small else ""}"><a href="{href}">{_e(headline(dist))}</a>'
                f'<span class="d">{_e(distribution(dist, codes))}</span></td>')

    for row in section.rows:
        if row.category != previous:
            rows.append(f'<tr><td class="cat" colspan="{len(personas) + 1}">{_e(row.category or "(no category)")}</td></tr>')
            previous = row.category
        rows.append(f"<tr><td>{_e(row.probe)}</td>"
                    + "".join(cell(row.cells[p], f"#{_slug('cells', section.key, p, row.probe)}") for p in personas)
                    + "</tr>")
    rows.append("<tr><th>all probes</th>"
                + "".join(cell(section.totals[p], f"#{_slug('cells', section.key, p)}") for p in personas) + "</tr>")
    return (f'<div class="scroll"><table class="dist"><colgroup><col style="width:13em"></colgroup>'
            f"<tr><th>probe</th>{head}</tr>{''.join(rows)}</table></div>")


def _comparisons(report: Report, section: Section, adapter: bool = False) -> str:
    """Each lane against the reference (or, ``adapter``, against its persona's base setting)."""
    m = section.adapter_family if adapter else section.family
    lead = lead_columns(report, section, adapter)
    rows = []
    for heading, comparisons in groups(report, section, adapter):
        if heading:
            rows.append(f'<tr><th class="group" colspan="{len(lead) + 5}">{_e(heading)}</th></tr>')
        rows += [_comparison_row(c, lead) for c in comparisons]
    head = "".join(f"<th>{_e(name)}</th>" for name, _ in lead)
    return (f"<h3>{_e(comparison_title(report, section, adapter))}</h3><div class='scroll'><table>"
            f"<tr>{head}<th>difference</th><th>95% simultaneous (m={m})</th><th>p adjusted</th>"
            f"<th>probes</th><th></th></tr>{''.join(rows)}</table></div>"
            f'<p class="note">Difference: the mean over the probes both have of the per-probe rate differences; '
            f"interval and p from the paired t-test over those probes (the probe is the unit), Bonferroni-adjusted "
            f"for the {m} comparisons; differs when the interval excludes 0. With one probe: Newcombe's interval and "
            f"Fisher's exact p on its cells.</p>")


def _comparison_row(c: Comparison, lead) -> str:
    first = "".join(f"<td>{_e(text(c))}</td>" for _, text in lead)
    if c.difference is None:
        return f"<tr>{first}<td colspan='5'>{_e(verdict(c))}</td></tr>"
    if c.interval is None:  # no spread: the difference stands, without an interval
        return (f"<tr>{first}<td>{signed(c.difference)} pts</td><td colspan='2'></td><td>{c.probes}</td>"
                f"<td>{_e(verdict(c))}</td></tr>")
    low, high = c.interval
    return (f"<tr>{first}<td>{signed(c.difference)} pts</td><td>[{signed(low)}, {signed(high)}]</td>"
            f"<td>{c.p_adjusted:.3f}</td><td>{c.probes}</td>"
            f"<td>{'<b>differs</b>' if c.differs else _e(verdict(c))}</td></tr>")


def _flips(section: Section) -> str:
    turns = sorted({t for counter in section.flips.values() for t in counter if t != "never"})
    head = "".join(f"<th>pushback {t}</th>" for t in turns)
    rows = "".join(f"<tr><td>{_e(p)}</td>{''.join(f'<td>{c[t]}</td>' for t in turns)}<td>{c['never']}</td></tr>"
                   for p, c in section.flips.items())
    return f"<h3>At which pushback the answer turned</h3><table><tr><th>persona</th>{head}<th>never</th></tr>{rows}</table>"


def _cells(report: Report, section: Section) -> str:
    """Per persona, its cells probe by probe, each with its file, the command that goes on from it, and
    its conversation as /export shows it."""
    out = []
    for persona in report.personas:
        dist = section.totals.get(persona)
        if dist is None or not dist.cells:
            continue
        out.append(f'<h3 id="{_slug("cells", section.key, persona)}">{_e(section.title.split(":")[0])} · {_e(persona)}'
                   f' — {_e(headline(dist))}</h3>')
        seen = set()
        for c in dist.cells:
            anchor = "" if c.probe in seen else f'<span id="{_slug("cells", section.key, persona, c.probe)}"></span>'
            seen.add(c.probe)
            label = c.label if c.done else "unfinished"
            why = f" ({c.na})" if c.na else f" by {c.by}" if c.by else ""
            try:
                body = messages_html(load_transcript(c.path, {}).conversation)
            except TranscriptError as e:
                body = f'<p class="note">{_e(e)}</p>'
            where = (f'<p class="note">{_e(c.path)} · <code>chat --resume {_e(shlex.quote(str(c.path)))}</code> '
                     "goes on from it</p>")
            out.append(f'{anchor}<details class="cell" id="{_slug("cell", c.id)}"><summary>{_e(c.probe)} · sample '
                       f'{c.sample} · <b>{_e(label or "unjudged")}</b>{_e(why)}</summary>{where}{body}</details>')
    return "".join(out)


def page(report: Report, out_dir: str) -> str:
    run = report.run
    meta = "".join(f"<dt>{_e(k)}</dt><dd>{_e(', '.join(map(str, v)) if isinstance(v, list) else v)}</dd>"
                   for k in ("set", "title", "kind", "model", "servers", "personas", "samples", "seed", "started")
                   if (v := run.get(k)) not in (None, "", []))
    meta += f"<dt>judges</dt><dd>{_e(judges_line(report))}</dd>"
    title = run.get("set") or "probe run"
    codes = abbreviations(report.sections[0].labels if report.sections else [NA])
    body = []
    for section in report.sections:
        colour = "green: a good rate, red: a bad one" + ("" if section.good_high else " (here a low rate is good)")
        body.append(f"<h2>{_e(section.title)}</h2>"
                    f'<p class="note">Each tile: {_e(section.measure)} over all probes — the mean of the per-probe rates, '
                    f"its 95% t-interval over probes as a bar (the probe is the unit), the cells counted; {colour}; the paler, the less sure (shaded by the interval's width). Click a tile for its "
                    f"cells and their conversations.</p>{_grids(report, section)}"
                    f"<h3>Per probe</h3>{_table(section, report.personas, codes)}")
        if report.reference:
            body.append(_comparisons(report, section))
        if section.adapter_comparisons:
            body.append(_comparisons(report, section, adapter=True))
        if section.flips:
            body.append(_flips(section))
        if section.shifts:
            body.append(_shifts(report, section))
    if not report.sections:
        body.append('<p class="note">No cells yet.</p>')
    body += [f"<p>{_e(line)}</p>" for line in agreement_lines(report)]
    legend = " · ".join(f"{_e(code)} {_e(label)}" for label, code in codes.items() if label != NA)
    body.append(f'<p class="note">Legend: k/n rate [Wilson 95%] of the headline label (n: finished cells labelled '
                f"other than n/a) · {legend} · n/a not applicable · ? unjudged · … unfinished · – no cells · small n: "
                f"n &lt; 10, a wide interval · pts: percentage points.</p>")
    counts = (f"{len(report.cells)} cells: {report.count('finished')} finished, {report.count('unfinished')} unfinished, "
              f"{report.count('na')} n/a, {report.count('unjudged')} unjudged")
    body.append(f'<p class="counts">{_e(counts)}</p>')
    for reason, n in report.na_reasons.items():
        body.append(f'<p class="note">n/a by construction, {n} cells: {_e(reason)}</p>')
    if report.count("unjudged"):
        body.append(f'<p class="note">To judge the rest: <code>chat probe judge {_e(out_dir)} --judge hand</code> '
                    "(or <code>--judge URL</code> for a judge model).</p>")
    body.append('<h2 class="cells">Cells</h2><div class="cells">')
    body += [_cells(report, section) for section in report.sections]
    body.append("</div>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>Probe report: {_e(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>Probe report: {_e(title)}</h1><dl class=\"meta\">{meta}</dl>{''.join(body)}</body></html>\n")
