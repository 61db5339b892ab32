"""Probe runs read their replies in bulk (chat/backends/bulk.py: no SDK, a read of a stream parsed at
once). What a reply holds must not depend on it: every stream below — well-formed, with tool calls,
reasoning, inline <think>, errors in band and out, cut, malformed — gives the same reply, figures and
error through the bulk backend as through the SDK's, read on the caller's thread or on a stream loop
(chat/backends/loop.py: a probe run's many replies on one thread), on both APIs. And the figures a
run records (tokens, time to the first token, tokens/s) are those the fake served, either way."""

from __future__ import annotations

import json
import threading
import time

import openai
import pytest
from fake_backend import FakeBackend, Reply, ToolCall
from gridchat.chat.backends.bulk import BulkBackend, bulk_backend
from gridchat.chat.backends.chat_completions import ChatCompletionsBackend
from gridchat.chat.backends.responses import ResponsesBackend
from gridchat.chat.backends.base import Request
from gridchat.chat.cancel import CancelToken
from gridchat.chat.conversation import Message
from gridchat.chat.errors import ServerUnreachable, StreamCut
from gridchat.chat.backends.loop import StreamLoop
from gridchat.chat.turn import NullSink, run_turn, start_turn
from test_malformed_streams import CHAT_CHUNKS, PARTIAL, RESPONSES_EVENTS

MODEL = "fake/persona-20b"


def request(**params) -> Request:
    return Request(model=MODEL, system="Persona: lawful_good", messages=[Message("user", "What is 6 times 7?")],
                   params=params)


def sdk(fb: FakeBackend, api: str):
    client = openai.OpenAI(base_url=fb.base_url, api_key="k", max_retries=0)
    return ChatCompletionsBackend(client) if api == "chat" else ResponsesBackend(client)


def outcome(result) -> dict:
    """What a turn gave, less the clock."""
    stats = {k: v for k, v in result.message.stats.items()
             if k not in ("time_to_first_token", "elapsed", "tokens_per_second")}
    return {"content": result.message.content, "reasoning": result.message.reasoning,
            "calls": [(c.name, c.arguments) for c in result.message.tool_calls], "stats": stats,
            # a cut connection: the same words, then each transport's own detail
            "error": (type(result.error).__name__, str(result.error).split(" (")[0] if isinstance(result.error, StreamCut)
                      else str(result.error)) if result.error else None,
            "interrupted": result.interrupted}


def looped(backend, req: Request, token: CancelToken | None = None):
    """The turn run on a stream loop, as a probe run runs its many."""
    loop, got = StreamLoop(token), []
    start_turn(loop, backend, req, got.append)
    loop.run()
    return got[0]


def read_as(way: str):
    """A turn runner for ``way``: on the caller's thread, or on a stream loop."""
    return (lambda backend, req, token=None: run_turn(backend, req, NullSink(), token)) if way == "thread" else looped


READS = ["thread", "loop"]
_PARTIAL_ITEM = '{"type":"response.output_text.delta","output_index":0,"delta":"partial "}'

REPLIES = {
    "plain": Reply(text="It is 42, and I am sure of it." * 20, chunk_chars=3),
    "reasoning": Reply(reasoning="Six sevens... " * 10, text="42.", chunk_chars=2),
    "inline think": Reply(text="<think>hmm, six sevens</think>It is 42.", chunk_chars=1),
    "tool calls": Reply(text="Let me look.", tool_calls=[ToolCall("bash", '{"command": "ls -la"}'),
                                                         ToolCall("read_file", '{"path": "a.txt"}')], chunk_chars=3),
    "cut by length": Reply(text="It is forty", finish_reason="length", chunk_chars=2),
    "lone surrogate": Reply(raw_events=[json.dumps({"choices": [{"index": 0, "delta": {"content": "a\ud800b"}}]}),
                                        json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
                                        "[DONE]"]),
    "no usage": Reply(raw_events=[json.dumps({"choices": [{"index": 0, "delta": {"content": p}}]}) for p in "abcde"]
                      + [json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}), "[DONE]"]),
    "in-band error": Reply(text="partial answer here", chunk_chars=2, error_after=3),
    "cut connection": Reply(text="partial answer here", chunk_chars=2, cut_after=3),
    "500": Reply(status=500),
    "404 model": Reply(status=404, error={"error": {"message": "The model `x` does not exist.", "type": "NotFoundError",
                                                    "code": 404}}),
    "proxy page": Reply(status=502, raw_body="<html><title>502 Bad Gateway</title></html>"),
    "no [DONE]": Reply(raw_events=[PARTIAL]),
    **{f"malformed: {name}": Reply(raw_events=[PARTIAL, chunk, "[DONE]"]) for name, chunk in CHAT_CHUNKS.items()},
}

