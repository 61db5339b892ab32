"""The seam between the conversation and a server: a Request in, typed events out."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Protocol

from .. import cancel
from ..conversation import Message
from ..errors import ChatError, HTTPError, StreamError, from_error_body, network
from ..flavors import refine
from ..events import Event
from ..wire import count, obj, seq, text
from .sse import iter_lines, iter_sse

__all__ = ["Backend", "Request", "ToolSpec", "as_sent", "in_band_error", "open_sse", "token_logprobs", "tool_choice"]

MAX_ALTERNATIVES = 20  # per token: what a request may ask for (chat/params.py's logprobs)
MIN_LOGPROB = -9999.0  # a probability of e^-9999: none at all, and a finite figure to write


@dataclass(slots=True)
class ToolSpec:
    """A function tool as the model sees it (each API wraps it in its own shape)."""

    name: str
    description: str
    parameters: dict


@dataclass(slots=True)
class Request:
    model: str
    system: str | None
    messages: list[Message]
    params: dict = field(default_factory=dict)  # temperature, top_p, max_tokens: only those set
    tools: list[ToolSpec] = field(default_factory=list)
    extra_body: dict = field(default_factory=dict)  # server-specific fields (grammar, lora, ...)
    lora: dict | None = None  # the LoRA adapter applied ({"name", "scale"}): recorded with the reply


class Backend(Protocol):
    api: str  # "chat" | "responses"
    unsupported: set[str]  # optional sampling parameters the server rejected: left out of later requests
    last_sent: tuple[str, dict] | None  # (API path, the JSON) of the last request it made
    last_request: Request | None  # that request, before its API's shaping (/prompt renders it)

    def stream(self, request: Request) -> Iterator[Event]:
        """Yield events until the reply is complete; raise a ``chat.errors.ChatError`` on failure.

        Closing the iterator early (Ctrl-C) must close the connection.
        """
        ...


def tool_choice(request: Request, unsupported: set[str], named: Callable[[str], dict]) -> str | dict | None:
    """The tool_choice to send with the request's tools (None: the server's default, auto): a mode
    as it is, a tool's name in the API's own shape, ``named(name)``."""
    choice = None if "tool_choice" in unsupported else request.params.get("tool_choice")
    return named(choice) if choice is not None and choice not in ("auto", "required", "none") else choice


def as_sent(body: dict) -> dict:
    """The JSON the SDK sends for ``body`` (its extra_body merged in): what /raw shows."""
    sent = {k: v for k, v in body.items() if k != "extra_body"}
    sent.update(body.get("extra_body") or {})
    return sent


def open_sse(create, **kwargs) -> Iterator[tuple[str | None, str]]:
    """Start a streaming request with an SDK ``with_streaming_response.create`` and yield its
    server-sent events; every failure comes out translated into the ChatError tree, and a stream
    shut down by the turn's cancel token ends with Cancelled."""
    token = cancel.current.get()
    try:
        with network(), create(**kwargs) as response:
            with token.closing(response.close) if token is not None else nullcontext():
                yield from iter_sse(iter_lines(response.http_response.iter_bytes()))
    except Exception as exc:
        if token is not None and token.cancelled:  # the connection was shut down under it: a stop
            raise cancel.Cancelled from None
        if isinstance(exc, ChatError) and refine(exc) is not exc:  # tool calling off: the flavor says so
            raise refine(exc) from None
        raise


def in_band_error(body: object) -> ChatError:
    """An error event inside a started stream (HTTP 200): keep its specific kind if it has one."""
    err = from_error_body(body)
    if type(err) is HTTPError:
        return StreamError(f"the server reported an error mid-reply: {str(err).split(': ', 1)[-1]}")
    return err


def token_logprobs(entries: object) -> list[dict]:
    """The tokens of a streamed piece with their log-probabilities, as both APIs send them
    (``[{"token", "logprob", "top_logprobs": [{"token", "logprob"}, …]}, …]``), in the shape the
    Logprobs event carries: ``{"token", "logprob", "top": {alternative: logprob}}``. A figure that is
    no log-probability is left out: the token keeps its text with ``"logprob": None``, an alternative
    is not listed."""
    tokens = []
    for entry in seq(entries, "logprobs"):
        entry = obj(entry, "a token's logprobs")
        top = {}
        for alternative in seq(entry.get("top_logprobs"), "top_logprobs")[:MAX_ALTERNATIVES]:
            alternative = obj(alternative, "an alternative token")
            logprob = _logprob(alternative.get("logprob"))
            if logprob is not None:
                top.setdefault(text(alternative.get("token"), "a token"), logprob)
        tokens.append({"token": text(entry.get("token"), "a token"), "logprob": _logprob(entry.get("logprob")),
                       "top": top})
    return tokens


def _logprob(value: object) -> float | None:
    """A log-probability: at most 0, -Infinity (a token with no chance, as vLLM writes it) and anything
    below MIN_LOGPROB read as MIN_LOGPROB; None for none sent and for a number that is none (NaN, above
    0: a probability above 1). Not a number at all: the stream is unreadable (StreamError)."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return count(value, "a logprob")
    if not value <= 0:  # NaN fails the test too
        return None
    return max(value, MIN_LOGPROB) + 0.0  # an integer of any size: compared, never made a float first
