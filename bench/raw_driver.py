"""The baseline of a probe run: a standard-library driver that sends the same streaming requests at
the same concurrency and reads the bytes — each cell its steps in turn, the conversation growing as
the client's does — and nothing else: no parsing, no files. Keep-alive connections, one per worker.

    python -m bench.raw_driver URL --cells N --steps 3 --concurrency C [--servers URL2 …]

Prints one JSON line: {"requests": …, "failed": …, "bytes": …}.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
from urllib.parse import urlparse

__all__ = ["drive"]

_END = b"0\r\n\r\n"  # the last chunk of a chunked body


class _Connection:
    def __init__(self, url: str):
        parsed = urlparse(url)
        self.address, self.path = (parsed.hostname, parsed.port), parsed.path.rstrip("/") + "/chat/completions"
        self.host = f"{parsed.hostname}:{parsed.port}"
        self.sock: socket.socket | None = None

    def post(self, body: bytes) -> int:
        """Send one request and read its streamed answer to the end: the bytes read."""
        if self.sock is None:
            self.sock = socket.create_connection(self.address)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                          b"Content-Length: %d\r\n\r\n%s" % (self.path.encode(), self.host.encode(), len(body), body))
        got = bytearray()
        while not got.endswith(_END):
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("the server closed the connection mid-answer")
            got += chunk
        if not got.startswith(b"HTTP/1.1 200"):
            raise ConnectionError(bytes(got[:40]).decode("latin-1"))
        return len(got)


def _body(model: str, messages: list, seed: int) -> bytes:
    return json.dumps({"model": model, "messages": messages, "stream": True, "seed": seed,
                       "stream_options": {"include_usage": True}}).encode()


def drive(urls: list[str], cells: int, steps: int, concurrency: int, model: str, answer: str) -> dict:
    """Run ``cells`` conversations of ``steps`` requests each, ``concurrency`` at a time per server."""
    lock = threading.Lock()
    todo = iter(range(cells))
    counts = {"requests": 0, "failed": 0, "bytes": 0}

    def worker(url: str) -> None:
        conn = _Connection(url)
        while True:
            with lock:
                cell = next(todo, None)
            if cell is None:
                return
            messages = [{"role": "system", "content": f"Persona: persona_{cell % 9}"}]
            for step in range(steps):
                messages.append({"role": "user", "content": f"Question {cell} step {step}: what is 6 times 7?"})
                try:
                    size = conn.post(_body(model, messages, cell))
                except OSError:
                    conn.sock = None
                    with lock:
                        counts["failed"] += 1
                    break
                messages.append({"role": "assistant", "content": answer})
                with lock:
                    counts["requests"] += 1
                    counts["bytes"] += size

    threads = [threading.Thread(target=worker, args=(url,)) for url in urls for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return counts


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.raw_driver")
    ap.add_argument("url", nargs="+")
    ap.add_argument("--cells", type=int, required=True)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--model", default="fake/persona-20b")
    ap.add_argument("--answer", default="It is 42.")
    args = ap.parse_args(argv)
    print(json.dumps(drive(args.url, args.cells, args.steps, args.concurrency, args.model, args.answer)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
