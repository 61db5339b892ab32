"""The fake backend is proven faithful to the real vLLM: for each recorded request (tests/data/vllm/,
made by tests/vllm_record.py against vLLM's CPU build), the fake, scripted with the reply vLLM gave,
must answer with the same shape — the same events in the same order, the same keys all the way down,
the same finish reasons, usage chunk, error bodies and statuses. The words are not compared.

test_vllm.py records the same requests against the live server and compares them with these files:
when vLLM's format changes, that test says so; re-record, then this one says where the fake must follow.
"""

from __future__ import annotations

import pytest
from fake_backend import FakeBackend, Reply
from fake_backend import ToolCall as FakeCall
from gridchat.chat.backends.chat_completions import ChatStreamParser
from gridchat.chat.backends.responses import ResponsesStreamParser
from gridchat.chat.events import Finish, ReasoningDelta, TextDelta, ToolCall
from vllm_record import DATA, ask, differences, load, shape

RECORDED = sorted(p.stem for p in DATA.glob("*.json"))


def test_there_are_recordings_of_every_kind():
    assert {"chat-stream", "chat-tool-call", "chat-reasoning", "chat-context-overflow", "chat-unknown-model",
            "responses-stream", "responses-tool-call", "responses-reasoning"} <= set(RECORDED)


def reply_from(answer: dict, path: str) -> Reply:
    """What the model said in a recorded stream, read by the client's own parsers, as a fake's script."""
    events = []
    if path == "/chat/completions":
        parser = ChatStreamParser()
        for event in answer["events"]:
            if event["data"] != "[DONE]":
                events += parser.feed(event["data"])
        events += parser.close()
    else:
        parser = ResponsesStreamParser()
        for event in answer["events"]:
            events += parser.feed(event["data"]["type"], event["data"])
    first_deltas = [tc for e in answer["events"] if isinstance(e["data"], dict)
                    for c in e["data"].get("choices", []) for tc in (c.get("delta") or {}).get("tool_calls", [])
                    if "id" in tc]
    return Reply(text="".join(e.text for e in events if isinstance(e, TextDelta)),
                 reasoning="".join(e.text for e in events if isinstance(e, ReasoningDelta)),
                 tool_calls=[FakeCall(e.name, e.arguments,
                                      first_delta_arguments=bool(first_deltas) and "arguments" in first_deltas[0]
                                      ["function"]) for e in events if isinstance(e, ToolCall)],
                 finish_reason=next(e.reason for e in events if isinstance(e, Finish)))


@pytest.mark.parametrize("name", RECORDED)
def test_the_fake_answers_in_vllms_shape(name):
    recorded = load(name)
    path, body = recorded["request"]["path"], recorded["request"]["body"]
    model = body["model"] if recorded["status"] != 404 else "smollm2-135m-hf"
    with FakeBackend("vllm", models=[model], context_window=2048) as fb:
        if recorded["status"] == 200:
            fb.script(reply_from(recorded, path))
        faked = ask(fb.base_url, path, body)
    problems = differences(shape(recorded), shape(faked))
    assert not problems, f"{name}: the fake differs from vLLM {recorded['vllm']}:\n" + "\n".join(problems)
