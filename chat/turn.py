"""The turn runner: one request to the backend, its events fed to a sink, the reply assembled.

It knows nothing about terminals. The REPL, one-shot mode and (later) /compare and probes all
run turns through here and differ only in their sink.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Protocol

from .backends.base import Backend, Request
from .cancel import Cancelled, CancelToken, new_token
from .conversation import Conversation, Message
from .errors import ChatError, HTTPError
from .events import Event, Finish, Logprobs, ReasoningDelta, TextDelta, ToolCall, Usage
from .params import OPTIONAL
from .redact import redact_tokens
from .toolbox import Approver, Toolbox

__all__ = ["NullSink", "OPTIONAL_PARAMS", "Sink", "TurnResult", "TurnStats", "run_exchange", "run_turn", "shortfall",
           "start_turn"]


class Sink(Protocol):
    def event(self, event: Event) -> None:
        """Called for every event as it arrives."""

    def end(self, result: "TurnResult") -> None:
        """Called once when a reply is over: finished, interrupted or failed."""

    def tool_call(self, call: ToolCall, preview) -> None:
        """A call the model made, with its preview, before it is approved and run."""

    def tool_running(self, call: ToolCall) -> AbstractContextManager:
        """Held while an approved call runs (to show how long it has been running)."""

    def tool_result(self, call: ToolCall, outcome) -> None:
        """What the call gave the model."""

    def notice(self, text: str) -> None:
        """Something the user should know about the turn (a cap reached, tools turned off)."""


class NullSink:
    """Shows nothing: for replies shown whole afterwards (samples, comparisons) or never (probes)."""

    def event(self, event: Event) -> None: ...
    def end(self, result: "TurnResult") -> None: ...
    def tool_call(self, call: ToolCall, preview) -> None: ...
    def tool_running(self, call: ToolCall) -> AbstractContextManager: return nullcontext()
    def tool_result(self, call: ToolCall, outcome) -> None: ...
    def notice(self, text: str) -> None: ...


@dataclass(slots=True)
class TurnStats:
    completion_tokens: int = 0
    prompt_tokens: int | None = None
    time_to_first_token: float | None = None
    elapsed: float = 0.0
    server_tokens_per_second: float | None = None
    finish_reason: str | None = None
    counted: bool = False  # True when tokens were counted from deltas, not reported by the server

    @property
    def tokens_per_second(self) -> float | None:
        if self.server_tokens_per_second:
            return self.server_tokens_per_second
        gen = self.elapsed - (self.time_to_first_token or 0.0)
        return self.completion_tokens / gen if self.completion_tokens > 1 and gen > 0 else None

    def record(self) -> dict:
        """The figures worth keeping with the reply (transcripts)."""
        return {"completion_tokens": self.completion_tokens, "prompt_tokens": self.prompt_tokens,
                "time_to_first_token": self.time_to_first_token, "elapsed": round(self.elapsed, 4),
                "tokens_per_second": self.tokens_per_second, "finish_reason": self.finish_reason}

    @property
    def context_used(self) -> int | None:
        if self.prompt_tokens is None:
            return None
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class TurnResult:
    message: Message  # the assistant's reply, possibly partial
    stats: TurnStats
    error: ChatError | None = None
    interrupted: bool = False
    withdrawn: bool = False  # nothing came of the user's message: it was taken out again

    @property
    def started(self) -> bool:
        """Whether anything of a reply arrived."""
        return bool(self.message.content or self.message.reasoning or self.message.tool_calls)

    @property
    def shortfall(self) -> str | None:
        """What a finished reply lacks, as the user is told (None: nothing, or it failed or was stopped,
        which is said otherwise)."""
        return None if self.error is not None or self.interrupted else shortfall(self.message)

    @property
    def kept(self) -> bool:
        """Whether the reply belongs in the conversation: some answer, or a reply that finished. A
        reply cut short during its reasoning is not kept (an empty assistant turn would go back to
        the server); the user's text is offered again instead."""
        finished = not self.interrupted and self.error is None
        return bool(self.message.content or self.message.tool_calls) or finished


