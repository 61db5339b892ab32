"""Typed records (issue 19, 4): every event a transcript or a probe cell holds is built from its model
in chat/records.py, the same model its reader checks it against; a probe run's layout is RunDir's."""

from __future__ import annotations

import ast
import importlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from fake_backend import Reply
from fake_backend import ToolCall as FakeCall
from gridchat.chat import records
from gridchat.chat.config import Settings
from gridchat.chat.eventlog import read_log
from gridchat.chat.probes.model_judging import judge_cells
from gridchat.chat.files import Locked
from gridchat.chat.probes.rundir import RunDir, RunHeader, cell_key
from gridchat.chat.probes.runner import run_probes
from gridchat.chat.probes.spec import load_probe_set
from gridchat.chat.records import CELL_RECORDS, TRANSCRIPT_RECORDS, Record
from gridchat.chat.session import Session
from gridchat.chat.transcript import Transcript, load_transcript, read_events
from gridchat.chat.turn import NullSink
from gridchat.personas import load_personas
from test_probe_runner import SET, make_run, persona_model, server

# gridchat's own modules, wherever they are installed (an editable install maps them from the checkout)
PACKAGES = [Path(importlib.import_module(f"gridchat.{name}").__file__).parent
            for name in ("chat", "personas", "tools", "serve")]
PERSONAS = load_personas()


