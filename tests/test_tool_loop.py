"""The tool loop against the fake backend in every stream format: approval, results with the right
ids, multi-round, the round cap, and every call getting exactly one result."""

import pytest
from command import gridchat
from fake_backend import Reply
from fake_backend import ToolCall as FakeCall
from gridchat.chat.config import Settings
from gridchat.chat.session import Session
from gridchat.chat.toolbox import Decision
from gridchat.chat.turn import NullSink
from gridchat.personas import load_personas

FORMATS = [("vllm", "chat"), ("llamacpp", "chat"), ("vllm", "responses"), ("llamacpp", "responses")]


class Answers:
    """The user's answers at the approval prompt, in order; running out is a test failure."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.asked = []

    def ask(self, call, preview):
        self.asked.append(call.name)
        answer = self.answers.pop(0)
        if answer == "ctrl-c":  # at the question: the turn stops
            return Decision(False, stop=True)
        return {"y": Decision(True), "a": Decision(True, always=True)}.get(answer) or Decision(False, reason=answer[2:])


class Recorder(NullSink):
    def __init__(self):
        self.calls, self.outcomes, self.notices = [], [], []

    def event(self, event): pass
    def end(self, result): pass
    def tool_call(self, call, preview): self.calls.append((call, preview))
    def tool_result(self, call, outcome): self.outcomes.append(outcome)
    def notice(self, text): self.notices.append(text)


def session(fb, api, tmp_path, **settings):
    ws = tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    s = Session(Settings(base_url=fb.base_url, api=api, workspace=str(ws), **settings), load_personas())
    return s, ws



def tool_results(body):
    """(call id, output) of every tool result in a request body, either API."""
    if "messages" in body:
        return [(m["tool_call_id"], m["content"]) for m in body["messages"] if m["role"] == "tool"]
    return [(i["call_id"], i["output"]) for i in body["input"] if i.get("type") == "function_call_output"]


def tool_call_ids(body):
    if "messages" in body:
        return [c["id"] for m in body["messages"] if m["role"] == "assistant" for c in m.get("tool_calls", [])]
    return [i["call_id"] for i in body["input"] if i.get("type") == "function_call"]


@pytest.mark.parametrize("flavor,api", FORMATS)
def test_approved_call_runs_and_its_result_carries_the_call_id(fake, tmp_path, flavor, api):
    fb = fake(flavor)
    fb.script(Reply(text="Checking.", tool_calls=[FakeCall("bash", '{"command": "echo from-the-tool"}')]),
              Reply(text="It printed from-the-tool."))
    s, _ = session(fb, api, tmp_path)
    result = s.send("run echo", Recorder(), Answers("y"))
    assert result.message.content == "It printed from-the-tool."
    body = fb.requests[-1].body
    (call_id,) = tool_call_ids(body)
    assert [r[0] for r in tool_results(body)] == [call_id]
    assert "from-the-tool" in tool_results(body)[0][1] and "[exit code 0]" in tool_results(body)[0][1]
    assert {t["name"] if "name" in t else t["function"]["name"] for t in body["tools"]} == {
        "bash", "read_file", "write_file", "edit_file"}


@pytest.mark.parametrize("flavor,api", FORMATS)
def test_declined_call_tells_the_model_why_and_runs_nothing(fake, tmp_path, flavor, api):
    fb = fake(flavor)
    fb.script(Reply(tool_calls=[FakeCall("write_file", '{"path": "x.txt", "content": "hi"}')]), Reply(text="OK."))
    s, ws = session(fb, api, tmp_path)
    s.send("write it", Recorder(), Answers("n:not in my repo"))
    ((_, output),) = tool_results(fb.requests[-1].body)
    assert "declined" in output and "not in my repo" in output
    assert not (ws / "x.txt").exists()


def test_always_stops_asking_for_that_tool_only(fake, tmp_path):
    fb = fake("vllm")
    fb.script(Reply(tool_calls=[FakeCall("bash", '{"command": "true"}')]),
              Reply(tool_calls=[FakeCall("bash", '{"command": "true"}'), FakeCall("read_file", '{"path": "a"}')]),
              Reply(text="done"))
    s, ws = session(fb, "chat", tmp_path)
    (ws / "a").write_text("x")
    answers = Answers("a", "y")
    s.send("go", Recorder(), answers)
    assert answers.asked == ["bash", "read_file"]  # the second bash call ran without asking
    assert s.toolbox.policy.state("bash") == "always (this session)"


@pytest.mark.parametrize("flavor,api", FORMATS)
def test_multi_round_loop_until_a_plain_answer(fake, tmp_path, flavor, api):
    fb = fake(flavor)
    fb.script(Reply(tool_calls=[FakeCall("write_file", '{"path": "n.txt", "content": "1\\n"}')]),
              Reply(tool_calls=[FakeCall("edit_file", '{"path": "n.txt", "old_string": "1", "new_string": "2"}')]),
              Reply(tool_calls=[FakeCall("read_file", '{"path": "n.txt"}')]),
              Reply(text="n.txt now holds 2."))
    s, ws = session(fb, api, tmp_path, approve=["all"])
    result = s.send("count", Recorder(), Answers())
    assert result.message.content == "n.txt now holds 2." and (ws / "n.txt").read_text() == "2\n"
    body = fb.requests[-1].body
    assert len(tool_results(body)) == 3 and [r[0] for r in tool_results(body)] == tool_call_ids(body)
    assert "     1\t2" in tool_results(body)[-1][1]


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_round_cap_stops_a_runaway_loop_and_keeps_the_history_well_formed(fake, tmp_path, api):
    fb = fake("vllm")
    loop = Reply(tool_calls=[FakeCall("bash", '{"command": "true"}')])
    fb.script(loop, loop, loop, Reply(text="fine"))
    s, _ = session(fb, api, tmp_path, approve=["bash"], max_tool_rounds=2)
    sink = Recorder()
    s.send("loop", sink, Answers())
    assert len(fb.generations()) == 3  # the first reply and two rounds of results; the third call was not run
    assert any("cap of 2" in n for n in sink.notices)
    assert "cap of 2" in s.conversation.messages[-1].content
    s.send("next", Recorder(), Answers())  # the server accepts the history: every call has one result
    body = fb.requests[-1].body
    assert len(tool_results(body)) == len(tool_call_ids(body)) == 3


def test_malformed_arguments_and_unknown_tools_get_error_results_without_asking(fake, tmp_path):
    fb = fake("vllm")
    fb.script(Reply(tool_calls=[FakeCall("bash", '{"command": '), FakeCall("launch_rockets", "{}"),
                                FakeCall("read_file", '{"path": "../../etc/passwd"}')]),
              Reply(text="sorry"))
    s, _ = session(fb, "chat", tmp_path)
    answers = Answers()
    s.send("x", Recorder(), answers)
    outputs = [o for _, o in tool_results(fb.requests[-1].body)]
    assert answers.asked == []
    assert "not valid JSON" in outputs[0] and "unknown tool" in outputs[1] and "outside the workspace" in outputs[2]


def test_ctrl_c_at_approval_stops_the_turn_and_every_call_still_has_a_result(fake, tmp_path):
    fb = fake("vllm")
    fb.script(Reply(tool_calls=[FakeCall("bash", '{"command": "true"}'), FakeCall("bash", '{"command": "false"}')]),
              Reply(text="ok"))
    s, _ = session(fb, "responses", tmp_path)
    result = s.send("x", Recorder(), Answers("ctrl-c"))
    assert result.interrupted and len(fb.generations()) == 1
    tools = [m for m in s.conversation.messages if m.role == "tool"]
    assert len(tools) == 2 and "interrupted" in tools[0].content and "interrupted the turn" in tools[1].content
    s.send("go on", Recorder(), Answers())
    assert fb.requests[-1].path.endswith("/responses")  # accepted: no call without its output


def test_no_tools_sends_none(fake, tmp_path):
    fb = fake("vllm")
    s, _ = session(fb, "chat", tmp_path, tools=False)
    s.send("hi", Recorder(), Answers())
    assert "tools" not in fb.last_body("/chat/completions")


def test_vllm_without_tool_flags_goes_on_without_tools(fake, tmp_path):
    fb = fake("vllm", tool_flags=False)
    s, _ = session(fb, "chat", tmp_path)
    sink = Recorder()
    result = s.send("hello", sink, Answers())
    assert result.message.content == "Echo: hello"
    assert any("tools are off" in n for n in sink.notices)
    assert "tools" not in fb.last_body("/chat/completions") and not s.toolbox.enabled


def test_one_shot_declines_tools_that_are_not_pre_approved(fake, tmp_path):
    fb = fake("vllm")
    fb.script(Reply(tool_calls=[FakeCall("write_file", '{"path": "f.txt", "content": "x"}')]), Reply(text="ok"),
              Reply(tool_calls=[FakeCall("write_file", '{"path": "f.txt", "content": "x"}')]), Reply(text="ok"))
    ws = tmp_path / "ws"
    ws.mkdir()
    run = lambda *a: gridchat("--base-url", fb.base_url, "--workspace", str(ws), "-p", "write", *a)  # noqa: E731
    r = run()
    assert r.returncode == 0 and r.stdout == "ok\n"
    assert "declined write_file" in r.stderr and not (ws / "f.txt").exists()
    assert "declined" in tool_results(fb.requests[-1].body)[0][1]
    r = run("--approve", "write_file")
    assert r.returncode == 0 and (ws / "f.txt").read_text() == "x"
