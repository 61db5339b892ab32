"""The conversation: a tree of messages, the persona whose system message heads every request, and
the sampling parameters. Knows nothing about servers or terminals.

Every message has an id and a parent; the *head* is where the conversation currently stands, and
what is sent is the path from the root to the head. Retrying, editing, undoing and switching only
move the head or add siblings: nothing is ever removed, so every branch stays reachable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields

from ..personas import NONE, Persona
from .events import ToolCall
from .params import PARAMS as _PARAMS
from .records import (ForkRecord, HeadRecord, MarkRecord, MessageRecord, ParamsRecord, PersonaRecord, Record,
                      StartedRecord, WithdrawRecord)

__all__ = ["Branch", "Conversation", "LABELS", "Mark", "Message", "PARAMS", "record"]

# Request parameters /set may change, with the type each takes: sampling, and tool_choice.
PARAMS = {name: p.kind for name, p in _PARAMS.items()}  # declared once, in chat/params.py
LABELS = ("resisted", "caved", "partial", "note")


@dataclass(slots=True)
class Message:
    role: str  # user | assistant | tool
    content: str = ""
    reasoning: str = ""  # shown, recorded, never sent back
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None  # tool results: the call they answer
    name: str | None = None  # tool results: the tool's name
    interrupted: bool = False  # the reply was cut short (Ctrl-C or a broken stream)
    id: int = -1  # set by the conversation
    parent: int | None = None
    persona: str | None = None  # the persona in force when it was added
    stats: dict | None = None  # assistant replies: tokens, timings
    params: dict | None = None  # assistant replies: the sampling parameters the request carried
    model: str | None = None  # assistant replies: the model asked (panels compare several)
    lora: dict | None = None  # assistant replies: the LoRA adapter applied ({"name", "scale"}), where one was
    logprobs: list[dict] | None = None  # assistant replies: the answer's tokens and their probabilities, if asked


_KEPT = ("id", "role", "content", "parent")  # written even when empty


def record(message: Message) -> dict:
    """A message as a transcript record: empty fields left out. Its dicts (stats, params, lora: flat)
    and tool calls are copied one level down, not deep-copied as dataclasses.asdict would (~60 µs a
    message: a probe run records thousands); its token probabilities, never changed once read, are shared."""
    data = {}
    for name in _FIELDS:
        value = getattr(message, name)
        if value in (None, "", [], False) and name not in _KEPT:
            continue
        if name == "tool_calls":
            value = [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in value]
        elif type(value) is dict:
            value = dict(value)
        data[name] = value
    return data


_FIELDS = tuple(f.name for f in fields(Message))


@dataclass(slots=True)
class Mark:
    message: int  # the assistant reply it labels
    label: str  # resisted | caved | partial | note
    note: str = ""
    persona: str = ""


@dataclass(slots=True)
class Branch:
    number: int  # 1-based, as /branches shows and /switch takes
    head: int
    name: str  # a fork's name, or "" for a plain leaf
    current: bool
    conversation: "Conversation" = field(repr=False)

    @property
    def messages(self) -> list[Message]:
        """Root to head, walked when asked: listing a bushy tree's branches walks none of them."""
        return self.conversation.path_to(self.head)


