"""Regression guards for speed that count work instead of timing it (the timings live in bench/)."""

import subprocess
import sys

from gridchat.chat.backends.base import Request
from gridchat.chat.backends.chat_completions import ChatCompletionsBackend
from gridchat.chat.backends.responses import ResponsesBackend
from gridchat.chat.config import Settings
from gridchat.chat.conversation import Message
from gridchat.chat.session import Session
from gridchat.chat.turn import NullSink
from gridchat.personas import load_personas
from test_probe_runner import ONE_PUSHBACK


def imported_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys\nprint(' '.join(sys.modules))"],
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_the_prompt_does_not_wait_for_the_openai_sdk():
    """The SDK takes ~0.4 s to import: the REPL loads it in the background, never on the way to the prompt."""
    modules = imported_after("import gridchat.chat.cli, gridchat.chat.repl, gridchat.chat.session, gridchat.chat.sinks")
    assert "openai" not in modules and "httpx2" not in modules


def test_one_shot_mode_needs_no_prompt_toolkit_or_markdown():
    modules = imported_after("import gridchat.chat.cli, gridchat.chat.oneshot, gridchat.chat.session, gridchat.chat.sinks")
    assert "prompt_toolkit" not in modules and "rich.markdown" not in modules


def test_history_bypasses_the_sdks_per_item_walk():
    """The SDK transforms typed arguments item by item; a long history must travel untouched."""
    history = [Message("user" if i % 2 == 0 else "assistant", f"m{i}") for i in range(1000)]
    request = Request("m", "Persona: lawful_good", history)
    chat = ChatCompletionsBackend(None).body(request)
    assert chat["messages"] == [] and len(chat["extra_body"]["messages"]) == 1001
    responses = ResponsesBackend(None).body(request)
    assert responses["input"] == [] and len(responses["extra_body"]["input"]) == 1001


def test_a_turn_writes_only_what_is_new_to_the_transcript(fake):
    fb = fake("vllm")
    events = []
    s = Session(Settings(base_url=fb.base_url), load_personas())
    for i in range(200):
        s.send(f"message {i}", NullSink())
    s.conversation.listener = events.append
    s.send("one more", NullSink())
    assert [e.event for e in events] == ["message", "message"]  # the user's and the reply: no re-dump


# -- probe runs at scale (issue 20): work counted per request, per cell, per stream -------------------------



def test_a_probe_run_reads_every_reply_on_one_thread_however_many_streams(fake, tmp_path):
    """A thread per stream costs a thread switch and a GIL hand-off per read (more than parsing it): a run
    on a plain-http server reads all its streams on one loop, so 24 at once add no thread per stream."""
    import threading

    from gridchat.chat.backends.bulk import bulk_backend
    from gridchat.chat.probes.runner import Run, Server, run_probes
    from gridchat.chat.probes.spec import load_probe_set

    fb = fake("vllm")
    (tmp_path / "scale.yaml").write_text(ONE_PUSHBACK)
    personas = load_personas()
    run = Run(load_probe_set(tmp_path / "scale.yaml"), [personas[n] for n in ("lawful_good", "chaotic_evil")], 24,
              tmp_path / "out", "fake/persona-20b", [fb.base_url], {})

    def clients() -> int:  # threads of the client (the fake serves each connection on a thread of its own)
        return sum("process_request" not in t.name for t in threading.enumerate())

    before, seen = clients(), []
    finished, _ = run_probes(run, [Server(fb.base_url, bulk_backend("chat", fb.base_url, None))], concurrency=24,
                             progress=lambda done, total, tokens: seen.append(clients()))
    assert finished == 48
    assert max(seen) - before <= 1  # the loop's thread is the caller's; at most one more writes the cells


def test_recording_a_message_copies_no_more_than_its_own_fields(monkeypatch):
    """A reply's record is made once per message of every cell: dataclasses.asdict's deep copy of every
    field cost ~60 µs a message, more than reading the reply."""
    import copy

    from gridchat.chat.conversation import record
    from gridchat.chat.events import ToolCall

    message = Message("assistant", "It is 42.", tool_calls=[ToolCall("c1", "bash", '{"command": "ls"}')],
                      stats={"completion_tokens": 3, "finish_reason": "stop"}, params={"temperature": 0.7}, id=1,
                      parent=0)
    monkeypatch.setattr(copy, "deepcopy", lambda *a, **k: (_ for _ in ()).throw(AssertionError("a deep copy")))
    line = record(message)
    assert line["tool_calls"] == [{"id": "c1", "name": "bash", "arguments": '{"command": "ls"}'}]
    message.stats["completion_tokens"] = 99  # the record is the message as it was, not a view of it
    assert line["stats"] == {"completion_tokens": 3, "finish_reason": "stop"}


def test_the_end_of_a_probe_run_reads_each_cell_once(fake, tmp_path, isolated_env):
    """The report and the check that the model answers the baseline question both need every cell:
    they read them once between them (reading a cell costs more than running its requests did)."""
    fb = fake("vllm")
    (tmp_path / "scale.yaml").write_text(ONE_PUSHBACK)
    code = ("import sys, gridchat.chat.probes.rundir as r\n"
            "read, seen = r.read_log, []\n"
            "r.read_log = lambda path, *a, **k: (seen.append(str(path)), read(path, *a, **k))[1]\n"
            "from gridchat.chat.cli import main\n"
            f"code = main(['probe', 'run', {str(tmp_path / 'scale.yaml')!r}, '--base-url', {fb.base_url!r},"
            f" '--personas', 'grid', '--samples', '2', '--out', {str(tmp_path / 'out')!r}])\n"
            "print('READS', sum('/cells/' in p for p in seen))\n"
            "sys.exit(code)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "READS 18" in r.stdout  # nine personas × two samples, each read once


def test_a_reports_cells_share_the_strings_every_cell_repeats(tmp_path):
    """The closing report holds every cell of the run at once: what all of them repeat (the server, the
    model, the set, the persona, the labels) is held once, not once a cell (~0.6 KB a cell of 1.7)."""
    from test_probe_report import write_cell, write_run

    from gridchat.chat.probes.report import load_cells

    write_run(tmp_path, "sycophancy", ["lawful_good"])
    for probe in ("p1", "p2"):
        write_cell(tmp_path, probe, "lawful_good", 0, ["resisted"], trap_labels=["resisted"])
    a, b = load_cells(tmp_path)
    for name in ("server", "model", "set", "kind", "category", "persona", "label", "by", "rules"):
        assert getattr(a, name) is getattr(b, name), name
    assert a.trap_labels[0] is b.trap_labels[0]
