"""The one exception tree of gridchat, and the one boundary where foreign errors enter it.

    ChatError                    anything the user should see as a one-line message
    ├── UsageError               a command used wrongly, or asking for what isn't there
    ├── ConfigError              a bad setting: a flag, the environment, the config file, a /set value
    ├── DataError                a file that can't be read as what it should be
    │   ├── TranscriptError      not a transcript, or no session to resume
    │   ├── ProbeFileError       a probe set or an import that can't be used
    │   └── RunDirError          a probe run's directory that can't be used
    ├── FileError                a file that can't be written as asked
    │   └── Locked               another chat holds it (a session open twice, one run directory) (.pid)
    ├── PathError                a path the system refused where it was only looked at (a name too long)
    ├── OutputError              the reply can't be written where it goes (stdout full or gone)
    └── BackendError             the server side
        ├── ServerUnreachable    nothing answered at the address
        │   └── NoServerFound    no address given, and nothing at the usual local ones
        ├── HTTPError            the server answered with an error status (.status)
        │   ├── ModelNotFound    404 for the model
        │   ├── ContextExceeded  the prompt does not fit the serving window (.prompt_tokens, .window)
        │   └── ToolsNotEnabled  tools were sent to a server started without tool support (.server)
        └── StreamError          the stream broke after it started: an in-band error event
            └── StreamCut        the connection dropped before the stream finished

``network()`` is the boundary, in the style of httpx's ``map_httpcore_exceptions``: a context
manager put around every call that talks to a server, which turns the openai SDK's, httpx2's, the
standard library's HTTP clients' and the socket layer's errors into this tree by one table
(``_MAPPING``). Only there does an ``OSError`` mean "network error": files have their own boundaries
(chat/files.py writes, chat/datafile.py reads), and ``paths()``, around each command that is given
paths (a command line's whole run, one slash command), makes one line of an ``OSError`` the system
raised about a path that was only looked at (``exists()`` of a name too long). Anything the tables do
not know is a bug of ours and goes through untouched, to the top level, which says so. Errors carry
data (sizes, status, flavor); advice on what to type next is the UI's (chat/advice.py), since a
one-shot user can't type /compact.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = [
    "BackendError",
    "ChatError",
    "ConfigError",
    "ContextExceeded",
    "DataError",
    "FileError",
    "HTTPError",
    "Locked",
    "ModelNotFound",
    "NoServerFound",
    "OutputError",
    "PathError",
    "ProbeFileError",
    "RunDirError",
    "ServerUnreachable",
    "StreamCut",
    "StreamError",
    "ToolsNotEnabled",
    "TranscriptError",
    "UsageError",
    "from_error_body",
    "known",
    "network",
    "paths",
    "translate",
]


class ChatError(Exception):
    """Base class; ``str(err)`` is the one line shown to the user."""


class UsageError(ChatError):
    """A command used wrongly, or asking for what isn't there (no panel open, nothing to mark)."""


class ConfigError(ChatError):
    """A bad setting: a flag, an environment variable, the config file, a /set value."""


class DataError(ChatError):
    """A file that can't be read as what it should be; the message names ``file:line`` where it can."""


class TranscriptError(DataError):
    pass


class ProbeFileError(DataError):
    pass


class RunDirError(DataError):
    pass


class FileError(ChatError):
    """A file that can't be written as asked; the message says where and why."""


class Locked(FileError):
    """Another process holds the lock (``pid``: which, when it said)."""

    def __init__(self, message: str, pid: int | None):
        super().__init__(message)
        self.pid = pid


class PathError(ChatError):
    """A path the system refused where it was only looked at: a name too long, a loop of links."""


class OutputError(ChatError):
    """The reply could not be written where it goes (standard output full, or gone)."""


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
    """Made from a server's own error by chat/flavors.py, which knows each flavor's wording."""

    def __init__(self, message: str, status: int | None = None, *, server: str = "vllm"):
        super().__init__(message, status)
        self.server = server  # the flavor's name: its advice says which flags it needs


class StreamError(BackendError):
    pass


class StreamCut(StreamError):
    pass


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
        ) or re.search(r"contains (?:at least )?" + _NUM + r" input tokens", message) or re.search(
            r"request \(" + _NUM + r" tokens\)", message
        )
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


def redirected(location: object, status: int) -> BackendError:
    """A redirect is an error: following it would send the conversation (and maybe the key) to a
    server nobody named."""
    return from_error_body({"message": f"the server redirects to {location}: use that address"}, status)


def _status_error(e) -> BackendError:
    if 300 <= e.status_code < 400:
        return redirected(e.response.headers.get("location"), e.status_code)
    return from_error_body(e.body, e.status_code)


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
    if status == 404 and "model" in lowered:
        return ModelNotFound(f"model not found: {first_line}", status)
    prefix = f"server error {status}" if status else "server error"
    return HTTPError(f"{prefix}: {first_line}", status)