# Responses-API streams as raw events (each a `data:` line: its type in the payload, as a server that
# sends no `event:` lines does), odd and malformed.
_COMPLETED = '{"type":"response.completed","response":{"status":"completed","output":[],' \
             '"usage":{"input_tokens":7,"output_tokens":3}}}'
RESPONSES_REPLIES = {
    "raw deltas then completed": Reply(raw_events=[_PARTIAL_ITEM, _PARTIAL_ITEM.replace("partial ", "answer"),
                                                   _COMPLETED]),
    "unknown event types between deltas": Reply(raw_events=[_PARTIAL_ITEM, '{"type":"response.future.thing","x":1}',
                                                            _PARTIAL_ITEM, _COMPLETED]),
    "reasoning then text deltas": Reply(raw_events=[
        '{"type":"response.reasoning_text.delta","output_index":0,"delta":"six sevens"}', _PARTIAL_ITEM, _COMPLETED]),
    "no completed event": Reply(raw_events=[_PARTIAL_ITEM]),
    "an error event": Reply(raw_events=[_PARTIAL_ITEM, '{"type":"error","code":"server_error","message":"boom"}']),
    "a [DONE] after completed": Reply(raw_events=[_PARTIAL_ITEM, _COMPLETED, "[DONE]"]),
    "a [DONE] instead of completed": Reply(raw_events=[_PARTIAL_ITEM, "[DONE]"]),
    "not JSON": Reply(raw_events=[_PARTIAL_ITEM, "{not json"]),
    **{f"malformed: {name}": Reply(raw_events=[_PARTIAL_ITEM, event]) for name, event in RESPONSES_EVENTS.items()},
}


# Every reply over Chat Completions; over Responses those the fake writes in that API's own events
# (malformed or raw ones are chat-completions chunks: RESPONSES_REPLIES has the Responses API's own).
BOTH_APIS = [(api, name) for name in REPLIES for api in ("chat", "responses")
             if api == "chat" or not (name.startswith("malformed") or REPLIES[name].raw_events)]


@pytest.mark.parametrize("api,name", BOTH_APIS)
@pytest.mark.parametrize("flavor", ["vllm", "llamacpp"])
def test_a_reply_read_in_bulk_is_the_reply_the_sdk_backend_reads(fake, flavor, api, name):
    same_three_ways(fake(flavor), api, REPLIES[name])


@pytest.mark.parametrize("name", list(RESPONSES_REPLIES))
def test_a_responses_stream_read_in_bulk_is_the_one_the_sdk_backend_reads(fake, name):
    same_three_ways(fake("vllm"), "responses", RESPONSES_REPLIES[name])


def same_three_ways(fb: FakeBackend, api: str, reply: Reply) -> None:
    """The SDK's backend, the bulk one on this thread and the bulk one on a stream loop read ``reply``
    alike, and send the same request."""
    got = []
    for backend, read in ((sdk(fb, api), read_as("thread")), (bulk_backend(api, fb.base_url, "k"), read_as("thread")),
                          (bulk_backend(api, fb.base_url, "k"), looped)):
        fb.script(reply)
        got.append(outcome(read(backend, request(temperature=0.5))))
    assert got[0] == got[1] == got[2]
    bodies = [r.body for r in fb.generations()]
    assert bodies[0] == bodies[1] == bodies[2]  # the same request, to the byte of its JSON


@pytest.mark.parametrize("way", READS)
def test_the_figures_recorded_are_those_the_fake_served(fake, way):
    """Tokens and prompt tokens as the server counted them; the first token after the delay the fake
    waited before it, and not at the end of the stream (a bulk reader must not time the last read)."""
    fb = fake("vllm")
    reply = Reply(text="It is 42. " * 4, chunk_chars=4, delay=0.05)  # 10 deltas, 0.05 s before each
    fb.script(reply)
    result = read_as(way)(bulk_backend("chat", fb.base_url, None), request())
    stats = result.message.stats
    assert stats["completion_tokens"] == 10 and stats["prompt_tokens"] == (len("Persona: lawful_good")
                                                                           + len("What is 6 times 7?")) // 4 + 10
    assert stats["time_to_first_token"] >= 0.05  # the fake slept that long before the first delta
    generating = stats["elapsed"] - stats["time_to_first_token"]
    # nine more deltas, each after a sleep: the first was timed on arrival (timed at the end: ~0); a
    # loaded machine may read the first one a little late, which shortens this by as much
    assert generating >= 0.8 * 9 * 0.05
    assert stats["tokens_per_second"] == pytest.approx(10 / generating, rel=0.01)
    assert stats["finish_reason"] == "stop"


