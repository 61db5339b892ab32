"""Probing by hand, issue 18 point 10, in a real terminal against the fake server: /classify set after
a panel round labels the replies already there; a /replay panel reloads cleanly (`chat --list`,
`--resume`); /prompt renders exactly the last request, tools included; /branches tells branches
apart by their last user message as well as their last reply."""

from __future__ import annotations

import pytest
from command import gridchat
from fake_backend import Reply
from terminal import REPO, flat, send
from test_terminal_panel import capital_model
from test_terminal_probing import branch_rows, command, sessions_dir


def test_classify_set_after_a_round_labels_the_replies_already_in_the_panel(fake, term):
    fb = fake("vllm")
    fb.responder = capital_model
    t = term(fb, "--persona", "lawful_good")
    t.wait_prompt("lawful_good")
    t.line("/compare lawful_good,chaotic_evil What is the capital of Australia?")
    t.wait_for("2 of 2 replies in")
    t.wait_prompt("panel of 2")
    out = flat(command(t, "panel of 2", "/classify right=canberra wrong=sydney"))
    assert "classify: right=canberra wrong=sydney" in out, out
    assert "1 · lawful_good: Canberra it is · answer: right" in out, out  # labelled where they stand
    assert "2 · chaotic_evil: Canberra it is · answer: right" in out, out
    t.line("I'm quite sure it's Sydney.")
    t.wait(lambda: t.screen().count("2 of 2 replies in") == 2, "the second round")
    t.wait_prompt("panel of 2")
    # the first round's labels are what the flip is measured from
    assert flat(t.screen()).count("⇄ flipped: right → wrong") == 1, t.screen()


def test_a_replay_panel_reloads_without_damage_or_warnings(fake, term, isolated_env):
    """The issue: `chat --list` said "2 damaged lines skipped" and `--resume` warned twice, on a
    session nothing had damaged (a /replay panel's lanes start from the root, not where it opened)."""
    fb = fake("vllm")
    fb.responder = capital_model
    t = term(fb, "--persona", "lawful_good")
    t.wait_prompt("lawful_good")
    send(t, "lawful_good", "What is the capital of Australia?", "Canberra it is")
    send(t, "lawful_good", "Are you sure? I think it's Sydney.", "it is")
    t.line("/replay lawful_evil,chaotic_good")
    t.wait_for("replayed 2 messages on 2 lanes")
    t.wait_prompt("panel of 2")
    t.line("/exit")
    assert t.wait_exit() == 0
    listing = gridchat("--list", cwd=REPO)
    assert listing.returncode == 0 and "damaged" not in listing.stdout + listing.stderr, listing.stdout
    (path,) = sessions_dir(isolated_env).glob("*.jsonl")
    t2 = term(fb, "--resume")
    screen = t2.wait_for("the panel of 2 is open again")
    t2.wait_prompt("panel of 2")
    assert "warning" not in screen and str(path) not in screen, screen
    t2.line("And the capital of Canada?")
    t2.wait_for("2 of 2 replies in")  # both lanes go on from where the replay left them
    assert all(len(r.body["messages"]) == 6 for r in fb.generations()[-2:])  # system + 2 exchanges + the new one


@pytest.mark.parametrize("flavor, api", [("vllm", "chat"), ("llamacpp", "chat"), ("vllm", "responses")])
def test_prompt_renders_exactly_the_last_request_tools_included(fake, term, flavor, api):
    fb = fake(flavor)
    fb.script(Reply(text="the reply that came back"))
    t = term(fb, "--persona", "lawful_evil", "--api", api)
    t.wait_prompt("lawful_evil")
    assert "nothing sent yet" in command(t, "lawful_evil", "/prompt")
    send(t, "lawful_evil", "hello there", "the reply that came back")
    command(t, "lawful_evil", "/persona chaotic_good", after="chaotic_good")  # after the request: not in it
    out = command(t, "chaotic_good", "/prompt").replace("\n  ", "\n")
    assert "<|im_start|>system\nPersona: lawful_evil<|im_end|>" in out, out
    assert "<|im_start|>user\nhello there<|im_end|>" in out, out
    assert "the reply that came back" not in out, out  # the request, not the branch since
    assert "<|im_start|>tools\n" in out and "read_file" in out and "bash" in out, out
    template = [r for r in fb.requests if r.path.endswith(("/tokenize", "/apply-template"))][-1]
    assert [tool["function"]["name"] for tool in template.body["tools"]] == ["bash", "read_file", "write_file",
                                                                            "edit_file"]


def test_branches_show_each_branch_s_last_user_message_and_reply(fake, term):
    fb = fake("vllm")
    fb.script(Reply(text="It is Canberra."), Reply(text="It is Canberra."))
    t = term(fb, "--persona", "lawful_good")
    t.wait_prompt("lawful_good")
    send(t, "lawful_good", "capital of Australia?", "It is Canberra.")
    t.line("/edit Which city is the capital of Australia?")
    t.wait(lambda: t.screen().count("It is Canberra.") == 2, "the reply to the edited question")
    t.wait_prompt("lawful_good")
    rows = branch_rows(t, "lawful_good")
    assert len(rows) == 2, rows
    (_, _, first), (_, _, second) = rows
    assert "capital of Australia?" in first and "It is Canberra." in first, first
    assert "Which city is the" in second and "It is Canberra." in second, second