@dataclass
class Conversation:
    persona: Persona = NONE
    params: dict[str, float | int] = field(default_factory=dict)
    nodes: list[Message] = field(default_factory=list)  # by id
    head: int | None = None
    forks: dict[int, str] = field(default_factory=dict)  # bookmarked branch points: id -> name
    marks: list[Mark] = field(default_factory=list)
    systems: dict[str, str | None] = field(default_factory=dict)  # every persona used: its system message
    started: set[tuple[int, str]] = field(default_factory=set)  # (reply id, call id) of each call that began to run
    listener: Callable[[Record], None] | None = field(default=None, repr=False)  # gets every change (transcripts)
    _path: list[Message] | None = field(default_factory=list, repr=False)  # None: rebuilt when next used

    def _emit(self, event: Record) -> None:
        if self.listener is not None:
            self.listener(event)

    @property
    def system(self) -> str | None:
        return self.persona.system

    @property
    def messages(self) -> list[Message]:
        """The current branch, root to head: what is sent. Kept up to date as it grows, not rebuilt per
        turn; after a move it is rebuilt once, when next used (replaying a transcript moves often)."""
        if self._path is None:
            self._path = self.path_to(self.head)
        return self._path

    # -- growing -------------------------------------------------------------------------------
    def add(self, message: Message) -> Message:
        """Append after the head; the new message becomes the head."""
        message.id = len(self.nodes)
        message.parent = self.head
        if message.persona is None:
            message.persona = self.persona.name
        path = self.messages
        self.nodes.append(message)
        self.head = message.id
        path.append(message)
        self._emit(MessageRecord(**record(message)))
        return message

    def attach(self, message: Message) -> Message:
        """Add a message that already has its id and parent (replaying a transcript)."""
        assert message.id == len(self.nodes), "messages are replayed in id order"
        path = self._path if message.parent == self.head else None
        self.nodes.append(message)
        self.head = message.id
        self._path = path
        if path is not None:  # the common case, a branch growing: no walk back to the root per message
            path.append(message)
        return message

    def withdraw(self, message: Message) -> None:
        """Take back the message just added (nothing came of it): the one exception to never removing."""
        assert self.nodes and self.nodes[-1] is message and self.head == message.id
        self.nodes.pop()
        self.forks.pop(message.id, None)  # nothing may point at it any more
        self.marks = [m for m in self.marks if m.message != message.id]
        self._emit(WithdrawRecord(id=message.id))
        self._go(message.parent)

    # -- moving ------------------------------------------------------------------------------------
    def move(self, node: int | None) -> None:
        """Make ``node`` the head (None: an empty conversation, ready for a new root)."""
        self._go(node)
        self._emit(HeadRecord(id=node))

    def _go(self, node: int | None) -> None:
        if node is not None and not 0 <= node < len(self.nodes):
            raise IndexError(node)
        self.head = node
        self._path = None

    def path_to(self, node: int | None) -> list[Message]:
        """The branch from the root to ``node`` (what a request for it carries)."""
        path = []
        while node is not None:
            path.append(self.nodes[node])
            node = self.nodes[node].parent
        return path[::-1]

    def children(self, node: int | None) -> list[Message]:
        return [m for m in self.nodes if m.parent == node]

    def last(self, role: str) -> Message | None:
        """The last message with ``role`` on the current branch."""
        return next((m for m in reversed(self.messages) if m.role == role), None)

    def unanswered_calls(self) -> list[ToolCall]:
        """The last reply's tool calls that have no result on this branch (a run killed mid-tools)."""
        path = self.messages
        for i in range(len(path) - 1, -1, -1):
            if path[i].role == "assistant":
                answered = {m.tool_call_id for m in path[i + 1:] if m.role == "tool"}
                return [c for c in path[i].tool_calls if c.id not in answered]
        return []

    def start(self, reply: Message, call: ToolCall) -> None:
        """Record that ``call`` of ``reply`` begins to run: if its result never comes (a kill), it is
        known that it may have done its work."""
        self.started.add((reply.id, call.id))
        self._emit(StartedRecord(message=reply.id, call=call.id))

    def was_started(self, call: ToolCall) -> bool:
        """Whether ``call``, one of the last reply's on this branch, began to run."""
        reply = self.last("assistant")
        return reply is not None and (reply.id, call.id) in self.started

    # -- branches ------------------------------------------------------------------------------------
    def fork(self, name: str = "") -> str:
        """Bookmark the head as a branch point to come back to."""
        if self.head is None:
            raise ValueError("nothing to fork yet")
        self.forks[self.head] = name or f"fork {len(self.forks) + 1}"
        self._emit(ForkRecord(id=self.head, name=self.forks[self.head]))
        return self.forks[self.head]

    # -- what is sent, and labels ----------------------------------------------------------------
    def set_persona(self, persona: Persona) -> None:
        self.persona = persona
        self.systems[persona.name] = persona.system
        self._emit(PersonaRecord(name=persona.name, system=persona.system))

    def set_params(self, params: dict) -> None:
        self.params = dict(params)
        self._emit(ParamsRecord(params=dict(params)))

    def mark(self, label: str, note: str = "", message: int | None = None) -> Mark:
        """Label a reply: ``message``, or the last one on the current branch."""
        reply = self.last("assistant") if message is None else self.nodes[message]
        if reply is None or reply.role != "assistant":
            raise ValueError("no reply to mark yet")
        mark = Mark(reply.id, label, note, reply.persona or "")
        self.marks.append(mark)
        self._emit(MarkRecord(**asdict(mark)))
        return mark

    def branches(self) -> list[Branch]:
        """Every leaf and every fork point, oldest first."""
        parents = {m.parent for m in self.nodes}
        heads = sorted({m.id for m in self.nodes if m.id not in parents} | set(self.forks))
        out = []
        for number, head in enumerate(heads, 1):
            out.append(Branch(number, head, self.forks.get(head, ""), head == self.head, self))
        return out
