"""What is at the other end: found once at connect (flavor, models, serving window).

Uses the standard library's HTTP client, not the openai SDK, so that a session can show its
prompt before the SDK (slow to import) is loaded.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import socket
import threading
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from .adapters import Adapter
from .config import check
from .errors import (ChatError, NoServerFound, ServerUnreachable, StreamCut, UsageError, from_error_body, network,
                     redirected)
from .flavors import FLAVORS, Flavor, flavor_named
from .limits import MAX_ADAPTERS, MAX_JSON, MAX_MODEL_ID, read_capped
from .wire import load_json, obj, seq, text

__all__ = ["LOCAL_CANDIDATES", "ServerInfo", "detect", "find_local", "post_json", "root_url"]

# The usual local addresses (each flavor's default), in the order they are reported.
LOCAL_CANDIDATES = [(f.local_url, f"{f.title}'s default port") for f in FLAVORS if f.local_url]


@dataclass
class ServerInfo:
    base_url: str
    flavor: str  # a flavor's name (chat/flavors.py): vllm | llama-server | ollama | openai-compatible
    models: list[str]
    windows: dict[str, int] = field(default_factory=dict)  # model -> serving context window ("*": every one)
    version: str | None = None
    adapters: list[Adapter] = field(default_factory=list)  # LoRA adapters it serves (the first MAX_ADAPTERS)
    adapters_unread: int = 0  # how many more it lists: past the cap, or named too long (not offered)

    @property
    def kind(self) -> Flavor:
        """What this flavor of server does differently."""
        return flavor_named(self.flavor)

    def window(self, model: str | None) -> int | None:
        if model in self.windows:
            return self.windows[model]
        return self.windows.get("*")


def root_url(base_url: str) -> str:
    base = base_url.rstrip("/")
    return base[:-3] if base.endswith("/v1") else base


class _AsItIs(urllib.request.HTTPErrorProcessor):
    """Every answer comes back as it came, to be read (capped) here: urllib would raise on an error and
    leave its body to be read whole, and would follow a redirect — carrying the API key to another host."""

    def http_response(self, request, response):
        return response

    https_response = http_response


class _Deadline:
    """A connection cut when its timeout has passed since it connected: the socket's own timeout is
    per read, so a server dripping its status line or headers a byte at a time (or sending
    ``100 Continue`` forever) would hold chat for hours."""

    def connect(self) -> None:
        super().connect()
        self._cut = threading.Timer(self.timeout, self._shut)
        self._cut.daemon = True
        self._cut.start()

    def _shut(self) -> None:
        if (sock := self.sock) is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        if (cut := getattr(self, "_cut", None)) is not None:
            cut.cancel()
        super().close()


class _HTTP(_Deadline, http.client.HTTPConnection):
    pass


class _HTTPS(_Deadline, http.client.HTTPSConnection):
    pass


class _DeadlineHandler(urllib.request.HTTPHandler, urllib.request.HTTPSHandler):
    def http_open(self, req):
        return self.do_open(_HTTP, req)

    def https_open(self, req):
        return self.do_open(_HTTPS, req, context=self._context)


_OPENER = urllib.request.build_opener(_AsItIs, _DeadlineHandler)


def _request(url: str, api_key: str | None, **kwargs) -> urllib.request.Request:
    """A request to ``url``; credentials in the address (``http://user:pass@host``) are not part of the
    host: they go as Basic auth, unless a key is given (there is one Authorization header)."""
    parts = urllib.parse.urlsplit(url)
    user, password = parts.username, parts.password
    if user is not None or password is not None:
        url = urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    request = urllib.request.Request(url, **kwargs)
    request.add_header("Accept", "application/json")
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    elif user is not None or password is not None:
        pair = f"{urllib.parse.unquote(user or '')}:{urllib.parse.unquote(password or '')}"
        request.add_header("Authorization", "Basic " + base64.b64encode(pair.encode()).decode())
    return request


def _json_at(request: urllib.request.Request, timeout: float):
    """The JSON a request is answered with; the whole answer must come within ``timeout`` and be at
    most MAX_JSON. An error status is the server's error; a redirect is one too."""
    url = request.full_url
    started = time.monotonic()
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            body = read_capped(response, MAX_JSON, url, timeout)
            status, location = response.status, response.headers.get("Location")
    except (OSError, http.client.HTTPException):
        if time.monotonic() - started >= timeout:  # cut at the deadline (_Deadline)
            raise TimeoutError(f"{url} did not answer in time") from None
        raise
    if 300 <= status < 400:
        raise redirected(location, status)
    if status >= 400:
        try:
            error = json.loads(body) if body.lstrip()[:1] in (b"{", b"[") else body.decode("utf-8", "replace")
        except (ValueError, RecursionError):
            error = body
        raise from_error_body(error or {"message": response.reason}, status)
    return load_json(body or b"null", url)


def _get_json(url: str, api_key: str | None, timeout: float):
    return _json_at(_request(url, api_key), timeout)


def post_json(url: str, body: dict, api_key: str | None, timeout: float = 10.0):
    """POST ``body`` to one of the server's own endpoints (/apply-template, /tokenize …); its JSON."""
    request = _request(url, api_key, data=json.dumps(body).encode(), method="POST",
                       headers={"Content-Type": "application/json"})
    return _json_at(request, timeout)


def _try_json(url: str, api_key: str | None, timeout: float, kind: type = dict) -> dict | list:
    """A best-effort extra look (/props, /version; a list: /lora-adapters): an empty one when the
    server lacks it or says nonsense."""
    try:
        value = _get_json(url, api_key, timeout)
    except (OSError, http.client.HTTPException, ChatError):  # ChatError: an error status, or nonsense
        return kind()
    return value if isinstance(value, kind) else kind()


def detect(base_url: str, api_key: str | None = None, timeout: float = 5.0) -> ServerInfo:
    """Ask the server what it is. Raises a ChatError (ServerUnreachable, HTTPError, StreamError) on
    failure; fields of the wrong shape are left out rather than trusted."""
    base = base_url.rstrip("/")
    try:
        base = check("base_url", base)  # a typed address (/compare @URL, a judge) passes the flags' rule too
    except ValueError as e:
        raise UsageError(f"{base}: {e}") from None
    try:
        with network():
            listing = _get_json(f"{base}/models", api_key, timeout)
    except (ServerUnreachable, StreamCut) as err:
        raise ServerUnreachable(f"cannot reach a server at {base} ({err})") from None
    data = seq(obj(listing, f"{base}/models").get("data"), f"{base}/models' data")
    entries = [e for e in data if isinstance(e, dict) and isinstance(e.get("id"), str) and 0 < len(e["id"]) <= MAX_MODEL_ID]
    for e in entries:
        e["id"] = text(e["id"], "a model id")
    look = lambda path, kind=dict: _try_json(f"{root_url(base)}{path}", api_key, timeout, kind)  # noqa: E731
    for flavor in FLAVORS:  # the first to recognise it; the last, the generic one, takes any
        facts = flavor.recognise(entries, look)
        if facts is not None:
            adapters = [a for a in facts.adapters if len(a.name) <= MAX_MODEL_ID][:MAX_ADAPTERS]
            return ServerInfo(base, flavor.name, [e["id"] for e in entries], facts.windows, facts.version,
                              adapters, len(facts.adapters) - len(adapters))
    raise AssertionError("the generic flavor recognises every server")


def find_local(timeout: float = 1.0) -> ServerInfo:
    """Look at the usual local addresses at once; the first in LOCAL_CANDIDATES that answers wins.
    No API key goes there (nobody named them): one that wants a key is named in the error."""

    def probe(url: str) -> ServerInfo | ChatError:
        try:
            return detect(url, None, timeout)
        except ChatError as err:
            return err

    with ThreadPoolExecutor(len(LOCAL_CANDIDATES)) as pool:
        found = list(pool.map(probe, [url for url, _ in LOCAL_CANDIDATES]))
    info = next((f for f in found if isinstance(f, ServerInfo)), None)
    if info is not None:
        return info
    locked = [url for (url, _), f in zip(LOCAL_CANDIDATES, found) if getattr(f, "status", None) in (401, 403)]
    if locked:
        raise ServerUnreachable(f"the server at {locked[0]} wants an API key, and chat sends yours only to a "
                                f"server you name: --base-url {locked[0]}")
    raise NoServerFound([f"{f.local_url.removeprefix('http://').removesuffix('/v1')} ({f.title})"
                         for f in FLAVORS if f.local_url])