def _where(exc) -> str:
    try:
        url = exc.request.url
        return f"{url.scheme}://{url.host}:{url.port}" if url.port else f"{url.scheme}://{url.host}"
    except Exception:
        return "the configured address"


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def _connection_error(exc) -> ChatError:
    cause = exc.__cause__ or exc.__context__
    return ServerUnreachable(f"cannot reach the server at {_where(exc)}" + (f": {_short(cause)}" if cause else ""))


def _urllib_status(exc) -> ChatError:
    """Server detection uses the standard library: its error statuses carry a body like the SDK's."""
    try:
        body = exc.read(MAX_ERROR_BODY) or b""
        body = json.loads(body) if body.lstrip()[:1] in (b"{", b"[") else body.decode("utf-8", "replace")
    except (OSError, ValueError):
        body = None
    return from_error_body(body or {"message": exc.reason}, exc.code)


def _urllib_reason(exc) -> ChatError:
    reason = exc.reason
    return ServerUnreachable(_short(reason) if isinstance(reason, BaseException) else str(reason))


MAX_ERROR_BODY = 256 * 1024  # of an error body read for its message: a proxy's page is far smaller

# (package, class name) -> the ChatError it becomes. An exception is looked up by the classes of its
# MRO, most specific first, by name: no foreign module needs importing to match (the REPL loads the
# SDK in the background, so a half-imported module must never be touched here).
_MAPPING: dict[tuple[str, str], Callable[[BaseException], ChatError]] = {
    ("openai", "APIStatusError"): lambda e: _status_error(e),
    ("openai", "APITimeoutError"): lambda e: ServerUnreachable(f"the server did not answer in time ({_where(e)})"),
    ("openai", "APIConnectionError"): _connection_error,
    ("openai", "OpenAIError"): lambda e: BackendError(f"client error: {_short(e)}"),
    ("httpx2", "TimeoutException"): lambda e: ServerUnreachable(f"the server stopped answering in time ({_short(e)})"),
    ("httpx2", "TransportError"): lambda e: StreamCut(f"the connection broke mid-reply ({_short(e)})"),
    ("httpx2", "DecodingError"): lambda e: StreamError(f"the server sent a body that can't be decoded ({_short(e)})"),
    ("httpx2", "HTTPError"): lambda e: BackendError(f"HTTP error: {_short(e)}"),
    ("urllib", "HTTPError"): _urllib_status,
    ("urllib", "URLError"): _urllib_reason,
    ("http", "HTTPException"): lambda e: StreamError(f"the server sent something unreadable: {_short(e)}"),
    ("json", "JSONDecodeError"): lambda e: StreamError(f"the server sent something unreadable: {_short(e)}"),
    ("builtins", "ConnectionRefusedError"): lambda e: ServerUnreachable(f"connection refused ({_short(e)})"),
    ("builtins", "TimeoutError"): lambda e: ServerUnreachable("the server did not answer in time"),
    ("builtins", "ConnectionError"): lambda e: StreamCut(f"the connection broke mid-reply ({_short(e)})"),
    ("builtins", "OSError"): lambda e: ServerUnreachable(f"network error: {_short(e)}"),
}


def translate(exc: BaseException) -> ChatError | None:
    """The ChatError a foreign error met while talking to a server becomes (``_MAPPING``); None for
    anything else: a bug of ours, to be reported as one (never disguised as a server error)."""
    if isinstance(exc, ChatError):
        return exc
    for cls in type(exc).__mro__:
        make = _MAPPING.get((cls.__module__.split(".")[0], cls.__name__))
        if make is not None:
            return make(exc)
    return None


def known(exc: Exception) -> ChatError:
    """The ChatError ``exc``, met while talking to a server, becomes; ``exc`` itself raised when it is
    none of the known ones (a bug of ours, never disguised as a server's error). For errors caught
    elsewhere (a stream loop's), as ``network`` is for calls."""
    err = translate(exc)
    if err is None:
        raise exc
    return err


@contextmanager
def network() -> Iterator[None]:
    """Around a call that talks to a server: known foreign errors leave as ChatErrors (``translate``),
    anything else as it is."""
    try:
        yield
    except ChatError:
        raise
    except Exception as exc:
        err = translate(exc)
        if err is None:
            raise
        raise err from None


_NAME_SHOWN = 60  # characters of a refused path shown: it may be one the system found too long


@contextmanager
def paths() -> Iterator[None]:
    """Around a command that is given paths: an OSError about a path (one that names it) leaves as a
    PathError, one line with the system's reason; anything else as it is."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None or not exc.strerror:
            raise
        name = str(exc.filename)
        shown = name if len(name) <= _NAME_SHOWN else name[:_NAME_SHOWN] + "…"
        raise PathError(f"{shown}: {exc.strerror}") from None
