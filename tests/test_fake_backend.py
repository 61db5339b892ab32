"""The fake backend's wire quirks, checked with plain http.client (not our client code)."""
import http.client
import json
import re
import threading
import time

import pytest

try:
    from fake_backend import FakeBackend, Reply, ToolCall
except ImportError:  # tests/ imported as a package
    from tests.fake_backend import FakeBackend, Reply, ToolCall

USER = [{"role": "user", "content": "hello there"}]


def post(fb, path, body, headers=None):
    """POST JSON; return (status, raw body bytes). Raises IncompleteRead on a cut body."""
    conn = http.client.HTTPConnection("127.0.0.1", fb.port, timeout=10)
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json", **(headers or {})})
    resp = conn.getresponse()
    try:
        return resp.status, resp.read()
    finally:
        conn.close()


def get(fb, path):
    conn = http.client.HTTPConnection("127.0.0.1", fb.port, timeout=10)
    conn.request("GET", path)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


def sse(raw: bytes) -> list[str]:
    """SSE blocks, in order (comment blocks included)."""
    return [b for b in raw.decode().split("\n\n") if b]


def chat_chunks(raw: bytes) -> list:
    """The data payloads: dicts, or the string "[DONE]"."""
    out = []
    for block in sse(raw):
        for line in block.split("\n"):
            if line.startswith("data: "):
                payload = line[6:]
                out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def events(raw: bytes) -> list[tuple[str | None, dict]]:
    out = []
    for block in sse(raw):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        out.append((lines.get("event"), json.loads(lines["data"])))
    return out


@pytest.fixture
def vllm():
    with FakeBackend("vllm") as fb:
        yield fb


@pytest.fixture
def llama():
    with FakeBackend("llamacpp", models=["/models/ke-8b.gguf"], context_window=4096) as fb:
        yield fb


def chat(fb, **extra):
    return post(fb, "/v1/chat/completions", {"model": fb.models[0], "messages": USER, "stream": True, **extra})


def test_vllm_chat_tool_calls(vllm):
    vllm.script(Reply(text="ok", tool_calls=[ToolCall("bash", '{"command": "ls -la"}'), ToolCall("read_file", "{}")]))
    status, raw = chat(vllm)
    assert status == 200
    chunks = chat_chunks(raw)
    assert chunks[-1] == "[DONE]"
    assert all(c["object"] == "chat.completion.chunk" and c["id"] and c["model"] for c in chunks[:-1])
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    calls = [tc for c in chunks[:-1] for tc in c["choices"][0]["delta"].get("tool_calls", [])]
    first0 = next(tc for tc in calls if tc["index"] == 0)
    assert first0["id"].startswith("chatcmpl-tool-") and first0["function"] == {"name": "bash"}  # no "arguments"
    first1 = next(tc for tc in calls if tc["index"] == 1)
    assert first1["function"] == {"name": "read_file", "arguments": ""}
    finish = chunks[-2]["choices"][0]
    assert finish["finish_reason"] == "tool_calls" and "stop_reason" in finish
    assert finish["delta"] == {}  # vLLM 0.32 (hermes): every fragment before it (fragment_in_finish: older ones)
    args = {}
    for tc in calls:
        args[tc["index"]] = args.get(tc["index"], "") + tc["function"].get("arguments", "")
    assert args == {0: '{"command": "ls -la"}', 1: "{}"}
    assert not any("usage" in c for c in chunks[:-1])
    # fields never set are missing, not null — but for content beside a tool-call delta (vLLM 0.32)
    assert all(v is not None or k == "content" and "tool_calls" in c["choices"][0]["delta"]
               for c in chunks[:-1] for k, v in c["choices"][0]["delta"].items())
    assert all(v is not None for tc in calls for v in tc.items())


def test_vllm_usage_chunk_only_with_include_usage(vllm):
    chunks = chat_chunks(chat(vllm, stream_options={"include_usage": True})[1])
    usage = chunks[-2]
    assert usage["choices"] == [] and usage["usage"]["prompt_tokens"] == len("hello there") // 4 + 10
    assert usage["usage"]["completion_tokens"] >= 1
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-2]) == "Echo: hello there"


def test_vllm_inband_error_then_done(vllm):
    vllm.script(Reply(text="abcdefghijkl", error_after=2))
    chunks = chat_chunks(chat(vllm)[1])
    assert chunks[-2]["error"]["code"] == 500 and chunks[-1] == "[DONE]"
    assert sum("content" in c.get("choices", [{}])[0].get("delta", {}) for c in chunks if isinstance(c, dict)) == 3


