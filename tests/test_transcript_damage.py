"""Failures 5, 6, 7 and 3 (resume) of the trust issue: torn and corrupt transcripts, a full or
read-only data directory. Nothing is lost that can be kept, damage is reported in one line per
problem, and the transcript never interrupts the conversation."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest
from command import gridchat
from fake_backend import Reply
from fake_backend import ToolCall as FakeCall
from gridchat.chat.config import Settings
from gridchat.chat.conversation import Message
from gridchat.chat.records import MessageRecord
from gridchat.chat.session import Session
from gridchat.chat.transcript import Transcript, load_transcript
from gridchat.chat.turn import NullSink
from gridchat.personas import load_personas
from terminal import flat

PERSONAS = load_personas()


def sessions(isolated_env: Path) -> Path:
    return isolated_env / "data" / "gridchat" / "sessions"


def chat(*args, stdin=None, env=None):
    return gridchat(*args, stdin=stdin, env=env)


def one_session(fb, text="first question") -> Path:
    r = chat("--base-url", fb.base_url, "-p", text)
    assert r.returncode == 0, r.stderr
    return r


def saved(isolated_env) -> list[Path]:
    return sorted(sessions(isolated_env).glob("*.jsonl"))


# -- 5. a torn last line ------------------------------------------------------------------------------

def test_resume_after_a_torn_last_line_keeps_the_session_whole(fake, isolated_env):
    fb = fake("vllm")
    one_session(fb)
    (path,) = saved(isolated_env)
    with open(path, "a") as f:
        f.write('{"event": "message", "id": 2, "parent": 1, "role": "us')  # a kill (or a full disk) mid-write
    session_id = path.stem
    r = chat("--base-url", fb.base_url, "--resume", session_id, "-p", "again")
    assert r.returncode == 0, r.stderr
    assert "Echo: again" in r.stdout and "warning" not in r.stderr  # a torn last line is expected: no noise
    # afterwards the session is still listed, whole, and resumes again
    listing = chat("--list")
    assert session_id in listing.stdout and "damaged" not in listing.stdout
    restored = load_transcript(path, PERSONAS)
    assert not restored.problems
    assert [m.content for m in restored.conversation.messages] == ["first question", "Echo: first question",
                                                                  "again", "Echo: again"]
    r = chat("--base-url", fb.base_url, "--resume", session_id, "-p", "third")
    assert r.returncode == 0 and "Echo: third" in r.stdout


def test_a_complete_last_line_without_its_newline_is_kept(tmp_path):
    t = Transcript.new(tmp_path)
    t.write(MessageRecord(id=0, parent=None, role="user", content="kept"))
    t.close()
    t.path.write_bytes(t.path.read_bytes().rstrip(b"\n"))  # a hand edit dropped the final newline
    t2 = Transcript(t.path)
    t2.write(MessageRecord(id=1, parent=0, role="assistant", content="also kept"))
    t2.close()
    restored = load_transcript(t.path, PERSONAS)
    assert [m.content for m in restored.conversation.messages] == ["kept", "also kept"] and not restored.problems


# -- 6. corrupt transcripts ---------------------------------------------------------------------------

def write_transcript(directory: Path, *events: dict | str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    session_id = "20261130-120000-" + uuid.uuid4().hex[:4]
    lines = [json.dumps({"event": "session", "id": session_id, "version": 1})]
    lines += [e if isinstance(e, str) else json.dumps(e) for e in events]
    path = directory / f"{session_id}.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


USER = {"event": "message", "id": 0, "parent": None, "role": "user", "content": "hello there"}
REPLY = {"event": "message", "id": 1, "parent": 0, "role": "assistant", "content": "general kenobi"}
DAMAGE = {
    "content is a number": [{**USER, "content": 5}, {**REPLY, "parent": None, "id": 0}],
    "message without id": [USER, {k: v for k, v in REPLY.items() if k != "id"}],
    "parent is a string": [USER, {**REPLY, "parent": "0"}],
    "params is a string": [USER, REPLY, {"event": "params", "params": "hot"}],
    "a NaN temperature": [USER, REPLY, '{"event": "params", "params": {"temperature": NaN}}'],
    "head 99": [USER, REPLY, {"event": "head", "id": 99}],
    "bad tool calls": [USER, {**REPLY, "tool_calls": [{"name": 5}]}],
    "persona without name": [USER, REPLY, {"event": "persona", "system": "Persona: x"}],
    "mark without label": [USER, REPLY, {"event": "mark", "message": 1}],
    "mark on a missing message": [USER, REPLY, {"event": "mark", "message": 7, "label": "caved"}],
    "garbage line": [USER, "this is not json", REPLY],
    "a list": [USER, "[1, 2, 3]", REPLY],
    "a NUL line": [USER, "\x00\x00\x00", REPLY],
    "message out of order": [USER, {**REPLY, "id": 5}],
    "a call of a missing message started": [USER, REPLY, {"event": "started", "message": 7, "call": "call_1"}],
    "a token's probability above 1": [USER, {**REPLY, "logprobs": [{"token": "general", "logprob": 1000, "top": {}}]}],
}


@pytest.mark.parametrize("damage", list(DAMAGE.values()), ids=list(DAMAGE))
def test_a_damaged_transcript_loads_what_it_can_and_says_what_it_skipped(isolated_env, damage):
    path = write_transcript(sessions(isolated_env), *damage)
    restored = load_transcript(path, PERSONAS)
    assert restored.problems and all(str(path) in p for p in restored.problems)
    assert all("\n" not in p for p in restored.problems)
    assert restored.conversation.nodes  # the intact part is there


@pytest.mark.parametrize("damage", list(DAMAGE.values()), ids=list(DAMAGE))
def test_resuming_a_damaged_transcript_warns_and_goes_on(fake, isolated_env, damage):
    fb = fake("vllm")
    path = write_transcript(sessions(isolated_env), *damage)
    r = chat("--base-url", fb.base_url, "--resume", path.stem, "-p", "go on")
    assert r.returncode == 0, r.stderr
    assert "Echo: go on" in r.stdout
    assert "chat: warning: " in r.stderr and "internal error" not in r.stderr
    body = fb.last_body("/chat/completions")
    assert all(isinstance(m.get("content"), (str, type(None))) for m in body["messages"])


def test_one_damaged_file_never_hides_the_other_sessions(fake, isolated_env):
    fb = fake("vllm")
    one_session(fb, "an intact session")
    write_transcript(sessions(isolated_env), *DAMAGE["content is a number"])
    write_transcript(sessions(isolated_env), *DAMAGE["garbage line"])
    (sessions(isolated_env) / "not-a-transcript.jsonl").write_text("hello\n")
    r = chat("--list")
    assert r.returncode == 0, r.stderr
    rows = r.stdout.splitlines()[1:]  # under the header
    assert len(rows) == 4
    assert any("an intact session" in row and "damaged" not in row for row in rows)
    assert sum("1 damaged line skipped" in row for row in rows) == 2
    assert any("not a gridchat transcript" in row for row in rows)


# -- 3 (resume side): a tool call that never got its result ------------------------------------------

def test_resume_gives_a_dangling_tool_call_its_result(fake, isolated_env):
    fb = fake("vllm")
    path = write_transcript(
        sessions(isolated_env), USER,
        {**REPLY, "content": "", "tool_calls": [{"id": "call_1", "name": "write_file", "arguments": "{}"}]})
    r = chat("--base-url", fb.base_url, "--resume", path.stem, "-p", "go on")
    assert r.returncode == 0, r.stderr
    messages = fb.last_body("/chat/completions")["messages"]
    calls = [m for m in messages if m.get("tool_calls")]
    results = [m for m in messages if m["role"] == "tool"]
    assert len(calls) == 1 and [m["tool_call_id"] for m in results] == ["call_1"]
    assert "not run" in results[0]["content"].lower()


def test_resume_says_a_call_that_had_started_may_have_run(isolated_env):
    """Files-5 (issue 16): a call recorded as started (approved, then a kill while it ran) is not
    "not run": the model is told it started and its result was lost; a call never started still is."""
    calls = [{"id": f"call_{i}", "name": "bash", "arguments": "{}"} for i in (1, 2)]
    path = write_transcript(sessions(isolated_env), USER, {**REPLY, "content": "", "tool_calls": calls},
                            {"event": "started", "message": 1, "call": "call_1"})
    session = Session(Settings(), PERSONAS, restored=load_transcript(path, PERSONAS))
    results = {m.tool_call_id: m.content for m in session.conversation.messages if m.role == "tool"}
    assert results["call_1"].startswith("Result unknown: this call was approved and started")
    assert results["call_2"].startswith("Not run: the session ended before this call ran")


# -- 7. a full or read-only data directory -------------------------------------------------------------

@pytest.fixture
def mounted(tmp_path):
    """A small real filesystem (tmpfs), for a disk that fills up or is read-only. Needs root."""
    mounts = []

    def mount(options: str) -> Path:
        where = tmp_path / f"fs-{len(mounts)}"
        where.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True,
                           text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.strip()}")
        mounts.append(where)
        return where

    yield mount
    for where in mounts:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_a_full_disk_warns_once_and_the_reply_is_shown(fake, mounted):
    data = mounted("size=64k")
    fb = fake("vllm")
    big = "x" * 80_000  # more than the disk holds: the user message can't be saved
    env = {**os.environ, "XDG_DATA_HOME": str(data)}
    r = chat("--base-url", fb.base_url, "-p", big, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Echo: xxx")
    warnings = [line for line in r.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "not being saved" in warnings[0] and "No space left" in warnings[0]
    for path in (data / "gridchat" / "sessions").glob("*.jsonl"):  # nothing torn left behind
        assert path.read_bytes() == b"" or path.read_bytes().endswith(b"\n")


def test_a_disk_that_fills_mid_session_never_leaves_a_torn_line(tmp_path, mounted):
    data = mounted("size=64k")
    warned = []
    t = Transcript.new(data, on_error=warned.append)
    s = Session(Settings(base_url="http://127.0.0.1:9/v1"), PERSONAS, t)
    for i in range(100):
        s.conversation.add(Message("user", f"{i} " + "y" * 2000))
    assert len(warned) == 1
    text = t.path.read_bytes()
    assert text.endswith(b"\n")
    restored = load_transcript(t.path, PERSONAS)
    assert not restored.problems and restored.conversation.messages


def test_a_read_only_data_directory_still_answers(fake, mounted):
    data = mounted("size=1m,ro")
    fb = fake("vllm")
    env = {**os.environ, "XDG_DATA_HOME": str(data)}
    r = chat("--base-url", fb.base_url, "-p", "hello", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "Echo: hello"
    assert "not being saved" in r.stderr and "Read-only file system" in r.stderr


def test_a_read_only_data_directory_interactive(fake, term, mounted, monkeypatch):
    data = mounted("size=1m,ro")
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    fb = fake("vllm")
    t = term(fb, "--persona", "lawful_good")
    t.wait_prompt("lawful_good")
    t.line("hello")
    t.wait_for("Echo: hello")
    t.wait_prompt("lawful_good")
    t.line("/status")
    t.wait(lambda: flat(t.screen()).count("not being saved") >= 2, "the /status line")
    t.wait_prompt("lawful_good")
    screen = flat(t.screen())
    assert screen.count("not being saved") == 2  # the warning once, then /status
    assert "Read-only file system" in screen and "Traceback" not in screen and t.alive()


def test_session_with_a_tool_result_survives_an_unwritable_transcript(fake, tmp_path, workspace=None):
    """The listener never raises into the conversation, whatever the disk does."""
    fb = fake("vllm")
    fb.script(Reply(tool_calls=[FakeCall("read_file", '{"path": "nope.txt"}')]), Reply(text="done"))
    full = Path("/dev/full")
    t = Transcript(full, "x", on_error=lambda m: None)
    s = Session(Settings(base_url=fb.base_url, approve=["read_file"], workspace=str(tmp_path)), PERSONAS, t)
    result = s.send("go", NullSink())
    assert result.error is None and result.message.content == "done"
    assert t.failed and "No space left" in t.failed
