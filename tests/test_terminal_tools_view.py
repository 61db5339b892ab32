"""Tools in view (issue 13, 6): the exit code always shown (red when not 0), long output expandable,
no stats line before a call, `a` confirmed and auto-approved calls marked, the time a command runs."""

from __future__ import annotations

import json

import pytest
from fake_backend import Reply, ToolCall
from terminal import sgr_params


@pytest.fixture
def workspace(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws


def bash(command: str) -> ToolCall:
    return ToolCall("bash", json.dumps({"command": command}))


def test_the_exit_code_is_always_shown_and_red_when_not_zero(fake, term, workspace):
    fb = fake("vllm")
    fb.script(Reply(text="Checking first.", tool_calls=[bash("echo ok")]), Reply(tool_calls=[bash("echo bad; exit 3")]),
              Reply(text="It failed with 3."))
    t = term(fb, "--workspace", str(workspace), "--approve", "bash")
    t.wait_prompt("none")
    t.line("run them")
    screen = t.wait_for("It failed with 3.")
    assert "↳ ran · exit 0" in screen and "↳ ran · exit 3" in screen
    styled = t.screen(escapes=True).splitlines()
    assert "31" in sgr_params(next(line for line in styled if "exit 3" in line))  # red
    assert "31" not in sgr_params(next(line for line in styled if "exit 0" in line))
    # no stats line between the request and the first call, nor between the calls
    before_calls = screen.split("⚙ bash")[0]
    assert "tokens ·" not in before_calls.split("run them", 1)[1]
    assert screen.count("tokens ·") == 1  # once, after the final answer


def test_long_output_is_collapsed_and_expand_shows_it_all(fake, term, workspace):
    fb = fake("vllm")
    fb.script(Reply(tool_calls=[bash("seq 1 40")]), Reply(text="Counted."))
    t = term(fb, "--workspace", str(workspace), "--approve", "bash")
    t.wait_prompt("none")
    t.line("count")
    screen = t.wait_for("Counted.")
    assert "more lines: /expand shows all" in screen and "\n    40\n" not in screen
    t.wait_prompt("none")
    t.line("/expand")
    t.wait_for("[exit code 0]")
    lines = [line.strip() for line in t.screen().split("/expand", 1)[1].splitlines()]
    assert [str(n) for n in range(1, 41)] == [line for line in lines if line.isdigit()]


def test_always_is_confirmed_and_later_calls_are_marked(fake, term, workspace):
    fb = fake("vllm")
    fb.script(Reply(tool_calls=[bash("echo one")]), Reply(tool_calls=[bash("echo two")]), Reply(text="both done"))
    t = term(fb, "--workspace", str(workspace))
    t.wait_prompt("none")
    t.line("go")
    t.wait_for("Run bash?")
    t.line("a")
    screen = t.wait_for("both done")
    assert "bash: always, this session (/approvals reset asks again)" in screen
    assert screen.count("Run bash?") == 1 and "runs without asking (always, this session)" in screen


def test_a_running_command_shows_its_elapsed_time(fake, term, workspace):
    fb = fake("vllm")
    fb.script(Reply(tool_calls=[bash("sleep 2.5; echo slept")]), Reply(text="awake"))
    t = term(fb, "--workspace", str(workspace), "--approve", "bash")
    t.wait_prompt("none")
    t.line("sleep")
    t.wait(lambda: "running bash" in t.screen() and " 1." in t.screen().split("running bash")[-1], "the elapsed time")
    screen = t.wait_for("awake")
    assert "↳ ran · exit 0 · 2." in screen
