"""The one exception tree of gridchat, and the one place foreign errors are translated into it.

    ChatError                    anything the user should see as a one-line message
    ├── ConfigError              a bad config file, flag or environment value
    ├── OutputError              the reply can't be written where it goes (stdout full or gone)
    └── BackendError             the server side
        ├── ServerUnreachable    nothing answered at the address (or no server found at all)
        ├── HTTPError            the server answered with an error status (.status)
        │   ├── ModelNotFound    404 for the model
        │   ├── ContextExceeded  the prompt does not fit the serving window (.prompt_tokens, .window)
        │   └── ToolsNotEnabled  tools were sent to a server started without tool support (.server)
        └── StreamError          the stream broke after it started: an in-band error event
            └── StreamCut        the connection dropped before the stream finished

``translate()`` maps the openai SDK's, httpx2's and the OS's errors into this tree; code outside
this module catches ``ChatError`` only. Anything it does not know is a bug of ours and is left to the
top level, which says so. Errors carry data (sizes, status, flavor); advice on what to type next is
the UI's (chat/advice.py), since a one-shot user can't type /compact.
"""

from __future__ import annotations

import html
import http.client
import importlib
import json
import re
import urllib.error

__all__ = [
    "BackendError",
    "ChatError",
    "ConfigError",
    "ContextExceeded",
    "HTTPError",
    "ModelNotFound",
    "NoServerFound",
    "OutputError",
    "ServerUnreachable",
    "StreamCut",
    "StreamError",
    "ToolsNotEnabled",
    "from_error_body",
    "translate",
]


class ChatError(Exception):
    """Base class; ``str(err)`` is the one line shown to the user."""


class ConfigError(ChatError):
    pass


class BackendError(ChatError):
    pass


class ServerUnreachable(BackendError):
    pass


class NoServerFound(ServerUnreachable):
    def __init__(self, tried: list[str]):
        super().__init__(f"no server found at {' or '.join(tried)}")
        self.tried = tried


class HTTPError(BackendError):
    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class ModelNotFound(HTTPError):
    pass


class ContextExceeded(HTTPError):
    def __init__(self, message: str, status: int | None = 400, *, prompt_tokens=None, window=None):
        super().__init__(message, status)
        self.prompt_tokens = prompt_tokens
        self.window = window


class ToolsNotEnabled(HTTPError):
    def __init__(self, message: str, status: int | None = None, *, server: str = "vllm"):
        super().__init__(message, status)
        self.server = server  # "vllm" | "llama-server": which flags it needs


class StreamError(BackendError):
    pass


class StreamCut(StreamError):
    pass


class OutputError(ChatError):
    """The reply could not be written where it goes (standard output full, or gone)."""


_VLLM_TOOL_FLAGS = "--enable-auto-tool-choice"
_NUM = r"([\d,]{1,20})"  # bounded: a search over a long run of digits stays linear


def _int(text: str | None) -> int | None:
    """A token count from an error message ("8,192"); None when it isn't a believable one."""
    digits = (text or "").replace(",", "")
    return int(digits) if digits.isdigit() and len(digits) <= 12 else None


def _count(value: object) -> int | None:
    """A token count from an error body's field, if it is one."""
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**12 else None


def _context_exceeded(message: str, body: dict, status: int | None) -> ContextExceeded:
    """Build the error with the sizes, from llama-server's fields or vLLM's (changing) wording."""
    window = _count(body.get("n_ctx"))
    prompt = _count(body.get("n_prompt_tokens"))
    if window is None:
        m = re.search(r"context length is (?:only )?" + _NUM, message)
        window = _int(m.group(1)) if m else None
    if prompt is None:
        m = re.search(_NUM + r" in the messages", message) or re.search(
            r"passed " + _NUM + r" input tokens", message
        ) or re.search(r"request \(" + _NUM + r" tokens\)", message)
        prompt = _int(m.group(1)) if m else None
    if window is None:
        m = re.search(r"context size \(" + _NUM + r" tokens\)", message)
        window = _int(m.group(1)) if m else None
    sizes = ""
    if prompt and window:
        sizes = f": the request needs {prompt:,} tokens, the server's window is {window:,}"
    elif window:
        sizes = f": the server's window is {window:,} tokens"
    return ContextExceeded(
        f"context exceeded{sizes}",
        status,
        prompt_tokens=prompt,
        window=window,
    )


_PAGE_LOOKED_AT = 64 << 10  # characters of an error page read for its title or text
_SHOWN = 300  # characters of it shown


def _page_text(body: str | bytes) -> str:
    """A text or HTML error body (a proxy's page) as one line: its title, else its first text. Only the
    start of it is looked at, with plain searches (no regex that could backtrack over hostile text)."""
    text = body[:_PAGE_LOOKED_AT]
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    if "<" not in text:
        return text
    lowered = text.lower()
    start = lowered.find(">", lowered.find("<title") + 1) if "<title" in lowered else -1
    end = lowered.find("</title", start) if start != -1 else -1
    title = " ".join(html.unescape(text[start + 1:end]).split()) if end != -1 else ""
    return (title or " ".join(html.unescape(_without_tags(text, lowered)).split()))[:_SHOWN]


