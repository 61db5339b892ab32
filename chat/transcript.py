"""Transcripts: every session saved as it goes, one JSON event per line, fsync'd per event.

The file is the truth for --resume, /load, /export and probe results. It is an event log
(chat/eventlog.py: append-only, torn and invalid lines handled by one policy), each event validated
against its record (chat/records.py: what each kind holds) when read; replaying then checks that the
events fit together (ids in order, parents and heads that exist) and skips, with a reason, what does
not. Each event written gets the "time" it happened.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from .datafile import DataFileError
from ..personas import Persona, custom
from .config import check
from .conversation import Conversation, Mark, Message, record
from .errors import TranscriptError
from .eventlog import EventLog, LogRead, read_log
from .events import ToolCall
from .records import (TRANSCRIPT_RECORDS, VERSION, ForkRecord, HeadRecord, MarkRecord, MessageRecord, ParamsRecord,
                      PersonaRecord, Record, ServerRecord, SessionRecord)
from .sanitize import valid_text

__all__ = ["Restored", "SessionInfo", "Transcript", "TranscriptError", "list_sessions", "load_transcript",
           "recorded_persona",
           "read_events", "replay", "snapshot_events"]


_STAT_NUMBERS = ("completion_tokens", "prompt_tokens", "time_to_first_token", "elapsed", "tokens_per_second")


def _stats(stats: dict | None) -> dict | None:
    """A reply's figures, keeping only those of the right type (they are printed and summed)."""
    if stats is None:
        return None
    kept = {k: v for k, v in stats.items() if k in _STAT_NUMBERS and isinstance(v, (int, float))
            and not isinstance(v, bool) and abs(v) < 1e12}
    if isinstance(stats.get("finish_reason"), str):
        kept["finish_reason"] = stats["finish_reason"]
    return kept


def _message_from(event: dict) -> Message:
    calls = [ToolCall(*(valid_text(c[k]) for k in ("id", "name", "arguments"))) for c in event.get("tool_calls") or ()]
    fields = {k: valid_text(v) if isinstance(v, str) else v
              for k in Message.__dataclass_fields__ if k in event and k != "tool_calls" for v in (event[k],)}
    fields["stats"] = _stats(fields.get("stats"))
    return Message(**fields, tool_calls=calls)


# -- writing ----------------------------------------------------------------------------------------------

class Transcript:
    """Records a session's events as they happen. Never raises: if the file can't be written (a full
    disk, a read-only directory), ``on_error`` hears it once and ``failed`` says why."""

    def __init__(self, path: Path, session_id: str | None = None, held: list[dict] | None = None,
                 on_error=lambda message: None):
        self.path = Path(path)
        self.id = session_id or self.path.stem
        # Locked while open (also across /load and /clear): a second chat on it is refused, never interleaved
        self._log = EventLog(self.path, on_error, lock_as=f"session {self.id}")
        # A new session's file appears with its first message: starting chat and leaving at once
        # leaves no empty session behind (for --list and --resume to trip over).
        self._held = held

    @classmethod
    def new(cls, directory: Path, on_error=lambda message: None) -> "Transcript":
        session_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:4]
        transcript = cls(Path(directory) / f"{session_id}.jsonl", session_id, held=[], on_error=on_error)
        transcript.write(SessionRecord(id=session_id, version=VERSION))
        return transcript

    def claim(self) -> None:
        """Hold the session's lock from now on: Locked (naming the other chat) if another has it open.
        Without it, the lock is taken at the first write, and a refusal there stops the saving."""
        self._log.claim()

    @property
    def failed(self) -> str | None:
        return self._log.failed

    def on_error(self, report) -> None:
        self._log.on_error = report

    def write(self, record: Record) -> None:
        event = record.line()
        event.setdefault("time", round(time.time(), 3))
        if self._held is not None:
            self._held.append(event)
            if event["event"] != "message":
                return
            events, self._held = self._held, None
        else:
            events = [event]
        self._log.append(*events)

    def close(self) -> None:
        self._log.close()


# -- reading ------------------------------------------------------------------------------------------