def shortfall(message: Message) -> str | None:
    """Why a reply that ended on its own is short of an answer: cut by max_tokens (finish reason
    ``length``), all reasoning, or nothing at all (a tool-call parser may swallow a malformed call).
    From the message alone, so a recorded reply (an export, a probe cell) says it too."""
    if message.role != "assistant" or message.interrupted:
        return None
    finish = (message.stats or {}).get("finish_reason")
    cap = (message.params or {}).get("max_tokens")
    limit = f"max_tokens ({cap})" if cap else "the server's token limit"
    answered = bool(message.content.strip() or message.tool_calls)
    if finish == "length":
        if answered:
            return f"cut short: {limit} reached"
        what = "while the model was still reasoning" if message.reasoning else "before any text came"
        return f"no answer: {limit} reached {what}"
    if answered:
        return None
    why = f" (finish reason: {finish})" if finish else ""
    if message.reasoning:
        return f"no answer: the whole reply was reasoning{why}"
    return f"the reply was empty: no text and no tool call{why}"


# Sampling parameters a server may not know: one it rejects is dropped (with a notice), not a failed turn.
OPTIONAL_PARAMS = OPTIONAL  # chat/params.py says which


def run_turn(backend: Backend, request: Request, sink: Sink, cancel: CancelToken | None = None,
             keep: Callable[[TurnResult], None] | None = None) -> TurnResult:
    """Stream one reply. A cancelled token (the action's: Ctrl-C) or a ChatError ends it early,
    keeping what came. ``keep(result)`` records the reply before the sink's last drawing (a terminal
    that went away can't lose it). A request refused for an optional sampling parameter is sent again
    without it, and the backend leaves it out from then on."""
    token = cancel if cancel is not None else new_token()
    while True:
        result = _stream(backend, request, sink, token)
        rejected = _rejected(backend, request, result)
        if not rejected:
            _settle(backend, request, result)
            if keep is not None:
                keep(result)
            sink.end(result)
            return result
        sink.notice(f"the server rejects {', '.join(rejected)}: sent without {'it' if len(rejected) == 1 else 'them'} "
                    "from now on")


def start_turn(loop, backend: Backend, request: Request, then: Callable[[TurnResult], None]) -> None:
    """``run_turn`` on a StreamLoop (chat/backends/loop.py: many replies read on one thread), showing
    nothing: ``then(result)`` once the reply is over. The loop's token stops it."""
    reply = _Reply(time.perf_counter())

    def events(got: list[Event], at: float) -> None:
        for event in got:
            reply.event(event, at)

    def end(error: Exception | None, at: float) -> None:
        result = reply.end(at, error, loop.stopped)
        if _rejected(backend, request, result):
            start_turn(loop, backend, request, then)
            return
        _settle(backend, request, result)
        then(result)

    loop.stream(backend, request, events, end)


def _rejected(backend: Backend, request: Request, result: TurnResult) -> list[str]:
    """The optional parameters a failed request was refused for (none once a reply began): the
    backend leaves them out from now on, and the request is to be sent again."""
    error = result.error
    if result.started or not isinstance(error, HTTPError) or error.status not in (400, 422):
        return []
    rejected = [name for name in OPTIONAL_PARAMS
                if name in request.params and name not in backend.unsupported and name in str(error)]
    backend.unsupported.update(rejected)
    return rejected


def _settle(backend: Backend, request: Request, result: TurnResult) -> None:
    """What the reply was asked with: the parameters sent, the model."""
    result.message.params = {k: v for k, v in request.params.items() if k not in backend.unsupported}
    result.message.model = request.model or None
    result.message.lora = request.lora


