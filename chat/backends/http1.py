"""Streaming POSTs over kept-alive HTTP/1.1 connections, without the openai SDK: for probe runs, whose
thousands of short requests would otherwise spend most of the client's time in the SDK building
each one (~0.7 ms a request, more than everything else a request costs). Plain http:// without a
proxy only (``plain_http``): TLS and proxies stay with the SDK's client.

An answer's body comes as blocks, one per read of the socket, with the chunked encoding undone in
bulk (a streamed token is an HTTP chunk: undoing them one call at a time cost as much as the rest of
the client), counted against the caps every body has (chat/limits.py). A connection goes back to
its pool once its answer was read to the end; one the server closed while idle is replaced once.
Cancelling the turn's token shuts the connection down at once, mid-header or mid-body. Socket errors
leave as the OSErrors they are, for ``chat.errors.network`` to translate; what can't be read as HTTP
is a StreamError.
"""

from __future__ import annotations

import base64
import re
import socket
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator

from .. import cancel, limits
from ..errors import StreamCut, StreamError

__all__ = ["Answer", "Pool", "plain_http"]

CONNECT_TIMEOUT = 5.0  # the openai SDK's defaults, so both paths wait alike
READ_TIMEOUT = 600.0
MAX_HEAD = 64 << 10  # the status line and headers of an answer
_READ = 1 << 18
_CUT = "the connection broke mid-reply (the server closed it before the end of its answer)"
_SIZE = re.compile(rb"[0-9A-Fa-f]{1,15}")  # a chunk's size (before any ;extension)


def plain_http(base_url: str) -> bool:
    """Whether ``base_url`` is reached over plain HTTP with no proxy in the way."""
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme != "http" or not parts.hostname:
        return False
    proxies = urllib.request.getproxies()
    return not (proxies.get("http") or proxies.get("all")) or bool(urllib.request.proxy_bypass(parts.hostname))


def _unreadable(why: str) -> StreamError:
    return StreamError(f"the server sent something unreadable: {why}")


