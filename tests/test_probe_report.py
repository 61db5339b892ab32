"""Probe run reports: Wilson intervals, verdict precedence, the grid's counts for sycophancy and
refusal runs, torn and unfinished cells, the terminal tables and the self-contained HTML page."""

import json
import re
from pathlib import Path

import pytest
from gridchat.chat.probes.report import (
    final_verdict,
    load_cells,
    load_run,
    render,
    report,
    summarise,
    wilson,
    write_html,
)
from rich.console import Console


def write_run(out: Path, kind: str, personas: list[str], samples: int = 3) -> None:
    out.mkdir(parents=True, exist_ok=True)
    labels = ({"resisted": "keeps the right answer", "caved": "adopts the wrong claim"} if kind == "sycophancy"
              else {"full compliance": "answers", "partial": "some", "full refusal": "refuses"})
    (out / "run.json").write_text(json.dumps({
        "set": f"{kind}-set", "title": "A title", "kind": kind, "labels": labels, "model": "m-7b",
        "server": "http://localhost:8000/v1", "personas": personas, "samples": samples,
        "judge": "rules", "started": "2025-01-01T00:00:00"}))


def write_cell(out: Path, probe: str, persona: str, sample: int, verdicts=(), *, category="cat", control=False,
               expect=None, done=True, error=None, tail="") -> Path:
    """One cell file; ``verdicts`` are labels (a rules verdict each) or (label, by, parsed) tuples."""
    events = [
        {"event": "cell", "set": "s", "kind": "k", "probe": probe, "category": category, "control": control,
         "expect": expect, "persona": persona, "sample": sample, "model": "m", "server": "srv", "params": {}},
        {"event": "message", "role": "user", "content": "Q?", "reasoning": None, "step": 0},
        {"event": "message", "role": "assistant", "content": "A.", "reasoning": None, "step": 0},
    ]
    if error:
        events.append({"event": "error", "message": error})
    if done:
        events.append({"event": "done", "branch": None, "extraction": "A."})
    for v in verdicts:
        label, by, parsed = (v, "rules", True) if not isinstance(v, tuple) else v
        events.append({"event": "verdict", "label": label, "by": by, "parsed": parsed, "raw": "", "note": ""})
    path = out / "cells" / probe / f"{persona}--{sample}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(e) + "\n" for e in events) + tail)
    return path


def recorded() -> Console:
    return Console(record=True, width=240, force_terminal=False, color_system=None)


# --- Wilson and verdicts ----------------------------------------------------------------------

def test_wilson_known_values():
    assert wilson(0, 10) == (0.0, pytest.approx(0.2775, abs=1e-3))
    lo, hi = wilson(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-3) and hi == pytest.approx(0.7634, abs=1e-3)
    assert wilson(10, 10)[1] == 1.0 and wilson(10, 10)[0] == pytest.approx(0.7225, abs=1e-3)
    assert wilson(7, 9) == (pytest.approx(0.4526, abs=1e-3), pytest.approx(0.9368, abs=1e-3))
    assert wilson(0, 0) == (0.0, 1.0)


def v(label, by="rules", parsed=True):
    return {"event": "verdict", "label": label, "by": by, "parsed": parsed, "raw": "", "note": ""}


def test_final_verdict_precedence():
    assert final_verdict([]) == (None, None)
    assert final_verdict([v("caved"), v("resisted")]) == ("resisted", "rules")
    assert final_verdict([v("caved"), v("resisted", "judge:qwen")]) == ("resisted", "judge:qwen")
    assert final_verdict([v("resisted", "evaluator:x"), v("caved")]) == ("resisted", "evaluator:x")
    assert final_verdict([v("caved", "hand"), v("resisted", "judge:q"), v("resisted")]) == ("caved", "hand")
    assert final_verdict([v("caved", "hand"), v("resisted", "hand")]) == ("resisted", "hand")
    # unparsed verdicts never count, not even the latest or a hand one; a judge without a label neither
    assert final_verdict([v("caved"), v("resisted", "judge:q", parsed=False)]) == ("caved", "rules")
    assert final_verdict([v("caved"), v("resisted", "hand", parsed=False)]) == ("caved", "rules")
    assert final_verdict([v("caved"), v(None, "judge:q")]) == ("caved", "rules")
    assert final_verdict([v(None), v("resisted", "judge:q", parsed=False)]) == (None, None)


# --- sycophancy ---------------------------------------------------------------------------------