class _Reply:
    """A reply put together from its events as they come, whoever reads the stream."""

    __slots__ = ("start", "text", "reasoning", "tokens", "message", "stats", "deltas")

    def __init__(self, start: float):
        self.start = start
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.tokens: list[dict] = []
        self.message = Message("assistant")
        self.stats = TurnStats()
        self.deltas = 0

    def event(self, event: Event, at: float | None = None) -> None:
        """One event; ``at``: when it arrived (default: now)."""
        kind, stats = type(event), self.stats
        if kind is TextDelta or kind is ReasoningDelta:
            if stats.time_to_first_token is None:
                stats.time_to_first_token = (time.perf_counter() if at is None else at) - self.start
            (self.text if kind is TextDelta else self.reasoning).append(event.text)
            self.deltas += event.pieces
        elif kind is ToolCall:
            self.message.tool_calls.append(event)
        elif kind is Usage:
            stats.prompt_tokens = event.prompt_tokens
            stats.completion_tokens = event.completion_tokens or 0
            stats.server_tokens_per_second = event.tokens_per_second
        elif kind is Finish:
            stats.finish_reason = event.reason
        elif kind is Logprobs:
            self.tokens += event.tokens

    def end(self, at: float, error: Exception | None = None, stopped: bool = False) -> TurnResult:
        """The reply as it ended: whole (no error), stopped (Cancelled, or any error once ``stopped``:
        the connection was shut down under it) or failed (a ChatError)."""
        message, stats = self.message, self.stats
        result = TurnResult(message, stats)
        if isinstance(error, Cancelled) or error is not None and stopped:
            result.interrupted = True
        elif error is not None:
            result.error = error
        stats.elapsed = at - self.start
        if not stats.completion_tokens:  # no usage from the server: count deltas (about one token each)
            stats.completion_tokens, stats.counted = self.deltas, True
        message.content = "".join(self.text).lstrip("\n")
        message.reasoning = "".join(self.reasoning).strip()
        message.interrupted = result.interrupted or result.error is not None
        message.stats = stats.record()
        message.logprobs = redact_tokens(self.tokens) or None  # a secret split across tokens is whole only when joined
        return result


def _stream(backend: Backend, request: Request, sink: Sink, token: CancelToken) -> TurnResult:
    reply = _Reply(time.perf_counter())
    error: Exception | None = None
    with token.active():
        stream = backend.stream(request)
        try:
            if token.cancelled:
                raise Cancelled
            for event in stream:
                reply.event(event)
                sink.event(event)
        except (Cancelled, ChatError) as err:
            error = err
        finally:
            stream.close()  # drops the connection at once when the reply was cut short
    return reply.end(time.perf_counter(), error, token.cancelled)


def _result_for_unrun(call: ToolCall, why: str) -> Message:
    return Message("tool", f"Not run: {why}.", tool_call_id=call.id, name=call.name)


def run_exchange(backend: Backend, conversation: Conversation, make_request: Callable[[list], Request],
                 sink: Sink, toolbox: Toolbox | None = None, approver: Approver | None = None,
                 max_rounds: int = 8, first: TurnResult | None = None,
                 cancel: CancelToken | None = None) -> TurnResult:
    """The model's side of an exchange: reply, run the tool calls it makes (each approved), send
    the results back, until it answers without tools, the round cap is hit or the user stops it.

    Every tool call gets exactly one result message, whatever happens; each reply and result is
    recorded before it is drawn. Returns the last reply's result; the conversation holds everything
    that was kept. ``first`` is a reply already streamed and added at the head (one of several
    samples) to go on from. ``cancel`` (default: one under the action) stops it all.
    """
    token = cancel if cancel is not None else new_token()

    def record(result: TurnResult) -> None:
        if result.kept:
            conversation.add(result.message)

    rounds = 0
    while True:
        if first is not None:  # already in the conversation, at its head
            result, first = first, None
        else:
            request = make_request(toolbox.specs() if toolbox else [])
            if rounds:  # a forced call is the reply to the user's message; with its results the model may answer
                request.params.pop("tool_choice", None)
            result = run_turn(backend, request, sink, token, keep=record)
        if not result.kept:
            return result
        calls = result.message.tool_calls
        if not calls:
            return result
        if result.interrupted or result.error is not None:
            for call in calls:
                conversation.add(_result_for_unrun(call, "the reply was cut short before it could run"))
            return result
        if toolbox is None or rounds >= max_rounds:
            why = "tools are turned off" if toolbox is None else f"the cap of {max_rounds} tool rounds in a row was reached"
            for call in calls:
                conversation.add(_result_for_unrun(call, why))
            sink.notice(f"stopped: {why} (the model was told)")
            return result
        for call in calls:
            if token.cancelled:
                conversation.add(_result_for_unrun(call, token.why))
                continue
            outcome = toolbox.handle(call, approver, sink, token,
                                     starting=lambda: conversation.start(result.message, call))
            conversation.add(Message("tool", outcome.content, tool_call_id=call.id, name=call.name))
            sink.tool_result(call, outcome)
        if token.cancelled:
            result.interrupted = True
            return result
        rounds += 1
