"""The fast HTTP transport under the SDK honours the request's timeouts (failure 17): a slow header
is a read timeout, not a connect one, and a 1 s timeout gives up after about 1 s."""

from __future__ import annotations

import time

import pytest
from fake_backend import Reply
from gridchat.chat.backends import make_backend, make_client
from gridchat.chat.backends.base import Request
from gridchat.chat.backends.transport import StdlibTransport, fast_transport_for
from gridchat.chat.conversation import Message
from gridchat.chat.errors import ServerUnreachable


def request():
    return Request(model="fake/persona-20b", system=None, messages=[Message("user", "hi")])


def stream_with_timeout(fb, timeout):
    client = make_client(fb.base_url).with_options(timeout=timeout)
    assert isinstance(fast_transport_for(fb.base_url), StdlibTransport)  # the transport under test
    return list(make_backend("chat", client).stream(request()))


@pytest.mark.parametrize("reply", [Reply(text="late", header_delay=3.0),
                                   Reply(text="stuck half way", chunk_chars=2, stall_after=2, stall_seconds=3.0)],
                         ids=["slow headers", "stalled body"])
def test_a_one_second_timeout_gives_up_after_about_a_second(fake, reply):
    fb = fake("vllm")
    fb.script(reply)
    started = time.monotonic()
    with pytest.raises(ServerUnreachable) as info:
        stream_with_timeout(fb, 1.0)
    took = time.monotonic() - started
    assert took < 2.0, f"waited {took:.1f} s"
    assert "in time" in str(info.value) and "cannot reach" not in str(info.value)


def test_a_patient_timeout_lets_a_slow_server_finish(fake):
    fb = fake("vllm")
    fb.script(Reply(text="late but fine", header_delay=1.0))
    events = stream_with_timeout(fb, 5.0)
    assert "".join(getattr(e, "text", "") for e in events) == "late but fine"
