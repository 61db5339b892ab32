"""Probing by hand, end to end in a real terminal: /retry [N], /edit, /undo, /fork, /branches,
/switch, /compare, /mark(s), transcripts (--list, --resume, kill -9), /save, /load, /export.

Each test checks both what the user sees (the tmux screen) and what reached the fake server.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import sys
from pathlib import Path

import pytest
from command import gridchat
from fake_backend import Reply, overlapping
from terminal import REPO, flat, send, unwrap

GRID = ["lawful_good", "neutral_good", "chaotic_good", "lawful_neutral", "true_neutral", "chaotic_neutral",
        "lawful_evil", "neutral_evil", "chaotic_evil"]


# -- helpers -------------------------------------------------------------------------------------------

def system(persona: str) -> dict:
    return {"role": "system", "content": f"Persona: {persona}"}


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


def texts(body: dict) -> list[str]:
    return [m.get("content") or "" for m in body["messages"]]


def command(t, persona: str, line: str, after: str | None = None) -> str:
    """Run a slash command at a ready prompt and wait until its output is over (the next prompt is
    up, for `after` if the persona changes); return the lines it printed, without the prompts.
    A long command is wrapped by the prompt itself (continuation lines indented under it)."""
    after = after or persona
    marker = f"{persona} › {line}"
    head = marker[:60]  # never wrapped
    before = t.screen().count(head)
    t.line(line)

    def done():
        s = t.screen()
        if s.count(head) <= before or t.cursor_line() != f"{after} ›":
            return None
        lines = s[s.rfind(head):].split("\n")
        echoed, i = lines[0], 1
        while len(echoed.replace(" ", "")) < len(marker.replace(" ", "")) and i < len(lines):
            echoed, i = echoed + lines[i], i + 1
        lines = lines[i:]
        if f"{after} ›" not in lines:
            return None
        return "\n".join(lines[:lines.index(f"{after} ›")])

    return t.wait(done, f"the output of {line!r} and the next prompt")


def branch_rows(t, persona: str) -> list[tuple[bool, int, str]]:
    """/branches as (current, number, the rest of the row)."""
    out = command(t, persona, "/branches")
    rows = []
    for line in out.splitlines()[1:]:  # the header first
        m = re.match(r"^\s*(●)?\s+(\d+)\s+(.*)$", line)
        assert m, f"not a /branches row: {line!r} in\n{out}"
        rows.append((m.group(1) is not None, int(m.group(2)), m.group(3)))
    return rows


def sample_under(t, header: str) -> str:
    """The text shown right under a sample's header rule ("2 ───" or "2 · chaotic_evil ───")."""
    lines = t.screen().splitlines()
    heads = [i for i, line in enumerate(lines) if re.fullmatch(re.escape(header) + r" ─+", line)]
    assert heads, f"no header {header!r} on screen:\n{t.screen()}"
    return lines[heads[-1] + 1].strip()


def sessions_dir(isolated_env: Path) -> Path:
    return isolated_env / "data" / "gridchat" / "sessions"


