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

from .errors import ChatError, ServerUnreachable, StreamCut, translate

__all__ = ["LOCAL_CANDIDATES", "ServerInfo", "detect", "find_local"]

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


def _root(base_url: str) -> str:
    base = base_url.rstrip("/")
    return base[:-3] if base.endswith("/v1") else base


def _get_json(url: str, api_key: str | None, timeout: float):
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


def _try_json(url: str, api_key: str | None, timeout: float):
    """A best-effort extra look (/props, /version): None when the server lacks it."""
    try:
        return _get_json(url, api_key, timeout)
    except (OSError, ValueError, http.client.HTTPException):
        return None


def detect(base_url: str, api_key: str | None = None, timeout: float = 5.0) -> ServerInfo:
    """Ask the server what it is. Raises a ChatError (ServerUnreachable, HTTPError) on failure."""
    base = base_url.rstrip("/")
    try:
        listing = _get_json(f"{base}/models", api_key, timeout)
    except Exception as exc:
        err = translate(exc)
        if err is None:
            raise
        if isinstance(err, (ServerUnreachable, StreamCut)):
            raise ServerUnreachable(f"cannot reach a server at {base} ({err})") from None
        raise err from None
    entries = [e for e in (listing or {}).get("data") or [] if isinstance(e, dict) and e.get("id")]
    info = ServerInfo(base_url=base, flavor=OTHER, models=[e["id"] for e in entries])

    if any(e.get("owned_by") == "vllm" or "max_model_len" in e for e in entries):
        info.flavor = VLLM
        info.windows = {e["id"]: e["max_model_len"] for e in entries if e.get("max_model_len")}
        version = _try_json(f"{_root(base)}/version", api_key, timeout)
        info.version = version.get("version") if isinstance(version, dict) else None
        return info

    props = _try_json(f"{_root(base)}/props", api_key, timeout)
    if isinstance(props, dict) and "default_generation_settings" in props:
        info.flavor = LLAMA
        n_ctx = (props.get("default_generation_settings") or {}).get("n_ctx")
        if n_ctx:  # the serving window; /v1/models' n_ctx_train is the training one
            info.windows["*"] = n_ctx
        info.version = props.get("build_info")
    elif any(e.get("owned_by") == "llamacpp" or "meta" in e for e in entries):
        info.flavor = LLAMA
    return info


def find_local(api_key: str | None = None, timeout: float = 1.0) -> ServerInfo | None:
    """Look at the usual local addresses at once; the first in LOCAL_CANDIDATES that answers wins."""

    def probe(url: str) -> ServerInfo | None:
        try:
            return detect(url, api_key, timeout)
        except ChatError:
            return None

    with ThreadPoolExecutor(len(LOCAL_CANDIDATES)) as pool:
        found = list(pool.map(probe, [url for url, _ in LOCAL_CANDIDATES]))
    return next((info for info in found if info is not None), None)
