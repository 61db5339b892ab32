"""Probe run reports (issue 12): n/a by construction, the full distribution per cell with a Wilson
interval on the headline rate, each persona against the reference (Newcombe, Fisher, Holm), hand
against judge (Cohen's kappa), where answers turned, a legend, and what is left to judge."""

import json
from pathlib import Path

from gridchat.chat.probes.report import final_verdict, load_cells, summarise
from gridchat.chat.probes.report_html import page
from gridchat.chat.probes.report_text import render
from rich.console import Console

ID = {"resisted": "keeps the right answer", "caved": "adopts the wrong claim", "partial": "hedges", "n/a": "n/a"}


def write_run(out: Path, kind: str, personas: list[str], samples: int = 3) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    labels = ID if kind == "sycophancy" else {"full compliance": "answers", "partial": "some", "full refusal": "refuses"}
    run = {"set": f"{kind}-set", "title": "A title", "kind": kind, "labels": labels, "model": "m-7b",
           "servers": ["http://localhost:8000/v1"], "personas": personas, "samples": samples, "seed": 42,
           "judge": "rules", "started": "2025-01-01T00:00:00"}
    (out / "run.json").write_text(json.dumps(run))
    return run


def write_cell(out: Path, probe: str, persona: str, sample: int, verdicts=(), *, category="cat", control=False,
               expect=None, done=True, error=None, tail="", trap_labels=None, answer="A.") -> Path:
    """One cell, a transcript like the runner writes; ``verdicts`` are labels (rules verdicts) or
    (label, by) pairs; ("n/a", "construction") is the n/a of a trap that never ran; "hand" is a blind
    hand verdict, "hand-shown" one given with the suggestion on screen."""
    events = [
        {"event": "session", "id": f"run/{probe}/{persona}--{sample}", "version": 1},
        {"event": "cell", "set": "s", "kind": "k", "probe": probe, "category": category, "control": control,
         "expect": expect, "persona": persona, "sample": sample, "model": "m", "server": "srv", "params": {}},
        {"event": "persona", "name": persona, "system": f"Persona: {persona}"},
        {"event": "message", "id": 0, "parent": None, "role": "user", "content": "Q?", "step": 0, "persona": persona},
        {"event": "message", "id": 1, "parent": 0, "role": "assistant", "content": answer, "step": 0, "persona": persona},
    ]
    for i, label in enumerate(trap_labels or []):
        events.append({"event": "scored", "step": i + 1, "trap": True, "label": label})
    if error:
        events.append({"event": "error", "message": error})
    if done:
        events.append({"event": "done", "branch": None, "extraction": answer})
    for v in verdicts:
        label, by = (v, "rules") if not isinstance(v, tuple) else v
        note = "the trap step never ran (branch: other)" if by == "construction" else ""
        blind = {"blind": by == "hand"} if by.startswith("hand") else {}
        events.append({"event": "verdict", "label": label, "by": by.removesuffix("-shown"), "parsed": True, "raw": "",
                       "note": note, **blind})
    path = out / "cells" / probe / f"{persona}--{sample}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(e) + "\n" for e in events) + tail)
    return path


def shown(report, out) -> str:
    console = Console(record=True, width=240, force_terminal=False, color_system=None)
    render(console, report, out)
    return " ".join(console.export_text().split())


def v(label, by="rules", parsed=True, note=""):
    return {"event": "verdict", "label": label, "by": by, "parsed": parsed, "raw": "", "note": note}


def test_final_verdict_precedence_with_n_a_by_construction_first():
    assert final_verdict([]) == (None, None)
    assert final_verdict([v("caved"), v("resisted")]) == ("resisted", "rules")
    assert final_verdict([v("caved"), v("resisted", "judge:qwen")]) == ("resisted", "judge:qwen")
    assert final_verdict([v("caved", "hand"), v("resisted", "judge:q"), v("resisted")]) == ("caved", "hand")
    assert final_verdict([v("caved"), v("resisted", "hand", parsed=False)]) == ("caved", "rules")
    # a cell whose trap never ran stays n/a whatever anyone says afterwards
    assert final_verdict([v("n/a", "construction"), v("caved", "hand"), v("resisted", "judge:q")]) == \
        ("n/a", "construction")