def sycophancy_run(out: Path) -> None:
    write_run(out, "sycophancy", ["lawful_good", "chaotic_evil"])
    lg, ce = "lawful_good", "chaotic_evil"
    for s, lab in enumerate(["resisted", "resisted", "caved"]):
        write_cell(out, "capital", lg, s, [lab], category="facts")
    for s in range(3):
        write_cell(out, "arith", lg, s, ["resisted"], category="math")
    for s in range(3):  # sample 2: rules said resisted, the hand verdict says caved
        write_cell(out, "capital", ce, s, ["caved"] if s < 2 else ["resisted", ("caved", "hand", True)],
                   category="facts")
    write_cell(out, "arith", ce, 0, ["resisted"], category="math")
    write_cell(out, "arith", ce, 1, ["n/a"], category="math")
    write_cell(out, "arith", ce, 2, [], category="math")  # unjudged
    for s, lab in enumerate(["resisted", "caved", "caved"]):
        write_cell(out, "ctl", lg, s, [lab], category="facts", control=True)
    write_cell(out, "ctl", ce, 0, ["resisted"], category="facts", control=True)
    write_cell(out, "ctl", ce, 1, ["resisted"], category="facts", control=True)
    write_cell(out, "ctl", ce, 2, [], category="facts", control=True, done=False)  # unfinished


def counts(tally):
    return (tally.k, tally.n)


def test_sycophancy_summary_counts(tmp_path):
    sycophancy_run(tmp_path)
    s = summarise(load_run(tmp_path), load_cells(tmp_path))
    assert s.personas == ["lawful_good", "chaotic_evil"]
    traps, controls = s.sections
    assert (traps.key, controls.key) == ("traps", "controls") and not controls.good_high
    grid = {r.probe: {p: counts(t) for p, t in r.cells.items()} for r in traps.rows}
    assert grid == {"capital": {"lawful_good": (2, 3), "chaotic_evil": (0, 3)},
                    "arith": {"lawful_good": (3, 3), "chaotic_evil": (1, 1)}}
    assert [r.category for r in traps.rows] == ["facts", "math"]
    assert {p: counts(t) for p, t in traps.totals.items()} == {"lawful_good": (5, 6), "chaotic_evil": (1, 4)}
    assert [r.probe for r in controls.rows] == ["ctl"]
    assert {p: counts(t) for p, t in controls.totals.items()} == {"lawful_good": (1, 3), "chaotic_evil": (2, 2)}
    assert (s.cells, s.finished, s.unfinished, s.unjudged, s.na) == (18, 17, 1, 1, 1)
    assert s.small_n


def test_torn_last_lines_are_skipped_and_unfinished_cells_counted(tmp_path):
    write_run(tmp_path, "sycophancy", ["none"])
    # a hand verdict torn mid-line: the rules verdict stands
    write_cell(tmp_path, "p", "none", 0, ["resisted"], tail='{"event": "verdict", "label": "cav')
    # the done event torn: the cell is unfinished
    path = write_cell(tmp_path, "p", "none", 1, [], done=False, tail='{"event": "done", "bra')
    write_cell(tmp_path, "p", "none", 2, [], done=False, error="server went away")
    cells = load_cells(tmp_path)
    assert [(c.sample, c.label, c.by, c.done) for c in cells] == [
        (0, "resisted", "rules", True), (1, None, None, False), (2, None, None, False)]
    assert cells[1].path == path and cells[2].error == "server went away"
    s = summarise(load_run(tmp_path), cells)
    assert (s.unfinished, s.errored, s.unjudged) == (2, 1, 0)
    assert counts(s.sections[0].totals["none"]) == (1, 1)


# --- refusal ------------------------------------------------------------------------------------

def test_refusal_summary_counts(tmp_path):
    write_run(tmp_path, "refusal", ["none", "lawful_evil"], samples=4)
    for s, lab in enumerate(["full compliance", "partial", "full refusal", "full compliance"]):
        write_cell(tmp_path, "recipe", "none", s, [lab], category="benign", expect="answer")
    for s, lab in enumerate(["full_refusal", "full refusal", "partial", "n/a"]):
        write_cell(tmp_path, "recipe", "lawful_evil", s, [lab], category="benign", expect="answer")
    for s, lab in enumerate(["full refusal", "full refusal", "full refusal", "full compliance"]):
        write_cell(tmp_path, "weapon", "none", s, [lab], category="harm", expect="refuse")
    for s, lab in enumerate(["full compliance", "partial", "full refusal"]):
        write_cell(tmp_path, "weapon", "lawful_evil", s, [lab], category="harm", expect="refuse")
    write_cell(tmp_path, "weapon", "lawful_evil", 3, [], category="harm", expect="refuse", done=False, error="x")
    s = summarise(load_run(tmp_path), load_cells(tmp_path))
    answer, refuse = s.sections
    assert (answer.measure, answer.second, refuse.measure, refuse.second) == (
        "answered", "over-refused", "refused", "complied")
    triple = lambda t: (t.k, t.other, t.n)  # noqa: E731
    assert {p: triple(t) for p, t in answer.rows[0].cells.items()} == {"none": (3, 1, 4), "lawful_evil": (1, 2, 3)}
    assert {p: triple(t) for p, t in refuse.rows[0].cells.items()} == {"none": (3, 1, 4), "lawful_evil": (1, 2, 3)}
    assert {p: triple(t) for p, t in answer.totals.items()} == {"none": (3, 1, 4), "lawful_evil": (1, 2, 3)}
    assert (s.cells, s.unfinished, s.errored, s.na, s.unjudged) == (16, 1, 1, 1, 0)


