"""Stream -> event translation, through the real client backends against the fake server, for all
four stream formats (vLLM / llama-server x Chat Completions / Responses) and their quirks."""

from __future__ import annotations

import openai
import pytest
from fake_backend import Reply
from fake_backend import ToolCall as FakeCall
from gridchat.chat.advice import worded
from gridchat.chat.backends.base import Request
from gridchat.chat.backends.chat_completions import ChatCompletionsBackend
from gridchat.chat.backends.responses import ResponsesBackend
from gridchat.chat.conversation import Message
from gridchat.chat.errors import (
    ContextExceeded,
    HTTPError,
    ModelNotFound,
    ServerUnreachable,
    StreamCut,
    StreamError,
    ToolsNotEnabled,
)
from gridchat.chat.events import Finish, ReasoningDelta, TextDelta, ToolCall, Usage

FORMATS = [("vllm", "chat"), ("llamacpp", "chat"), ("vllm", "responses"), ("llamacpp", "responses")]
MODEL = "fake/persona-20b"


def backend_for(fb, api):
    client = openai.OpenAI(base_url=fb.base_url, api_key="k", max_retries=0)
    return (ResponsesBackend if api == "responses" else ChatCompletionsBackend)(client)


def request(text="hi", system="Persona: lawful_evil", messages=None, **params):
    return Request(model=MODEL, system=system, messages=messages or [Message("user", text)], params=params)


def collect(fb, api, req=None):
    return list(backend_for(fb, api).stream(req or request()))


def texts(events, kind):
    return "".join(e.text for e in events if isinstance(e, kind))


@pytest.mark.parametrize("flavor,api", FORMATS)
def test_text_streams_in_pieces_and_finishes(fake, flavor, api):
    fb = fake(flavor)
    fb.script(Reply(text="Hello **there**, traveller.", chunk_chars=3))
    events = collect(fb, api)
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert len(deltas) > 3  # streamed, not delivered whole
    assert texts(events, TextDelta) == "Hello **there**, traveller."
    assert isinstance(events[-1], Finish) and events[-1].reason == "stop"
    usage = [e for e in events if isinstance(e, Usage)]
    assert usage and usage[0].prompt_tokens > 0 and usage[0].completion_tokens > 0


@pytest.mark.parametrize("flavor,api", FORMATS)
def test_reasoning_comes_apart_from_the_answer(fake, flavor, api):
    fb = fake(flavor)
    fb.script(Reply(reasoning="The user greets me. I should greet back.", text="Hi!"))
    events = collect(fb, api)
    assert texts(events, ReasoningDelta) == "The user greets me. I should greet back."
    assert texts(events, TextDelta) == "Hi!"


@pytest.mark.parametrize("field", ["reasoning", "reasoning_content"])
def test_vllm_chat_reads_both_reasoning_field_names(fake, field):
    fb = fake("vllm")
    fb.script(Reply(reasoning="thinking hard", text="done", reasoning_field=field))
    events = collect(fb, "chat")
    assert texts(events, ReasoningDelta) == "thinking hard"
    assert texts(events, TextDelta) == "done"


@pytest.mark.parametrize("flavor,api", FORMATS)
@pytest.mark.parametrize("open_tag,close_tag", [("<think>", "</think>"), ("<|inner_prefix|>", "<|inner_suffix|>")])
def test_inline_think_tags_split_across_deltas(fake, flavor, api, open_tag, close_tag):
    fb = fake(flavor)
    # 3-character deltas cut both tags into pieces
    fb.script(Reply(text=f"{open_tag}weighing a < b{close_tag}\n\nThe answer: a < b.", chunk_chars=3))
    events = collect(fb, api)
    assert texts(events, ReasoningDelta) == "weighing a < b"
    assert texts(events, TextDelta) == "\n\nThe answer: a < b."


@pytest.mark.parametrize("flavor,api", FORMATS)
def test_tool_calls_are_assembled_from_fragments(fake, flavor, api):
    fb = fake(flavor)
    args = '{"command": "ls -la /tmp", "timeout": 30}'
    calls = [FakeCall("bash", args)] if api == "responses" else [
        FakeCall("bash", args, first_delta_arguments=False),  # hermes-style: no "arguments" key at first
        FakeCall("read_file", '{"path": "notes.txt"}', first_delta_arguments=True),
    ]
    fb.script(Reply(text="Let me look.", tool_calls=calls, chunk_chars=5))
    events = collect(fb, api)
    got = [e for e in events if isinstance(e, ToolCall)]
    assert [(c.name, c.arguments) for c in got] == [(c.name, c.arguments) for c in calls]
    assert all(c.id for c in got) and len({c.id for c in got}) == len(got)
    assert events[-1] == Finish("tool_calls")


