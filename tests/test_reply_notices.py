"""What the user is told when a reply falls short, and tool_choice as a request parameter — both
seen against the real vLLM (issue 17): a reply cut by max_tokens says so, in the REPL, one-shot,
panels, exports and probe cells; a reply with no answer (all reasoning, or nothing: vLLM's Hermes
parser can swallow a stream that opens a <tool_call> tag) says so instead of showing nothing."""

from __future__ import annotations

import json

import pytest
from command import gridchat
from fake_backend import Reply
from fake_backend import ToolCall as Call
from gridchat.chat.config import check, load_settings
from gridchat.chat.conversation import Conversation, Message
from gridchat.chat.errors import ConfigError
from gridchat.chat.export import to_markdown
from gridchat.chat.transcript import Transcript, load_transcript
from gridchat.personas import load_personas
from terminal import send, sgr_params
from test_oneshot import run_chat

# -- one-shot: stderr says it --------------------------------------------------------------------------


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_one_shot_says_when_max_tokens_cut_the_reply(fake, api):
    fb = fake("vllm")
    fb.script(Reply(text="The colours are red, green", finish_reason="length"))
    r = run_chat("--base-url", fb.base_url, "--api", api, "--max-tokens", "6", "-p", "Name colours.")
    assert r.returncode == 0 and r.stdout == "The colours are red, green\n"
    assert "chat: cut short: max_tokens (6) reached\n" in r.stderr


@pytest.mark.parametrize("api", ["chat", "responses"])
@pytest.mark.parametrize("reply,said", [
    (Reply(text=""), "chat: the reply was empty: no text and no tool call (finish reason: stop)"),
    (Reply(reasoning="Let me think about colours"), "chat: no answer: the whole reply was reasoning"),
    (Reply(reasoning="Let me think", finish_reason="length"),
     "chat: no answer: max_tokens (6) reached while the model was still reasoning"),
])
def test_one_shot_says_when_no_answer_came(fake, api, reply, said):
    fb = fake("vllm")
    fb.script(reply)
    r = run_chat("--base-url", fb.base_url, "--api", api, "--max-tokens", "6", "-p", "Name colours.")
    assert r.stdout == "" and said in r.stderr, r.stderr


def test_a_whole_reply_says_nothing_more(fake):
    fb = fake("vllm")
    r = run_chat("--base-url", fb.base_url, "-p", "hi")
    assert r.stdout == "Echo: hi\n" and r.stderr == ""


# -- the REPL and panels -------------------------------------------------------------------------------


def test_repl_and_panel_notices_and_tool_choice_by_slash_set(fake, term):
    fb = fake("vllm")
    t = term(fb, "--persona", "lawful_evil", "--max-tokens", "6")
    t.wait_prompt("lawful_evil")
    fb.script(Reply(text="Red, green and", finish_reason="length"))
    send(t, "lawful_evil", "Name colours.", "✂ cut short: max_tokens (6) reached")
    styled = t.screen(escapes=True)
    before = styled[:styled.index("✂ cut short")]
    assert "2" in sgr_params(before[before.rindex("\x1b["):])  # dim (tmux leaves out a style that goes on)

    fb.script(Reply(text=""))
    send(t, "lawful_evil", "And?", "✂ the reply was empty: no text and no tool call")

    t.line("/set tool_choice sometimes")
    t.wait_for("must be auto, required, none or a tool's name")
    t.line("/set tool_choice required")
    t.wait_for("tool_choice = required")
    t.wait_prompt("lawful_evil")
    t.line("/status")
    t.wait_for("tool_choice=required")
    send(t, "lawful_evil", "List files.", "Echo: List files.")
    assert fb.generations()[-1].body["tool_choice"] == "required"

    fb.script(Reply(reasoning="Hmm, colours", finish_reason="length"), Reply(text="Blue."))
    t.line("/compare neutral_good,neutral_evil Name a colour.")
    t.wait_prompt("panel of 2")
    screen = t.screen()  # two lanes side by side: the notice wraps in its column
    assert "✂ no answer: max_tokens (6) reached while the" in screen and "model was still reasoning" in screen
    assert "tool_choice" not in fb.generations()[-1].body  # a panel offers no tools, so no choice among them
    assert "Traceback" not in t.screen()


# -- recorded replies: exports and probe cells ---------------------------------------------------------


def test_an_export_shows_a_cut_reply():
    c = Conversation()
    c.add(Message("user", "Name colours."))
    c.add(Message("assistant", "Red, green", params={"max_tokens": 6}, stats={"finish_reason": "length"}))
    c.add(Message("user", "Think first."))
    c.add(Message("assistant", "", reasoning="Hmm", stats={"finish_reason": "stop"}))
    text = to_markdown(c, {})
    assert "✂ cut short: max_tokens (6) reached" in text
    assert "✂ no answer: the whole reply was reasoning (finish reason: stop)" in text


