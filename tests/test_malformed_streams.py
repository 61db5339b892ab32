"""Failure 4 of the trust issue: a stream we can't read is a stream error — one line, the partial
reply kept, the session goes on — never an AttributeError/TypeError "internal error"."""

from __future__ import annotations

import json

import openai
import pytest
from command import gridchat
from fake_backend import Reply
from gridchat.chat.backends.base import Request
from gridchat.chat.backends.chat_completions import ChatCompletionsBackend
from gridchat.chat.backends.responses import ResponsesBackend
from gridchat.chat.conversation import Message
from gridchat.chat.errors import StreamError
from gridchat.chat.events import TextDelta

PARTIAL = json.dumps({"choices": [{"index": 0, "delta": {"content": "partial "}}]})


def call_delta(**function) -> str:
    return json.dumps({"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "id": "call_1", "type": "function", "function": function}]}}]})


CHAT_CHUNKS = {
    "choice is a string": '{"choices":["x"]}',
    "delta is a string": '{"choices":[{"index":0,"delta":"x"}]}',
    "content is a number": '{"choices":[{"index":0,"delta":{"content":5}}]}',
    "reasoning is a list": '{"choices":[{"index":0,"delta":{"reasoning":["x"]}}]}',
    "usage is a string": '{"choices":[],"usage":"lots"}',
    "usage counts are strings": '{"choices":[],"usage":{"prompt_tokens":"ten","completion_tokens":2}}',
    "timings is a list": '{"choices":[],"timings":[1]}',
    "choices is an object": '{"choices":{"delta":{}}}',
    "finish reason is a number": '{"choices":[{"index":0,"delta":{},"finish_reason":7}]}',
    "tool calls is a string": '{"choices":[{"index":0,"delta":{"tool_calls":"bash"}}]}',
    "arguments are an object": call_delta(name="bash", arguments={"command": "ls"}),
    "name is a list": call_delta(name=["bash"], arguments=""),
    "call index is a string": json.dumps({"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": "zero", "function": {"name": "bash", "arguments": ""}}]}}]}),
    "error is a number": '{"error": 5}',
    "a list, not an object": "[1, 2, 3]",
}


def chat_backend(fb):
    return ChatCompletionsBackend(openai.OpenAI(base_url=fb.base_url, api_key="k", max_retries=0))


def req():
    return Request(model="fake/persona-20b", system=None, messages=[Message("user", "hi")])


def read(backend):
    got = []
    with pytest.raises(StreamError) as info:
        for event in backend.stream(req()):
            got.append(event)
    return got, info.value


@pytest.mark.parametrize("flavor", ["vllm", "llamacpp"])
@pytest.mark.parametrize("chunk", list(CHAT_CHUNKS.values()), ids=list(CHAT_CHUNKS))
def test_a_malformed_chat_chunk_is_a_stream_error_after_the_partial_reply(fake, flavor, chunk):
    fb = fake(flavor)
    fb.script(Reply(raw_events=[PARTIAL, chunk, "[DONE]"]))
    got, err = read(chat_backend(fb))
    assert "".join(e.text for e in got if isinstance(e, TextDelta)) == "partial "
    assert str(err) and "\n" not in str(err)


RESPONSES_EVENTS = {
    "delta is a number": '{"type":"response.output_text.delta","delta":5}',
    "item is a string": '{"type":"response.output_item.added","output_index":0,"item":"x"}',
    "arguments delta is an object": '{"type":"response.output_item.added","output_index":0,"item":{"type":'
                                    '"function_call","call_id":"c","name":"bash"}}\n\n'
                                    'data: {"type":"response.function_call_arguments.delta","output_index":0,'
                                    '"delta":{"a":1}}',
    "response is a string": '{"type":"response.completed","response":"done"}',
    "output items are strings": '{"type":"response.completed","response":{"status":"completed","output":["x"]}}',
    "usage is a string": '{"type":"response.completed","response":{"status":"completed","output":[],'
                         '"usage":"lots"}}',
    "type is a number": '{"type":5}',
}


@pytest.mark.parametrize("event", list(RESPONSES_EVENTS.values()), ids=list(RESPONSES_EVENTS))
def test_a_malformed_responses_event_is_a_stream_error(fake, event):
    fb = fake("vllm")
    partial = '{"type":"response.output_text.delta","output_index":0,"delta":"partial "}'
    fb.script(Reply(raw_events=[partial, event]))
    backend = ResponsesBackend(openai.OpenAI(base_url=fb.base_url, api_key="k", max_retries=0))
    got, err = read(backend)
    assert "".join(e.text for e in got if isinstance(e, TextDelta)) == "partial "
    assert str(err) and "\n" not in str(err)


def test_one_shot_keeps_the_partial_reply_and_says_one_line(fake):
    fb = fake("vllm")
    fb.script(Reply(raw_events=[PARTIAL, CHAT_CHUNKS["delta is a string"], "[DONE]"]))
    r = gridchat("--base-url", fb.base_url, "-p", "hi")
    assert r.returncode == 1 and r.stdout.startswith("partial")
    errors = [line for line in r.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("chat: error: ") and "internal" not in r.stderr