def read_events(path: Path) -> LogRead:
    """A transcript's valid events, their lines, and the problems of the lines skipped (see chat/eventlog.py)."""
    try:
        log = read_log(path, TRANSCRIPT_RECORDS)
    except DataFileError as e:
        raise TranscriptError(str(e)) from None
    if not any(e["event"] in TRANSCRIPT_RECORDS for e in log.events):
        raise TranscriptError(f"{path}: not a gridchat transcript")
    if log.events[0]["event"] != "session":  # its first line was lost: the file name is its id
        log.problems.insert(0, f"{path}: no session line at the top: its id is taken from the file name")
        log.events.insert(0, SessionRecord(id=Path(path).stem, version=VERSION).line())
        log.lines.insert(0, 1)
    return log


@dataclass
class Restored:
    conversation: Conversation
    session_id: str
    server: dict  # the last server event: base_url, flavor, model, api
    problems: list[str] = field(default_factory=list)  # lines and events skipped, with why
    panel: dict | None = None  # the panel open when the file ends (its last panel event), if any


def recorded_persona(personas: dict[str, Persona], name: str, system: str | None) -> Persona:
    """The persona a transcript names: the known one if its system message is still the same, else
    the one recorded (a persona file edited since, or one this machine doesn't have)."""
    known = personas.get(name)
    if known is not None and known.system == system:
        return known
    if name == "custom" and system is not None:
        return custom(system)
    return Persona(name=name, system=system, source="transcript")


def _panel_misfit(conversation: Conversation, event: dict) -> str:
    """Why a panel event can't be reopened on this tree ("" if it can): each lane's head must be on a
    branch through the panel's origin (where its lanes began: the root for /replay), its reply an
    assistant message on that branch, its missed message a user message right after its head."""
    nodes = conversation.nodes
    start = event.get("start")
    origin = event.get("origin", start)  # older files: the lanes began where the panel opened
    if not all(i is None or i < len(nodes) for i in (start, origin)):
        return "start is not a message"
    for n, lane in enumerate(event["lanes"], 1):
        head, reply, missed = lane.get("head"), lane.get("reply"), lane.get("missed")
        if any(i is not None and i >= len(nodes) for i in (head, reply, missed)):
            return f"lane {n} points past the tree"
        path = {m.id for m in conversation.path_to(head)} if head is not None else set()
        if origin is not None and origin not in path:
            return f"lane {n} is not on a branch from where the panel started"
        if reply is not None and (reply not in path or nodes[reply].role != "assistant"):
            return f"lane {n}'s reply is not an assistant message on its branch"
        if missed is not None and (nodes[missed].role != "user" or nodes[missed].parent != head):
            return f"lane {n}'s unanswered message is not a user message after its head"
    return ""


def replay(events: list[dict], personas: dict[str, Persona], path: Path | str = "transcript",
           lines: list[int] | None = None) -> Restored:
    """Rebuild the conversation exactly: tree, head, persona, parameters, forks and marks. An event
    that does not fit what came before (a message out of order, a head or parent that doesn't
    exist) is skipped and reported (at ``path:line``, given each event's line), so that everything
    else is kept."""
    conversation = Conversation()
    server: dict = {}
    panel: dict | None = None
    problems: list[str] = []

    def exists(node) -> bool:
        return node is None or 0 <= node < len(conversation.nodes)

    for n, event in enumerate(events):
        kind, where = event["event"], f"{path}:{lines[n]}" if lines else str(path)
        if kind == "reset":  # /load replaced the conversation
            conversation, panel = Conversation(), None
        elif kind == "message":
            if event["id"] != len(conversation.nodes) or not exists(event.get("parent")):
                problems.append(f"{where}: message {event['id']} doesn't fit the tree (parent {event.get('parent')}, "
                                f"{len(conversation.nodes)} messages so far): skipped")
                continue
            conversation.attach(_message_from(event))
        elif kind == "withdraw":  # only the message just added, while it is the head, can be taken back
            if conversation.nodes and conversation.nodes[-1].id == event["id"] == conversation.head:
                conversation.withdraw(conversation.nodes[-1])
            else:
                problems.append(f"{where}: withdraw of message {event['id']}, which is not the last one added "
                                "and the head: skipped")
        elif kind == "started":
            if exists(event["message"]):
                conversation.started.add((event["message"], event["call"]))
            else:
                problems.append(f"{where}: a call of message {event['message']}, which doesn't exist, started: skipped")
        elif kind == "head":
            if exists(event["id"]):
                conversation.move(event["id"])
            else:
                problems.append(f"{where}: head {event['id']} is not a message: skipped")
        elif kind == "persona":
            name, system = event["name"], event.get("system")
            conversation.persona = recorded_persona(personas, name, system)
            conversation.systems[name] = system
        elif kind == "params":
            conversation.params = {}
            for name, value in event["params"].items():
                try:
                    conversation.params[name] = check(name, value)
                except ValueError as e:  # a hand-edited NaN would fail every request
                    problems.append(f"{where}: parameter {name}={value!r}: {e}: left to the server")
        elif kind == "fork":
            if exists(event["id"]):
                conversation.forks[event["id"]] = event["name"]
        elif kind == "mark":
            if exists(event["message"]):
                conversation.marks.append(Mark(event["message"], event["label"], event.get("note", ""),
                                               event.get("persona", "")))
            else:
                problems.append(f"{where}: mark on message {event['message']}, which doesn't exist: skipped")
        elif kind == "server":
            server = {k: v for k, v in event.items() if k not in ("event", "time")}
        elif kind == "panel":  # its lanes' personas answered without a switch: keep their system messages
            for lane in event["lanes"]:
                conversation.systems.setdefault(lane["persona"], lane.get("system"))
            panel, panel_at = (event, where) if event["lanes"] else (None, "")  # checked once, at the end
    why = _panel_misfit(conversation, panel) if panel is not None else ""  # only the last one reopens
    if why:
        problems.append(f"{panel_at}: a panel whose {why}: not opened again")
        panel = None
    return Restored(conversation, events[0].get("id", "") if events else "", server, problems, panel)