def test_llamacpp_chat_pings_timings_tool_ids(llama):
    llama.script(Reply(reasoning="hmm, thinking", text="sure", tool_calls=[ToolCall("bash", '{"command":"pwd"}')]))
    raw = chat(llama, model="whatever-name")[1]  # llama-server ignores the model field
    assert ": ping" in sse(raw)
    chunks = chat_chunks(raw)
    assert chunks[-1] == "[DONE]"
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": None}
    deltas = [c["choices"][0]["delta"] for c in chunks[:-1]]
    assert "".join(d.get("reasoning_content", "") for d in deltas) == "hmm, thinking"
    first = next(d["tool_calls"][0] for d in deltas if "tool_calls" in d)
    assert re.fullmatch(r"[A-Za-z0-9]{32}", first["id"]) and first["function"] == {"name": "bash", "arguments": ""}
    assert chunks[-2]["choices"][0] == {"finish_reason": "tool_calls", "index": 0, "delta": {}}
    assert chunks[-2]["timings"]["predicted_n"] >= 1 and "predicted_per_second" in chunks[-2]["timings"]
    assert not any("timings" in c for c in chunks[:-2])


def test_llamacpp_usage_chunk_carries_timings(llama):
    chunks = chat_chunks(chat(llama, stream_options={"include_usage": True}, pings=False)[1])
    assert chunks[-2]["choices"] == [] and "usage" in chunks[-2] and "timings" in chunks[-2]
    assert "timings" not in chunks[-3]


