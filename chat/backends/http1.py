"""Streaming POSTs over kept-alive HTTP/1.1 connections, without the openai SDK: for probe runs, whose
thousands of short requests would otherwise spend most of the client's time in the SDK building
each one (~0.7 ms a request, more than everything else a request costs). Plain http:// without a
proxy only (``plain_http``): TLS and proxies stay with the SDK's client.

An answer is read by ``Reader`` from whatever bytes a connection brings, however they are cut:
httptools' C parser (llhttp, uvicorn's) takes the head and undoes the body's chunked encoding (a
streamed token is an HTTP chunk: undone in Python, one at a time, it cost ~1 µs a token, as much as
the rest of the client), and the body comes out as one block per read, counted against the caps
every body has (chat/limits.py). The Reader does no I/O: ``Pool.post`` reads with it from a blocking
socket, and the stream loop (loop.py) from many non-blocking ones. A connection goes back to its
pool once its answer was read to the end, and is taken again only if nothing came on it meanwhile
(``Kept``); a request is sent again on a fresh connection only if it never went out whole
(``resend``): the blocking path and the loop follow these two rules alike. Cancelling the turn's
token shuts the connection down at once, mid-header or mid-body. Socket errors leave as the
OSErrors they are, for ``chat.errors.network`` to translate; what can't be read as HTTP is a
StreamError.
"""

from __future__ import annotations

import base64
import select
import socket
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator

import httptools

from .. import cancel, limits
from ..errors import StreamCut, StreamError
from ..wire import web_address

__all__ = ["Answer", "ClosedIdle", "Connection", "Kept", "Pool", "READ", "Reader", "plain_http", "resend", "shut"]

CONNECT_TIMEOUT = 5.0  # the openai SDK's defaults, so both paths wait alike
READ_TIMEOUT = 600.0
MAX_HEAD = 64 << 10  # the status line and headers of an answer
READ = 1 << 18  # bytes asked of one read
CUT = "the connection broke mid-reply (the server closed it before the end of its answer)"


def plain_http(base_url: str) -> bool:
    """Whether ``base_url`` is reached over plain HTTP with no proxy in the way."""
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme != "http" or not parts.hostname:
        return False
    proxies = urllib.request.getproxies()
    return not (proxies.get("http") or proxies.get("all")) or bool(urllib.request.proxy_bypass(parts.hostname))


def _unreadable(why: str) -> StreamError:
    return StreamError(f"the server sent something unreadable: {why}")


class ClosedIdle(Exception):
    """The connection ended before any answer came (the request went out whole: the server may have
    read it, so this is the request's failure, never a reason to send it again)."""


