"""A probe run's kept-alive connections (chat/backends/http1.py ``Kept``, ``resend``), on both paths
that read replies in bulk — a turn on the caller's thread and a stream loop (loop.py) — against a
server written on raw sockets: what came on a kept connection while it waited is never the next
request's answer, and a request the server may have read is never sent again."""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest
from gridchat.chat.backends.bulk import bulk_backend
from gridchat.chat.backends.http1 import Kept
from gridchat.chat.backends.loop import StreamLoop
from gridchat.chat.errors import StreamCut
from gridchat.chat.turn import NullSink, run_turn, start_turn
from test_adversary_new import OK_HEAD, chunked, raw, request, sse  # noqa: F401 - raw: the fixture

READS = ["thread", "loop"]


def two_turns(way: str, backend, between: threading.Event):
    """Two turns one after the other on ``backend`` (the second once ``between`` is set), on the
    caller's thread or on one stream loop (whose kept connection then carries the second)."""
    if way == "thread":
        first = run_turn(backend, request(), NullSink())
        assert between.wait(10)
        return first, run_turn(backend, request(), NullSink())
    loop, got = StreamLoop(), []

    def then(result) -> None:
        got.append(result)
        if len(got) == 1:
            assert between.wait(10)
            start_turn(loop, backend, request(), then)

    start_turn(loop, backend, request(), then)
    loop.run()
    return got


@pytest.mark.parametrize("way", READS)
def test_an_answer_to_no_request_is_not_the_next_reply(raw, way):
    injected = threading.Event()

    def answer(conn, req, n):
        conn.sendall(OK_HEAD + chunked(sse(f"reply to request {n}")))
        if n == 1:
            time.sleep(0.2)  # the first answer read whole, its connection kept
            conn.sendall(OK_HEAD + chunked(sse("INJECTED")))
            injected.set()

    server = raw(answer)
    first, second = two_turns(way, bulk_backend("chat", server.base_url, "k"), injected)
    assert first.message.content == "reply to request 1"
    assert (second.error, second.message.content) == (None, "reply to request 2")
    assert len(server.requests) == 2


@pytest.mark.parametrize("way", READS)
def test_an_idle_timeout_408_is_not_the_next_answer(raw, way):
    closed = threading.Event()

    def answer(conn, req, n):
        conn.sendall(OK_HEAD + chunked(sse(f"reply {n}")))
        time.sleep(0.2)
        conn.sendall(b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        closed.set()
        return "close"

    first, second = two_turns(way, bulk_backend("chat", raw(answer).base_url, "k"), closed)
    assert (second.error, second.message.content) == (None, "reply 2")


@pytest.mark.parametrize("way", READS)
def test_a_request_the_server_read_is_the_turns_error_not_sent_again(raw, way):
    """The server reads the second request whole on the kept connection, then closes it unanswered
    (a crash mid-generation): that is the turn's error; a POST is not sent twice."""
    read = threading.Event()
    read.set()

    def answer(conn, req, n):
        if n == 2:
            return "close"
        conn.sendall(OK_HEAD + chunked(sse(f"reply {n}")))

    server = raw(answer)
    first, second = two_turns(way, bulk_backend("chat", server.base_url, "k"), read)
    assert first.error is None
    assert isinstance(second.error, StreamCut)
    assert len(server.requests) == 2


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    """Both ends of a loopback TCP connection (ours, the server's)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        ours = socket.create_connection(listener.getsockname())
        theirs, _ = listener.accept()
    return ours, theirs


def test_a_kept_connection_is_handed_out_only_while_nothing_came_on_it():
    """The check on take: bytes waiting (a stale answer), the end (closed while idle) or a reset drop
    the connection; a quiet one is handed out, the last kept first."""
    kept, pairs = Kept(), [tcp_pair() for _ in range(4)]
    quiet, spoken, closed, reset = pairs
    for ours, _ in pairs:
        kept.put(ours)
    spoken[1].sendall(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
    closed[1].close()
    reset[1].setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # closed with a reset
    reset[1].close()
    assert kept.take() is quiet[0]
    assert kept.take() is None
    assert all(ours.fileno() == -1 for ours, _ in (spoken, closed, reset))  # dropped: closed
    quiet[0].close()
    quiet[1].close()


@pytest.mark.parametrize("way", READS)
def test_a_request_cut_off_before_it_went_out_whole_goes_again_on_a_new_connection(way):
    """The server takes the second request's head on the kept connection, then resets it while the
    long body is still being sent: it cannot have read that request, so it goes again, once, on a
    new connection, and the turn gets its reply."""
    listener = socket.create_server(("127.0.0.1", 0))
    complete = []  # the requests the server read whole

    def read_request(conn, buf: bytes, whole: bool) -> bytes:
        while b"\r\n\r\n" not in buf:
            buf += conn.recv(65536)
        head, _, buf = buf.partition(b"\r\n\r\n")
        length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
                     .split(b":")[1])
        while whole and len(buf) < length:
            buf += conn.recv(1 << 20)
        if whole:
            complete.append(length)
        return buf[length:]

    def serve() -> None:
        with listener:
            for n in (1, 2):
                conn, _ = listener.accept()
                with conn:
                    rest = read_request(conn, b"", whole=True)
                    conn.sendall(OK_HEAD + chunked(sse(f"reply on connection {n}")))
                    if n == 1:  # the second request: its head, then a reset mid-body
                        read_request(conn, rest, whole=False)
                        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    threading.Thread(target=serve, daemon=True).start()
    backend = bulk_backend("chat", f"http://127.0.0.1:{listener.getsockname()[1]}/v1", "k")
    long = request()
    long.messages[0].content = "6 times 7? " * (4 << 20)  # 44 MiB: more than the socket buffers hold
    if way == "thread":
        results = [run_turn(backend, req, NullSink()) for req in (request(), long)]
    else:
        loop, results = StreamLoop(), []
        start_turn(loop, backend, request(), lambda first: (results.append(first),
                                                            start_turn(loop, backend, long, results.append)))
        loop.run()
    assert [(r.error, r.message.content) for r in results] == [(None, "reply on connection 1"),
                                                              (None, "reply on connection 2")]
    assert len(complete) == 2  # the first request, and the second once, on the new connection
