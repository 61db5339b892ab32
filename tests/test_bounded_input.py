"""Issue 16, boundary 5: every read from a server or a file has a size cap and linear cost. Each cap
is hit here by a hostile server or file, which gets one clean line; long inputs cost linear time.

Costs are this process's CPU time (time.process_time), not the wall clock: the suite's workers (-n)
share the machine's cores, and what is measured here runs in this process."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from command import gridchat
from gridchat.chat.transcript import list_sessions, load_transcript


# -- transcript replay: linear in the number of messages ----------------------------------------------

def write_session(path: Path, n: int, forks: int = 0) -> Path:
    """A session of ``n`` messages in one line of conversation; with ``forks``, that many head moves
    back to its start and on again (each move a walk to the root, were paths rebuilt per move)."""
    with open(path, "w") as f:
        f.write('{"event":"session","id":"big","version":1,"time":1}\n')
        f.write('{"event":"persona","name":"none","system":null,"time":1}\n')
        for i in range(n):
            role = "user" if i % 2 == 0 else "assistant"
            parent = "null" if i == 0 else i - 1
            f.write(f'{{"event":"message","id":{i},"parent":{parent},"role":"{role}","content":"message {i}",'
                    f'"persona":"none","time":1}}\n')
        for _ in range(forks):
            f.write(f'{{"event":"head","id":0,"time":1}}\n{{"event":"head","id":{n - 1},"time":1}}\n')
    return path


def load_seconds(path: Path) -> float:
    started = time.process_time()
    restored = load_transcript(path, {})
    elapsed = time.process_time() - started
    assert len(restored.conversation.messages) == len(restored.conversation.nodes)  # the whole line, rebuilt
    return elapsed


def test_a_million_message_session_loads_in_seconds(tmp_path):
    small = load_seconds(write_session(tmp_path / "small.jsonl", 100_000))
    big = load_seconds(write_session(tmp_path / "big.jsonl", 1_000_000))
    assert big < 30, f"1,000,000 messages took {big:.1f} s"
    assert big < 10 * small * 2.5, f"100k: {small:.2f} s, 1M: {big:.2f} s: not linear"


def test_head_moves_cost_no_walk_to_the_root_each(tmp_path):
    path = write_session(tmp_path / "moves.jsonl", 20_000, forks=20_000)
    assert load_seconds(path) < 10


def test_panel_turns_cost_no_walk_to_the_root_each(tmp_path):
    n = 20_000
    path = write_session(tmp_path / "panel.jsonl", n)
    lane = f'{{"persona":"none","system":null,"model":"m","server":"","head":{n - 1}}}'
    with open(path, "a") as f:
        f.writelines(f'{{"event":"panel","lanes":[{lane},{lane}],"start":0,"turns":1,"time":1}}\n' for _ in range(n))
    started = time.process_time()
    assert load_transcript(path, {}).panel is not None
    assert time.process_time() - started < 10


def test_listing_and_resuming_a_bushy_session_is_linear(tmp_path):
    """Every reply retried: half the messages are leaves, each a branch."""
    n = 100_000
    path = tmp_path / "bushy.jsonl"
    with open(path, "w") as f:
        f.write('{"event":"session","id":"bushy","version":1,"time":1}\n')
        for i in range(n):  # a user message, then a reply to it and a retried one
            user, parent = 3 * i, (3 * i - 2 if i else "null")
            f.write(f'{{"event":"message","id":{user},"parent":{parent},"role":"user","content":"q","time":1}}\n'
                    f'{{"event":"message","id":{user + 1},"parent":{user},"role":"assistant","content":"a","time":1}}\n'
                    f'{{"event":"message","id":{user + 2},"parent":{user},"role":"assistant","content":"b","time":1}}\n')
    started = time.process_time()
    (info,) = list_sessions(tmp_path)
    conversation = load_transcript(path, {}).conversation
    assert len(conversation.branches()) == n + 1 and info.messages == 3 * n
    assert time.process_time() - started < 20


# -- a server's answers ------------------------------------------------------------------------------

def one_shot(fb, *args, env=None):
    return gridchat("--base-url", fb.base_url, "-p", "hi", *args, env={**os.environ, **(env or {})}, text=False)


def one_error_line(r) -> str:
    """The run failed with exactly one short error line, and nothing else went wrong."""
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode == 1 and "Traceback" not in err and "internal error" not in err, err[:2000]
    lines = [line for line in err.splitlines() if "error" in line]
    assert len(lines) == 1 and len(lines[0]) < 400, err[:2000]
    return lines[0]


def pieces(data: bytes, size: int = 65536):
    return (data[i:i + size] for i in range(0, len(data), size))


def gzipped(pieces_of_it) -> bytes:
    import zlib

    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    return b"".join(z.compress(p) for p in pieces_of_it) + z.flush()


def test_a_long_line_in_tiny_chunks_is_split_in_linear_time():
    from gridchat.chat.backends.sse import iter_lines

    def seconds(n: int) -> float:
        started = time.process_time()
        (line,) = iter_lines([b"data: "] + [b"x"] * n + [b"\n"])
        assert len(line) == n + 6
        return time.process_time() - started

    assert seconds(2_000_000) < 5


def test_a_line_past_the_cap_ends_the_stream_with_one_line(fake):
    from fake_backend import Reply

    fb = fake("vllm")
    fb.script(Reply(raw_stream=pieces(b"data: " + b"x" * (17 << 20))))
    assert "over 16 MiB" in one_error_line(one_shot(fb))


def test_an_event_of_many_lines_past_the_cap_ends_the_stream_with_one_line(fake):
    from fake_backend import Reply

    fb = fake("vllm")
    fb.script(Reply(raw_stream=(b"data: " + b"x" * (1 << 20) + b"\n" for _ in range(17))))
    assert "event over 16 MiB" in one_error_line(one_shot(fb))


def test_a_compressed_error_body_is_read_only_to_its_cap(fake):
    """200 MiB of text in a 200 KB gzip: read whole (and printed as one 200 MiB line) before the cap."""
    from fake_backend import Reply

    fb = fake("vllm")
    bomb = gzipped(b"x" * (1 << 20) for _ in range(200))
    fb.script(Reply(status=500, raw_body=bomb, content_type="text/plain", headers={"Content-Encoding": "gzip"}))
    started = time.process_time()
    line = one_error_line(one_shot(fb))
    assert "server error 500: xxx" in line and time.process_time() - started < 20


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_compressed_stream_is_capped_when_decoded(fake, monkeypatch, tmp_path, encoding):
    import json
    import zlib

    from fake_backend import Reply
    from gridchat.chat import limits
    from gridchat.chat.config import Settings
    from gridchat.chat.session import Session
    from gridchat.chat.turn import NullSink
    from gridchat.personas import load_personas

    monkeypatch.setattr(limits, "MAX_STREAM", 1 << 20)  # the real one is 256 MiB: a slow test
    event = b"data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": "y" * 1000}}]}).encode() + b"\n\n"
    body = [event] * 2000  # 2 MiB decoded
    data = gzipped(body) if encoding == "gzip" else zlib.compress(b"".join(body))
    fb = fake("vllm")
    fb.script(Reply(raw_stream=pieces(data), headers={"Content-Encoding": encoding}))
    session = Session(Settings(base_url=fb.base_url, tools=False, workspace=str(tmp_path)), load_personas())
    result = session.send("hi", NullSink())
    assert "more than 1 MiB in one answer" in str(result.error)
    assert 0 < len(result.message.content) <= 1 << 20  # what came before the cap is kept


def test_a_hostile_html_error_page_costs_linear_time_and_gives_one_short_line():
    from gridchat.chat.errors import from_error_body

    for page in ("<title>" * 200_000, "<" * 1_000_000, "<script>" * 200_000 + "x", "<p " * 300_000,
                 "<title>" + "a " * 500_000 + "</title>"):
        started = time.process_time()
        message = str(from_error_body(page, 502))
        assert time.process_time() - started < 1 and "\n" not in message and len(message) < 400, page[:20]


def test_a_hostile_context_error_message_costs_linear_time():
    from gridchat.chat.errors import from_error_body

    started = time.process_time()
    err = from_error_body({"message": "context length " + "1" * 60_000, "type": "BadRequestError"}, 400)
    assert time.process_time() - started < 1 and len(str(err)) < 400


# -- server detection and the lists shown ---------------------------------------------------------------

MANY = [f"org/model-{i:05}" for i in range(10_000)]


def test_a_model_list_past_the_cap_is_one_clean_line(fake):
    fb = fake("vllm")
    fb.raw_models = '{"data": [' + ",".join(['{"id": "m", "owned_by": "vllm"}'] * 300_000) + "]}"  # 9 MiB
    assert "more than 8 MiB" in one_error_line(one_shot(fb))


def test_a_model_id_past_the_cap_is_left_out(fake):
    from gridchat.chat.detect import detect

    fb = fake("vllm", models=["x" * 5000, "real/model"])
    assert detect(fb.base_url).models == ["real/model"]


def test_ten_thousand_model_ids_are_not_one_line(fake):
    fb = fake("vllm", models=MANY)
    r = one_shot(fb, "--model", "nope")
    err = r.stderr.decode()
    assert "org/model-00007 and 9,992 more" in err and max(map(len, err.splitlines())) < 400, err[:1000]


def test_model_lists_in_a_session_show_the_first_few_and_how_many_more(fake, term):
    fb = fake("vllm", models=MANY)
    t = term(fb, "--model", MANY[5000])
    t.wait_prompt("none")
    t.line("/model")
    screen = t.wait_for("9,979 more")
    assert "org/model-00019" in screen and "org/model-00020" not in screen and f"● {MANY[5000]}" in screen
    t.line("/model nope")
    t.wait_for("it has: org/model-00000")
    said = t.output_after("› /model nope")
    assert "org/model-00007 and 9,992 more" in said and "org/model-00008" not in said


# -- files read whole: each with a cap, checked before reading (a sparse file costs nothing to make) ------

def sparse(path: Path, size: int) -> Path:
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def test_a_transcript_past_the_cap_is_one_line_and_listed_as_unreadable(tmp_path):
    from gridchat.chat.transcript import TranscriptError

    path = sparse(tmp_path / "huge.jsonl", (1 << 30) + 1)
    with pytest.raises(TranscriptError, match="bigger than the 1,024 MiB chat reads"):
        load_transcript(path, {})
    (info,) = list_sessions(tmp_path)
    assert not info.readable and "bigger than the 1,024 MiB" in info.problem


def test_a_yaml_file_past_the_cap_is_one_line(tmp_path):
    from gridchat.chat.datafile import DataFileError, load_yaml

    with pytest.raises(DataFileError, match="bigger than the 16 MiB chat reads"):
        load_yaml(sparse(tmp_path / "persona.yaml", (16 << 20) + 1))


def test_the_input_history_is_read_from_its_end_up_to_its_cap(tmp_path):
    """files-7: prompt_toolkit's FileHistory read the input history whole: a sparse 2 GiB one took
    gigabytes, a MemoryError (a traceback at every prompt) under a memory limit. Only its last
    MAX_HISTORY bytes are read, through the one reader: the newest entries are there."""
    import tracemalloc

    from gridchat.chat.limits import MAX_HISTORY
    from gridchat.chat.repl import _SafeFileHistory

    path = sparse(tmp_path / "history", 2 << 30)
    history = _SafeFileHistory(path, None)
    history.store_string("an entry cut in two\nby the cap" + "x" * MAX_HISTORY)
    history.store_string("newest\nof two lines")
    tracemalloc.start()
    try:
        loaded = list(history.load_history_strings())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert loaded == ["newest\nof two lines"] and peak < 8 * MAX_HISTORY, (loaded[:1], peak)


def test_a_config_file_past_the_cap_is_a_warning_and_chat_goes_on(fake, tmp_path):
    fb = fake("vllm")
    r = one_shot(fb, "--config", str(sparse(tmp_path / "config.yaml", (16 << 20) + 1)))
    err = r.stderr.decode()
    assert r.returncode == 0 and "bigger than the 16 MiB chat reads" in err and "Traceback" not in err, err


@pytest.mark.parametrize("what", ["run.json", "import"])
def test_probe_files_past_the_cap_are_one_line(tmp_path, what):
    if what == "run.json":
        (tmp_path / "run" / "cells").mkdir(parents=True)
        sparse(tmp_path / "run" / "run.json", (16 << 20) + 1)
        args = ["report", str(tmp_path / "run")]
    else:
        args = ["import", str(sparse(tmp_path / "big.csv", (256 << 20) + 1)), "--out", str(tmp_path / "set.yaml")]
    r = gridchat("probe", *args, text=False)
    err = r.stderr.decode()
    assert r.returncode == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert what == "run.json" or "bigger than the 256 MiB chat reads" in err, err


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_a_tool_call_in_many_small_fragments_is_assembled_in_linear_time(api):
    from gridchat.chat.backends.chat_completions import ChatStreamParser
    from gridchat.chat.backends.responses import ResponsesStreamParser

    n = 200_000
    started = time.process_time()
    if api == "chat":
        parser = ChatStreamParser()
        parser.feed({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "c", "function": {
            "name": "bash", "arguments": ""}}]}}]})
        fragment = {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "x" * 10}}]}}]}
        for _ in range(n):
            parser.feed(fragment)
        (call,) = [e for e in parser.close() if type(e).__name__ == "ToolCall"]
    else:
        parser = ResponsesStreamParser()
        parser.feed("response.output_item.added", {"output_index": 0, "item": {
            "type": "function_call", "call_id": "c", "name": "bash", "arguments": ""}})
        for _ in range(n):
            parser.feed("response.function_call_arguments.delta", {"output_index": 0, "delta": "x" * 10})
        (call,) = parser.feed("response.output_item.done", {"output_index": 0, "item": {"type": "function_call"}})
    assert len(call.arguments) == 10 * n and time.process_time() - started < 10
