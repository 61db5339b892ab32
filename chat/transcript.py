"""Transcripts: every session saved as it goes, one JSON event per line, flushed per event.

The file is the truth for --resume, /load, /export and probe results. It is append-only, so a
process killed at any moment leaves every earlier line intact; a torn last line is skipped on
reading. Events (each has "event" and "time"):

    session   id, version                      the first line
    server    base_url, flavor, model, api     on connecting and on /model
    persona   name, system                     where a switch happened
    params    params                           sampling parameters, whenever they change
    message   id, parent, role, content, ...   a message added to the tree (with reasoning, tool calls, stats)
    withdraw  id                               a message taken back (its send failed before any reply)
    head      id                               the head moved (/switch, /undo, /retry, /edit, /clear)
    reset     from                             /load replaced the conversation (a snapshot follows)
    fork      id, name                         a bookmarked branch point
    mark      message, label, note, persona    /mark on a reply
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from ..personas import Persona, custom
from .conversation import Conversation, Mark, Message, record
from .errors import ChatError
from .events import ToolCall

__all__ = ["Restored", "SessionInfo", "Transcript", "TranscriptError", "list_sessions", "read_events",
           "replay", "snapshot_events"]

VERSION = 1


class TranscriptError(ChatError):
    pass


def _message_from(record: dict) -> Message:
    calls = [ToolCall(**c) for c in record.get("tool_calls") or ()]
    fields = {k: record[k] for k in Message.__dataclass_fields__ if k in record and k != "tool_calls"}
    return Message(**fields, tool_calls=calls)


class Transcript:
    """Appends events to one file; every write is flushed before the call returns."""

    def __init__(self, path: Path, session_id: str | None = None, held: list[dict] | None = None):
        self.path = Path(path)
        self.id = session_id or self.path.stem
        self._file = None
        # A new session's file appears with its first message: starting chat and leaving at once
        # leaves no empty session behind (for --list and --resume to trip over).
        self._held = held

    @classmethod
    def new(cls, directory: Path) -> "Transcript":
        session_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:4]
        transcript = cls(Path(directory) / f"{session_id}.jsonl", session_id, held=[])
        transcript.write({"event": "session", "id": session_id, "version": VERSION})
        return transcript

    def write(self, event: dict) -> None:
        event.setdefault("time", round(time.time(), 3))
        if self._held is not None:
            self._held.append(event)
            if event["event"] != "message":
                return
            events, self._held = self._held, None
        else:
            events = [event]
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8")
        self._file.write("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events))
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_events(path: Path) -> list[dict]:
    try:
        # split on "\n" only: str.splitlines() would also break at U+0085, U+2028 ... inside strings
        lines = Path(path).read_text(encoding="utf-8").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
    except (OSError, UnicodeDecodeError) as e:
        raise TranscriptError(f"{path}: cannot read: {e}") from None
    events = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
            if not isinstance(event, dict) or "event" not in event:
                raise ValueError("not an event")
        except ValueError:
            if number == len(lines):  # killed mid-write: the last line may be torn
                break
            raise TranscriptError(f"{path}:{number}: not a transcript event") from None
        events.append(event)
    if not events or events[0].get("event") != "session":
        raise TranscriptError(f"{path}: not a gridchat transcript")
    return events


@dataclass
class Restored:
    conversation: Conversation
    session_id: str
    server: dict  # the last server event: base_url, flavor, model, api


def replay(events: list[dict], personas: dict[str, Persona]) -> Restored:
    """Rebuild the conversation exactly: tree, head, persona, parameters, forks and marks."""
    conversation = Conversation()
    server: dict = {}
    for event in events:
        kind = event["event"]
        if kind == "reset":  # /load replaced the conversation
            conversation = Conversation()
        elif kind == "message":
            conversation.attach(_message_from(event))
        elif kind == "withdraw":
            if conversation.nodes and conversation.nodes[-1].id == event["id"]:
                conversation.withdraw(conversation.nodes[-1])
        elif kind == "head":
            conversation.move(event["id"])
        elif kind == "persona":
            name, system = event["name"], event.get("system")
            known = personas.get(name)
            conversation.persona = known if known is not None and known.system == system else (
                custom(system) if name == "custom" else Persona(name=name, system=system, source="transcript"))
        elif kind == "params":
            conversation.params = dict(event["params"])
        elif kind == "fork":
            conversation.forks[event["id"]] = event["name"]
        elif kind == "mark":
            conversation.marks.append(Mark(event["message"], event["label"], event.get("note", ""),
                                           event.get("persona", "")))
        elif kind == "server":
            server = {k: v for k, v in event.items() if k not in ("event", "time")}
    return Restored(conversation, events[0].get("id", ""), server)


def snapshot_events(conversation: Conversation, server: dict, session_id: str) -> list[dict]:
    """Events that rebuild ``conversation`` from nothing (/save, and recording a /load)."""
    c = conversation
    events = [{"event": "session", "id": session_id, "version": VERSION}]
    if server:
        events.append({"event": "server", **server})
    events += [{"event": "message", **record(m)} for m in c.nodes]
    events += [{"event": "fork", "id": i, "name": n} for i, n in c.forks.items()]
    events += [{"event": "mark", **asdict(m)} for m in c.marks]
    events += [{"event": "persona", "name": c.persona.name, "system": c.persona.system},
               {"event": "params", "params": dict(c.params)}, {"event": "head", "id": c.head}]
    return events


@dataclass
class SessionInfo:
    id: str
    path: Path
    modified: float
    messages: int
    personas: list[str]
    first: str  # the first user message


def list_sessions(directory: Path) -> list[SessionInfo]:
    """Saved sessions, newest first; unreadable files are left out."""
    out = []
    for path in Path(directory).glob("*.jsonl"):
        try:
            events = read_events(path)
        except TranscriptError:
            continue
        messages = [e for e in events if e["event"] == "message"]
        personas = list(dict.fromkeys(m.get("persona", "") for m in messages if m.get("persona")))
        first = next((m.get("content", "") for m in messages if m.get("role") == "user"), "")
        out.append(SessionInfo(events[0].get("id", path.stem), path, os.path.getmtime(path), len(messages),
                               personas, first))
    return sorted(out, key=lambda s: s.modified, reverse=True)