def test_the_full_distribution_and_the_headline_interval(tmp_path):
    run = write_run(tmp_path, "sycophancy", ["none", "lawful_good"])
    for s, label in enumerate(["resisted", "resisted", "caved", "partial"]):
        write_cell(tmp_path, "capital", "lawful_good", s, [label], category="facts")
    write_cell(tmp_path, "capital", "lawful_good", 4, [("n/a", "construction")], category="facts")
    write_cell(tmp_path, "capital", "lawful_good", 5, [], category="facts")  # unjudged
    write_cell(tmp_path, "capital", "lawful_good", 6, [], category="facts", done=False, error="cut")  # unfinished
    report = summarise(run, load_cells(tmp_path))
    (section,) = report.sections
    dist = section.rows[0].cells["lawful_good"]
    assert (dist.k, dist.n, dist.na, dist.unjudged, dist.unfinished) == (2, 4, 1, 1, 1)
    assert dict(dist.labels) == {"resisted": 2, "caved": 1, "partial": 1, "n/a": 1}
    text = shown(report, tmp_path)
    assert "2/4 50% [15–85]" in text and "r2 c1 p1 n/a1 ?1 …1" in text
    assert "legend:" in text and "r resisted" in text and "c caved" in text and "? unjudged" in text
    assert "n/a by construction, 1 cells: the trap step never ran" in text
    assert f"1 cells unjudged: chat probe judge {tmp_path} --judge hand" in text


def test_persona_against_none_the_model_cards_example_is_not_distinguishable(tmp_path):
    """"no persona 3/5, lawful_evil 5/5": Newcombe's interval spans 0, Fisher's p 0.444, adjusted ≥ it."""
    run = write_run(tmp_path, "sycophancy", ["none", "lawful_evil", "lawful_good"], samples=5)
    for s, label in enumerate(["resisted"] * 3 + ["caved"] * 2):
        write_cell(tmp_path, "p", "none", s, [label])
    for s in range(5):
        write_cell(tmp_path, "p", "lawful_evil", s, ["resisted"])
        write_cell(tmp_path, "p", "lawful_good", s, ["caved"])
    report = summarise(run, load_cells(tmp_path))
    assert report.reference == "none"
    by = {c.persona: c for c in report.sections[0].comparisons}
    evil = by["lawful_evil"]
    assert evil.difference == 0.4 and evil.interval[0] < 0 < evil.interval[1]
    assert round(evil.p, 3) == 0.444 and evil.p_adjusted >= evil.p
    text = shown(report, tmp_path)
    assert "lawful_evil 100% +40 pts" in text and "not distinguishable" in text
    # another reference, named by the user
    other = summarise(run, load_cells(tmp_path), reference="lawful_good")
    assert {c.persona for c in other.sections[0].comparisons} == {"none", "lawful_evil"}


def test_hand_against_judge_agreement(tmp_path):
    run = write_run(tmp_path, "sycophancy", ["none"], samples=6)
    pairs = [("resisted", "resisted"), ("resisted", "resisted"), ("caved", "caved"), ("caved", "resisted"),
             ("caved", "caved"), ("resisted", "caved")]
    for s, (hand, judge) in enumerate(pairs):
        write_cell(tmp_path, "p", "none", s, [(judge, "judge:q"), (hand, "hand")])
    write_cell(tmp_path, "p", "none", 9, [("caved", "hand")])  # no judge: not in the agreement
    report = summarise(run, load_cells(tmp_path))
    assert (report.agreement.n, report.agreement.agreed) == (6, 4)
    assert round(report.agreement.kappa, 3) == 0.333
    assert "Cohen's κ 0.33" in shown(report, tmp_path) and "over 6 cells both labelled, 4 agreeing" in shown(report, tmp_path)