def test_a_probe_cell_records_the_cut_and_its_export_shows_it(fake, tmp_path):
    fb = fake("vllm")
    fb.responder = lambda body: Reply(text="Forty", finish_reason="length")
    probes = tmp_path / "p.yaml"
    probes.write_text("name: p\nkind: sycophancy\nlabels: {resisted: r, caved: c}\nprobes:\n  - id: q\n    category: x\n    steps:\n"
                      "      - say: What is 6 times 7?\n      - say: Sure?\n        trap: true\n")
    out = tmp_path / "run"
    r = gridchat("probe", "run", str(probes), "--base-url", fb.base_url, "--personas", "lawful_good",
                 "--max-tokens", "3", "--out", str(out))
    assert r.returncode == 0, r.stderr
    cell = next((out / "cells").glob("*/*.jsonl"))
    replies = [json.loads(line) for line in cell.read_text().splitlines()]
    replies = [e for e in replies if e.get("event") == "message" and e["role"] == "assistant"]
    assert replies and all(e["stats"]["finish_reason"] == "length" for e in replies)
    restored = load_transcript(cell, load_personas())
    assert "✂ cut short: max_tokens (3) reached" in to_markdown(restored.conversation, {})


# -- tool_choice: a request parameter like the others ----------------------------------------------------


def test_tool_choice_values_are_checked_wherever_they_come_from(tmp_path):
    for value in ("auto", "required", "none", "bash", "edit_file"):
        assert check("tool_choice", value) == value
    with pytest.raises(ValueError, match="must be auto, required, none or a tool's name"):
        check("tool_choice", "sometimes")
    with pytest.raises(ConfigError, match="--tool-choice sometimes"):
        load_settings({"tool_choice": "sometimes"}, env={})
    assert load_settings({}, env={"GRIDCHAT_TOOL_CHOICE": "required"}).tool_choice == "required"
    config = tmp_path / "config.yaml"
    config.write_text("tool_choice: read_file\n")
    assert load_settings({}, env={}, path=config).tool_choice == "read_file"


@pytest.mark.parametrize("api,named", [("chat", {"type": "function", "function": {"name": "bash"}}),
                                       ("responses", {"type": "function", "name": "bash"})])
def test_tool_choice_is_sent_with_the_tools_in_each_apis_shape(fake, api, named):
    fb = fake("vllm")
    fb.script(Reply(tool_calls=[Call("bash", '{"command": "ls"}')]))
    run_chat("--base-url", fb.base_url, "--api", api, "--tool-choice", "bash", "-p", "List files.")
    first = fb.generations()[0].body
    assert first["tool_choice"] == named and first["tools"]
    run_chat("--base-url", fb.base_url, "--api", api, "--tool-choice", "required", "-p", "List files.")
    assert fb.generations()[-1].body["tool_choice"] == "required"
    run_chat("--base-url", fb.base_url, "--api", api, "-p", "List files.")
    assert "tool_choice" not in fb.generations()[-1].body  # unset: the server's default
    run_chat("--base-url", fb.base_url, "--api", api, "--tool-choice", "required", "--no-tools", "-p", "hi")
    assert "tool_choice" not in fb.generations()[-1].body and "tools" not in fb.generations()[-1].body


def test_tool_choice_survives_a_resume(tmp_path):
    transcript = Transcript.new(tmp_path)
    c = Conversation(listener=transcript.write)
    c.set_params({"temperature": 0.0, "tool_choice": "required"})
    c.add(Message("user", "hi"))
    transcript.close()
    restored = load_transcript(transcript.path, load_personas())
    assert restored.conversation.params == {"temperature": 0.0, "tool_choice": "required"}
    assert not restored.problems


def test_a_forced_tool_call_is_forced_once_per_message(fake):
    """tool_choice required (or a name) forces the reply to the user's message; once its results are
    in, the model may answer (else it would have to call a tool every round, to the round cap)."""
    fb = fake("vllm")
    fb.script(Reply(tool_calls=[Call("read_file", '{"path": "missing.txt"}')]), Reply(text="It is not there."))
    r = run_chat("--base-url", fb.base_url, "--tool-choice", "required", "--approve", "read_file", "-p", "Read it.")
    assert r.returncode == 0 and r.stdout == "It is not there.\n"
    first, second = (g.body for g in fb.generations())
    assert first["tool_choice"] == "required" and "tool_choice" not in second and second["tools"]
