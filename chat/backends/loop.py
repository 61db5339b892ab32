"""Many streamed requests at once on one thread (probe runs): one selectors loop reads every
connection of a run, so the sockets that became readable together cost one wake-up, and no thread
hands the GIL to another between reads. With a thread per request, each read of a few tokens cost a
thread switch and a GIL hand-off (~30 µs here, the raw driver's too: more than parsing them).

A request is sent as the bulk backend sends it (its ``prepare``), over connections kept alive per
server, and read by the same ``Reader`` and ``StreamReading``: only who waits for the socket
differs. Its events go to ``on_events(events, at)`` as each read brings them, ``at`` being when the
loop woke for that read (a reply's first token is timed on its arrival, however many other sockets
were read in the same wake-up); ``on_end(error, at)`` follows once (None: the reply is whole). A
callback may start more streams. Cancelling the loop's token (Ctrl-C) ends every stream at once with
``Cancelled``; what is started after that ends so too. Timeouts are the blocking path's: 5 s to
connect, 600 s of silence mid-answer.
"""

from __future__ import annotations

import errno
import selectors
import socket
import time
from collections import defaultdict, deque
from collections.abc import Callable

from .. import limits
from ..cancel import Cancelled, CancelToken
from ..errors import StreamCut, known
from .base import Request
from .bulk import BulkBackend, StreamReading, check_answer, failure
from .http1 import CONNECT_TIMEOUT, READ, READ_TIMEOUT, ClosedIdle, Kept, Pool, Reader, resend, shut as _shut

__all__ = ["StreamLoop"]

_CHECK_EVERY = 1.0  # seconds between looks for streams past their deadline
QUANTUM = 0.002  # under dense traffic, the loop wakes at most this often (a read waits at most this long)


class _Stream:
    __slots__ = ("backend", "request", "sock", "out", "reader", "reading", "on_events", "on_end", "deadline",
                 "reused", "addresses", "error_body", "watched")

    def __init__(self, backend: BulkBackend, request: bytes, on_events, on_end):
        self.backend, self.request, self.on_events, self.on_end = backend, request, on_events, on_end
        self.sock: socket.socket | None = None
        self.out = memoryview(request)
        self.reader = Reader()
        self.reading = StreamReading(backend.api)
        self.deadline = 0.0
        self.reused = False
        self.addresses: list = []  # those still to try, when connecting
        self.error_body: list[bytes] | None = None  # an error answer's body, as it comes
        self.watched = False  # its socket is registered with the selector


def _deliver(stream: _Stream, events, now: float) -> None:
    """The events a read gave, to the stream's callback: those before a failure too."""
    got: list = []
    try:
        for event in events:
            got.append(event)
    finally:
        if got:
            stream.on_events(got, now)