def _hand_built_events(path: Path) -> list[int]:
    """Lines of ``path`` that build an event as a dict: a literal with an "event" key, or dict(event=…)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Dict) and any(isinstance(k, ast.Constant) and k.value == "event" for k in node.keys):
            found.append(node.lineno)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict"
              and any(k.arg == "event" for k in node.keywords)):
            found.append(node.lineno)
    return found


def test_no_module_writes_an_event_as_a_hand_built_dict():
    sources = [p for package in PACKAGES for p in package.rglob("*.py")]
    assert len(sources) > 50 and Path(records.__file__) in sources
    offenders = [f"{p}:{line}" for p in sources if p != Path(records.__file__) for line in _hand_built_events(p)]
    assert offenders == [], "build events with chat/records.py's models: " + ", ".join(offenders)


def test_the_scan_finds_a_hand_built_event(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text('log.append({"event": "verdict", "label": "x"})\nwrite(dict(event="mark"))\nok = {"events": 1}\n')
    assert _hand_built_events(bad) == [1, 2]


def test_every_record_is_what_its_reader_checks():
    kinds = [c for c in vars(records).values() if isinstance(c, type) and issubclass(c, Record) and c is not Record]
    assert len(kinds) == 21  # started (issue 16), probability (issue 21)
    for kind in kinds:
        assert kind in (TRANSCRIPT_RECORDS.get(kind.event), CELL_RECORDS.get(kind.event)), kind.__name__
    assert all(kind.event == name for table in (TRANSCRIPT_RECORDS, CELL_RECORDS) for name, kind in table.items())
    assert {"reset", "evaluation"} <= set(TRANSCRIPT_RECORDS)  # the two that had no schema


def test_a_line_holds_only_what_was_given():
    assert records.PanelRecord(lanes=[]).line() == {"event": "panel", "lanes": []}  # a panel closing
    assert records.ResetRecord(source="/clear").line() == {"event": "reset", "from": "/clear"}
    assert list(records.SessionRecord(id="r/c", version=1, time=1.5, kind="probe cell").line()) == [
        "event", "id", "version", "time", "kind"]
    assert records.HeadRecord(id=None).line() == {"event": "head", "id": None}


def _checked(path: Path, table: dict) -> set[str]:
    """The kinds in a written file; every line has its model and fits it."""
    log = read_log(path, table)
    assert log.problems == [] and not log.torn
    kinds = {e["event"] for e in log.events}
    assert kinds <= set(table), kinds - set(table)
    return kinds


def test_every_kind_a_session_writes_has_its_model(fake, tmp_path):
    fb = fake("vllm")
    fb.script(Reply(text="first"), Reply(tool_calls=[FakeCall("read_file", '{"path": "x"}')]), Reply(text="second"),
              Reply(status=500))
    (tmp_path / "x").write_text("x\n")
    transcript = Transcript.new(tmp_path / "sessions")
    s = Session(Settings(base_url=fb.base_url, workspace=str(tmp_path), approve=["read_file"]), PERSONAS, transcript)
    s.send("hello", NullSink())
    s.conversation.fork("here")
    s.conversation.mark("resisted", "kept it")
    s.conversation.set_params({"temperature": 0.5, "tool_choice": "none"})
    s.send("again", NullSink())
    s.send("this one fails", NullSink())  # taken back: withdraw
    s.conversation.move(0)
    saved = tmp_path / "saved.jsonl"
    s.load(load_transcript(transcript.path, PERSONAS), str(saved))
    s.clear()
    transcript.close()
    kinds = _checked(transcript.path, TRANSCRIPT_RECORDS)
    assert kinds == {"session", "server", "persona", "params", "message", "fork", "mark", "withdraw", "head",
                     "reset", "started"}
    assert not load_transcript(transcript.path, PERSONAS).problems


def test_every_kind_a_probe_run_writes_has_its_model(fake, tmp_path):
    path = tmp_path / "arithmetic.yaml"
    path.write_text(SET)
    fb = fake("vllm")
    fb.responder = persona_model
    out = tmp_path / "out"
    run, servers = make_run(fb, load_probe_set(path), out, samples=1)
    run.params = {"temperature": 0.5, "tool_choice": "none"}  # a configured tool_choice: a str among numbers
    run_probes(run, servers)
    judge = fake("vllm")
    judge.responder = lambda body: Reply(text="resisted")
    judge_cells(out, run.probe_set.labels, server(judge).backend, "judge-model")
    run_dir = RunDir(out)
    assert run_dir.header()["params"] == {"temperature": 0.5, "tool_choice": "none"}
    kinds = set().union(*(_checked(p, CELL_RECORDS) for p in run_dir.cell_paths()))
    assert kinds == {"session", "cell", "server", "persona", "params", "message", "scored", "branch", "done",
                     "verdict"}


def test_run_dir_owns_the_layout(tmp_path):
    run_dir = RunDir(tmp_path / "out")
    assert run_dir.cell_paths() == [] and not run_dir.has_header()
    cell = run_dir.cell_path("times", "lawful_good", 2)
    assert cell == tmp_path / "out" / "cells" / "times" / "lawful_good--2.jsonl"
    cell.parent.mkdir(parents=True)
    cell.write_text("")
    (cell.parent / "notes.txt").write_text("")  # not a cell
    assert run_dir.cell_paths() == [cell]
    header = RunHeader(set="s", kind="refusal", personas=["none"], samples=2, params={"top_k": 5}, seed=1)
    run_dir.write_header(header)
    assert json.loads((tmp_path / "out" / "run.json").read_text()) == run_dir.header() == header.model_dump()
    with run_dir.lock(), pytest.raises(Locked):
        RunDir(tmp_path / "out").lock()


@settings(max_examples=300, deadline=None)
@given(probe=st.text(min_size=1), persona=st.text(), sample=st.integers(1, 99))
def test_a_cell_path_is_in_its_probe_folder_whatever_the_names(probe, persona, sample):
    """Files-3 (issue 16): probe ids and persona names come from files; whatever they hold (``/``,
    ``..``, a leading dot, NUL), the cell is one file directly in cells/PROBE/, seen by cell_paths,
    and its path gives the names back."""
    out = Path("/run")
    cell = RunDir(out).cell_path(probe, persona, sample)
    assert cell.parent.parent == out / "cells" and not cell.parent.name.startswith(".")
    assert "/" not in cell.name and not cell.name.startswith(".") and cell.name.endswith(f"--{sample}.jsonl")
    assert cell_key(cell) == (probe, persona, str(sample))


def test_a_cell_path_escapes_a_nul_and_leaves_plain_names_alone():
    run_dir = RunDir(Path("/run"))
    assert run_dir.cell_path("p1", "team/../x\x00", 1).name == "team%2F..%2Fx%00--1.jsonl"
    assert run_dir.cell_path("..", ".hidden", 1).parent.name == "%2E."
    assert run_dir.cell_path("p.1", "ökonom v2", 3) == Path("/run/cells/p.1/ökonom v2--3.jsonl")


def test_only_run_dir_knows_where_a_run_keeps_its_files():
    def layout(node) -> bool:
        return (isinstance(node, ast.Constant) and node.value in ("run.json", "hand-order.json", "*/*.jsonl")
                or isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div)
                and isinstance(node.right, ast.Constant) and node.right.value == "cells")

    rundir = Path(importlib.import_module("gridchat.chat.probes.rundir").__file__)
    offenders = [f"{p}:{node.lineno}" for package in PACKAGES for p in package.rglob("*.py") if p != rundir
                 for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))) if layout(node)]
    assert offenders == [], "ask RunDir (chat/probes/rundir.py) where a run's files are: " + ", ".join(offenders)


def test_a_reset_line_of_the_wrong_type_is_skipped_with_its_line(tmp_path):
    """"reset" had no schema: now it has one, a line that doesn't fit it is skipped like any other."""
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"event": "session", "id": "t", "version": 1}) + "\n"
                    + json.dumps({"event": "reset", "from": 5}) + "\n"
                    + json.dumps({"event": "message", "id": 0, "role": "user", "content": "kept"}) + "\n")
    log = read_events(path)
    assert log.problems == [f"{path}:2: reset: from: Input should be a valid string"]
    assert [e["event"] for e in log.events] == ["session", "message"]