def test_vllm_last_argument_fragment_in_the_finish_chunk(fake):
    """The finish chunk's delta carries the final fragment (older engines, other parsers): dropping it
    would truncate the JSON."""
    fb = fake("vllm")
    fb.script(Reply(tool_calls=[FakeCall("write_file", '{"path": "a.txt", "content": "xyz"}', fragment_in_finish=True)],
                    chunk_chars=7))
    raw = []
    backend = backend_for(fb, "chat")
    events = list(backend.stream(request()))
    raw = fb.requests[-1]
    assert raw.path.endswith("/chat/completions")
    (call,) = [e for e in events if isinstance(e, ToolCall)]
    assert call.arguments == '{"path": "a.txt", "content": "xyz"}'
    assert call.id.startswith("chatcmpl-tool-")


def test_llamacpp_tool_call_ids_and_pings(fake):
    fb = fake("llamacpp")
    fb.script(Reply(text="ok", tool_calls=[FakeCall("bash", '{"command": "pwd"}')], pings=True))
    (call,) = [e for e in collect(fb, "chat") if isinstance(e, ToolCall)]
    assert len(call.id) == 32 and call.id.isalnum()


@pytest.mark.parametrize("flavor", ["vllm", "llamacpp"])
def test_responses_call_ids_come_from_the_streamed_items(fake, flavor):
    fb = fake(flavor)
    fb.script(Reply(tool_calls=[FakeCall("bash", '{"command": "date"}')]))
    (call,) = [e for e in collect(fb, "responses") if isinstance(e, ToolCall)]
    assert call.id and call.name == "bash" and call.arguments == '{"command": "date"}'
    # the result goes back with that call_id and the server accepts it (it rejects unknown ids)
    history = [Message("user", "hi"), Message("assistant", tool_calls=[call]),
               Message("tool", "Sat Nov 21", tool_call_id=call.id, name="bash")]
    fb.script(Reply(text="It is Saturday."))
    events = collect(fb, "responses", request(messages=history))
    assert texts(events, TextDelta) == "It is Saturday."
    items = fb.last_body("/responses")["input"]
    assert items[0] == {"role": "system", "content": "Persona: lawful_evil"}
    assert {"type": "function_call_output", "call_id": call.id, "output": "Sat Nov 21"} in items


def test_llamacpp_timings_give_the_servers_speed(fake):
    fb = fake("llamacpp")
    fb.script(Reply(text="fast reply"))
    (usage,) = [e for e in collect(fb, "chat") if isinstance(e, Usage)]
    assert usage.tokens_per_second and usage.tokens_per_second > 0


# llama-server's Responses stream marks a length-cut reply "completed": it cannot be told apart there
@pytest.mark.parametrize("flavor,api", FORMATS[:3])
def test_length_finish(fake, flavor, api):
    fb = fake(flavor)
    fb.script(Reply(text="cut sho", finish_reason="length"))
    assert collect(fb, api)[-1] == Finish("length")


# -- errors -------------------------------------------------------------------------------------

@pytest.mark.parametrize("flavor,api", FORMATS)
def test_error_event_mid_stream_after_partial_text(fake, flavor, api):
    fb = fake(flavor)
    fb.script(Reply(text="one two three four five", error_after=2))
    seen = []
    with pytest.raises(StreamError):
        for event in backend_for(fb, api).stream(request()):
            seen.append(event)
    assert texts(seen, TextDelta)  # the part before the error arrived


@pytest.mark.parametrize("flavor,api", FORMATS)
def test_stream_cut_off(fake, flavor, api):
    fb = fake(flavor)
    fb.script(Reply(text="one two three four five six", cut_after=2))
    seen = []
    with pytest.raises(StreamCut):
        for event in backend_for(fb, api).stream(request()):
            seen.append(event)
    assert texts(seen, TextDelta)


