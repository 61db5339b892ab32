"""The probe sets that ship with gridchat validate and have the shape the report relies on."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from gridchat.chat.probes.spec import load_probe_set

SETS = Path(__file__).resolve().parents[1] / "chat" / "probes" / "sets"
TRAPS = {"false_validation", "appeal_to_effort", "false_premise", "social_pressure", "false_novelty"}
ANSWER_TOPICS = {"security_research", "medical_information", "history", "fiction", "lock_picking",
                 "controversial_opinion", "dark_humour", "kitchen_chemistry"}


@pytest.fixture(scope="module")
def sycophancy():
    return load_probe_set(SETS / "sycophancy.yaml")


@pytest.fixture(scope="module")
def refusal():
    return load_probe_set(SETS / "refusal.yaml")


@pytest.mark.parametrize("path", sorted(SETS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_file_validates(path):
    probe_set = load_probe_set(path)
    assert probe_set.probes
    assert all(text.strip() for text in probe_set.labels.values())


def test_sycophancy_labels_and_kind(sycophancy):
    assert sycophancy.kind == "sycophancy"
    assert set(sycophancy.labels) == {"resisted", "caved", "partial", "n/a"}


def test_sycophancy_covers_every_trap_with_controls(sycophancy):
    assert {p.category for p in sycophancy.probes} == TRAPS
    traps = Counter(p.category for p in sycophancy.probes if not p.control)
    controls = Counter(p.category for p in sycophancy.probes if p.control)
    for category in TRAPS:
        assert traps[category] >= 3, category
        assert controls[category] >= 1, category


def test_every_sycophancy_probe_branches_and_extracts(sycophancy):
    for probe in sycophancy.probes:
        first = probe.steps[0]
        assert first.classify and first.classify.get("right"), probe.id
        assert first.when is None, probe.id
        assert any(s.when == ["right"] for s in probe.steps[1:]), f"{probe.id}: no pushback on right"
        assert any(s.when and "other" in s.when and "right" not in s.when for s in probe.steps[1:]), \
            f"{probe.id}: no control-branch step"
        extracts = [i for i, s in enumerate(probe.steps) if s.extract]
        assert len(extracts) == 1, probe.id
        assert probe.steps[extracts[0]].when is None, f"{probe.id}: the extraction must run on every branch"


def test_sycophancy_score_patterns_do_not_overlap(sycophancy):
    for probe in sycophancy.probes:
        resisted = [p.lower() for p in probe.score.get("resisted", [])]
        caved = [p.lower() for p in probe.score.get("caved", [])]
        assert resisted and caved, probe.id
        for r in resisted:
            for c in caved:
                assert r not in c and c not in r, f"{probe.id}: {r!r} and {c!r} overlap"


def test_sycophancy_first_answer_is_the_resisted_answer_outside_controls(sycophancy):
    # In a trap the model is right first and resisting keeps that answer; in a control the first
    # answer is the one the (correct) user talks it out of. Either way `right` is what resisting keeps.
    for probe in sycophancy.probes:
        assert set(probe.steps[0].classify["right"]) & set(probe.score["resisted"]), probe.id


def test_refusal_covers_answer_topics_and_harmful_requests(refusal):
    assert refusal.kind == "refusal"
    assert set(refusal.labels) == {"full compliance", "partial", "full refusal"}
    assert all(p.expect in ("answer", "refuse") for p in refusal.probes)
    answered = {p.category for p in refusal.probes if p.expect == "answer"}
    assert ANSWER_TOPICS <= answered
    harmful = [p for p in refusal.probes if p.category == "harmful"]
    assert len(harmful) >= 4 and all(p.expect == "refuse" for p in harmful)
    for probe in refusal.probes:
        assert sum(s.extract for s in probe.steps) == 1, probe.id


def test_ids_are_unique_across_sets(sycophancy, refusal):
    ids = [p.id for p in sycophancy.probes + refusal.probes]
    assert len(ids) == len(set(ids)), [i for i, n in Counter(ids).items() if n > 1]
