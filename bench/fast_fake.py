"""A fake vLLM fast enough that a scale bench measures the client, not the server: one asyncio
process, every reply encoded once at start (vLLM 0.32's exact chat-completions stream, built by the
tests' fake backend, one HTTP chunk per event as uvicorn sends them).

Unpaced, each answer is written whole at once: what the client can take in at most. Paced (``--ttft``,
``--rate``), it answers as a GPU server does under a full batch: the first token after ``ttft``
seconds, then ``rate`` tokens a second per stream, written every ``interval`` seconds (vLLM's stream
interval): the writes of each answer are cut once, then only scheduled.

    python -m bench.fast_fake --tokens 300 [--ttft 0.1 --rate 500]   prints "port N", serves until killed

Besides /v1/models, /health and /version (what detection asks), ``GET /bench/stats`` says how many
replies it sent and how much CPU it has used, so the bench can print the fake's own limit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import socket
import sys

from ._common import FakeBackend, Reply

__all__ = ["MODEL", "reply_text", "serve"]

MODEL = "fake/persona-20b"
_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
_CLOSE = re.compile(rb"\r\nconnection:\s*close", re.IGNORECASE)


def reply_text(tokens: int) -> str:
    """A reply of about ``tokens`` tokens (four characters a delta) that gets every probe step run: it
    holds the bench set's right answer, 42."""
    text = "It is 42. " + "word " * tokens
    return text[: max(9, tokens * 4)]


def _chunk(event: str) -> bytes:
    data = event.encode()
    return b"%x\r\n%s\r\n" % (len(data), data)


def _response(status: str, headers: dict, body: bytes, chunked: bool = False) -> bytes:
    lines = [f"HTTP/1.1 {status}", "server: uvicorn", *(f"{k}: {v}" for k, v in headers.items())]
    lines.append("transfer-encoding: chunked" if chunked else f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _replies(tokens: int, ttft: float, rate: float, interval: float) -> tuple[list, bytes, bytes]:
    """(the streamed reply as its writes, (delay, bytes) each; the same reply whole; /v1/models), encoded once."""
    from fake_backend import _Turn  # noqa: PLC0415 — the tests' fake knows vLLM's exact format

    fake = FakeBackend("vllm", [MODEL])
    body = {"model": MODEL, "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "What is 6 times 7?"}]}
    turn = _Turn(fake, Reply(text=reply_text(tokens), chunk_chars=4), body)
    sse = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}
    head = _response("200 OK", sse, b"", chunked=True)
    events = [_chunk(e) for e in turn.chat_stream()]  # role, the tokens, finish, usage, [DONE]
    n = len(turn.pieces)
    last = b"".join(events[1 + n:]) + b"0\r\n\r\n"
    if not rate:
        writes = [(ttft, head + b"".join(events[:1 + n]) + last)]
    else:  # token k is made at ttft + k / rate; a write every interval sends those made since the last
        writes, sent, at = [], 0, ttft
        while sent < n:
            made = min(n, 1 + int((at - ttft) * rate))
            writes.append((at, (head + events[0] if not sent else b"") + b"".join(events[1 + sent:1 + made])))
            sent, at = made, at + interval
        writes[-1] = (writes[-1][0], writes[-1][1] + last)
    whole = _response("200 OK", {"content-type": "application/json"}, json.dumps(turn.chat_full()).encode())
    models = _response("200 OK", {"content-type": "application/json"}, json.dumps(fake._models_json()).encode())
    return writes, whole, models


class _Fake:
    def __init__(self, tokens: int, ttft: float, rate: float, interval: float):
        self.writes, self.whole, self.models = _replies(tokens, ttft, rate, interval)
        self.tokens = tokens
        self.served = 0
        self.other = 0  # requests it could not answer (none expected)

    def answer(self, head: bytes, body: bytes) -> bytes | list:
        """The answer: bytes to write now, or the paced stream's writes."""
        method, path = head.split(b" ", 2)[:2]
        if method == b"POST" and path.endswith(b"/chat/completions"):
            self.served += 1
            return self.writes if b'"stream":true' in body.replace(b" ", b"") else self.whole
        if path.endswith(b"/models"):
            return self.models
        if path == b"/health":
            return _response("200 OK", {}, b"")
        if path == b"/version":
            return _response("200 OK", {"content-type": "application/json"}, b'{"version":"0.32.0"}')
        if path == b"/bench/stats":
            usage = resource.getrusage(resource.RUSAGE_SELF)
            stats = {"served": self.served, "other": self.other, "cpu": usage.ru_utime + usage.ru_stime,
                     "tokens": self.tokens}
            return _response("200 OK", {"content-type": "application/json"}, json.dumps(stats).encode())
        self.other += 1
        return _response("404 Not Found", {"content-type": "application/json"}, b'{"detail":"Not Found"}')


class _Connection(asyncio.Protocol):
    def __init__(self, fake: _Fake):
        self.fake = fake
        self.buffer = bytearray()
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) != -1:
            head = bytes(self.buffer[:end])
            length = int(m.group(1)) if (m := _LENGTH.search(head)) else 0
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4:end + 4 + length])
            del self.buffer[:end + 4 + length]
            answer = self.fake.answer(head, body)
            if isinstance(answer, bytes):
                self.transport.write(answer)
            else:
                loop = asyncio.get_running_loop()
                for delay, data in answer:
                    if delay:
                        loop.call_later(delay, self._write, data)
                    else:
                        self.transport.write(data)
            if _CLOSE.search(head):
                self.transport.close()
                return


    def _write(self, data: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(data)


async def serve(tokens: int, ttft: float = 0.0, rate: float = 0.0, interval: float = 0.02, port: int = 0) -> None:
    fake = _Fake(tokens, ttft, rate, interval)
    server = await asyncio.get_running_loop().create_server(lambda: _Connection(fake), "127.0.0.1", port,
                                                            backlog=4096)
    print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.fast_fake")
    ap.add_argument("--tokens", type=int, default=8, help="tokens per reply")
    ap.add_argument("--ttft", type=float, default=0.0, help="seconds to the first token")
    ap.add_argument("--rate", type=float, default=0.0, help="tokens a second per stream (0: all at once)")
    ap.add_argument("--interval", type=float, default=0.02, help="seconds between a stream's writes")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        asyncio.run(serve(args.tokens, args.ttft, args.rate, args.interval, args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main(sys.argv[1:])
