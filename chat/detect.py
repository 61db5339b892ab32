"""What is at the other end: found once at connect (flavor, models, serving window).

Uses the standard library's HTTP client, not the openai SDK, so that a session can show its
prompt before the SDK (slow to import) is loaded.
"""

from __future__ import annotations

import http.client
import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from . import redact
from .config import check
from .errors import ChatError, NoServerFound, ServerUnreachable, StreamCut, UsageError, from_error_body, network
from .limits import MAX_JSON, MAX_MODEL_ID, read_capped
from .wire import load_json, obj, seq, text

__all__ = ["LOCAL_CANDIDATES", "ServerInfo", "detect", "find_local", "post_json", "root_url"]

# The usual local addresses, in the order they are reported.
LOCAL_CANDIDATES = [
    ("http://127.0.0.1:8000/v1", "vLLM's default port"),
    ("http://127.0.0.1:8080/v1", "llama-server's default port"),
]

VLLM, LLAMA, OTHER = "vllm", "llama-server", "openai-compatible"


@dataclass
class ServerInfo:
    base_url: str
    flavor: str  # vllm | llama-server | openai-compatible
    models: list[str]
    windows: dict[str, int] = field(default_factory=dict)  # model -> serving context window
    version: str | None = None

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


_OPENER = urllib.request.build_opener(_AsItIs)


def _json_at(request: urllib.request.Request, timeout: float):
    """The JSON a request is answered with; the whole answer must come within ``timeout`` and be at
    most MAX_JSON. An error status is the server's error; a redirect is one too."""
    url = request.full_url
    with _OPENER.open(request, timeout=timeout) as response:
        body = read_capped(response, MAX_JSON, url, timeout)
        status, location = response.status, response.headers.get("Location")
    if 300 <= status < 400:
        raise from_error_body({"message": f"the server redirects to {location}: use that address"}, status)
    if status >= 400:
        try:
            error = json.loads(body) if body.lstrip()[:1] in (b"{", b"[") else body.decode("utf-8", "replace")
        except (ValueError, RecursionError):
            error = body
        raise from_error_body(error or {"message": response.reason}, status)
    return load_json(body or b"null", url)


def _get_json(url: str, api_key: str | None, timeout: float):
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    return _json_at(request, timeout)


def post_json(url: str, body: dict, api_key: str | None, timeout: float = 10.0):
    """POST ``body`` to one of the server's own endpoints (/apply-template, /tokenize …); its JSON."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Accept": "application/json"})
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    return _json_at(request, timeout)


def _try_json(url: str, api_key: str | None, timeout: float) -> dict:
    """A best-effort extra look (/props, /version): {} when the server lacks it or says nonsense."""
    try:
        value = _get_json(url, api_key, timeout)
    except (OSError, http.client.HTTPException, ChatError):  # ChatError: an error status, or nonsense
        return {}
    return value if isinstance(value, dict) else {}


def _window(value) -> int | None:
    """A context window as a server states it, if it is a believable one."""
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 10**9 else None


def detect(base_url: str, api_key: str | None = None, timeout: float = 5.0) -> ServerInfo:
    """Ask the server what it is. Raises a ChatError (ServerUnreachable, HTTPError, StreamError) on
    failure; fields of the wrong shape are left out rather than trusted."""
    base = base_url.rstrip("/")
    redact.hold_url(base)  # a typed address's credentials are secrets like the key
    try:
        check("base_url", base)  # a typed address (/compare @URL, a judge) passes the flags' rule too
    except ValueError as e:
        raise UsageError(f"{base}: {e}") from None
    try:
        with network():
            listing = _get_json(f"{base}/models", api_key, timeout)
    except (ServerUnreachable, StreamCut) as err:
        raise ServerUnreachable(f"cannot reach a server at {base} ({err})") from None
    data = seq(obj(listing, f"{base}/models").get("data"), f"{base}/models' data")
    entries = [e for e in data if isinstance(e, dict) and isinstance(e.get("id"), str) and 0 < len(e["id"]) <= MAX_MODEL_ID]
    info = ServerInfo(base_url=base, flavor=OTHER, models=[text(e["id"], "a model id") for e in entries])

    if any(e.get("owned_by") == "vllm" or "max_model_len" in e for e in entries):
        info.flavor = VLLM
        info.windows = {text(e["id"], "a model id"): w for e in entries if (w := _window(e.get("max_model_len")))}
        version = _try_json(f"{root_url(base)}/version", api_key, timeout).get("version")
        info.version = text(version, "a version") if isinstance(version, str) else None
        return info

    props = _try_json(f"{root_url(base)}/props", api_key, timeout)
    if "default_generation_settings" in props:
        info.flavor = LLAMA
        settings = props.get("default_generation_settings")
        window = _window(settings.get("n_ctx")) if isinstance(settings, dict) else None
        if window:  # the serving window; /v1/models' n_ctx_train is the training one
            info.windows["*"] = window
        build = props.get("build_info")
        info.version = text(build, "a build") if isinstance(build, str) else None
    elif any(e.get("owned_by") == "llamacpp" or "meta" in e for e in entries):
        info.flavor = LLAMA
    return info


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
    raise NoServerFound(["127.0.0.1:8000 (vLLM)", "127.0.0.1:8080 (llama-server)"])
