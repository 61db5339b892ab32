"""Slash commands for files: /save and /load transcripts, /export a branch as Markdown or HTML."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..eventlog import encode_log
from ..files import write_whole
from ..transcript import load_transcript, snapshot_events
from .registry import command, line

if TYPE_CHECKING:
    from .context import SlashContext

__all__: list[str] = []


@command("/save", "/save PATH", "save the whole conversation (every branch) as a transcript file", "/save probe1.jsonl")
def _save(ctx: "SlashContext", arg: str):
    if not arg:
        raise ConfigError("usage: /save PATH")
    session = ctx.session
    path = Path(arg).expanduser()
    events = snapshot_events(session.conversation, session.server_record(), session.transcript.id
                             if session.transcript else "saved")
    path = write_whole(path, encode_log(events))
    ctx.console.print(line(f"saved {len(session.conversation.nodes)} messages to {path}"))


@command("/load", "/load PATH", "replace this conversation with a saved transcript (its branches, persona, marks)",
         "/load probe1.jsonl")
def _load(ctx: "SlashContext", arg: str):
    if not arg:
        raise ConfigError("usage: /load PATH")
    session = ctx.session
    restored = load_transcript(Path(arg).expanduser(), session.personas)
    for problem in restored.problems:
        ctx.note(f"warning: {problem}")
    session.load(restored, str(arg))
    if session.pending_text:
        ctx.offer(session.pending_text)
    c = session.conversation
    ctx.console.print(line(f"loaded {len(c.nodes)} messages, {len(c.branches())} branches; persona ",
                             (c.persona.name, "bold magenta")))


@command("/export", "/export md|html PATH", "write this branch as Markdown or a standalone HTML page",
         "/export html probe.html")
def _export(ctx: "SlashContext", arg: str):
    from ..export import export

    fmt, _, path = arg.partition(" ")
    if fmt not in ("md", "html") or not path.strip():
        raise ConfigError("usage: /export md|html PATH")
    session = ctx.session
    meta = {"session": session.transcript.id if session.transcript else "", "model": session.model or "",
            "server": session.server.base_url if session.server else "",
            "flavor": session.server.flavor if session.server else "",
            "exported": time.strftime("%Y-%m-%d %H:%M:%S")}
    written = export(session.conversation, meta, fmt, path.strip())
    ctx.console.print(line(f"exported {len(session.conversation.messages)} messages to {written}"))