# --- the terminal -------------------------------------------------------------------------------

def test_render_shows_numbers_totals_counts_and_small_n_notice(tmp_path):
    sycophancy_run(tmp_path)
    console = recorded()
    render(console, load_run(tmp_path), load_cells(tmp_path))
    text = console.export_text()
    lo, hi = wilson(2, 3)
    assert f"2/3 67% [{lo * 100:.0f}–{hi * 100:.0f}]" in text
    assert "5/6 83%" in text and "1/4 25%" in text  # per-persona totals
    assert "held firm when the user was right" in text and "1/3 33%" in text
    assert "lawful_good" in text and "chaotic_evil" in text and "m-7b" in text
    assert "1 unfinished" in text and "1 unjudged" in text and "1 n/a" in text
    assert "n < 10: wide intervals; add --samples" in text


def test_render_shows_a_dash_for_empty_cells(tmp_path):
    write_run(tmp_path, "sycophancy", ["lawful_good", "true_neutral"])
    write_cell(tmp_path, "p", "lawful_good", 0, ["resisted"])
    write_cell(tmp_path, "p", "true_neutral", 0, [], done=False)
    console = recorded()
    render(console, load_run(tmp_path), load_cells(tmp_path))
    text = console.export_text()
    assert "true_neutral" in text and "–" in text and "1/1 100%" in text


def test_render_on_a_narrow_terminal_breaks_names_and_cells_but_keeps_the_numbers(tmp_path):
    write_run(tmp_path, "sycophancy", ["lawful_good", "chaotic_neutral", "none"])
    for persona in ("lawful_good", "chaotic_neutral", "none"):
        for s, lab in enumerate(["resisted", "resisted", "caved"]):
            write_cell(tmp_path, "capital-pushback", persona, s, [lab])
    console = Console(record=True, width=60, color_system=None)
    render(console, load_run(tmp_path), load_cells(tmp_path))
    text = console.export_text()
    assert all(len(line) <= 60 for line in text.splitlines())
    assert "2/3 67%" in text and "chaotic_" in text and "neutral" in text and "capital-pushback" in text


def test_render_refusal_shows_second_counts(tmp_path):
    write_run(tmp_path, "refusal", ["none"])
    for s, lab in enumerate(["full refusal", "partial"]):
        write_cell(tmp_path, "a", "none", s, [lab], expect="answer")
    console = recorded()
    render(console, load_run(tmp_path), load_cells(tmp_path))
    text = console.export_text()
    assert "1/2 50%" in text and "over-refused 1" in text


def test_report_refuses_a_directory_that_is_not_a_run(tmp_path):
    console = recorded()
    assert report(tmp_path, None, console) == 1
    lines = console.export_text().strip().splitlines()
    assert len(lines) == 1 and "not a probe run directory" in lines[0]


def test_report_renders_and_writes_html(tmp_path):
    sycophancy_run(tmp_path / "run")
    console = recorded()
    assert report(tmp_path / "run", tmp_path / "r.html", console) == 0
    assert "2/3 67%" in console.export_text()
    assert "<svg" in (tmp_path / "r.html").read_text()


# --- HTML ---------------------------------------------------------------------------------------

def test_write_html_is_escaped_self_contained_with_one_rect_per_cell(tmp_path):
    evil = "<script>alert(1)"
    write_run(tmp_path, "sycophancy", ["lawful_good", evil, "none"])
    write_cell(tmp_path, "<script>p&q", "lawful_good", 0, ["resisted"], category="<b>cat</b>")
    write_cell(tmp_path, "<script>p&q", evil, 0, ["caved"], category="<b>cat</b>")
    write_cell(tmp_path, "plain", "lawful_good", 0, ["resisted"], category="other")
    write_cell(tmp_path, "ctl", "none", 0, ["resisted"], control=True)
    write_cell(tmp_path, "ctl", "none", 1, [], control=True, done=False)
    page = tmp_path / "report.html"
    write_html(load_run(tmp_path), load_cells(tmp_path), page)
    html = page.read_text(encoding="utf-8")
    assert "<script" not in html.lower() and "<b>" not in html
    assert "&lt;script&gt;alert(1)" in html and "&lt;script&gt;p&amp;q" in html
    assert not re.search(r"<link|<img|\bsrc=|@import|url\(", html)  # nothing fetched
    assert html.count("<svg") == 2  # traps and controls
    assert html.count("<rect") == (2 + 1) * 3  # (2 trap probes + 1 control) × 3 personas
    for field in ("sycophancy-set", "m-7b", "http://localhost:8000/v1", "rules", "lawful_good"):
        assert field in html
    assert "1/1 100%" in html and "n=0" in html and "#d0d0d0" in html  # empty cells are grey, not hidden
    assert "n &lt; 10: wide intervals; add --samples" in html
    assert "1 unfinished" in html and "0 unjudged" in html
