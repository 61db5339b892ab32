"""One cancel mechanism (failure 18): cancelling stops every request at once, stalled ones included,
keeping what each had received; nothing waits for the next token or the read timeout."""

from __future__ import annotations

import threading
import time

import pytest
from fake_backend import Reply
from gridchat.chat import branching
from gridchat.chat.cancel import CancelToken
from gridchat.chat.config import Settings
from gridchat.chat.parallel import run_parallel
from gridchat.chat.session import Session
from gridchat.chat.turn import NullSink, run_turn
from gridchat.personas import load_personas

PERSONAS = load_personas()


def session(fb, **settings):
    return Session(Settings(base_url=fb.base_url, **settings), PERSONAS)


def stalling_responder(body):
    system = next((m["content"] for m in body.get("messages", []) if m["role"] == "system"), "")
    if "chaotic_evil" in system:
        return Reply(text="I will never fin", chunk_chars=4, stall_after=2, stall_seconds=30)
    return Reply(text="A quick and complete answer.")


@pytest.mark.parametrize("flavor", ["vllm", "llamacpp"])
def test_cancel_stops_stalled_parallel_streams_at_once(fake, flavor):
    fb = fake(flavor)
    fb.responder = stalling_responder
    s = session(fb)
    s.connect()
    token = CancelToken()
    jobs = [(s.backend, branching._request_for(s, PERSONAS[n])) for n in ("lawful_good", "chaotic_evil")]
    threading.Timer(0.8, token.cancel).start()
    started = time.monotonic()
    results = run_parallel(jobs, cancel=token)
    assert time.monotonic() - started < 2.5
    good, stalled = results
    assert good.message.content == "A quick and complete answer." and not good.interrupted
    assert stalled.interrupted and stalled.error is None
    assert stalled.message.content == "I will n"  # what came before the stall is kept


def test_cancel_before_the_headers_arrive(fake):
    """A request still waiting for the server's first byte is stopped too."""
    fb = fake("vllm")
    fb.script(Reply(text="late", header_delay=30))
    s = session(fb)
    s.connect()
    token = CancelToken()
    threading.Timer(0.5, token.cancel).start()
    started = time.monotonic()
    result = run_turn(s.backend, s.request(), NullSink(), cancel=token)
    assert time.monotonic() - started < 2.0
    assert result.interrupted and not result.message.content


def test_a_cancelled_token_stops_a_turn_before_it_starts(fake):
    fb = fake("vllm")
    s = session(fb)
    s.connect()
    token = CancelToken()
    token.cancel()
    result = run_turn(s.backend, s.request(), NullSink(), cancel=token)
    assert result.interrupted
    assert not [r for r in fb.requests if r.method == "POST"]