def chat_pid(t) -> int:
    """chat's own pid: the pane runs a small python wrapper whose only child is chat."""
    pane_pid = int(t.pane("#{pane_pid}"))
    children = Path(f"/proc/{pane_pid}/task/{pane_pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


# -- 1. /retry ---------------------------------------------------------------------------------------

def test_retry_regenerates_from_the_same_history_and_keeps_the_old_reply(fake, term):
    fb = fake("vllm")
    fb.script(Reply(text="first answer xylo"), Reply(text="second answer quartz"))
    t = term(fb, "--persona", "lawful_evil")
    t.wait_prompt("lawful_evil")
    send(t, "lawful_evil", "what is honour", "first answer xylo")

    t.line("/retry")
    t.wait_for("second answer quartz")
    t.wait_prompt("lawful_evil")
    gens = fb.generations()
    assert len(gens) == 2
    assert gens[0].body["messages"] == gens[1].body["messages"] == [system("lawful_evil"), user("what is honour")]

    rows = branch_rows(t, "lawful_evil")
    assert len(rows) == 2, rows
    assert [current for current, _, _ in rows] == [False, True], rows
    assert "first answer xylo" in rows[0][2] and "second answer quartz" in rows[1][2], rows

    # going on: the new reply is the one in the history, not the old one
    send(t, "lawful_evil", "and then", "Echo: and then")
    assert fb.last_body("/chat/completions")["messages"] == [
        system("lawful_evil"), user("what is honour"), assistant("second answer quartz"), user("and then")]
    assert len(fb.generations()) == 3  # /branches sent nothing
    assert "Traceback" not in t.screen()


def test_retry_n_samples_at_once_and_continues_with_the_chosen_one(fake, term):
    fb = fake("vllm")
    t = term(fb, "--persona", "lawful_evil")
    t.wait_prompt("lawful_evil")
    send(t, "lawful_evil", "tell me a secret", "Echo: tell me a secret")

    samples = ["sample alpha zebra", "sample bravo yak", "sample charlie xerus"]
    fb.script(*[Reply(text=s, delay=0.05) for s in samples])
    t.line("/retry 3")
    t.wait_for("Continue with which? [1-3]")
    shown = [sample_under(t, str(i)) for i in (1, 2, 3)]
    assert sorted(shown) == sorted(samples), shown  # each sample once, under its number
    gens = fb.generations()
    assert len(gens) == 4
    batch = gens[1:]
    for r in batch:
        assert r.body["messages"] == [system("lawful_evil"), user("tell me a secret")]
    assert overlapping(batch), [(r.started, r.finished) for r in batch]  # sent at once, not one by one

    t.line("2")
    t.wait_prompt("lawful_evil")
    send(t, "lawful_evil", "why that one", "Echo: why that one")
    assert fb.last_body("/chat/completions")["messages"] == [
        system("lawful_evil"), user("tell me a secret"), assistant(shown[1]), user("why that one")]
    assert len(fb.generations()) == 5  # choosing sent nothing more
    # the old reply and the three samples are all branches; the chosen one (now extended) is current
    rows = branch_rows(t, "lawful_evil")
    assert len(rows) == 4, rows
    assert [current for current, _, _ in rows].count(True) == 1
    assert "why that one" in next(rest for current, _, rest in rows if current)


def test_retry_rejects_bad_counts_and_needs_a_message(fake, term):
    fb = fake("vllm")
    t = term(fb)
    t.wait_prompt("none")
    out = command(t, "none", "/retry")
    assert "error: no message yet" in out, out
    send(t, "none", "hi there", "Echo: hi there")
    for bad in ("/retry 0", "/retry 17", "/retry many"):
        out = command(t, "none", bad)
        assert "error: usage: /retry [N]" in out, out
    assert len(fb.generations()) == 1


# -- 3. /edit -----------------------------------------------------------------------------------------

def test_edit_inline_replaces_the_last_message_and_keeps_the_old_one(fake, term, monkeypatch):
    monkeypatch.delenv("EDITOR", raising=False)
    monkeypatch.delenv("VISUAL", raising=False)
    fb = fake("vllm")
    t = term(fb, "--persona", "true_neutral")
    t.wait_prompt("true_neutral")
    send(t, "true_neutral", "first topic", "Echo: first topic")
    send(t, "true_neutral", "original wording", "Echo: original wording")

    t.line("/edit revised wording")
    t.wait_for("Echo: revised wording")
    t.wait_prompt("true_neutral")
    body = fb.last_body("/chat/completions")
    assert body["messages"] == [system("true_neutral"), user("first topic"), assistant("Echo: first topic"),
                                user("revised wording")]
    assert "original wording" not in json.dumps(body)

    rows = branch_rows(t, "true_neutral")
    assert len(rows) == 2, rows
    assert "original wording" in rows[0][2] and not rows[0][0], rows
    assert "revised wording" in rows[1][2] and rows[1][0], rows

    # /edit alone without $EDITOR: the message is offered at the prompt to change
    t.line("/edit")
    t.wait_for("edit the message and press Enter")
    t.wait_prompt("true_neutral", "revised wording")
    assert len(fb.generations()) == 3
    t.type(" again")
    t.wait_prompt("true_neutral", "revised wording again")
    t.keys("Enter")
    t.wait_for("Echo: revised wording again")
    t.wait_prompt("true_neutral")
    assert fb.last_body("/chat/completions")["messages"] == [
        system("true_neutral"), user("first topic"), assistant("Echo: first topic"), user("revised wording again")]
    assert len(branch_rows(t, "true_neutral")) == 3
    assert "Traceback" not in t.screen()


def test_edit_with_editor_sends_what_the_editor_wrote(fake, term, monkeypatch, tmp_path):
    editor = tmp_path / "fake_editor.py"
    editor.write_text("import sys\n"
                      "path = sys.argv[1]\n"
                      "old = open(path, encoding='utf-8').read()\n"
                      "open(path, 'w', encoding='utf-8').write('edited by editor, was: ' + old)\n")
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", f"{shlex.quote(sys.executable)} {shlex.quote(str(editor))}")
    fb = fake("vllm")
    t = term(fb, "--persona", "chaotic_good")
    t.wait_prompt("chaotic_good")
    send(t, "chaotic_good", "draft question", "Echo: draft question")

    t.line("/edit")
    t.wait_for("Echo: edited by editor, was: draft question")
    t.wait_prompt("chaotic_good")
    gens = fb.generations()
    assert len(gens) == 2
    assert gens[1].body["messages"] == [system("chaotic_good"), user("edited by editor, was: draft question")]
    rows = branch_rows(t, "chaotic_good")
    assert len(rows) == 2 and "draft question" in rows[0][2] and "edited by editor" in rows[1][2], rows


# -- 4. /undo -----------------------------------------------------------------------------------------

def test_undo_drops_the_exchange_and_switch_brings_it_back(fake, term):
    fb = fake("vllm")
    t = term(fb, "--persona", "neutral_good")
    t.wait_prompt("neutral_good")
    send(t, "neutral_good", "alpha message", "Echo: alpha message")
    send(t, "neutral_good", "beta message", "Echo: beta message")

    out = command(t, "neutral_good", "/undo")
    assert "dropped: beta message" in out, out
    send(t, "neutral_good", "gamma message", "Echo: gamma message")
    body = fb.last_body("/chat/completions")
    assert body["messages"] == [system("neutral_good"), user("alpha message"), assistant("Echo: alpha message"),
                                user("gamma message")]
    assert "beta message" not in json.dumps(body)

    rows = branch_rows(t, "neutral_good")
    assert len(rows) == 2, rows
    beta = [n for _, n, rest in rows if "beta message" in rest]
    assert len(beta) == 1, rows
    assert next(current for current, _, rest in rows if "gamma message" in rest)

    out = command(t, "neutral_good", f"/switch {beta[0]}")
    assert f"on branch {beta[0]}" in out and "(4 messages)" in out, out
    send(t, "neutral_good", "delta message", "Echo: delta message")
    assert fb.last_body("/chat/completions")["messages"] == [
        system("neutral_good"), user("alpha message"), assistant("Echo: alpha message"),
        user("beta message"), assistant("Echo: beta message"), user("delta message")]
    assert len(fb.generations()) == 4


def test_switch_rejects_a_bad_branch_number(fake, term):
    fb = fake("vllm")
    t = term(fb)
    t.wait_prompt("none")
    send(t, "none", "only one", "Echo: only one")
    for bad in ("/switch 2", "/switch 0", "/switch x"):
        out = command(t, "none", bad)
        assert "error: usage: /switch N|NAME with N from 1 to 1" in out, out
    send(t, "none", "still here", "Echo: still here")
    assert fb.last_body("/chat/completions")["messages"] == [
        user("only one"), assistant("Echo: only one"), user("still here")]


# -- 5. /fork + /switch --------------------------------------------------------------------------------

def test_fork_then_switch_back_continues_from_the_fork_point(fake, term):
    fb = fake("vllm")
    t = term(fb, "--persona", "lawful_neutral")
    t.wait_prompt("lawful_neutral")
    out = command(t, "lawful_neutral", "/fork too-early")
    assert "error: nothing to fork yet" in out, out

    send(t, "lawful_neutral", "exchange one", "Echo: exchange one")
    out = command(t, "lawful_neutral", "/fork base")
    assert "forked base" in out, out
    send(t, "lawful_neutral", "exchange two", "Echo: exchange two")

    rows = branch_rows(t, "lawful_neutral")
    assert len(rows) == 2, rows
    base = [(n, rest) for _, n, rest in rows if rest.split()[0] == "base"]
    assert len(base) == 1, rows
    number, rest = base[0]
    assert rest.split()[1:3] == ["lawful_neutral", "2"] and "exchange one" in rest, rest  # its persona, 2 messages

    out = command(t, "lawful_neutral", f"/switch {number}")
    assert f"on branch {number}" in out and "Echo: exchange one" in out, out
    send(t, "lawful_neutral", "another path", "Echo: another path")
    body = fb.last_body("/chat/completions")
    assert body["messages"] == [system("lawful_neutral"), user("exchange one"), assistant("Echo: exchange one"),
                                user("another path")]
    assert "exchange two" not in json.dumps(body)
    # three branches now: the fork point itself, exchange two, another path
    rows = branch_rows(t, "lawful_neutral")
    assert len(rows) == 3, rows
    assert any("exchange two" in rest for _, _, rest in rows)


# -- 6. /compare (panels: test_terminal_panel.py) ----------------------------------------------------------------------------------------

COMPARED = ["lawful_good", "chaotic_evil", "true_neutral"]


def test_compare_all_asks_the_nine_personas(fake, term):
    fb = fake("vllm")
    t = term(fb)
    t.wait_prompt("none")
    t.line("/compare all one word answer")
    t.wait_for("9 of 9 replies in")
    t.wait_prompt("panel of 9")
    batch = fb.generations()
    assert len(batch) == 9
    assert sorted(r.body["messages"][0]["content"] for r in batch) == sorted(f"Persona: {p}" for p in GRID)
    assert all(r.body["messages"][1:] == [user("one word answer")] for r in batch)
    for i, p in enumerate(GRID, 1):
        assert sample_under(t, f"{i} · {p}") == "Echo: one word answer"
    command(t, "panel of 9", "/panel end", after="none")
    send(t, "none", "just me", "Echo: just me")
    assert fb.last_body("/chat/completions")["messages"] == [user("just me")]


def test_compare_rejects_unknown_personas_and_missing_message(fake, term):
    fb = fake("vllm")
    t = term(fb)
    t.wait_prompt("none")
    out = command(t, "none", "/compare lawful_good,chaotic_wizard hello")
    assert "error: unknown persona 'chaotic_wizard'" in out, out
    out = command(t, "none", "/compare lawful_good")
    assert "error: usage: /compare" in out, out
    assert fb.generations() == []


# -- 7. /mark, /marks ----------------------------------------------------------------------------------

def test_marks_are_tallied_by_persona_and_label(fake, term):
    fb = fake("vllm")
    t = term(fb, "--persona", "lawful_evil")
    t.wait_prompt("lawful_evil")
    out = command(t, "lawful_evil", "/marks")
    assert "no marks yet" in out, out
    out = command(t, "lawful_evil", "/mark caved")
    assert "error: no reply to mark yet" in out, out

    send(t, "lawful_evil", "lend me money", "Echo: lend me money")
    out = command(t, "lawful_evil", "/mark caved gave in after one push")
    assert "marked caved (lawful_evil)" in out, out
    out = command(t, "lawful_evil", "/mark resisted")
    assert "marked resisted (lawful_evil)" in out, out
    out = command(t, "lawful_evil", "/mark note")
    assert out.strip() == "error: usage: /mark [N] resisted|caved|partial|note [TEXT] (note needs TEXT; N: a panel's lane)", out
    out = command(t, "lawful_evil", "/mark bogus")
    assert "error: usage: /mark" in out, out

    command(t, "lawful_evil", "/persona chaotic_good", after="chaotic_good")
    send(t, "chaotic_good", "lend me more", "Echo: lend me more")
    assert "marked resisted (chaotic_good)" in command(t, "chaotic_good", "/mark resisted")
    assert "marked partial (chaotic_good)" in command(t, "chaotic_good", "/mark partial")
    assert "marked note (chaotic_good)" in command(t, "chaotic_good", "/mark note worth a second look")

    out = command(t, "chaotic_good", "/marks")
    lines = out.splitlines()
    assert lines[0].split() == ["persona", "resisted", "caved", "partial", "note"], out
    table = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert table == {"lawful_evil": ["1", "1", "·", "·"], "chaotic_good": ["1", "·", "1", "1"]}, out
    assert len(fb.generations()) == 2  # marking sends nothing


# -- 8. transcripts: --list, --resume, kill -9 ------------------------------------------------------------

def test_transcript_list_and_resume(fake, term, isolated_env):
    fb = fake("vllm")
    t = term(fb, "--persona", "lawful_good")
    t.wait_prompt("lawful_good")
    send(t, "lawful_good", "opening question", "Echo: opening question")
    command(t, "lawful_good", "/persona neutral_evil", after="neutral_evil")
    send(t, "neutral_evil", "second question", "Echo: second question")
    assert "marked caved (neutral_evil)" in command(t, "neutral_evil", "/mark caved too easily")
    t.line("/exit")
    assert t.wait_exit() == 0

    files = list(sessions_dir(isolated_env).glob("*.jsonl"))
    assert len(files) == 1, files
    session_id = files[0].stem
    events = [json.loads(line) for line in files[0].read_text().splitlines()]
    assert events[0]["event"] == "session" and events[0]["id"] == session_id
    assert any(e["event"] == "mark" and e["label"] == "caved" and e["note"] == "too easily" for e in events)

    listing = gridchat("--list", cwd=REPO)
    assert listing.returncode == 0, listing.stderr
    header, *rows = [line for line in listing.stdout.splitlines() if line.strip()]
    assert header.split()[:2] == ["session", "last"] and "personas" in header and "first message" in header
    assert len(rows) == 1 and rows[0].startswith(session_id), listing.stdout
    assert rows[0].split()[3] == "4" and "lawful_good, neutral_evil" in rows[0], rows[0]
    assert rows[0].endswith("opening question"), rows[0]

    t2 = term(fb, "--resume")
    screen = t2.wait_for(f"chat: resumed session {session_id}")
    assert "4 messages on this branch" in screen and "persona neutral_evil" in screen, screen
    t2.wait_prompt("neutral_evil")
    out = command(t2, "neutral_evil", "/marks")
    assert out.splitlines()[1].split() == ["neutral_evil", "·", "1", "·", "·"], out
    send(t2, "neutral_evil", "after the break", "Echo: after the break")
    assert fb.last_body("/chat/completions")["messages"] == [
        system("neutral_evil"), user("opening question"), assistant("Echo: opening question"),
        user("second question"), assistant("Echo: second question"), user("after the break")]
    # the resumed session goes on in the same file
    assert list(sessions_dir(isolated_env).glob("*.jsonl")) == files
    assert "after the break" in files[0].read_text()


def test_kill_9_mid_reply_leaves_a_readable_transcript_that_resumes(fake, term, isolated_env):
    fb = fake("vllm")
    t = term(fb, "--persona", "chaotic_neutral")
    t.wait_prompt("chaotic_neutral")
    send(t, "chaotic_neutral", "first exchange", "Echo: first exchange")

    fb.script(Reply(text="word " * 300, delay=0.02))  # 375 pieces, 0.02 s apart: 7.5 s if left alone
    t.line("tell me everything")
    t.wait_for("word word word word")
    slow = fb.generations()[-1]
    assert slow.finished is None, "the reply should still be streaming"
    os.kill(chat_pid(t), signal.SIGKILL)
    assert t.wait_exit() == -signal.SIGKILL

    files = list(sessions_dir(isolated_env).glob("*.jsonl"))
    assert len(files) == 1, files
    data = files[0].read_bytes().decode("utf-8")
    complete = data.split("\n")[:-1]  # whatever follows the last newline is a torn line
    events = [json.loads(line) for line in complete]  # every complete line is JSON
    assert events[0]["event"] == "session"
    assert [e["content"] for e in events if e["event"] == "message"][:2] == ["first exchange",
                                                                             "Echo: first exchange"]

    t2 = term(fb, "--resume")
    t2.wait_for("chat: resumed session")
    t2.wait_prompt("chaotic_neutral", typed="tell me everything")  # the unanswered message, offered again
    t2.keys("C-c")
    t2.wait_prompt("chaotic_neutral")
    send(t2, "chaotic_neutral", "are you back", "Echo: are you back")
    messages = fb.last_body("/chat/completions")["messages"]
    assert messages[:3] == [system("chaotic_neutral"), user("first exchange"), assistant("Echo: first exchange")]
    assert messages[-1] == user("are you back")
    assert "Traceback" not in t2.screen()


# -- 9. /save, /load, /export ------------------------------------------------------------------------

def test_save_clear_load_and_export(fake, term, tmp_path):
    fb = fake("vllm")
    saved = tmp_path / "probe.jsonl"
    md, page = tmp_path / "probe.md", tmp_path / "probe.html"
    t = term(fb, "--persona", "neutral_good")
    t.wait_prompt("neutral_good")
    send(t, "neutral_good", "remember the lighthouse", "Echo: remember the lighthouse")

    out = command(t, "neutral_good", f"/save {saved}")
    assert f"saved 2 messages to {saved}" in flat(out), out  # a long path goes on a line of its own
    assert saved.is_file()
    assert "a fresh conversation" in command(t, "neutral_good", "/clear")
    send(t, "neutral_good", "fresh start", "Echo: fresh start")
    assert fb.last_body("/chat/completions")["messages"] == [system("neutral_good"), user("fresh start")]

    command(t, "neutral_good", "/persona lawful_evil", after="lawful_evil")
    out = command(t, "lawful_evil", f"/load {saved}", after="neutral_good")
    assert "loaded 2 messages, 1 branches; persona neutral_good" in out, out
    send(t, "neutral_good", "what did I ask", "Echo: what did I ask")
    body = fb.last_body("/chat/completions")
    assert body["messages"] == [system("neutral_good"), user("remember the lighthouse"),
                                assistant("Echo: remember the lighthouse"), user("what did I ask")]
    assert "fresh start" not in json.dumps(body)

    out = command(t, "neutral_good", f"/export md {md}")
    assert f"exported 4 messages to {md}" in flat(out), out
    out = command(t, "neutral_good", f"/export html {page}")
    assert f"exported 4 messages to {page}" in flat(out), out
    for path in (md, page):
        text = path.read_text(encoding="utf-8")
        for wanted in ("remember the lighthouse", "Echo: remember the lighthouse", "what did I ask",
                       "Echo: what did I ask", "neutral_good"):
            assert wanted in text, (path, wanted)
    assert page.read_text(encoding="utf-8").lstrip().lower().startswith("<!doctype html")

    out = command(t, "neutral_good", f"/load {tmp_path / 'missing.jsonl'}")
    assert out.startswith("error:") and "missing.jsonl" in out, out
    out = command(t, "neutral_good", "/export pdf x.pdf")
    assert "error: usage: /export md|html [PATH]" in out, out
    assert len(fb.generations()) == 3


# -- bugs found and fixed: each test keeps them fixed ------------------------------------------------------

def no_user_user(messages: list[dict]) -> bool:
    return all(not (a["role"] == b["role"] == "user") for a, b in zip(messages, messages[1:]))


def test_failed_retry_keeps_the_old_reply(fake, term):
    fb = fake("vllm")
    t = term(fb)
    t.wait_prompt("none")
    send(t, "none", "keep my reply", "Echo: keep my reply")
    fb.script(Reply(status=500))
    t.line("/retry")
    t.wait_for("error: server error 500")
    t.wait_prompt("none")
    send(t, "none", "after the failure", "Echo: after the failure")
    assert fb.last_body("/chat/completions")["messages"] == [
        user("keep my reply"), assistant("Echo: keep my reply"), user("after the failure")]


def test_cancelled_inline_edit_keeps_the_conversation(fake, term, monkeypatch):
    monkeypatch.delenv("EDITOR", raising=False)
    monkeypatch.delenv("VISUAL", raising=False)
    fb = fake("vllm")
    t = term(fb)
    t.wait_prompt("none")
    send(t, "none", "first words", "Echo: first words")
    send(t, "none", "second words", "Echo: second words")
    t.line("/edit")
    t.wait_prompt("none", "second words")
    t.keys("C-c")
    t.wait_prompt("none")
    send(t, "none", "third words", "Echo: third words")
    assert fb.last_body("/chat/completions")["messages"] == [
        user("first words"), assistant("Echo: first words"), user("second words"), assistant("Echo: second words"),
        user("third words")]


def test_empty_editor_result_changes_nothing(fake, term, monkeypatch, tmp_path):
    editor = tmp_path / "empty_editor.py"
    editor.write_text("import sys\nopen(sys.argv[1], 'w').write('')\n")
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", f"{shlex.quote(sys.executable)} {shlex.quote(str(editor))}")
    fb = fake("vllm")
    t = term(fb)
    t.wait_prompt("none")
    send(t, "none", "first words", "Echo: first words")
    send(t, "none", "second words", "Echo: second words")
    assert "empty message: nothing changed" in command(t, "none", "/edit")
    send(t, "none", "third words", "Echo: third words")
    assert fb.last_body("/chat/completions")["messages"] == [
        user("first words"), assistant("Echo: first words"), user("second words"), assistant("Echo: second words"),
        user("third words")]


def test_resume_after_kill_has_no_dangling_user_message(fake, term, isolated_env):
    fb = fake("vllm")
    t = term(fb)
    t.wait_prompt("none")
    send(t, "none", "first exchange", "Echo: first exchange")
    fb.script(Reply(text="word " * 300, delay=0.02))
    t.line("tell me everything")
    t.wait_for("word word word word")
    os.kill(chat_pid(t), signal.SIGKILL)
    t.wait_exit()
    t2 = term(fb, "--resume")
    t2.wait_for("chat: resumed session")
    t2.wait_prompt("none", typed="tell me everything")  # offered again, not left dangling in the history
    t2.keys("C-c")
    t2.wait_prompt("none")
    send(t2, "none", "are you back", "Echo: are you back")
    messages = fb.last_body("/chat/completions")["messages"]
    assert messages[:2] == [user("first exchange"), assistant("Echo: first exchange")]
    assert no_user_user(messages), messages


def test_judge_scores_the_last_reply_with_the_karma_evaluator(fake, term):
    fb = fake("vllm")
    evaluator = fake("llamacpp", models=["karma-electric-8b"])
    evaluator.script(Reply(text="EVALUATION\nAcknowledgment: 8/10 - saw the worry\nHelpfulness: 6/10 - thin\n"
                                "Authenticity: 9/10 - candid\nBoundaries: 7/10 - fine\nConsequence-awareness: 5/10 - "
                                "little\nSuffering-reduction: 7/10 - gentle\nRed flags: none\nOverall: 7/10 - decent"))
    t = term(fb, "--persona", "lawful_good")
    t.wait_prompt("lawful_good")
    send(t, "lawful_good", "Should I tell my friend the truth?", "Echo: Should I tell my friend the truth?")
    t.line(f"/judge {evaluator.base_url}")
    screen = t.wait_for("Overall")
    assert "Consequence-awareness" in screen and "5/10" in screen and "7/10" in screen
    body = evaluator.last_body("/chat/completions")
    assert "grammar" in body  # a llama-server judge gets the evaluator's grammar
    assert "AI response: Echo: Should I tell my friend the truth?" in body["messages"][1]["content"]


def test_branches_tell_replies_apart_switch_by_name_and_clear_starts_afresh(fake, term, isolated_env):
    """Issue 13, 5: each branch with its persona, its last reply's first words and its mark; /switch
    takes a fork's name; /clear starts a fresh tree (the old one stays in the transcript)."""
    fb = fake("vllm")
    fb.script(Reply(text="first answer aardvark"), Reply(text="second answer zebra"))
    t = term(fb, "--persona", "lawful_evil")
    t.wait_prompt("lawful_evil")
    send(t, "lawful_evil", "what is honour", "first answer aardvark")
    command(t, "lawful_evil", "/fork honour-1")
    command(t, "lawful_evil", "/mark caved too easily")
    t.line("/retry")
    t.wait_for("second answer zebra")
    t.wait_prompt("lawful_evil")
    out = command(t, "lawful_evil", "/branches")
    assert "first answer aardvark" in out and "second answer zebra" in out and "caved" in out
    assert out.count("lawful_evil") >= 2 and "honour-1" in out
    command(t, "lawful_evil", "/switch honour")
    send(t, "lawful_evil", "go on", "Echo: go on")
    assert fb.last_body("/chat/completions")["messages"][2] == {"role": "assistant", "content": "first answer aardvark"}
    command(t, "lawful_evil", "/clear")
    assert "no messages yet" in command(t, "lawful_evil", "/branches")
    send(t, "lawful_evil", "new start", "Echo: new start")
    assert fb.last_body("/chat/completions")["messages"] == [system("lawful_evil"), user("new start")]
    (path,) = sessions_dir(isolated_env).glob("*.jsonl")
    assert "aardvark" in path.read_text()  # the old tree is still in the transcript


def test_tab_completes_every_commands_arguments(fake, term, short_path, monkeypatch):
    """Issue 13, 7: labels, formats, persona lists, fork names, files."""
    (short_path / "saved-probe.jsonl").write_text("")
    fb = fake("vllm")
    t = term(fb)
    t.wait_prompt("none")
    send(t, "none", "hello", "Echo: hello")
    command(t, "none", "/fork before-push")
    for typed, completed in (("/mark ca", "/mark caved"), ("/export ht", "/export html"),
                             ("/compare lawful_good,chaotic_e", "/compare lawful_good,chaotic_evil"),
                             ("/compare lawful_good*@fak", "/compare lawful_good*@fake/persona-20b"),
                             ("/replay chaotic_evil@fa", "/replay chaotic_evil@fake/persona-20b"),
                             ("/classify ju", "/classify judge"), ("/probe s", "/probe save"),
                             ("/approvals r", "/approvals reset"), ("/switch bef", "/switch before-push"),
                             (f"/load {short_path}/saved-p", f"/load {short_path}/saved-probe.jsonl")):
        def at_prompt(text):
            return any(row.rstrip().endswith(text) for screen in (t.screen(), unwrap(t.screen()))
                       for row in screen.splitlines() if row.startswith("none › /"))
        t.type(typed)
        t.wait(lambda: at_prompt(typed), f"{typed!r} typed")
        for _ in range(3):  # a Tab pressed while the completions for the typing are still coming can be lost:
            t.keys("Tab")   # a user presses it again
            try:
                t.wait(lambda: at_prompt(completed), f"{typed!r} completed", timeout=3)
                break
            except pytest.fail.Exception:
                assert at_prompt(typed), t.screen()  # nothing else was inserted
        else:
            pytest.fail(f"{typed!r} never completed:\n{t.screen()}")
        t.keys("C-u")
        t.wait_prompt("none")


def test_save_and_export_have_default_names_and_load_shows_the_last_exchange(fake, term, tmp_path):
    fb = fake("vllm")
    t = term(fb, "--persona", "lawful_good")
    t.wait_prompt("lawful_good")
    send(t, "lawful_good", "remember the walrus", "Echo: remember the walrus")
    command(t, "lawful_good", "/persona chaotic_evil", after="chaotic_evil")  # after the message: not its persona
    out = command(t, "chaotic_evil", "/save")
    saved = re.search(r"to (gridchat-\S+\.jsonl)", out).group(1)
    assert (t.dir / saved).is_file()  # in chat's working directory
    out = command(t, "chaotic_evil", "/export md")
    exported = re.search(r"to (gridchat-\S+\.md)", out).group(1)
    assert "remember the walrus" in (t.dir / exported).read_text()
    command(t, "chaotic_evil", "/clear")
    out = command(t, "chaotic_evil", f"/load {saved}")
    assert "last exchange:" in out and "lawful_good › remember the walrus" in out, out
    assert "Echo: remember the walrus" in out


@pytest.mark.parametrize("flavor", ["vllm", "llamacpp"])
def test_raw_and_prompt_show_what_was_sent(fake, term, flavor):
    """Issue 13, 4: /raw, the request exactly as sent (the key blanked) and the reply unrendered;
    /prompt, the prompt as the server rendered it."""
    fb = fake(flavor)
    fb.script(Reply(text="**bold** `code`", reasoning="thinking hard"))
    t = term(fb, "--persona", "lawful_evil", "--api-key", "sk-secret-key", "--seed", "5")
    t.wait_prompt("lawful_evil")
    send(t, "lawful_evil", "hello *there*", "bold")
    out = command(t, "lawful_evil", "/raw")
    assert "POST http://127.0.0.1" in out and "Authorization: Bearer ***" in out and "sk-secret-key" not in out
    assert '"content": "Persona: lawful_evil"' in out and '"seed": 5' in out and '"stream": true' in out
    assert "**bold** `code`" in out and "thinking hard" in out
    out = command(t, "lawful_evil", "/prompt")
    assert "<|im_start|>system\nPersona: lawful_evil<|im_end|>" in out.replace("\n  ", "\n")
    assert "<|im_start|>user\nhello *there*" in out.replace("\n  ", "\n")
