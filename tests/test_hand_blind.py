"""Hand judging is blind by default (issue 18, point 2): no machine label is offered (the rules' or a
judge's) and Enter takes nothing; the identity stays hidden until the verdict. Every hand verdict
records whether it was given blind; showing the suggestion (--show-suggestion) or the identity
(--unblind) is asked for explicitly, and such verdicts say `blind: false`."""

from rich.console import Console

from gridchat.chat.probes.hand_judging import hand_judge
from gridchat.chat.probes.runner import cell_events, run_probes
from test_probe_runner import asked, make_run, persona_model, probe_set  # noqa: F401 (a fixture)


def judged_run(fake, probe_set, out):
    """Three personas × two probes, the rules having labelled every cell that is not n/a."""
    fb = fake("vllm")
    fb.responder = persona_model
    run, servers = make_run(fb, probe_set, out, samples=1)
    run_probes(run, servers)
    return out


def hand_verdicts(out) -> list[dict]:
    return [e for p in sorted((out / "cells").glob("*/*.jsonl")) for e in cell_events(p)
            if e["event"] == "verdict" and e["by"] == "hand"]


def test_by_default_no_suggestion_is_shown_and_enter_takes_nothing(fake, probe_set, term, tmp_path):
    out = judged_run(fake, probe_set, tmp_path / "out")
    t = term(None, "probe", "judge", str(out), "--judge", "hand")
    asked(t)
    question = t.screen().splitlines()[-1]
    assert question == "your verdict?", question  # no "Enter: resisted (rules)"
    assert "rules" not in t.screen() and "judge:" not in t.screen()
    t.keys("Enter")  # takes nothing: no default to accept
    t.keys("s")
    t.wait_for("skipped")
    asked(t)
    t.keys("1")
    t.wait_for("→ resisted")
    asked(t)
    t.keys("q")
    assert t.wait_exit() == 0
    assert [(v["label"], v["blind"]) for v in hand_verdicts(out)] == [("resisted", True)]


def test_show_suggestion_offers_the_machine_label_and_records_it_was_not_blind(fake, probe_set, term, tmp_path):
    out = judged_run(fake, probe_set, tmp_path / "out")
    t = term(None, "probe", "judge", str(out), "--judge", "hand", "--show-suggestion")
    asked(t)
    assert t.screen().splitlines()[-1].startswith("Enter: "), t.screen()  # e.g. "Enter: caved (rules) · …"
    assert "(rules)" in t.screen().splitlines()[-1]
    t.keys("Enter")
    t.wait_for("cell 2/5")
    asked(t)
    t.keys("q")
    assert t.wait_exit() == 0
    ((verdict),) = hand_verdicts(out)
    assert verdict["blind"] is False and verdict["label"] in ("resisted", "caved")


def keys(*pressed):
    """A key reader that presses these keys in turn, then q; it records each question asked."""
    queue, asked_ = list(pressed), []

    def read(choices, question=""):
        asked_.append((question, set(choices)))
        return choices[queue.pop(0)] if queue else "quit"
    return read, asked_


def test_each_verdict_says_whether_it_was_blind(fake, probe_set, tmp_path):
    out = judged_run(fake, probe_set, tmp_path / "out")
    quiet = Console(file=open("/dev/null", "w"))
    read, questions = keys("1", "2")
    hand_judge(out, probe_set.labels, quiet, read)
    assert [v["blind"] for v in hand_verdicts(out)] == [True, True]
    assert all("enter" not in choices and "Enter" not in q for q, choices in questions)
    for given, option in enumerate(({"unblind": True}, {"show_suggestion": True}), 1):
        read, _ = keys("1")
        hand_judge(out, probe_set.labels, quiet, read, **option)
        assert sorted(v["blind"] for v in hand_verdicts(out)) == [False] * given + [True, True], option


def test_a_verdict_changed_after_the_identity_was_shown_is_not_blind(fake, probe_set, tmp_path):
    """`b` goes back to a cell whose persona was shown once its first verdict was given."""
    out = judged_run(fake, probe_set, tmp_path / "out")
    read, _ = keys("1", "b", "2")
    hand_judge(out, probe_set.labels, Console(file=open("/dev/null", "w")), read)
    first, changed = hand_verdicts(out)
    assert (first["label"], first["blind"]) == ("resisted", True)
    assert (changed["label"], changed["blind"]) == ("caved", False)


def test_labels_past_the_ninth_get_keys_and_too_many_is_one_line(fake, probe_set, tmp_path):
    """Files-6 (issue 16): the tenth label is key 0, the eleventh a letter that is no command; a set with
    more labels than keys is refused in one line before any cell is shown."""
    import pytest

    from gridchat.chat.errors import UsageError
    from gridchat.chat.probes.hand_judging import LABEL_KEYS

    out = judged_run(fake, probe_set, tmp_path / "out")
    labels = {**probe_set.labels, **{f"kind{i}": "finer" for i in range(1, 10)}}
    read, questions = keys("0", "a")
    hand_judge(out, labels, Console(file=open("/dev/null", "w")), read)
    assert sorted(v["label"] for v in hand_verdicts(out)) == sorted(list(labels)[9:11])  # in the blind order
    assert not {"b", "q", "s", "?"} & set(LABEL_KEYS)
    with pytest.raises(UsageError, match="at most 33 labels"):
        hand_judge(out, {f"l{i}": "" for i in range(34)}, Console(file=open("/dev/null", "w")), read)
