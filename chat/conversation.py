"""The conversation: messages, the persona whose system message heads every request, and the
sampling parameters. Knows nothing about servers or terminals."""

from __future__ import annotations

from dataclasses import dataclass, field

from personas import NONE, Persona

from .events import ToolCall

__all__ = ["Conversation", "Message", "PARAMS"]

# Sampling parameters /set may change, with the type each takes.
PARAMS = {"temperature": float, "top_p": float, "max_tokens": int}


@dataclass(slots=True)
class Message:
    role: str  # user | assistant | tool
    content: str = ""
    reasoning: str = ""  # shown, recorded, never sent back
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None  # tool results: the call they answer
    name: str | None = None  # tool results: the tool's name
    interrupted: bool = False  # the reply was cut short (Ctrl-C or a broken stream)


@dataclass
class Conversation:
    persona: Persona = NONE
    messages: list[Message] = field(default_factory=list)
    params: dict[str, float | int] = field(default_factory=dict)

    @property
    def system(self) -> str | None:
        return self.persona.system

    def add(self, message: Message) -> Message:
        self.messages.append(message)
        return message

    def clear(self) -> None:
        self.messages.clear()
