"""Probing by hand: retry, edit, undo, samples and compaction, as moves on the conversation tree
(comparisons across personas, models and servers are panels: panel.py). Nothing here removes a message: old replies stay as sibling branches.
No terminal here either; the REPL shows the results and asks the choices."""

from __future__ import annotations

from dataclasses import dataclass

from ..personas import Persona
from .backends import Request
from .conversation import Message
from .errors import UsageError
from .parallel import run_parallel
from .session import Session
from .turn import Sink, TurnResult, run_turn

__all__ = ["Sample", "choose", "compact", "edit_point", "retry_point", "sample", "summarise", "undo"]


def _last_user(session: Session) -> Message:
    user = session.conversation.last("user")
    if user is None:
        raise UsageError("no message yet: send one first")
    return user


def retry_point(session: Session) -> Message:
    """Move the head back to the last user message, so the next reply is a sibling of the old one."""
    user = _last_user(session)
    session.conversation.move(user.id)
    return user


def edit_point(session: Session) -> Message:
    """Move the head to just before the last user message; its text is returned to be edited and
    sent again as a sibling."""
    user = _last_user(session)
    session.conversation.move(user.parent)
    return user


def undo(session: Session) -> Message:
    """Drop the last exchange from the branch (it stays in the tree, reachable by /branches)."""
    return edit_point(session)


@dataclass
class Sample:
    persona: Persona
    result: TurnResult | None  # None: not run


def _request_for(session: Session, persona: Persona) -> Request:
    request = session.request(session.toolbox.specs())
    request.system = persona.system
    return request


def _in_parallel(session: Session, personas: list[Persona], progress, home: int | None) -> list[Sample]:
    """One reply per persona to the head, at once. Each is added to the tree (a child of the head)
    the moment it ends, so nothing is lost if the client dies before a pick; meanwhile the head is
    (and is recorded) at ``home``, so such a client goes on from there, not from a reply nobody picked."""
    conversation = session.conversation
    parent = conversation.head
    jobs = [(session.backend, _request_for(session, p)) for p in personas]
    conversation.move(home)

    def keep(index: int, result: TurnResult) -> None:
        if result.kept:
            result.message.persona = personas[index].name
            conversation.move(parent)
            conversation.add(result.message)
            conversation.move(home)

    results = run_parallel(jobs, progress, on_result=keep)
    return [Sample(p, r) for p, r in zip(personas, results)]


def sample(session: Session, n: int, home: int | None, progress=lambda done, total: None) -> list[Sample]:
    """N replies to the current head, requested at once, with the current persona; until one is
    chosen the conversation stands at ``home`` (where it was before /retry N)."""
    session.connect()
    return _in_parallel(session, [session.conversation.persona] * n, progress, home)


def choose(session: Session, samples: list[Sample], index: int | None, sink: Sink, approver=None,
           stay_at: int | None = None) -> TurnResult | None:
    """Go on with ``samples[index]`` (already in the tree): its persona becomes the session's, and if
    it called tools the exchange goes on from there. ``index`` None stays: the head goes to
    ``stay_at`` and the samples remain as branches."""
    conversation = session.conversation
    if index is None:
        conversation.move(stay_at)
        return None
    chosen = samples[index]
    conversation.move(chosen.result.message.id)
    if chosen.persona.name != conversation.persona.name:
        conversation.set_persona(chosen.persona)
    return session.exchange(sink, approver, first=chosen.result)


def compact(session: Session, summary: str | None = None) -> tuple[int, int]:
    """Start a new branch holding only the newer half of the exchanges (the full one stays).
    With ``summary``, the dropped part is replaced by it, prefixed to the first kept message.
    Returns (messages dropped, messages kept)."""
    conversation = session.conversation
    path = list(conversation.messages)
    starts = [i for i, m in enumerate(path) if m.role == "user"]
    if len(starts) < 2:
        raise UsageError("nothing to compact: fewer than two exchanges on this branch")
    cut = starts[len(starts) // 2]
    dropped, kept = path[:cut], path[cut:]
    conversation.move(None)
    for i, m in enumerate(kept):
        content = m.content
        if i == 0 and summary:
            content = f"(Summary of our earlier conversation: {summary.strip()})\n\n{content}"
        conversation.add(Message(m.role, content, m.reasoning, list(m.tool_calls), m.tool_call_id, m.name,
                                 m.interrupted, persona=m.persona, stats=m.stats))
    return len(dropped), len(kept)


def summarise(session: Session, sink: Sink) -> str:
    """Ask the model for a summary of the older half of the branch (shown through ``sink``)."""
    path = list(session.conversation.messages)
    starts = [i for i, m in enumerate(path) if m.role == "user"]
    if len(starts) < 2:
        raise UsageError("nothing to compact: fewer than two exchanges on this branch")
    older = path[:starts[len(starts) // 2]]
    ask = Message("user", "Summarise our conversation so far in one short paragraph: the facts, decisions and "
                          "open questions. Write only the summary.")
    request = Request(model=session.model or "", system=None, messages=[*older, ask],
                      params=dict(session.conversation.params))
    result = run_turn(session.backend, request, sink)
    if result.error is not None or result.interrupted or not result.message.content.strip():
        raise UsageError("no summary came back; nothing was changed")
    return result.message.content
