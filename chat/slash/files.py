"""Slash commands for files: /save and /load transcripts, /export a branch as Markdown or HTML."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UsageError
from ..eventlog import encode_log
from ..export import EXPORTERS, export
from ..files import typed_path, write_whole
from ..transcript import load_transcript, snapshot_events
from .registry import Arg, command, line, one_line

if TYPE_CHECKING:
    from .context import SlashContext

__all__ = ["show_last_exchange"]


def _default_name(ctx: "SlashContext", suffix: str) -> Path:
    """gridchat-<session id>.<suffix> in the current directory."""
    session_id = ctx.session.transcript.id if ctx.session.transcript else time.strftime("%Y%m%d-%H%M%S")
    return Path(f"gridchat-{session_id}.{suffix}")


def show_last_exchange(ctx: "SlashContext") -> None:
    """The last message and reply of the current branch, so a loaded conversation is seen where it stands."""
    messages = ctx.session.conversation.messages
    user = next((m for m in reversed(messages) if m.role == "user"), None)
    reply = next((m for m in reversed(messages) if m.role == "assistant"), None)
    if user is None:
        return
    ctx.console.print(line(("last exchange:", "dim")))
    said_as = user.persona or ctx.session.conversation.persona.name  # the persona it was sent with
    ctx.console.print(line((f"{said_as} › ", "magenta"), one_line(user.content, 300)))
    if reply is not None and reply.id > user.id:
        ctx.console.print(line((f"  {reply.persona or ''}: ", "dim"),
                               one_line(reply.content or "(tool calls)", 300)))


@command("/save", "/save [PATH]", "save the whole conversation (every branch) as a transcript file (default: "
         "gridchat-SESSION.jsonl here)", "/save probe1.jsonl", args=(Arg.PATH,))
def _save(ctx: "SlashContext", arg: str):
    session = ctx.session
    path = typed_path(arg) if arg else _default_name(ctx, "jsonl")
    events = snapshot_events(session.conversation, session.server_record(), session.transcript.id
                             if session.transcript else "saved")
    path = write_whole(path, encode_log([e.line() for e in events]))
    ctx.console.print(line(f"saved {len(session.conversation.nodes)} messages to {path}"))


@command("/load", "/load PATH", "replace this conversation with a saved transcript (its branches, persona, marks)",
         "/load probe1.jsonl", moves="always", args=(Arg.PATH,))
def _load(ctx: "SlashContext", arg: str):
    if not arg:
        raise UsageError("usage: /load PATH")
    session = ctx.session
    restored = load_transcript(typed_path(arg), session.personas)
    for problem in restored.problems:
        ctx.note(f"warning: {problem}")
    session.load(restored, str(arg))
    if session.pending_text:
        ctx.offer(session.pending_text)
    c = session.conversation
    ctx.console.print(line(f"loaded {len(c.nodes)} messages, {len(c.branches())} branches; persona ",
                             (c.persona.name, "bold magenta")))
    show_last_exchange(ctx)


_FORMATS = "|".join(EXPORTERS)


@command("/export", f"/export {_FORMATS} [PATH]",
         f"write this branch as {' or '.join(what for what, _ in EXPORTERS.values())} (default: "
         f"gridchat-SESSION.{_FORMATS} here)", "/export html probe.html", args=(list(EXPORTERS), Arg.PATH))
def _export(ctx: "SlashContext", arg: str):
    fmt, _, path = arg.partition(" ")
    if fmt not in EXPORTERS:
        raise UsageError(f"usage: /export {_FORMATS} [PATH]")
    path = path.strip() or str(_default_name(ctx, fmt))
    session = ctx.session
    meta = {"session": session.transcript.id if session.transcript else "", "model": session.model or "",
            "server": session.server.base_url if session.server else "",
            "flavor": session.server.flavor if session.server else "",
            "exported": time.strftime("%Y-%m-%d %H:%M:%S")}
    written = export(session.conversation, meta, fmt, path.strip())
    ctx.console.print(line(f"exported {len(session.conversation.messages)} messages to {written}"))