@pytest.mark.parametrize("way", READS)
def test_a_reply_without_usage_counts_the_deltas_it_joined(fake, way):
    fb = fake("vllm")
    fb.script(REPLIES["no usage"])
    result = read_as(way)(bulk_backend("chat", fb.base_url, None), request())
    assert result.message.content == "abcde" and result.message.stats["completion_tokens"] == 5


@pytest.mark.parametrize("way", READS)
def test_a_connection_the_server_closed_while_idle_is_replaced(fake, way):
    """The server restarts between two requests: the kept connection is dead; the next request goes
    out on a new one, with no error."""
    fb = fake("vllm")
    backend = bulk_backend("chat", fb.base_url, None)
    port, again = fb.port, []

    def restart(first) -> None:
        assert first.error is None
        fb.stop()
        again.append(FakeBackend("vllm", port=port).start())

    try:
        if way == "thread":
            restart(run_turn(backend, request(), NullSink()))
            result = run_turn(backend, request(), NullSink())
        else:  # both on one loop, whose kept connection is the dead one
            loop, got = StreamLoop(), []
            start_turn(loop, backend, request(), lambda first: (restart(first),
                                                                start_turn(loop, backend, request(), got.append)))
            loop.run()
            result = got[0]
        assert result.error is None and result.message.content.startswith("Echo")
    finally:
        for server in again:
            server.stop()


@pytest.mark.parametrize("way", READS)
def test_a_server_that_is_gone_is_unreachable_so_its_cells_move(fake, way):
    fb = fake("vllm")
    backend = bulk_backend("chat", fb.base_url, None)
    fb.stop()
    assert isinstance(read_as(way)(backend, request()).error, ServerUnreachable)


@pytest.mark.parametrize("way", READS)
def test_a_server_name_that_does_not_resolve_is_unreachable(way):
    backend = bulk_backend("chat", "http://no-such-host.invalid:9/v1", None)
    assert isinstance(read_as(way)(backend, request()).error, ServerUnreachable)


@pytest.mark.parametrize("way", READS)
def test_a_stop_shuts_a_stalled_stream_at_once(fake, way):
    fb = fake("vllm")
    fb.script(Reply(text="one two three", chunk_chars=4, stall_after=1, stall_seconds=30))
    token = CancelToken()

    def stop_once_streaming() -> None:
        while not fb.generations():
            time.sleep(0.01)
        time.sleep(0.1)
        token.cancel()

    threading.Thread(target=stop_once_streaming, daemon=True).start()
    start = time.perf_counter()
    result = read_as(way)(bulk_backend("chat", fb.base_url, None), request(), token)
    assert result.interrupted and result.error is None
    assert time.perf_counter() - start < 20  # not the 30 s stall


@pytest.mark.parametrize("way", READS)
def test_credentials_go_as_the_sdk_sends_them(fake, way):
    fb = fake("vllm", api_key="sekrit")
    assert read_as(way)(bulk_backend("chat", fb.base_url, "sekrit"), request()).error is None
    assert fb.generations()[-1].header("Authorization") == "Bearer sekrit"
    refused = read_as(way)(bulk_backend("chat", fb.base_url, "wrong"), request()).error
    assert refused is not None and refused.status == 401


def test_https_and_proxies_stay_with_the_sdk(monkeypatch):
    assert bulk_backend("chat", "https://gpu1.example/v1", None) is None
    monkeypatch.setenv("http_proxy", "http://proxy.example:3128")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    assert bulk_backend("chat", "http://gpu1.example:8000/v1", None) is None
    monkeypatch.setenv("no_proxy", "gpu1.example")
    assert isinstance(bulk_backend("chat", "http://gpu1.example:8000/v1", None), BulkBackend)


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_token_probabilities_read_in_bulk_are_those_the_sdk_backend_reads(fake, api):
    """A probe step that measures an answer's probability asks for logprobs: each token's probabilities
    belong to its own piece of text, so they must come through the bulk path whole (they were dropped
    when the pieces were joined)."""
    fb = fake("vllm")
    got = []
    for backend in (sdk(fb, api), bulk_backend(api, fb.base_url, "k")):
        fb.script(Reply(text="It is 42 in all.", chunk_chars=3))
        result = run_turn(backend, request(logprobs=5), NullSink())
        got.append(result.message.logprobs)
    assert got[0] and got[0] == got[1]