@pytest.mark.parametrize("bad", [2, -1, 1e308])
def test_a_probability_outside_0_to_1_is_a_damaged_line(tmp_path, bad):
    """A probability record (a probe cell's answer probability) holding no probability is skipped
    with its line, so no reader reports it as a figure."""
    path = tmp_path / "cell.jsonl"
    path.write_text(json.dumps({"event": "probability", "step": 0, "probabilities": {"right": bad, "wrong": None}})
                    + "\n" + json.dumps({"event": "probability", "step": 1, "probabilities": {"right": 1, "wrong": 0.25}})
                    + "\n")
    log = read_log(path, CELL_RECORDS)
    assert log.problems == [f"{path}:1: probability: probabilities.right: a probability is from 0 to 1, not {bad:.6g}"]
    assert [e["step"] for e in log.events] == [1]


@pytest.mark.parametrize("token", [{"token": "x", "logprob": 0.5}, {"token": "x", "logprob": 1e300},
                                   {"token": "x", "logprob": -0.1, "top": {"x": -0.1, "y": 3}}])
def test_a_token_whose_log_probability_is_above_0_is_a_damaged_line(tmp_path, token):
    path = tmp_path / "t.jsonl"
    reply = {"event": "message", "id": 1, "parent": 0, "role": "assistant", "content": "x"}
    path.write_text("".join(json.dumps(e) + "\n" for e in (
        {"event": "session", "id": "t", "version": 1}, {"event": "message", "id": 0, "role": "user", "content": "q"},
        {**reply, "logprobs": [token]})))
    log = read_events(path)
    assert len(log.problems) == 1 and log.problems[0].startswith(f"{path}:3: message: logprobs.0.")
    assert "a log-probability is at most 0" in log.problems[0]
    assert [e["event"] for e in log.events] == ["session", "message"]


def test_a_token_without_a_figure_is_read_and_written_as_it_was():
    """A token whose probability the server sent as none that could be one keeps its text (logprob None)."""
    line = records.MessageRecord(role="assistant", id=1, parent=0, content="x",
                                 logprobs=[{"token": "x", "logprob": None, "top": {"y": -2}}]).line()
    assert line["logprobs"] == [{"token": "x", "logprob": None, "top": {"y": -2}}]
    assert TRANSCRIPT_RECORDS["message"].model_validate(line).logprobs[0].logprob is None