class StreamLoop:
    """Streams started with ``stream``, all read by ``run`` on the calling thread."""

    def __init__(self, token: CancelToken | None = None):
        self._selector = selectors.DefaultSelector()
        self._wake_in, self._wake_out = socket.socketpair()
        for end in (self._wake_in, self._wake_out):
            end.setblocking(False)
        self._selector.register(self._wake_in, selectors.EVENT_READ)
        self._token = token
        self._streams: set[_Stream] = set()
        self._idle: defaultdict[Pool, Kept] = defaultdict(Kept)
        self._addresses: dict[Pool, list] = {}
        self._soon: deque[Callable[[], None]] = deque()
        self._release = token.on_cancel(self._wake) if token is not None else (lambda: None)

    @property
    def stopped(self) -> bool:
        return self._token is not None and self._token.cancelled

    def stream(self, backend: BulkBackend, request: Request, on_events: Callable[[list, float], None],
               on_end: Callable[[Exception | None, float], None]) -> None:
        """Start ``request`` on ``backend``'s server; its events and end go to the callbacks (from
        ``run``)."""
        path, body = backend.prepare(request)
        stream = _Stream(backend, backend.pool.request(path, body), on_events, on_end)
        if self.stopped:
            self._soon.append(lambda: on_end(Cancelled(), time.perf_counter()))
            return
        self._streams.add(stream)
        try:
            self._connect(stream)
        except Exception as exc:  # noqa: BLE001 - ended as the blocking path ends it (from run: no recursion)
            self._soon.append(lambda error=exc: self._end(stream, error, time.perf_counter()))  # exc: unbound past the except

    def run(self) -> None:
        """Read every stream to its end, and those their callbacks start; the loop is then closed."""
        checked = woke = time.perf_counter()
        try:
            while self._streams or self._soon:
                while self._soon:
                    self._soon.popleft()()
                if not self._streams:
                    continue
                if self.stopped:
                    self._stop_all()
                    continue
                if time.perf_counter() - woke < QUANTUM:  # reads come thick: let more gather than one
                    time.sleep(QUANTUM)
                ready = self._selector.select(_CHECK_EVERY)
                now = woke = time.perf_counter()
                for key, events in ready:
                    if key.data is None:
                        self._drain_wake()
                    elif key.data in self._streams:
                        self._ready(key.data, events, now)
                if now - checked >= _CHECK_EVERY:
                    checked = now
                    for stream in [s for s in self._streams if s.deadline < now]:
                        self._end(stream, TimeoutError("timed out"), now)
        finally:
            self._close()

    # -- a stream's life -------------------------------------------------------------------------------
    def _connect(self, stream: _Stream) -> None:
        pool = stream.backend.pool
        kept = self._idle[pool].take()
        if kept is not None:
            stream.sock, stream.reused = kept, True
            sent = self._send_early(stream)
            self._watch(stream, selectors.EVENT_READ if sent else selectors.EVENT_WRITE, READ_TIMEOUT)
            return
        if pool not in self._addresses:  # resolved once a run, as the blocking path's first connection does
            self._addresses[pool] = socket.getaddrinfo(*pool.address, type=socket.SOCK_STREAM)
        stream.addresses = list(self._addresses[pool])
        self._dial(stream)

    def _dial(self, stream: _Stream) -> None:
        """Connect to the next address (those refused are passed over, as socket.create_connection does)."""
        family, kind, proto, _, address = stream.addresses.pop(0)
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        stream.sock, stream.reused = sock, False
        code = sock.connect_ex(address)
        if code not in (0, errno.EINPROGRESS):
            raise OSError(code, f"connecting failed: {errno.errorcode.get(code, code)}")
        self._watch(stream, selectors.EVENT_WRITE, CONNECT_TIMEOUT)

    @staticmethod
    def _send_early(stream: _Stream) -> bool:
        """Send on a kept connection at once (whether all went): waiting to be told it is writable put
        the request after the rest of this wake-up's work — at 128 streams ending together, ~60 ms.
        A failure is left to the watch for writing, which finds it and handles it as any send's."""
        try:
            sent = stream.sock.send(stream.out)
        except OSError:
            return False
        stream.out = stream.out[sent:]
        return not stream.out.nbytes

    def _watch(self, stream: _Stream, events: int, timeout: float) -> None:
        stream.deadline = time.perf_counter() + timeout
        if stream.watched:
            self._selector.modify(stream.sock, events, stream)
        else:
            self._selector.register(stream.sock, events, stream)
            stream.watched = True

    def _ready(self, stream: _Stream, events: int, now: float) -> None:
        try:
            if events & selectors.EVENT_WRITE:
                self._send(stream)
            elif events & selectors.EVENT_READ:
                self._read(stream, now)
        except Exception as exc:  # noqa: BLE001 - ended (or sent again) as the blocking path does it
            if resend(stream.reused, not stream.out.nbytes, exc):
                self._again(stream, now)
            else:
                self._end(stream, exc, now)

    def _send(self, stream: _Stream) -> None:
        if not stream.reused and stream.out.nbytes == len(stream.request):  # just connected, or refused
            code = stream.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                self._unwatch(stream, shut=True)
                if stream.addresses:
                    return self._dial(stream)
                raise ConnectionRefusedError(code, errno.errorcode.get(code, str(code)))
        sent = stream.sock.send(stream.out)
        stream.out = stream.out[sent:]
        if not stream.out.nbytes:
            self._watch(stream, selectors.EVENT_READ, READ_TIMEOUT)

    def _read(self, stream: _Stream, now: float) -> None:
        try:
            data = stream.sock.recv(READ)
        except BlockingIOError:
            return
        stream.deadline = now + READ_TIMEOUT
        reader = stream.reader
        had_head = reader.status is not None
        block = reader.feed(data) if data else b""
        if not had_head and reader.status is not None and reader.status != 200:
            stream.error_body = []
        if stream.error_body is not None:  # an error's answer: its start is all that is shown
            stream.error_body.append(block)
            body = b"".join(stream.error_body)
            if reader.done or not data or len(body) >= limits.MAX_ERROR_BODY:
                check_answer(reader.status, reader.headers, lambda: body[:limits.MAX_ERROR_BODY])
            return
        if not data:
            reader.eof()
        reading = stream.reading
        if block and not reading.over:
            _deliver(stream, reading.feed(block), now)
        if reading.over or reader.done:  # as the blocking path: once the reply is over, the rest is not read
            _deliver(stream, reading.end(), now)
            self._end(stream, None, now)

    def _again(self, stream: _Stream, now: float) -> None:
        """A kept connection that broke before the request went out whole: the request again, on
        another one."""
        self._unwatch(stream, shut=True)
        stream.out, stream.reader = memoryview(stream.request), Reader()
        try:
            self._connect(stream)
        except Exception as exc:  # noqa: BLE001
            self._end(stream, exc, now)

    def _end(self, stream: _Stream, error: Exception | None, now: float) -> None:
        """The stream is over: its connection kept (read to the end) or shut, ``on_end`` told."""
        if stream not in self._streams:
            return
        self._streams.discard(stream)
        keep = error is None and stream.reader.done and stream.reader.keep
        self._unwatch(stream, shut=not keep)
        if keep:
            self._idle[stream.backend.pool].put(stream.sock)
        if error is not None:
            error = self._failure(error)
        stream.on_end(error, now)

    def _failure(self, error: Exception) -> Exception:
        if self.stopped:
            return Cancelled()
        if isinstance(error, ClosedIdle):
            error = StreamCut("the server closed the connection before answering")
        return failure(known(error))

    def _unwatch(self, stream: _Stream, shut: bool = False) -> None:
        if stream.sock is None:
            return
        if stream.watched:
            self._selector.unregister(stream.sock)
            stream.watched = False
        if shut:
            _shut(stream.sock)

    def _stop_all(self) -> None:
        now = time.perf_counter()
        for stream in list(self._streams):
            self._end(stream, Cancelled(), now)

    # -- waking and closing ------------------------------------------------------------------------------
    def _wake(self) -> None:
        try:
            self._wake_out.send(b"x")
        except OSError:  # full (already woken) or closed (the loop is over)
            pass

    def _drain_wake(self) -> None:
        try:
            while self._wake_in.recv(4096):
                pass
        except OSError:
            pass

    def _close(self) -> None:
        self._release()
        for stream in list(self._streams):
            self._unwatch(stream, shut=True)
        for kept in self._idle.values():
            kept.close()
        self._selector.close()
        self._wake_in.close()
        self._wake_out.close()
