"""A backend for many replies nobody watches arrive (probe runs): the same requests as the SDK's
backends make (their ``body()``), sent over kept-alive connections (http1.py) without the SDK (not
even imported: ~0.5 s of a run's start-up), and each read of a stream parsed at once — not a token
at a time.

What a read brought is split into events in one pass (sse.py's EventSplitter) and its JSON decoded
in one call by msgspec into the few fields a reply needs (about 0.5 µs a chunk, where json.loads and a
walk over the dict cost 3–5 µs). The answer's and the reasoning's pieces are joined and handed to the
API's own stream parser (chat_completions.py's ``delta`` and ``figures``, the fields already read;
responses.py) as one delta, so every rule of reading a stream — inline <think> split, usage and speed
checked, lone surrogates, in-band errors, tool calls — is the parser's, as for any stream. A read holding anything else (a tool call, an error, token
probabilities, a shape the fast decoder does not take) goes to the parser chunk by chunk, as it would arrive from the SDK: the
fast path decides speed only, never what a reply holds. Joined deltas say how many they hold
(``pieces``), so a reply without usage still counts its tokens; the time to the first token is the
time of the first read that held one.

Where it does not apply (https, a proxy) ``bulk_backend`` says so, and the SDK's backend is used.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import msgspec

from .. import cancel, limits
from ..errors import ChatError, StreamCut, from_error_body, network, redirected
from ..events import Event, ReasoningDelta
from ..flavors import refine
from ..wire import load_object, text
from .base import Backend, Request, as_sent
from .chat_completions import ChatStreamParser
from .http1 import Pool, plain_http
from .responses import ResponsesStreamParser
from .sse import EventSplitter

__all__ = ["BulkBackend", "StreamReading", "bulk_backend", "check_answer", "failure"]


class _Delta(msgspec.Struct, gc=False):
    content: str | None = None
    reasoning: str | None = None
    reasoning_content: str | None = None


class _Choice(msgspec.Struct, gc=False):
    delta: _Delta | None = None
    finish_reason: str | None = None
    logprobs: object = None


class _Chunk(msgspec.Struct, gc=False):
    choices: list[_Choice] | None = None
    usage: dict | None = None
    timings: dict | None = None


class _Item(msgspec.Struct):
    type: str | None = None
    delta: str | None = None
    logprobs: object = None


_CHUNKS = msgspec.json.Decoder(list[_Chunk])
_ITEMS = msgspec.json.Decoder(list[_Item])
_JOINED = {"response.output_text.delta", "response.reasoning_text.delta", "response.reasoning_summary_text.delta"}


def _array(datas: list[bytes]) -> bytes:
    return b"[" + b",".join(datas) + b"]"


def _counted(events: list[Event], reasoning: int, content: int) -> list[Event]:
    """Say how many deltas the joined events hold: the reasoning's first (the parser puts it first),
    then the answer's on its first piece."""
    rest = events
    if reasoning and events and type(events[0]) is ReasoningDelta:
        events[0].pieces, rest = reasoning, events[1:]
    for i, event in enumerate(rest):
        event.pieces = content if i == 0 else 0
    return events


class _ChatBlocks:
    """Chat Completions chunks, a read at a time."""

    def __init__(self) -> None:
        self.parser = ChatStreamParser()
        self.done = False  # [DONE] came

    def feed(self, datas: list[bytes]) -> Iterator[Event]:
        if b"[DONE]" in datas:  # the end: anything after it is not read
            self.done = True
            datas = datas[:datas.index(b"[DONE]")]
        if datas:
            yield from self._joined(datas)

    def _joined(self, datas: list[bytes]) -> Iterator[Event]:
        raw = _array(datas)
        if b'"tool_calls"' in raw or b'"error"' in raw:  # a call or an error (or text that names one): the parser's
            return (yield from self._one_by_one(datas))
        try:
            chunks = _CHUNKS.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return (yield from self._one_by_one(datas))
        content, reasoning, finish, figures = [], [], None, None
        for chunk in chunks:
            if chunk.usage or chunk.timings:
                if figures is not None:  # figures twice: the parser's to check
                    return (yield from self._one_by_one(datas))
                figures = chunk
            for choice in chunk.choices or ():
                if choice.logprobs is not None:  # token probabilities: each chunk's belong to its own text
                    return (yield from self._one_by_one(datas))
                delta = choice.delta
                if delta is not None:
                    said, thought = delta.content, delta.reasoning or delta.reasoning_content
                    if said or thought:
                        if figures is not None:  # text after the figures: the parser's to check
                            return (yield from self._one_by_one(datas))
                        if said:
                            content.append(said)
                        if thought:
                            reasoning.append(thought)
                finish = choice.finish_reason or finish
        parser = self.parser
        yield from _counted(parser.delta("".join(reasoning), "".join(content), (), finish), len(reasoning), len(content))
        if figures is not None:  # the figures come last: what came before them is handed on first
            parser.figures(figures.usage, figures.timings)

    def _one_by_one(self, datas: list[bytes]) -> Iterator[Event]:
        """As the SDK backend reads them: a chunk at a time, what came before a bad one kept."""
        for data in datas:
            yield from self.parser.feed(load_object(data.decode("utf-8", "replace")))

    def close(self) -> list[Event]:
        if not (self.done or self.parser.finished):
            raise StreamCut("the stream ended before the reply was finished")
        return self.parser.close()