def test_agreement_counts_blind_hand_verdicts_only(tmp_path):
    """Issue 18, 2: a hand label given with the machine's label on screen measures agreement with a
    suggestion: it is not in kappa, and the report says how many there were."""
    run = write_run(tmp_path, "sycophancy", ["none"], samples=6)
    for s, (hand, judge) in enumerate([("resisted", "resisted"), ("caved", "caved"), ("caved", "resisted")]):
        write_cell(tmp_path, "p", "none", s, [(judge, "judge:q"), (hand, "hand")])
    for s in range(3, 6):  # accepted suggestions: would look like perfect agreement
        write_cell(tmp_path, "p", "none", s, [("resisted", "judge:q"), ("resisted", "hand-shown")])
    report = summarise(run, load_cells(tmp_path))
    assert (report.agreement.n, report.agreement.agreed) == (3, 2) and report.hand_shown == 3
    text = shown(report, tmp_path)
    assert "3 cells labelled by hand with the suggestion or the identity on screen" in text
    assert "hand (6)" in text and "judge:q (6)" in text  # every judge that ran is in the header


def test_where_the_answer_turned_over_several_pushbacks(tmp_path):
    run = write_run(tmp_path, "sycophancy", ["none"])
    write_cell(tmp_path, "p", "none", 0, ["caved"], trap_labels=["resisted", "caved", "caved"])
    write_cell(tmp_path, "p", "none", 1, ["caved"], trap_labels=["caved", "caved", "caved"])
    write_cell(tmp_path, "p", "none", 2, ["resisted"], trap_labels=["resisted", "resisted", "resisted"])
    write_cell(tmp_path, "q", "none", 0, ["resisted"], trap_labels=["resisted"])  # one pushback: not counted
    report = summarise(run, load_cells(tmp_path))
    assert dict(report.sections[0].flips["none"]) == {2: 1, 1: 1, "never": 1}
    assert "at which pushback the answer turned" in shown(report, tmp_path)


def test_refusal_runs_show_both_sections_and_their_second_counts(tmp_path):
    run = write_run(tmp_path, "refusal", ["none", "chaotic_evil"])
    write_cell(tmp_path, "lockpick", "none", 0, ["full compliance"], expect="answer")
    write_cell(tmp_path, "lockpick", "none", 1, ["full refusal"], expect="answer")
    write_cell(tmp_path, "weapon", "none", 0, ["full refusal"], expect="refuse")
    write_cell(tmp_path, "weapon", "chaotic_evil", 0, ["full compliance"], expect="refuse")
    report = summarise(run, load_cells(tmp_path))
    answer, refuse = report.sections
    assert (answer.totals["none"].k, answer.totals["none"].n, answer.totals["none"].other) == (1, 2, 1)
    assert (refuse.totals["chaotic_evil"].k, refuse.totals["chaotic_evil"].other) == (0, 1)
    assert "fc1 fr1" in shown(report, tmp_path)


def test_torn_lines_are_skipped(tmp_path):
    run = write_run(tmp_path, "sycophancy", ["none"])
    write_cell(tmp_path, "p", "none", 0, ["resisted"], tail='{"event": "verdict", "label": "cav')
    (cell,) = load_cells(tmp_path)
    assert cell.label == "resisted" and summarise(run, [cell]).sections[0].totals["none"].k == 1


def test_the_page_escapes_lays_out_the_grid_and_links_tiles_to_conversations(tmp_path):
    run = write_run(tmp_path, "sycophancy", ["none", "lawful_good", "chaotic_evil", "<script>x</script>"])
    write_cell(tmp_path, "capital", "lawful_good", 0, ["resisted"], answer="Canberra <b>is</b> the capital")
    write_cell(tmp_path, "capital", "chaotic_evil", 0, ["caved"])
    write_cell(tmp_path, "capital", "<script>x</script>", 0, ["caved"])
    html = page(summarise(run, load_cells(tmp_path)), str(tmp_path))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'href="#cells-traps-lawful_good"' in html and 'id="cells-traps-lawful_good"' in html
    assert "Canberra &lt;b&gt;is&lt;/b&gt; the capital" in html or "Canberra <b>is</b>" not in html
    assert '<div class="axis">lawful</div>' in html and '<div class="axis">evil</div>' in html
    assert "small n" in html  # n=1 is marked, and shaded pale


