"""The typed events every backend turns a server's stream into; everything else consumes these."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Event", "Finish", "Logprobs", "ReasoningDelta", "TextDelta", "ToolCall", "Usage"]


@dataclass(slots=True)
class TextDelta:
    """A piece of the answer."""

    text: str
    pieces: int = 1  # the server's deltas it holds: a backend reading in bulk joins what one read brought


@dataclass(slots=True)
class ReasoningDelta:
    """A piece of the model's reasoning, shown apart and never sent back as answer."""

    text: str
    pieces: int = 1  # as TextDelta's


@dataclass(slots=True)
class ToolCall:
    """A complete tool call; ``arguments`` is the model's raw JSON text, unparsed."""

    id: str
    name: str
    arguments: str


@dataclass(slots=True)
class Usage:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tokens_per_second: float | None = None  # the server's own measurement (llama-server timings)


@dataclass(slots=True)
class Finish:
    """Why generation stopped: stop, length, tool_calls, abort, repetition, ..."""

    reason: str


@dataclass(slots=True)
class Logprobs:
    """The answer's tokens a delta carried, each as ``{"token": text, "logprob": its log-probability,
    "top": {alternative: log-probability, …}}`` (the likeliest tokens at that place, the chosen one
    among them): what the ``logprobs`` parameter asks for."""

    tokens: list[dict]


Event = TextDelta | ReasoningDelta | ToolCall | Usage | Finish | Logprobs