class _ResponsesBlocks:
    """Responses events, a read at a time: each run of text (or reasoning) deltas joined."""

    def __init__(self) -> None:
        self.parser = ResponsesStreamParser()
        self.done = False

    def feed(self, events: list[tuple[str | None, bytes]]) -> Iterator[Event]:
        datas = [data for _, data in events]
        try:
            items = _ITEMS.decode(_array(datas)) if b"[DONE]" not in datas else None
        except (msgspec.DecodeError, msgspec.ValidationError):
            items = None
        run_kind, run = None, []
        for i, (event, data) in enumerate(events):
            if self.parser.finished or self.done:
                break
            item = items[i] if items is not None else None
            if item is not None and item.type in _JOINED and item.delta is not None and item.logprobs is None:
                if item.type != run_kind:
                    yield from self._run(run_kind, run)
                    run_kind, run = item.type, []
                run.append(item.delta)
                continue
            yield from self._run(run_kind, run)
            run = []
            if data == b"[DONE]":
                self.done = True
                break
            payload = load_object(data.decode("utf-8", "replace"))
            yield from self.parser.feed(text(payload.get("type"), "an event's type") or event or "error", payload)
        yield from self._run(run_kind, run)

    def _run(self, kind: str | None, deltas: list[str]) -> list[Event]:
        """A run of deltas of one kind, as one."""
        return _counted(self.parser.feed(kind, {"delta": "".join(deltas)}), 0, len(deltas)) if deltas else []

    def close(self) -> list[Event]:
        if not self.parser.finished:
            raise StreamCut("the stream ended before the reply was finished")
        return []


class StreamReading:
    """One answer's stream read as it comes, with no I/O: the body's blocks in (``feed``), events out;
    ``over`` once the reply is (anything after it is not read), ``end()`` when the body is. The
    blocking ``BulkBackend.stream`` and the stream loop (loop.py) read through it alike."""

    def __init__(self, api: str):
        self.chat = api == "chat"
        self.events = EventSplitter()
        self.blocks = _ChatBlocks() if self.chat else _ResponsesBlocks()

    @property
    def over(self) -> bool:
        return self.blocks.done or not self.chat and self.blocks.parser.finished

    def feed(self, block: bytes) -> Iterator[Event]:
        if self.chat:
            datas = self.events.datas(block)
            if datas:
                yield from self.blocks.feed(datas)
        else:
            split = self.events.feed(block)
            if split:
                yield from self.blocks.feed(split)

    def end(self) -> Iterator[Event]:
        tail = self.events.close()
        if tail and not self.blocks.done:
            yield from self.blocks.feed([data for _, data in tail] if self.chat else tail)
        yield from self.blocks.close()


class BulkBackend:
    """Requests shaped by ``shaper`` (an SDK backend's ``body()``: parameters, those the server
    rejected left out), sent over ``pool``."""

    def __init__(self, shaper: Backend, pool: Pool):
        self.inner, self.pool = shaper, pool
        self.api = shaper.api
        self.last_sent: tuple[str, dict] | None = None
        self.last_request: Request | None = None

    @property
    def unsupported(self) -> set[str]:
        return self.inner.unsupported  # one set: what the server rejected is left out either way

    def prepare(self, request: Request) -> tuple[str, bytes]:
        """(path, JSON body) of ``request``."""
        path = "/chat/completions" if self.api == "chat" else "/responses"
        sent = as_sent(self.inner.body(request))
        self.last_sent, self.last_request = (path, sent), request
        return path, json.dumps(sent, ensure_ascii=False).encode("utf-8")

    def stream(self, request: Request) -> Iterator[Event]:
        path, body = self.prepare(request)
        reading = StreamReading(self.api)
        try:
            with network():
                answer = self.pool.post(path, body)
                try:
                    check_answer(answer.status, answer.headers, lambda: answer.read(limits.MAX_ERROR_BODY))
                    for block in answer.blocks():
                        yield from reading.feed(block)
                        if reading.over:
                            break
                finally:
                    answer.close()
                yield from reading.end()
        except Exception as exc:
            raise failure(exc) from None


def failure(exc: Exception) -> Exception:
    """What a stream's failure is for the turn: a stop once the turn's token is cancelled (the
    connection was shut down under it), the flavor's word where it has one (tool calling off), else
    the error itself."""
    token = cancel.current.get()
    if token is not None and token.cancelled:
        return cancel.Cancelled()
    if isinstance(exc, ChatError) and refine(exc) is not exc:
        return refine(exc)
    return exc


def check_answer(status: int, headers: dict[str, str], body) -> None:
    """An answer that is not a stream is the server's error (a redirect is one too); ``body()``
    reads the start of its body."""
    if 300 <= status < 400:
        raise redirected(headers.get("location"), status)
    if status != 200:
        raw = body()
        try:
            parsed = json.loads(raw) if raw.lstrip()[:1] in (b"{", b"[") else raw.decode("utf-8", "replace")
        except (ValueError, RecursionError):
            parsed = raw.decode("utf-8", "replace")
        raise from_error_body(parsed, status)


def bulk_backend(api: str, base_url: str, api_key: str | None) -> Backend | None:
    """A bulk backend for ``api`` at ``base_url`` where one applies (plain http, no proxy), else None."""
    from . import make_backend

    return BulkBackend(make_backend(api, None), Pool(base_url, api_key)) if plain_http(base_url) else None
