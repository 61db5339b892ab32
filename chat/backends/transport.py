"""A faster transport under the openai SDK for plain-HTTP servers.

Every streamed token arrives as its own HTTP chunk; httpx2's pure-Python HTTP/1.1 parser spends
~10 µs on each, about as much as everything else the client does per token. The standard library's
http.client decodes chunked bodies far faster. The SDK keeps doing requests, auth, retries and
errors; only the bytes travel differently. Used for http:// URLs when no proxy is configured (so
TLS and proxies stay with httpx2, where streams come at GPU speed anyway).
"""

from __future__ import annotations

import http.client
import socket
import urllib.request

import httpx2

from .. import cancel, limits
from ..errors import StreamError

__all__ = ["StdlibTransport", "bounded_body", "fast_transport_for"]


def _shut_down(conn: http.client.HTTPConnection) -> None:
    """Wake a read blocked in the connection's socket (closing alone does not) and close it."""
    sock = conn.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    conn.close()


class _Body(httpx2.SyncByteStream):
    def __init__(self, response: http.client.HTTPResponse, conn: http.client.HTTPConnection, release):
        self._response = response
        self._conn = conn
        self._release = release  # unregisters the connection from the turn's cancel token

    def __iter__(self):
        try:
            while chunk := self._response.read1(65536):
                yield chunk
        except http.client.IncompleteRead as e:  # the server went away mid-body
            raise httpx2.RemoteProtocolError(f"incomplete body: {e}") from None
        except TimeoutError:
            raise httpx2.ReadTimeout("the server stopped sending") from None
        except (OSError, http.client.HTTPException) as e:
            raise httpx2.ReadError(str(e) or type(e).__name__) from None

    def close(self) -> None:
        self._release()
        _shut_down(self._conn)


class StdlibTransport(httpx2.BaseTransport):
    """One connection per request (streams are long; there is little to reuse). The request's own
    timeouts apply (the SDK's ``timeout``): connect for connecting, read for each wait after it."""

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url
        timeouts = request.extensions.get("timeout") or {}
        read_timeout = timeouts.get("read")
        conn = http.client.HTTPConnection(url.host, url.port or 80, timeout=timeouts.get("connect"))
        token = cancel.current.get()  # the turn's: cancelling it shuts this connection down, headers or body
        release = token.on_cancel(lambda: _shut_down(conn)) if token is not None else (lambda: None)
        try:
            conn.connect()
        except TimeoutError as e:
            release()
            conn.close()
            raise httpx2.ConnectTimeout(str(e) or "timed out connecting", request=request) from None
        except OSError as e:
            release()
            conn.close()
            raise httpx2.ConnectError(str(e) or type(e).__name__, request=request) from None
        try:
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.sock.settimeout(read_timeout)
            target = url.raw_path.decode("ascii")
            conn.request(request.method, target, body=request.read(), headers=dict(request.headers))
            response = conn.getresponse()  # waits for the headers: a read
        except TimeoutError as e:
            release()
            conn.close()
            raise httpx2.ReadTimeout(str(e) or "timed out waiting for the response", request=request) from None
        except (OSError, http.client.HTTPException) as e:
            release()
            conn.close()
            raise httpx2.ReadError(str(e) or type(e).__name__, request=request) from None
        # headers as the bytes that came (http.client decoded them as Latin-1): httpx2 takes non-ASCII that way
        headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in response.getheaders()]
        return httpx2.Response(response.status, headers=headers, stream=_Body(response, conn, release),
                               extensions={"http_version": b"HTTP/1.1"}, request=request)


def fast_transport_for(base_url: str) -> StdlibTransport | None:
    """The fast transport where it applies: plain http and no proxy in the way."""
    if not base_url.startswith("http://"):
        return None
    host = httpx2.URL(base_url).host
    proxies = urllib.request.getproxies()
    if proxies.get("http") or proxies.get("all"):
        if not urllib.request.proxy_bypass(host):
            return None
    return StdlibTransport()


class _Capped(httpx2.SyncByteStream):
    """A response's body decoded (its Content-Encoding undone a piece at a time, as httpx2 does) and
    counted: an error body is cut at MAX_ERROR_BODY; any other ends with StreamError past MAX_STREAM."""

    def __init__(self, response: httpx2.Response):
        encoding = [(k, v) for k, v in response.headers.multi_items() if k.lower() == "content-encoding"]
        self._raw = response.stream
        self._decoded = httpx2.Response(response.status_code, headers=encoding, stream=self._raw).iter_bytes() \
            if encoding else self._raw  # the plain case pays for no decoding layer
        self._error = response.status_code >= 400

    def __iter__(self):
        cap = limits.MAX_ERROR_BODY if self._error else limits.MAX_STREAM
        total = 0
        for chunk in self._decoded:
            total += len(chunk)
            if total > cap:
                if not self._error:
                    raise StreamError(f"the server sent more than {limits.size(cap)} in one answer: stopped there")
                yield chunk[:len(chunk) - (total - cap)]
                return
            yield chunk

    def close(self) -> None:
        self._raw.close()


def bounded_body(response: httpx2.Response) -> None:
    """A response hook for every client chat makes: the body is read decoded and capped, whoever reads
    it — our stream parser, or the openai SDK reading an error body whole — since a small gzip, br or
    zstd body can decode to gigabytes, and an endless one never ends."""
    response.stream = _Capped(response)
    for name in ("content-encoding", "content-length"):  # what comes now is decoded, and of another length
        if name in response.headers:
            del response.headers[name]