def shut(sock: socket.socket) -> None:
    """End a connection both ways at once, whatever state it is in."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def resend(reused: bool, sent_whole: bool, error: BaseException) -> bool:
    """Whether a request whose connection failed with ``error`` goes again on a fresh one: only when
    the connection was a kept one that broke before the request went out whole. Once it did, the
    server may have read it, and a POST is not sent twice (a cell's seed and cost doubled): the
    failure is the request's, as urllib3's and httpcore's for a POST."""
    return reused and not sent_whole and isinstance(error, ConnectionError)


class Kept:
    """Kept-alive connections (sockets) waiting for their next request, the last kept taken first.
    One is taken only if nothing came on it while it waited: bytes waiting (an answer to no
    request, a server's idle-timeout 408, which read after a send would pass for that request's
    answer) or its end (closed while idle) drop it. The look is one poll that does not wait (<1 µs:
    a peek would wait on a socket with a timeout, and select() stops at descriptor 1023)."""

    def __init__(self) -> None:
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()

    def put(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks.append(sock)

    def take(self) -> socket.socket | None:
        while True:
            with self._lock:
                if not self._socks:
                    return None
                sock = self._socks.pop()
            poll = select.poll()
            poll.register(sock, select.POLLIN)
            if not poll.poll(0):
                return sock
            shut(sock)

    def close(self) -> None:
        with self._lock:
            socks, self._socks = self._socks, []
        for sock in socks:
            sock.close()


class Reader:
    """One answer, from the bytes its connection brings (``feed``, then ``eof`` if the connection
    ends): ``status`` and ``headers`` (names in lower case) once the head is in, then the body as one
    block per feed; ``done`` once the body is whole, ``keep`` whether the connection may carry
    another request then. StreamError past ``cap`` bytes of body or MAX_HEAD of head."""

    def __init__(self, cap: int = limits.MAX_STREAM):
        self._parts: list[bytes] = []
        self.on_body = self._parts.append  # httptools' callback for each piece of body: no Python frame a chunk
        self._parser = httptools.HttpResponseParser(self)
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.done = False
        self.keep = True
        self._cap, self._body, self._head = cap, 0, 0
        self._failed: Exception | None = None  # raised in a callback: the parser only says one was
        self._to_close = False  # neither a length nor chunks: the body ends with the connection

    def feed(self, data: bytes) -> bytes:
        """The body this data completes (b"" for none)."""
        if self.done:  # more than the answer: the connection is not used again
            self.keep = False
            return b""
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError:
            raise self._failed from None
        except httptools.HttpParserError as e:
            if not self.done:
                raise _unreadable(str(e)[:80]) from None
            self.keep = False  # bytes after the answer that are no answer: the answer itself is whole
        if self.status is None:
            self._head += len(data)
            if self._head > MAX_HEAD:
                raise _unreadable(f"headers over {limits.size(MAX_HEAD)}")
        if not self._parts:
            return b""
        block = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
        self._parts.clear()
        self._body += len(block)
        if self._body > self._cap:  # looked at a read at a time: the cap is passed by one read at most
            raise StreamError(f"the server sent more than {limits.size(self._cap)} in one answer: stopped there")
        return block

    def eof(self) -> None:
        """The connection ended: the end of a body read to the close; else ClosedIdle before any
        answer, StreamCut mid-answer."""
        if self.done:
            return
        if self.status is None and not self._head:
            raise ClosedIdle
        if not self._to_close:
            raise StreamCut(CUT)
        self.done, self.keep = True, False

    # httptools' callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if self.status is not None or self.done:  # trailers (nothing in them is used), or a second answer
            return
        key, text = name.decode("latin-1").lower(), value.decode("latin-1").strip()
        self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:  # an interim answer (100 Continue): the real one follows
            self.headers = {}
            return
        self.status, self.keep = status, self._parser.should_keep_alive()
        encoding = self.headers.get("content-encoding", "identity").lower()
        if encoding != "identity":  # asked for identity: a server that compresses anyway can't be read here
            self._fail(StreamError(f"the server compressed its answer ({encoding}) though asked not to"))
        self._to_close = "chunked" not in self.headers.get("transfer-encoding", "").lower() \
            and "content-length" not in self.headers
        if self._to_close:
            self.keep = False

    def on_message_complete(self) -> None:
        if self.status is not None:
            self.done = True

    def _fail(self, error: Exception) -> None:
        self._failed = error
        raise error


class Connection:
    """A blocking connection: a kept one (``reused``), or a new one to ``address``."""

    def __init__(self, address: tuple[str, int], kept: socket.socket | None = None):
        self.reused = kept is not None
        if kept is None:
            kept = socket.create_connection(address, timeout=CONNECT_TIMEOUT)
            kept.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            kept.settimeout(READ_TIMEOUT)
        self.sock = kept

    def shut(self) -> None:
        shut(self.sock)


class Answer:
    """An answer's status and headers, then its body in blocks (from a blocking connection)."""

    def __init__(self, pool: "Pool", conn: Connection, reader: Reader, first: bytes, release):
        self.status, self.headers = reader.status, reader.headers
        self._pool, self._conn, self._reader, self._first, self._release = pool, conn, reader, first, release

    def blocks(self) -> Iterator[bytes]:
        """The body, a block per read (the answer is marked done before its last block: a reader may
        stop there); StreamError past the cap, StreamCut if the connection ends before the body does."""
        reader, first, self._first = self._reader, self._first, b""
        if first:
            yield first
        while not reader.done:
            data = self._conn.sock.recv(READ)
            if not data:
                reader.eof()
                return
            block = reader.feed(data)
            if block:
                yield block

    def read(self, cap: int) -> bytes:
        """The body whole, cut at ``cap`` bytes (an error body: only its start is shown)."""
        parts, total = [], 0
        try:
            for block in self.blocks():
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
        if self._reader.done and self._reader.keep:
            self._pool.put(self._conn)
        else:
            self._conn.shut()


class Pool:
    """Kept-alive connections to one server (as many as requests run at once on it)."""

    def __init__(self, base_url: str, api_key: str | None = None):
        parts = urllib.parse.urlsplit(base_url)
        self.address = (parts.hostname, parts.port or 80)
        self.prefix = urllib.parse.urlsplit(web_address(base_url)).path.rstrip("/")  # percent-encoded: ASCII
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        self._head = f"Host: {host}{f':{parts.port}' if parts.port else ''}\r\n"
        if api_key:
            self._head += f"Authorization: Bearer {api_key}\r\n"
        elif parts.username is not None or parts.password is not None:  # as detect.py sends them
            pair = f"{urllib.parse.unquote(parts.username or '')}:{urllib.parse.unquote(parts.password or '')}"
            self._head += f"Authorization: Basic {base64.b64encode(pair.encode()).decode()}\r\n"
        self._head += ("Content-Type: application/json\r\nAccept: text/event-stream, application/json\r\n"
                       "Accept-Encoding: identity\r\nUser-Agent: gridchat\r\n")
        self._kept = Kept()

    def request(self, path: str, body: bytes) -> bytes:
        """The bytes of a POST of ``body`` (JSON) to ``path`` (under the base URL's path)."""
        return (f"POST {self.prefix}{path} HTTP/1.1\r\n{self._head}Content-Length: {len(body)}\r\n\r\n"
                ).encode("latin-1") + body

    def put(self, conn: Connection) -> None:
        self._kept.put(conn.sock)

    def post(self, path: str, body: bytes) -> Answer:
        """Send ``body`` to ``path`` and read the answer's head (on a kept connection if one is
        quiet; again on another only as ``resend`` allows)."""
        request = self.request(path, body)
        token = cancel.current.get()
        while True:
            conn = Connection(self.address, self._kept.take())
            release = token.on_cancel(conn.shut) if token is not None else (lambda: None)
            sent = False
            try:
                conn.sock.sendall(request)
                sent = True
                reader, first = _head_of(conn)
            except BaseException as e:
                release()
                conn.shut()
                if resend(conn.reused, sent, e) and (token is None or not token.cancelled):
                    continue
                if isinstance(e, ClosedIdle):
                    raise StreamCut("the server closed the connection before answering") from None
                raise
            return Answer(self, conn, reader, first, release)


def _head_of(conn: Connection) -> tuple[Reader, bytes]:
    """The answer's reader once its head is in, and the body that came with the head."""
    reader, first = Reader(), b""
    while reader.status is None:
        data = conn.sock.recv(READ)
        if not data:
            reader.eof()
        first += reader.feed(data)
    return reader, first