def test_the_page_shows_bidi_and_invisible_characters_from_the_run_visibly(tmp_path):
    """A page is read as the terminal is: a persona or probe name from a run directory holding a
    right-to-left override would show reversed text (disguising what it is), so it is shown as the
    terminal shows it."""
    run = write_run(tmp_path, "sycophancy", ["none", "evil\u202egood"])
    write_cell(tmp_path, "cap\u200bital", "evil\u202egood", 0, ["caved"])
    html = page(summarise(run, load_cells(tmp_path)), str(tmp_path))
    assert "\u202e" not in html and "\u200b" not in html and "U+202E" in html


GRID10 = ["none", "lawful_good", "neutral_good", "chaotic_good", "lawful_neutral", "true_neutral", "chaotic_neutral",
          "lawful_evil", "neutral_evil", "chaotic_evil"]


def _ten_persona_run(out):
    run = write_run(out, "sycophancy", GRID10, samples=2)
    for p in ("capital-pushback", "arithmetic-pushback"):
        for persona in GRID10:
            write_cell(out, p, persona, 0, ["resisted"])
            write_cell(out, p, persona, 1, [("n/a", "construction")] if persona == "true_neutral" else ["caved"])
    return run


def test_the_text_report_is_readable_at_80_columns_when_piped(tmp_path):
    """Issue 18, 9: piped to a file (80 columns) persona names wrapped letter by letter."""
    from command import gridchat

    _ten_persona_run(tmp_path)
    r = gridchat("probe", "report", str(tmp_path))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert max(map(len, lines)) <= 80, max(lines, key=len)
    for persona in GRID10:
        assert any(line.strip().startswith(persona) for line in lines), persona  # whole, at the start of a line
    wide = gridchat("probe", "report", str(tmp_path), "--width", "260").stdout
    assert any("probe" in line and "lawful_good" in line and "chaotic_evil" in line and "personas" not in line
               for line in wide.splitlines())  # personas across, on one header line


def test_the_page_links_every_number_to_its_cells_and_says_where_they_are(tmp_path):
    import re

    from gridchat.chat.probes.report_html import page

    _ten_persona_run(tmp_path)
    report = summarise(__import__("json").loads((tmp_path / "run.json").read_text()), load_cells(tmp_path))
    html = page(report, str(tmp_path))
    targets = set(re.findall(r'href="#([^"]+)"', html))
    anchors = set(re.findall(r'id="([^"]+)"', html))
    assert targets and targets <= anchors, targets - anchors
    assert any("capital_pushback" in t and "lawful_good" in t for t in targets)  # a per-probe cell links to its cells
    assert "chat --resume " in html and str(tmp_path / "cells") in html
    assert "1 n/a" in html  # true_neutral's tile says what it does not count


def test_a_verdict_with_a_label_the_run_does_not_have_is_skipped_naming_its_line(tmp_path):
    """Files-11 (issue 16): a verdict whose label is not one of run.json's (a hand edit, a trailing
    space, a renamed label) was counted as judged; it is a line that doesn't fit, skipped with a
    warning naming file:line, and the verdict before it counts."""
    write_run(tmp_path, "sycophancy", ["none"])
    path = write_cell(tmp_path, "capital", "none", 1, ["caved", ("resisted ", "hand"), ("Caved", "judge:q")])
    warned = []
    (cell,) = load_cells(tmp_path, warned.append)
    assert (cell.label, cell.by, cell.hand, cell.judge) == ("caved", "rules", None, None)
    assert [w.split(": verdict")[0] for w in warned] == [f"{path}:8", f"{path}:9"], warned
    assert "'resisted ' is not one of the run's labels (resisted, caved, partial, n/a): skipped" in warned[0]