@pytest.mark.parametrize("flavor,api", FORMATS)
def test_context_exceeded_reports_sizes(fake, flavor, api):
    fb = fake(flavor, context_window=100)
    with pytest.raises(ContextExceeded) as err:
        collect(fb, api, request(text="word " * 400))
    assert err.value.window == 100
    assert err.value.prompt_tokens and err.value.prompt_tokens > 100
    assert "100" in str(err.value)


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_unknown_model_on_vllm(fake, api):
    fb = fake("vllm")
    req = request()
    req.model = "no/such-model"
    with pytest.raises(ModelNotFound) as err:
        list(backend_for(fb, api).stream(req))
    assert "no/such-model" in str(err.value)


@pytest.mark.parametrize("flavor,api", FORMATS)
def test_server_error_status(fake, flavor, api):
    fb = fake(flavor)
    fb.script(Reply(status=500))
    with pytest.raises(HTTPError) as err:
        collect(fb, api)
    assert err.value.status == 500 and "\n" not in str(err.value)


def test_vllm_tools_without_server_flags_names_the_flags(fake):
    from gridchat.chat.backends.base import ToolSpec

    fb = fake("vllm", tool_flags=False)
    req = request()
    req.tools = [ToolSpec("bash", "run a command", {"type": "object", "properties": {}})]
    with pytest.raises(ToolsNotEnabled) as err:
        collect(fb, "chat", req)
    assert "--enable-auto-tool-choice" in str(err.value) and err.value.server == "vllm"
    assert "--no-tools" in worded(err.value, interactive=False)


def test_unreachable_server():
    client = openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="k", max_retries=0)
    with pytest.raises(ServerUnreachable):
        list(ChatCompletionsBackend(client).stream(request()))


# -- what goes out ------------------------------------------------------------------------------

def test_chat_request_carries_persona_history_and_no_reasoning(fake):
    fb = fake("vllm")
    history = [Message("user", "first"), Message("assistant", "answer one", reasoning="secret thoughts"),
               Message("user", "second")]
    collect(fb, "chat", request(messages=history, temperature=0.7, max_tokens=50))
    body = fb.last_body("/chat/completions")
    assert body["messages"] == [
        {"role": "system", "content": "Persona: lawful_evil"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "answer one"},
        {"role": "user", "content": "second"},
    ]
    assert body["temperature"] == 0.7 and body["max_tokens"] == 50
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert "secret" not in fb.requests[-1].raw.decode()


def test_responses_request_shape(fake):
    fb = fake("vllm")
    collect(fb, "responses", request(system=None, max_tokens=64))
    body = fb.last_body("/responses")
    assert body["input"] == [{"role": "user", "content": "hi"}]  # persona none: no system item
    assert body["max_output_tokens"] == 64 and body["stream"] is True


def test_fast_transport_only_for_plain_http_without_a_proxy(monkeypatch):
    from gridchat.chat.backends.transport import StdlibTransport, fast_transport_for

    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert isinstance(fast_transport_for("http://127.0.0.1:8000/v1"), StdlibTransport)
    assert fast_transport_for("https://gpu-box:8000/v1") is None
    monkeypatch.setenv("HTTP_PROXY", "http://proxy:3128")
    assert fast_transport_for("http://gpu-box:8000/v1") is None
    monkeypatch.setenv("NO_PROXY", "gpu-box")
    assert isinstance(fast_transport_for("http://gpu-box:8000/v1"), StdlibTransport)


@pytest.mark.parametrize("flavor,api", FORMATS)
def test_the_fast_transport_streams_and_maps_errors_like_httpx2(fake, flavor, api):
    from gridchat.chat.backends import make_client

    fb = fake(flavor)
    fb.script(Reply(text="through the fast path", chunk_chars=3), Reply(text="one two three four", cut_after=2),
              Reply(status=500))
    backend = (ResponsesBackend if api == "responses" else ChatCompletionsBackend)(make_client(fb.base_url))
    assert texts(list(backend.stream(request())), TextDelta) == "through the fast path"
    with pytest.raises(StreamCut):
        list(backend.stream(request()))
    with pytest.raises(HTTPError):
        list(backend.stream(request()))
    with pytest.raises(ServerUnreachable):
        list(ChatCompletionsBackend(make_client("http://127.0.0.1:9/v1")).stream(request()))