def load_transcript(path: Path, personas: dict[str, Persona]) -> Restored:
    """Read and replay a transcript file; what had to be skipped is in ``problems``."""
    log = read_events(path)
    restored = replay(log.events, personas, path, log.lines)
    restored.problems[:0] = log.problems
    return restored


def snapshot_events(conversation: Conversation, server: dict, session_id: str) -> list[Record]:
    """Events that rebuild ``conversation`` from nothing (/save, and recording a /load)."""
    c = conversation
    events: list[Record] = [SessionRecord(id=session_id, version=VERSION)]
    if server:
        events.append(ServerRecord(**server))
    events += [MessageRecord(**record(m)) for m in c.nodes]
    events += [ForkRecord(id=i, name=n) for i, n in c.forks.items()]
    events += [MarkRecord(**asdict(m)) for m in c.marks]
    events += [PersonaRecord(name=name, system=system) for name, system in c.systems.items()
               if name != c.persona.name]  # every persona the tree used, so exports can show their prompts
    events += [PersonaRecord(name=c.persona.name, system=c.persona.system), ParamsRecord(params=dict(c.params)),
               HeadRecord(id=c.head)]
    return events


@dataclass
class SessionInfo:
    id: str
    path: Path
    modified: float
    messages: int  # in the tree (every branch)
    personas: list[str]
    first: str  # the first user message
    problem: str = ""  # why it could not be read, or what was skipped: shown, never hidden
    readable: bool = True  # False: nothing in it can be resumed


def list_sessions(directory: Path) -> list[SessionInfo]:
    """Saved sessions, newest first; a damaged or unreadable file is listed with what is wrong."""
    out = []
    for path in Path(directory).glob("*.jsonl"):
        try:
            modified = os.path.getmtime(path)
        except OSError:
            continue
        try:
            log = read_events(path)
        except TranscriptError as e:
            out.append(SessionInfo(path.stem, path, modified, 0, [], "", str(e).removeprefix(f"{path}: "), False))
            continue
        restored = replay(log.events, {}, path, log.lines)
        nodes = restored.conversation.nodes
        skipped = len(log.problems) + len(restored.problems)
        personas = list(dict.fromkeys(m.persona for m in nodes if m.persona))
        first = next((m.content for m in nodes if m.role == "user"), "")
        out.append(SessionInfo(restored.session_id or path.stem, path, modified, len(nodes), personas, first,
                               f"{skipped} damaged line{'s' if skipped != 1 else ''} skipped" if skipped else ""))
    return sorted(out, key=lambda s: s.modified, reverse=True)