def test_vllm_responses_events(vllm):
    vllm.script(Reply(reasoning="think", text="hi", tool_calls=[ToolCall("bash", '{"command":"ls"}')]))
    body = {"model": vllm.models[0], "input": [{"role": "system", "content": "Persona: lawful_good"},
                                              {"role": "user", "content": "hi"}], "stream": True}
    status, raw = post(vllm, "/v1/responses", body)
    assert status == 200 and b"[DONE]" not in raw
    evs = events(raw)
    assert [d["sequence_number"] for _, d in evs] == list(range(len(evs)))
    assert all(name == d["type"] for name, d in evs)
    types = [name for name, _ in evs]
    assert types[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert "response.function_call_arguments.done" in types
    # a reasoning item's text is a content part (vLLM 0.32; older engines said reasoning_part)
    assert types[3] == "response.content_part.added" and evs[3][1]["part"]["type"] == "reasoning_text"
    added = [d["item"] for n, d in evs if n == "response.output_item.added"]
    assert [i["type"] for i in added] == ["reasoning", "message", "function_call"]
    fc = added[2]
    assert fc["id"].startswith("fc_") and fc["call_id"].startswith("call_") and fc["arguments"] == ""
    final = evs[-1][1]["response"]
    assert evs[-1][0] == "response.completed" and final["status"] == "completed"
    done_fc = final["output"][2]
    assert done_fc["call_id"] == fc["call_id"] and done_fc["id"] != fc["id"]
    assert done_fc["arguments"] == '{"command":"ls"}' and final["usage"]["output_tokens"] >= 1
    deltas = [d for n, d in evs if n == "response.output_text.delta"]
    assert all({"item_id", "output_index", "content_index"} <= d.keys() for d in deltas)
    assert deltas[0]["output_index"] == 1 and deltas[0]["content_index"] == 1  # vLLM never resets content_index


def test_vllm_responses_length_is_incomplete(vllm):
    vllm.script(Reply(text="truncated", finish_reason="length"))
    final = events(post(vllm, "/v1/responses", {"input": "x", "stream": True})[1])[-1][1]["response"]
    assert final["status"] == "incomplete" and final["incomplete_details"] == {"reason": "max_output_tokens"}


def test_llamacpp_responses_events(llama):
    llama.script(Reply(text="hi", tool_calls=[ToolCall("bash", '{"command":"ls"}')]))
    raw = post(llama, "/v1/responses", {"input": "hi", "stream": True})[1]
    evs = events(raw)
    assert b"[DONE]" not in raw and not any("sequence_number" in d for _, d in evs)
    types = [n for n, _ in evs]
    assert "response.function_call_arguments.done" not in types and "response.reasoning_part.added" not in types
    fc = next(d["item"] for n, d in evs if n == "response.output_item.added" and d["item"]["type"] == "function_call")
    assert "id" not in fc and fc["call_id"]
    assert evs[-1][1]["response"]["output"][-1]["call_id"] == fc["call_id"]


def test_responses_validation(vllm, llama):
    orphan = {"input": [{"role": "user", "content": "x"},
                        {"type": "function_call_output", "call_id": "call_X", "output": "42"}]}
    status, raw = post(vllm, "/v1/responses", orphan)
    assert status == 400 and json.loads(raw)["error"]["message"] == "No call message found for call_X"
    assert post(vllm, "/v1/responses", {"input": "x", "previous_response_id": "resp_1"})[0] == 404
    assert post(llama, "/v1/responses", {"input": "x", "previous_response_id": "resp_1"})[0] == 400
    with FakeBackend(responses_api=False) as fb:
        assert post(fb, "/v1/responses", {"input": "x"})[0] == 404


def test_request_errors(vllm, llama):
    big = [{"role": "user", "content": "x" * 4100 * 4}]
    status, raw = post(llama, "/v1/chat/completions", {"messages": big})
    err = json.loads(raw)["error"]
    assert status == 400 and err["type"] == "exceed_context_size_error" and err["n_ctx"] == 4096
    assert err["n_prompt_tokens"] == 4110 and "exceeds the available context size" in err["message"]

    with FakeBackend("vllm", context_window=1000, tool_flags=False) as fb:
        status, raw = post(fb, "/v1/chat/completions", {"messages": USER, "max_tokens": 995})
        err = json.loads(raw)["error"]
        assert status == 400 and err["type"] == "BadRequestError" and err["code"] == 400
        assert "maximum context length is 1000 tokens" in err["message"] and "(12 in the messages, 995" in err["message"]
        status, raw = post(fb, "/v1/chat/completions", {"messages": USER, "tools": [{"type": "function"}]})
        assert status == 400 and "--enable-auto-tool-choice" in json.loads(raw)["error"]["message"]

    status, raw = post(vllm, "/v1/chat/completions", {"model": "nope", "messages": USER})
    assert status == 404 and json.loads(raw)["error"] == {
        "message": "The model `nope` does not exist.", "type": "NotFoundError", "param": "model", "code": 404}
    status, raw = post(llama, "/v1/chat/completions", {"messages": USER, "tools": [{}], "grammar": "root ::= x"})
    assert status == 400 and json.loads(raw)["error"]["message"] == "Cannot use custom grammar constraints with tools."

    vllm.script(Reply(status=503))
    status, raw = chat(vllm)
    assert status == 503 and json.loads(raw)["error"]["type"] == "ServiceUnavailableError"


def test_recorded_requests_and_side_endpoints(vllm, llama):
    post(vllm, "/v1/chat/completions", {"messages": USER}, {"Authorization": "Bearer sk-anything"})
    rec = vllm.requests[-1]
    assert rec.method == "POST" and rec.header("authorization") == "Bearer sk-anything" and rec.finished
    assert vllm.last_body("/chat/completions") == {"messages": USER}

    status, raw = get(vllm, "/v1/models")
    assert json.loads(raw)["data"][0]["max_model_len"] == 131072
    assert get(vllm, "/health") == (200, b"") and get(vllm, "/props")[0] == 404
    assert json.loads(get(vllm, "/version")[1]) == {"version": "0.32.0"}
    assert json.loads(post(vllm, "/tokenize", {"prompt": "abcdefgh"})[1])["count"] == 2

    models = json.loads(get(llama, "/v1/models")[1])
    assert models["data"][0]["id"] == "/models/ke-8b.gguf" and models["data"][0]["meta"]["n_ctx_train"] == 131072
    assert models["models"][0]["name"] == "/models/ke-8b.gguf"
    assert json.loads(get(llama, "/props")[1])["default_generation_settings"]["n_ctx"] == 4096
    assert json.loads(get(llama, "/health")[1]) == {"status": "ok"}
    assert json.loads(post(llama, "/tokenize", {"content": "abcdefgh"})[1]) == {"tokens": [1000, 1001]}


def test_cut_after_leaves_incomplete_chunked_body(vllm):
    vllm.script(Reply(text="abcdefghijkl", cut_after=1))
    with pytest.raises(http.client.IncompleteRead) as e:
        chat(vllm)
    assert b"[DONE]" not in e.value.partial and b'"content":"abcd"' in e.value.partial


def test_concurrent_streams_and_quiet_disconnect(vllm, capfd):
    vllm.script(Reply(text="x" * 80, delay=0.02), Reply(text="y" * 80, delay=0.02))
    results = []
    threads = [threading.Thread(target=lambda: results.append(chat(vllm))) for _ in range(2)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert time.time() - t0 < 0.7  # 20 deltas x 20 ms each: 0.4 s in parallel, 0.8 s one after the other
    assert len(results) == 2 and all(s == 200 for s, _ in results)

    # a client that hangs up mid-stream (Ctrl-C) must not make the server print a traceback
    vllm.script(Reply(text="z" * 200, delay=0.01))
    before = set(threading.enumerate())
    conn = http.client.HTTPConnection("127.0.0.1", vllm.port, timeout=5)
    conn.request("POST", "/v1/chat/completions", json.dumps({"messages": USER, "stream": True}))
    resp = conn.getresponse()
    resp.fp.readline()
    conn.sock.close()
    conn.close()
    deadline = time.monotonic() + 5  # until the server's thread for that connection has ended, traceback and all
    while set(threading.enumerate()) - before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not set(threading.enumerate()) - before
    assert vllm.requests[-1].finished is not None
    assert "Traceback" not in capfd.readouterr().err
