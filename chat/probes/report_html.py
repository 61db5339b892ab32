"""The HTML page of a probe report: one file, inline CSS and SVG, no scripts, nothing fetched.

Every string that comes from the run (names, ids, model, server) is escaped. The heatmap has one
rect per probe × persona, coloured red to green by how good the rate is (a section says whether a
high rate is good), grey where there is nothing to count yet; small n gets a dashed border.
"""

from __future__ import annotations

from html import escape

__all__ = ["page"]

CELL_H = 40
ROW_GAP = 4
CAT_H = 20
HEAD_H = 26
CHAR_W = 7.2

CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: .2em 1em; }
dl.meta dt { color: #666; } dl.meta dd { margin: 0; font-family: ui-monospace, monospace; }
table { border-collapse: collapse; margin: .6em 0; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; white-space: nowrap; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
.small { color: #888; } .note { color: #666; font-size: .9em; }
svg { max-width: 100%; height: auto; }
svg text { font: 11px ui-monospace, monospace; }
svg .label { font: 12px system-ui, sans-serif; } svg .cat { font: italic 12px system-ui, sans-serif; fill: #666; }
"""


def _e(value) -> str:
    return escape(str(value), quote=True)


def _fill(rate: float | None, good_high: bool) -> str:
    if rate is None:
        return "#d0d0d0"
    good = rate if good_high else 1 - rate
    return f"hsl({120 * good:.0f}, 65%, 62%)"


def _heatmap(section, personas: list[str]) -> str:
    label_w = CHAR_W * max([len(r.probe) for r in section.rows] + [len(r.category) for r in section.rows] + [8]) + 16
    cell_w = max(110.0, CHAR_W * max([len(p) for p in personas] + [1]) + 12)
    parts, y, previous = [], HEAD_H, None
    for i, persona in enumerate(personas):
        x = label_w + i * cell_w + cell_w / 2
        parts.append(f'<text class="label" x="{x:.0f}" y="{HEAD_H - 8}" text-anchor="middle">{_e(persona)}</text>')
    for row in section.rows:
        if row.category != previous:
            y += CAT_H
            parts.append(f'<text class="cat" x="4" y="{y - 6}">{_e(row.category or "(no category)")}</text>')
            previous = row.category
        parts.append(f'<text class="label" x="{label_w - 8:.0f}" y="{y + CELL_H / 2 + 4:.0f}" '
                     f'text-anchor="end">{_e(row.probe)}</text>')
        for i, persona in enumerate(personas):
            tally = row.cells[persona]
            x = label_w + i * cell_w
            dash = ' stroke-dasharray="4 3"' if tally.small else ""
            rate = "–" if tally.rate is None else f"{tally.rate:.0%}"
            parts.append(
                f'<rect x="{x + 2:.0f}" y="{y}" width="{cell_w - 4:.0f}" height="{CELL_H}" rx="3" '
                f'fill="{_fill(tally.rate, section.good_high)}" stroke="#555"{dash}>'
                f'<title>{_e(persona)} × {_e(row.probe)}: {_e(tally.text())}</title></rect>'
                f'<text x="{x + cell_w / 2:.0f}" y="{y + 16}" text-anchor="middle">{_e(rate)}</text>'
                f'<text x="{x + cell_w / 2:.0f}" y="{y + 31}" text-anchor="middle">n={tally.n}</text>')
        y += CELL_H + ROW_GAP
    width = label_w + cell_w * len(personas) + 4
    return (f'<svg width="{width:.0f}" height="{y + 4}" viewBox="0 0 {width:.0f} {y + 4}" role="img" '
            f'aria-label="{_e(section.title)}">{"".join(parts)}</svg>')


def _totals(section, personas: list[str]) -> str:
    head = "".join(f"<th>{_e(p)}</th>" for p in personas)
    cells = []
    for p in personas:
        tally = section.totals[p]
        extra = f"<br>{_e(section.second)} {tally.other}" if section.second and tally.n else ""
        cells.append(f'<td class="{"small" if tally.small else ""}">{_e(tally.text())}{extra}</td>')
    return (f"<table><tr><th>all probes</th>{head}</tr>"
            f"<tr><td>{_e(section.measure)}</td>{''.join(cells)}</tr></table>")


def page(header: list[tuple[str, str]], summary, counts: str, small_note: str) -> str:
    """The whole page; ``header`` is (key, value) pairs, ``counts`` the cell counts line."""
    meta = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in header)
    title = next((v for k, v in header if k == "set"), "probe run")
    body = []
    for section in summary.sections:
        colour = "green: high" if section.good_high else "green: low"
        body.append(f"<h2>{_e(section.title)}</h2>"
                    f'<p class="note">{_e(section.measure)} per probe × persona '
                    f"(rate and n; {colour}; grey: nothing counted yet; dashed: n &lt; 10)</p>"
                    f"{_heatmap(section, summary.personas)}"
                    f"<h3>Per-persona totals, Wilson 95% intervals</h3>{_totals(section, summary.personas)}")
    if not summary.sections:
        body.append('<p class="note">No cells yet.</p>')
    small = f'<p class="note small-n">{_e(small_note)}</p>' if summary.small_n else ""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>Probe report: {_e(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>Probe report: {_e(title)}</h1><dl class=\"meta\">{meta}</dl>"
            f"{''.join(body)}<h2>Cells</h2><p class=\"counts\">{_e(counts)}</p>{small}</body></html>\n")
