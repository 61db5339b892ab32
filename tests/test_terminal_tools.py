"""Tool calls end to end in a real terminal: the approval prompt answered y / n (+reason) / a, in
every stream format, with each result checked at the fake backend for the right call id."""

from __future__ import annotations

import pytest
from fake_backend import Reply, ToolCall
from terminal import page_through

FORMATS = [("vllm", "chat"), ("llamacpp", "chat"), ("vllm", "responses"), ("llamacpp", "responses")]
ASK = "[y/n/a(lways)]"


def results_with_ids(body):
    """[(call id in the assistant turn, call id of its result, output)] from a request body."""
    if "messages" in body:
        calls = [c["id"] for m in body["messages"] if m["role"] == "assistant" for c in m.get("tool_calls", [])]
        results = [(m["tool_call_id"], m["content"]) for m in body["messages"] if m["role"] == "tool"]
    else:
        calls = [i["call_id"] for i in body["input"] if i.get("type") == "function_call"]
        results = [(i["call_id"], i["output"]) for i in body["input"] if i.get("type") == "function_call_output"]
    return [(c, r, out) for c, (r, out) in zip(calls, results)] if len(calls) == len(results) else None


@pytest.fixture
def workspace(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws


@pytest.mark.parametrize("flavor,api", FORMATS)
def test_yes_runs_the_call_and_the_result_goes_back_with_its_id(fake, term, workspace, flavor, api):
    fb = fake(flavor)
    fb.script(Reply(text="Let me look.", tool_calls=[ToolCall("bash", '{"command": "echo tool-says-hi"}')]),
              Reply(text="The tool said hi."))
    t = term(fb, "--api", api, "--workspace", str(workspace))
    t.wait_prompt("none")
    t.line("say hi via bash")
    screen = t.wait_for(f"Run bash? {ASK}")
    assert "⚙ bash" in screen and "echo tool-says-hi" in screen
    t.line("y")
    screen = t.wait_for("The tool said hi.")
    assert "↳ ran" in screen and "tool-says-hi" in screen
    t.wait_prompt("none")
    (call_id, result_id, output), = results_with_ids(fb.generations()[-1].body)
    assert call_id and call_id == result_id
    assert "tool-says-hi" in output and "[exit code 0]" in output


@pytest.mark.parametrize("flavor,api", FORMATS)
def test_no_with_a_reason_is_told_to_the_model(fake, term, workspace, flavor, api):
    fb = fake(flavor)
    fb.script(Reply(tool_calls=[ToolCall("write_file", '{"path": "plan.md", "content": "# Plan\\n"}')]),
              Reply(text="Understood, no file."))
    t = term(fb, "--api", api, "--workspace", str(workspace))
    t.wait_prompt("none")
    t.line("write a plan")
    screen = t.wait_for(f"Run write_file? {ASK}")
    assert "create plan.md" in screen and "# Plan" in screen  # the head of the new file
    t.line("n")
    t.wait_for("Reason, for the model")
    t.line("keep it in your head")
    t.wait_for("Understood, no file.")
    (call_id, result_id, output), = results_with_ids(fb.generations()[-1].body)
    assert call_id == result_id and "declined" in output and "keep it in your head" in output
    assert not (workspace / "plan.md").exists()


def test_no_with_an_empty_reason_skips_it(fake, term, workspace):
    fb = fake("vllm")
    fb.script(Reply(tool_calls=[ToolCall("bash", '{"command": "rm -rf build"}')]), Reply(text="Leaving the build alone."))
    t = term(fb, "--workspace", str(workspace))
    t.wait_prompt("none")
    t.line("clean")
    t.wait_for(ASK)
    t.line("n")
    t.wait_for("Reason, for the model")
    t.keys("Enter")
    t.wait_for("Leaving the build alone.")
    (_, _, output), = results_with_ids(fb.generations()[-1].body)
    assert output == "The user declined to run this bash call."


def test_always_stops_asking_for_the_rest_of_the_session(fake, term, workspace):
    fb = fake("vllm")
    edit = '{"path": "n.txt", "old_string": "1", "new_string": "2"}'
    fb.script(Reply(tool_calls=[ToolCall("bash", '{"command": "echo 1 > n.txt"}')]),
              Reply(tool_calls=[ToolCall("bash", '{"command": "cat n.txt"}'), ToolCall("edit_file", edit)]),
              Reply(text="first done"),
              Reply(tool_calls=[ToolCall("bash", '{"command": "cat n.txt"}')]),
              Reply(text="second done"))
    t = term(fb, "--workspace", str(workspace))
    t.wait_prompt("none")
    t.line("go")
    t.wait_for("Run bash?")
    t.line("a")
    screen = t.wait_for("Run edit_file?")  # bash ran again without asking; edit_file still asks
    assert screen.count("Run bash?") == 1 and "-1" in screen and "+2" in screen  # the diff
    t.line("y")
    t.wait_for("first done")
    t.wait_prompt("none")
    t.line("again")
    screen = t.wait_for("second done")
    assert screen.count("Run bash?") == 1 and (workspace / "n.txt").read_text() == "2\n"
    t.wait_prompt("none")
    t.line("/tools")
    screen = t.wait_for("workspace:")
    assert "always (this session)" in screen
    t.line("/approvals reset")
    t.wait_for("every tool asks again")


def test_ctrl_c_kills_a_running_command_and_the_model_is_told(fake, term, workspace):
    fb = fake("vllm")
    fb.script(Reply(tool_calls=[ToolCall("bash", '{"command": "echo started; sleep 30"}')]), Reply(text="noted"))
    t = term(fb, "--workspace", str(workspace), "--approve", "bash")
    t.wait_prompt("none")
    t.line("wait a while")
    t.wait_for("sleep 30")
    t.keys("C-c")
    screen = t.wait_for("↳ interrupted")
    t.wait_prompt("none")
    assert len(fb.generations()) == 1 and "Traceback" not in screen
    t.line("why did you stop")
    t.wait_for("noted")
    (_, _, output), = results_with_ids(fb.generations()[-1].body)
    assert "interrupted" in output


def test_tool_output_cannot_drive_the_terminal(fake, term, workspace):
    fb = fake("vllm")
    cmd = r"printf 'a\033]0;PWNED\007b \033[2J [red]x[/red]\n'"
    import json

    fb.script(Reply(tool_calls=[ToolCall("bash", json.dumps({"command": cmd}))]), Reply(text="printed"))
    t = term(fb, "--workspace", str(workspace), "--approve", "bash")
    t.wait_prompt("none")
    t.line("print")
    screen = t.wait_for("printed")
    assert "[red]x[/red]" in screen and "␛]0;PWNED" in screen
    raw = t.raw_output()
    assert b"\x1b]0;PWNED" not in raw and b"\x1b[2J" not in raw


# -- issue 16, defect 3: a command preview never hides part of the command ---------------------------

def test_a_command_with_a_blank_run_shows_its_first_line_and_its_line_count(fake, term, workspace):
    """`touch X`, 120 blank lines, `ls -la`: the blank run scrolled the dangerous first line off the
    screen, and nothing said the command had 122 lines."""
    import json

    command = "touch X" + "\n" * 121 + "ls -la"
    fb = fake("vllm")
    fb.script(Reply(tool_calls=[ToolCall("bash", json.dumps({"command": command}))]), Reply(text="Not run, then."))
    t = term(fb, "--workspace", str(workspace))
    t.wait_prompt("none")
    t.line("list")
    t.wait_for("Run bash?")
    visible = "\n".join(t.visible())
    assert "touch X" in visible and "ls -la" in visible, visible
    assert "120 blank lines" in visible, visible
    assert "Run bash? (122 lines)" in t.cursor_line(), t.cursor_line()
    t.line("n")
    t.wait_for("Reason, for the model")
    t.keys("Enter")
    t.wait_for("Not run, then.")
    assert not (workspace / "X").exists()


def test_a_long_command_is_paged_like_a_write_preview(fake, term, workspace):
    import json

    lines = [f"echo step {i}" for i in range(1, 101)]
    lines[84] = "rm -rf ~/important  # PAYLOAD"
    fb = fake("vllm")
    fb.script(Reply(tool_calls=[ToolCall("bash", json.dumps({"command": "\n".join(lines)}))]),
              Reply(text="Not run, then."))
    t = term(fb, "--workspace", str(workspace))
    t.wait_prompt("none")
    t.line("run the steps")
    t.wait_for("Run bash?")
    visible = "\n".join(t.visible())
    assert "echo step 1\n" in visible + "\n" and "PAYLOAD" not in t.screen(), visible
    assert "Run bash? (100 lines)" in t.cursor_line() and "lines not shown yet)" in t.cursor_line()
    page_through(t, "Run bash?")
    assert "PAYLOAD" in t.screen() and "echo step 100" in t.screen()
    t.wait(lambda: t.cursor_line() == "Run bash? (100 lines) [y/n/a(lways)]", "the question without more")
    t.line("n")
    t.wait_for("Reason, for the model")
    t.keys("Enter")
    t.wait_for("Not run, then.")