def _without_tags(text: str, lowered: str) -> str:
    """The text outside tags (and outside script and style elements), in one pass."""
    out, at = [], 0
    while (tag := text.find("<", at)) != -1:
        out.append(text[at:tag])
        close = text.find(">", tag)
        if close == -1:
            return " ".join(out)
        name = lowered[tag + 1:tag + 7]
        at = close + 1
        if name.startswith(("script", "style")):  # skip to its end tag, content and all
            end = lowered.find("</" + ("script" if name.startswith("script") else "style"), at)
            at = len(text) if end == -1 else (lowered.find(">", end) + 1 or len(text))
        out.append(" ")
    out.append(text[at:])
    return "".join(out)


def from_error_body(body: object, status: int | None = None) -> BackendError:
    """An error from a server's error object (``{"message", "type", "code", ...}``), any flavor."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    if isinstance(body, (str, bytes)):
        body = {"message": _page_text(body)}
    elif not isinstance(body, dict):
        body = {"message": str(body) if body else ""}
    message = str(body.get("message") or body.get("detail") or "").strip()
    kind = str(body.get("type") or "")
    if status is None and isinstance(body.get("code"), int):
        status = body["code"]
    first_line = message[:_PAGE_LOOKED_AT].splitlines()[0][:_SHOWN] if message else (kind or "no message")[:_SHOWN]
    lowered = message.lower()

    if kind == "exceed_context_size_error" or "context length" in lowered or "context size" in lowered:
        return _context_exceeded(message, body, status)
    if _VLLM_TOOL_FLAGS in message:
        return ToolsNotEnabled("the server has tool calling off (vLLM was started without --enable-auto-tool-choice "
                               "--tool-call-parser)", status, server="vllm")
    if "requires --jinja" in message:
        return ToolsNotEnabled("the server has tool calling off (llama-server was started without --jinja)", status,
                               server="llama-server")
    if status == 404 and "model" in lowered:
        return ModelNotFound(f"model not found: {first_line}", status)
    prefix = f"server error {status}" if status else "server error"
    return HTTPError(f"{prefix}: {first_line}", status)


def _foreign(exc: BaseException, package: str):
    """The package an exception comes from, imported in full, if it does: never a half-imported module
    found in sys.modules while another thread is importing it (the REPL preloads the SDK)."""
    if type(exc).__module__.split(".")[0] != package:
        return None
    return importlib.import_module(package)  # waits on the import lock until the module is complete


def translate(exc: BaseException) -> ChatError | None:
    """Map a known error raised while talking to a server into the tree above: the openai SDK's,
    httpx2's, the standard library's HTTP client's and the OS's. Anything else is None: a bug of
    ours, to be reported as one (never disguised as a server error)."""
    if isinstance(exc, ChatError):
        return exc
    openai = _foreign(exc, "openai")
    if openai is not None:
        if isinstance(exc, openai.APIStatusError):
            return from_error_body(exc.body, exc.status_code)
        if isinstance(exc, openai.APITimeoutError):
            return ServerUnreachable(f"the server did not answer in time ({_where(exc)})")
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__ or exc.__context__
            detail = f": {_short(cause)}" if cause else ""
            return ServerUnreachable(f"cannot reach the server at {_where(exc)}{detail}")
        return BackendError(f"client error: {_short(exc)}")
    httpx2 = _foreign(exc, "httpx2")
    if httpx2 is not None:
        if isinstance(exc, httpx2.TimeoutException):
            return ServerUnreachable(f"the server stopped answering in time ({_short(exc)})")
        if isinstance(exc, httpx2.TransportError):
            return StreamCut(f"the connection broke mid-reply ({_short(exc)})")
        if isinstance(exc, httpx2.DecodingError):  # e.g. a Content-Encoding the body doesn't have
            return StreamError(f"the server sent a body that can't be decoded ({_short(exc)})")
        if isinstance(exc, httpx2.HTTPError):
            return BackendError(f"HTTP error: {_short(exc)}")
        return None
    if isinstance(exc, urllib.error.HTTPError):  # server detection uses the standard library
        try:
            body = exc.read() or b""
            body = json.loads(body) if body.lstrip()[:1] in (b"{", b"[") else body.decode("utf-8", "replace")
        except (OSError, ValueError):
            body = None
        return from_error_body(body or {"message": exc.reason}, exc.code)
    if isinstance(exc, urllib.error.URLError):
        return ServerUnreachable(_short(exc.reason) if isinstance(exc.reason, BaseException) else str(exc.reason))
    if isinstance(exc, ConnectionRefusedError):
        return ServerUnreachable(f"connection refused ({_short(exc)})")
    if isinstance(exc, TimeoutError):
        return ServerUnreachable("the server did not answer in time")
    if isinstance(exc, ConnectionError):
        return StreamCut(f"the connection broke mid-reply ({_short(exc)})")
    if isinstance(exc, OSError):
        return ServerUnreachable(f"network error: {_short(exc)}")
    if isinstance(exc, (json.JSONDecodeError, http.client.HTTPException)):
        return StreamError(f"the server sent something unreadable: {_short(exc)}")
    return None


def _where(exc) -> str:
    try:
        url = exc.request.url
        return f"{url.scheme}://{url.host}:{url.port}" if url.port else f"{url.scheme}://{url.host}"
    except Exception:
        return "the configured address"


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
