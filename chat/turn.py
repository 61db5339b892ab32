"""The turn runner: one request to the backend, its events fed to a sink, the reply assembled.

It knows nothing about terminals. The REPL, one-shot mode and (later) /compare and probes all
run turns through here and differ only in their sink.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from .backends.base import Backend, Request
from .conversation import Message
from .errors import ChatError
from .events import Event, Finish, ReasoningDelta, TextDelta, ToolCall, Usage

__all__ = ["Sink", "TurnResult", "TurnStats", "run_turn"]


class Sink(Protocol):
    def event(self, event: Event) -> None:
        """Called for every event as it arrives."""

    def end(self, result: "TurnResult") -> None:
        """Called once when the reply is over: finished, interrupted or failed."""


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

    @property
    def started(self) -> bool:
        """Whether anything of a reply arrived (a failure before it leaves nothing to keep)."""
        return bool(self.message.content or self.message.reasoning or self.message.tool_calls)


def run_turn(backend: Backend, request: Request, sink: Sink) -> TurnResult:
    """Stream one reply. Ctrl-C (KeyboardInterrupt) and ChatErrors end it early, keeping what came."""
    text: list[str] = []
    reasoning: list[str] = []
    message = Message("assistant")
    stats = TurnStats()
    result = TurnResult(message, stats)
    deltas = 0
    start = time.perf_counter()
    stream = backend.stream(request)
    try:
        for event in stream:
            kind = type(event)
            if kind is TextDelta or kind is ReasoningDelta:
                if stats.time_to_first_token is None:
                    stats.time_to_first_token = time.perf_counter() - start
                (text if kind is TextDelta else reasoning).append(event.text)
                deltas += 1
            elif kind is ToolCall:
                message.tool_calls.append(event)
            elif kind is Usage:
                stats.prompt_tokens = event.prompt_tokens
                stats.completion_tokens = event.completion_tokens or 0
                stats.server_tokens_per_second = event.tokens_per_second
            elif kind is Finish:
                stats.finish_reason = event.reason
            sink.event(event)
    except KeyboardInterrupt:
        result.interrupted = True
    except ChatError as err:
        result.error = err
    finally:
        stream.close()  # drops the connection at once when the reply was cut short
    stats.elapsed = time.perf_counter() - start
    if not stats.completion_tokens:  # no usage from the server: count deltas (about one token each)
        stats.completion_tokens, stats.counted = deltas, True
    message.content = "".join(text).lstrip("\n")
    message.reasoning = "".join(reasoning).strip()
    message.interrupted = result.interrupted or result.error is not None
    sink.end(result)
    return result
