"""Transcripts: whatever happens to a conversation, replaying its file rebuilds it exactly."""

import json
import os
import signal
import subprocess
import sys

from gridchat.chat.conversation import Conversation, Message, record
from gridchat.chat.events import ToolCall
from gridchat.chat.transcript import Transcript, list_sessions, load_transcript, replay, snapshot_events
from gridchat.personas import custom, load_personas
from hypothesis import given, settings
from hypothesis import strategies as st

PERSONAS = load_personas()
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)

OPS = st.lists(st.one_of(
    st.tuples(st.just("user"), TEXT),
    st.tuples(st.just("assistant"), TEXT, TEXT, st.booleans()),
    st.tuples(st.just("tool"), TEXT),
    st.tuples(st.just("move"), st.integers(-1, 40)),
    st.tuples(st.just("fork"), TEXT),
    st.tuples(st.just("mark"), st.sampled_from(["resisted", "caved", "partial", "note"]), TEXT),
    st.tuples(st.just("persona"), st.sampled_from([*PERSONAS, "custom"]), TEXT),
    st.tuples(st.just("params"), st.floats(0, 2, allow_nan=False), st.integers(1, 4096)),
    st.tuples(st.just("withdraw"),),
), max_size=40)


def apply(c: Conversation, op) -> None:
    kind = op[0]
    if kind == "user":
        c.add(Message("user", op[1]))
    elif kind == "assistant":
        calls = [ToolCall("call_1", "bash", json.dumps({"command": op[2]}))] if op[3] else []
        c.add(Message("assistant", op[1], reasoning=op[2], tool_calls=calls, interrupted=op[3],
                      stats={"completion_tokens": len(op[1])}))
    elif kind == "tool":
        c.add(Message("tool", op[1], tool_call_id="call_1", name="bash"))
    elif kind == "move" and op[1] < len(c.nodes):
        c.move(None if op[1] < 0 else op[1])
    elif kind == "fork" and c.head is not None:
        c.fork(op[1])
    elif kind == "mark" and c.last("assistant") is not None:
        c.mark(op[1], op[2])
    elif kind == "persona":
        c.set_persona(custom(op[2]) if op[1] == "custom" else PERSONAS[op[1]])
    elif kind == "params":
        c.set_params({"temperature": op[1], "max_tokens": op[2]})
    elif kind == "withdraw" and c.nodes and c.head == c.nodes[-1].id:
        c.withdraw(c.nodes[-1])


def state(c: Conversation):
    return ([record(m) for m in c.nodes], c.head, c.forks, c.marks, c.persona.name, c.persona.system, c.params,
            [record(m) for m in c.messages])


@settings(max_examples=60, deadline=None)
@given(OPS)
def test_replaying_the_file_rebuilds_the_conversation_exactly(tmp_path_factory, ops):
    directory = tmp_path_factory.mktemp("sessions")
    transcript = Transcript.new(directory)
    c = Conversation(listener=transcript.write)
    for op in ops:
        apply(c, op)
    transcript.close()
    if not any(op[0] in ("user", "assistant", "tool") for op in ops):
        assert not transcript.path.exists()  # no message, no session file: nothing to resume
        return
    restored = load_transcript(transcript.path, PERSONAS)
    assert state(restored.conversation) == state(c)
    # and a snapshot (/save) of it replays to the same again
    snap = [e.line() for e in snapshot_events(c, {}, "x")]
    assert state(replay(json.loads(json.dumps(snap)), PERSONAS).conversation) == state(c)


def test_a_torn_last_line_is_skipped(tmp_path):
    t = Transcript.new(tmp_path)
    c = Conversation(listener=t.write)
    c.add(Message("user", "kept"))
    t.close()
    with open(t.path, "a") as f:
        f.write('{"event": "message", "id": 1, "par')  # killed mid-write
    restored = load_transcript(t.path, PERSONAS)
    assert [m.content for m in restored.conversation.messages] == ["kept"]


def test_every_event_is_on_disk_when_the_call_returns(tmp_path):
    """Flushed per event: a process killed right after a change leaves it in the file."""
    script = f"""
import os, sys
sys.path.insert(0, {os.getcwd()!r})
from gridchat.chat.conversation import Conversation, Message
from gridchat.chat.transcript import Transcript
t = Transcript.new({str(tmp_path)!r})
c = Conversation(listener=t.write)
c.add(Message("user", "before the kill"))
os.kill(os.getpid(), 9)
"""
    proc = subprocess.run([sys.executable, "-c", script])
    assert proc.returncode == -signal.SIGKILL
    (info,) = list_sessions(tmp_path)
    assert info.messages == 1 and info.first == "before the kill"