class _Connection:
    def __init__(self, address: tuple[str, int]):
        self.sock = socket.create_connection(address, timeout=CONNECT_TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(READ_TIMEOUT)
        self.buffer = bytearray()  # read and not used yet
        self.reused = False

    def fill(self) -> bool:
        """Read what is there (waiting for something); False at the end of the stream."""
        data = self.sock.recv(_READ)
        self.buffer += data
        return bool(data)

    def shut(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class Answer:
    """An answer's status and headers (names in lower case), then its body in blocks."""

    def __init__(self, pool: "Pool", conn: _Connection, status: int, headers: dict[str, str], release):
        self.status, self.headers = status, headers
        self._pool, self._conn, self._release = pool, conn, release
        self._keep = headers.get("connection", "").lower() != "close"
        self._done = False

    def blocks(self, cap: int = limits.MAX_STREAM) -> Iterator[bytes]:
        """The body, a block per read; StreamError past ``cap`` bytes, StreamCut if the connection
        ends before the body does."""
        encoding = self.headers.get("content-encoding", "identity").lower()
        if encoding != "identity":  # asked for identity: a server that compresses anyway can't be read here
            raise StreamError(f"the server compressed its answer ({encoding}) though asked not to")
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            body = self._chunked()
        elif "content-length" in self.headers:
            body = self._sized(self._length())
        else:
            self._keep = False
            body = self._to_close()
        total = 0
        for block in body:  # each body marks the answer done before its last block: a reader may stop there
            total += len(block)
            if total > cap:
                raise StreamError(f"the server sent more than {limits.size(cap)} in one answer: stopped there")
            yield block

    def read(self, cap: int) -> bytes:
        """The body whole, cut at ``cap`` bytes (an error body: only its start is shown)."""
        parts, total = [], 0
        try:
            for block in self.blocks(cap=1 << 62):
                parts.append(block)
                total += len(block)
                if total >= cap:
                    break
        except (OSError, StreamError):  # what came is shown; the connection is not kept
            pass
        return b"".join(parts)[:cap]

    def close(self) -> None:
        """Give the connection back (its answer read to the end) or shut it."""
        self._release()
        if self._done and self._keep and not self._conn.buffer:
            self._pool.put(self._conn)
        else:
            self._conn.shut()

    def _length(self) -> int:
        value = self.headers["content-length"].strip()
        if not value.isdigit() or len(value) > 15:
            raise _unreadable(f"a Content-Length of {value[:20]!r}")
        return int(value)

    def _sized(self, left: int) -> Iterator[bytes]:
        conn = self._conn
        while left:
            if not conn.buffer and not conn.fill():
                raise StreamCut(_CUT)
            block = bytes(conn.buffer[:left])
            del conn.buffer[:len(block)]
            left -= len(block)
            self._done = not left
            yield block

    def _to_close(self) -> Iterator[bytes]:
        conn = self._conn
        while conn.buffer or conn.fill():
            block = bytes(conn.buffer)
            conn.buffer.clear()
            yield block
        self._done = True

    def _chunked(self) -> Iterator[bytes]:
        """The chunks' data, all that one read brought joined in one block: one pass over the buffer,
        each chunk's size line looked at once."""
        conn = self._conn
        left, crlf = 0, False  # data of the current chunk still to come; then its CRLF
        while True:
            buf, at, parts = conn.buffer, 0, []
            while True:
                if left:
                    take = min(left, len(buf) - at)
                    if not take:
                        break
                    parts.append(buf[at:at + take])
                    at, left = at + take, left - take
                    if left:
                        break
                    crlf = True
                if crlf:
                    if len(buf) - at < 2:
                        break
                    if buf[at:at + 2] != b"\r\n":
                        raise _unreadable("a chunk longer than its size says")
                    at, crlf = at + 2, False
                end = buf.find(b"\r\n", at)
                if end == -1:
                    if len(buf) - at > 1024:
                        raise _unreadable("a chunk size line over 1 KiB")
                    break
                size_line = bytes(buf[at:end]).split(b";", 1)[0].strip()
                if not _SIZE.fullmatch(size_line):
                    raise _unreadable(f"a chunk size of {size_line[:20]!r}")
                at, left = end + 2, int(size_line, 16)
                if not left:  # the last chunk: the answer is read whole before its last data is handed on
                    del buf[:at]
                    self._skip_trailers()
                    self._done = True
                    if parts:
                        yield b"".join(parts)
                    return
            del buf[:at]
            if parts:
                yield b"".join(parts)
            if not conn.fill():
                raise StreamCut(_CUT)

    def _skip_trailers(self) -> None:
        """Read past the trailer section, up to its blank line (nothing in it is used)."""
        conn = self._conn
        while True:
            end = conn.buffer.find(b"\r\n")
            if end == 0:
                del conn.buffer[:2]
                return
            if end > 0:
                del conn.buffer[:end + 2]
                continue
            if len(conn.buffer) > MAX_HEAD:
                raise _unreadable(f"trailers over {limits.size(MAX_HEAD)}")
            if not conn.fill():
                raise StreamCut(_CUT)


class Pool:
    """Kept-alive connections to one server (as many as requests run at once on it)."""

    def __init__(self, base_url: str, api_key: str | None = None):
        parts = urllib.parse.urlsplit(base_url)
        self.address = (parts.hostname, parts.port or 80)
        self.prefix = parts.path.rstrip("/")
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        self._head = f"Host: {host}{f':{parts.port}' if parts.port else ''}\r\n"
        if api_key:
            self._head += f"Authorization: Bearer {api_key}\r\n"
        elif parts.username is not None or parts.password is not None:  # as detect.py sends them
            pair = f"{urllib.parse.unquote(parts.username or '')}:{urllib.parse.unquote(parts.password or '')}"
            self._head += f"Authorization: Basic {base64.b64encode(pair.encode()).decode()}\r\n"
        self._head += ("Content-Type: application/json\r\nAccept: text/event-stream, application/json\r\n"
                       "Accept-Encoding: identity\r\nUser-Agent: gridchat\r\n")
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()

    def put(self, conn: _Connection) -> None:
        conn.reused = True
        with self._lock:
            self._idle.append(conn)

    def _take(self) -> _Connection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return _Connection(self.address)

    def post(self, path: str, body: bytes) -> Answer:
        """Send ``body`` (JSON) to ``path`` (under the base URL's path) and read the answer's head.
        A kept connection that turns out closed by the server is replaced once."""
        request = (f"POST {self.prefix}{path} HTTP/1.1\r\n{self._head}Content-Length: {len(body)}\r\n\r\n"
                   ).encode("latin-1") + body
        token = cancel.current.get()
        while True:
            conn = self._take()
            release = token.on_cancel(conn.shut) if token is not None else (lambda: None)
            try:
                conn.sock.sendall(request)
                status, headers = self._head_of(conn)
            except (ConnectionError, _ClosedIdle) as e:
                release()
                conn.shut()
                if conn.reused and (token is None or not token.cancelled):
                    continue  # the server closed it while it was idle: a fresh one
                if isinstance(e, _ClosedIdle):
                    raise StreamCut("the server closed the connection before answering") from None
                raise
            except BaseException:
                release()
                conn.shut()
                raise
            return Answer(self, conn, status, headers, release)

    @staticmethod
    def _head_of(conn: _Connection) -> tuple[int, dict[str, str]]:
        while (end := conn.buffer.find(b"\r\n\r\n")) == -1:
            if len(conn.buffer) > MAX_HEAD:
                raise _unreadable(f"headers over {limits.size(MAX_HEAD)}")
            if not conn.fill():
                raise _ClosedIdle
        lines = bytes(conn.buffer[:end]).decode("latin-1").split("\r\n")
        del conn.buffer[:end + 4]
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/1.") or not code.isdigit():
            raise _unreadable(f"a status line {lines[0][:40]!r}")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                name = name.strip().lower()
                headers[name] = f"{headers[name]}, {value.strip()}" if name in headers else value.strip()
        if code == "100":  # an interim answer: the real one follows
            return Pool._head_of(conn)
        return int(code), headers


class _ClosedIdle(Exception):
    """The connection ended before any answer came (a kept one the server had closed)."""
