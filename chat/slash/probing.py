"""Slash commands for probing by hand: retry, edit, undo, forks and branches, compare, marks, compact."""

from __future__ import annotations

import os
import shlex
import subprocess
from collections import Counter
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from .. import branching
from ..conversation import LABELS
from ..datafile import DataFileError, read_bytes
from ..errors import ConfigError, UsageError
from ..files import remove, scratch_file
from ..sanitize import sanitize
from .registry import Arg, command, line, number, one_line
from .show import columns, progress, reply_body

if TYPE_CHECKING:
    from .context import SlashContext

__all__: list[str] = []

MAX_SAMPLES = 16


def _show_samples(ctx: "SlashContext", samples: list[branching.Sample]) -> None:
    columns(ctx, [(str(i), reply_body(ctx, s.result)) for i, s in enumerate(samples, 1)])


def _pick(ctx: "SlashContext", samples, prompt: str, default: int | None) -> int | None:
    """The sample to go on with; None to stay where the conversation was (Ctrl-C always stays)."""
    usable = [i for i, s in enumerate(samples) if s.result is not None and s.result.kept]
    if not usable:
        ctx.error("no reply came back")
        return None
    while True:
        answer = ctx.ask(prompt)
        if answer is None:
            ctx.console.print(line(("cancelled: the replies are kept as branches (/branches)", "dim")))
            return None
        if not answer:
            return default if default in usable else (usable[0] if default is not None else None)
        if number(answer) is not None and number(answer) - 1 in usable:
            return number(answer) - 1
        ctx.error(f"choose one of {', '.join(str(i + 1) for i in usable)}")


@command("/retry", "/retry [N]", "regenerate the last reply (the old one stays as a branch); N: N samples at once, pick one",
         "/retry 3", moves="always")
def _retry(ctx: "SlashContext", arg: str):
    n = number(arg) if arg else 1
    if n is None or not 1 <= n <= MAX_SAMPLES:
        raise UsageError(f"usage: /retry [N] with N from 1 to {MAX_SAMPLES}")
    session = ctx.session
    before = session.conversation.head
    branching.retry_point(session)
    if n == 1:
        result = ctx.stream(lambda sink: session.exchange(sink, ctx.approver))
    else:
        status, update = progress(ctx, f"sampling {n} replies…")
        with status:
            samples = branching.sample(session, n, before, update)
        _show_samples(ctx, samples)
        index = _pick(ctx, samples, f"Continue with which? [1-{n}] (Enter: 1) ", default=0)
        if index is not None:
            ctx.console.print(line("going on with reply ", (str(index + 1), "bold magenta"), ": ",
                                   (one_line(samples[index].result.message.content or "(tool calls)", 50), "")))
        result = ctx.stream(lambda sink: branching.choose(session, samples, index, sink, ctx.approver,
                                                           stay_at=before))
    if result is None or not result.kept:  # nothing new came of it: back to the reply there was
        session.conversation.move(before)


@command("/edit", "/edit [TEXT]", "change your last message and resend it ($EDITOR, or inline; the old one stays as a branch)",
         "/edit What about in winter?", moves="always")
def _edit(ctx: "SlashContext", arg: str):
    old = ctx.session.conversation.last("user")
    if old is None:
        raise UsageError("no message to edit yet")
    text = arg
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
    if not text and not editor:  # inline: the prompt offers the old text; sending it makes the sibling
        ctx.edit_inline(old)
        return
    if not text:
        text = _edit_in(editor, old.content)
        if not text:
            ctx.console.print(line(("empty message: nothing changed", "dim")))
            return
    branching.edit_point(ctx.session)
    ctx.send(text)


def _edit_in(editor: str, content: str) -> str:
    try:
        argv = shlex.split(editor)
    except ValueError as e:
        raise ConfigError(f"cannot read the editor command {editor!r}: {e}") from None
    scratch = scratch_file(content.encode("utf-8", "replace"), suffix=".md")
    try:
        subprocess.run([*argv, str(scratch)], check=False)
        return read_bytes(scratch).decode("utf-8", "replace").strip()  # not UTF-8: U+FFFD, not a crash
    except OSError as e:
        raise ConfigError(f"cannot run the editor {editor!r}: {e.strerror or e}") from None
    except DataFileError as e:
        raise ConfigError(f"the edited text can't be used: {e}") from None
    finally:
        remove(scratch)


@command("/undo", "/undo", "drop the last exchange from this branch (it stays reachable in /branches)", moves="always")
def _undo(ctx: "SlashContext", arg: str):
    user = branching.undo(ctx.session)
    ctx.console.print(line(("dropped: ", "dim"), (one_line(user.content), "")))


@command("/fork", "/fork [NAME]", "bookmark this point as a branch to come back to", "/fork before-pushback")
def _fork(ctx: "SlashContext", arg: str):
    try:
        name = ctx.session.conversation.fork(arg)
    except ValueError as e:
        raise UsageError(str(e)) from None
    ctx.console.print(line("forked ", (name, "bold"), ("  (/branches lists branches, /switch N goes back)", "dim")))


@command("/branches", "/branches", "every branch: its persona, its last message and the first words of its last "
         "reply, its mark")
def _branches(ctx: "SlashContext", arg: str):
    conversation = ctx.session.conversation
    table = Table(box=None, padding=(0, 1), header_style="dim", expand=True)
    for col in ("", "#", "name", "persona", "messages", "last message", "last reply", "mark"):
        last = col.startswith("last")  # the two texts share what the other columns leave, cut short
        table.add_column(col, no_wrap=True, overflow="ellipsis" if last else "fold", ratio=1 if last else None)
    for b in conversation.branches():
        asked = next((m for m in reversed(b.messages) if m.role == "user"), None)  # branches may differ in it
        reply = next((m for m in reversed(b.messages) if m.role == "assistant"), None)
        marks = [k.label for k in conversation.marks if reply is not None and k.message == reply.id]
        text = (reply.content or ("(tool call)" if reply.tool_calls else "")) if reply else "(no reply yet)"
        table.add_row("●" if b.current else "", str(b.number), Text(sanitize(b.name)),
                      Text(sanitize(reply.persona or "") if reply else ""), str(len(b.messages)),
                      Text(sanitize(one_line(asked.content, 80) if asked else "")),
                      Text(sanitize(one_line(text, 80))), Text(sanitize(", ".join(marks))))
    ctx.console.print(table if table.row_count else line(("no messages yet", "dim")))


def _branch(ctx: "SlashContext", arg: str):
    """A branch by its number in /branches or its /fork name (a unique start of it will do)."""
    branches = ctx.session.conversation.branches()
    if number(arg) is not None and 1 <= number(arg) <= len(branches):
        return branches[number(arg) - 1]
    named = [b for b in branches if b.name == arg] or [b for b in branches if arg and b.name.startswith(arg)]
    if len(named) == 1:
        return named[0]
    names = ", ".join(b.name for b in branches if b.name)
    raise UsageError(f"usage: /switch N|NAME with N from 1 to {len(branches)}"
                      + (f" or a fork's name ({names})" if names else "") + " (see /branches)")


@command("/switch", "/switch N|NAME", "move to branch N of /branches, or to a /fork by its name (nothing is lost)",
         "/switch before-pushback", moves="always", args=(Arg.BRANCHES,))
def _switch(ctx: "SlashContext", arg: str):
    branch = _branch(ctx, arg)
    ctx.session.conversation.move(branch.head)
    last = branch.messages[-1]
    ctx.console.print(line(f"on branch {branch.number} ", (f"({len(branch.messages)} messages)", "dim"),
                             " · last: ", (one_line(last.content or last.role), "")))


@command("/mark", "/mark [N] resisted|caved|partial|note [TEXT]", "label the last reply (N: lane N's, in a panel) "
         "for /marks and transcripts", "/mark caved gave in after one push", args=((Arg.LANES, Arg.LABELS), Arg.LABELS))
def _mark(ctx: "SlashContext", arg: str):
    from ..panel import mark_lane

    lane, label, note = None, *arg.partition(" ")[::2]
    if number(label) is not None:
        lane, (label, _, note) = number(label), note.strip().partition(" ")
    if label not in LABELS or (label == "note" and not note.strip()):
        raise UsageError(f"usage: /mark [N] {'|'.join(LABELS)} [TEXT] (note needs TEXT; N: a panel's lane)")
    if lane is not None:
        mark = mark_lane(ctx.panels, lane, label, note.strip())
        ctx.console.print(line("marked ", (label, "bold"), f" (lane {lane} · {mark.persona})"))
        return
    if ctx.panels.open is not None:
        raise UsageError(f"which lane? /mark N {label} (N from 1 to {len(ctx.panels.open.lanes)})")
    try:
        mark = ctx.session.conversation.mark(label, note.strip())
    except ValueError as e:
        raise UsageError(str(e)) from None
    ctx.console.print(line("marked ", (label, "bold"), f" ({mark.persona})"))


@command("/marks", "/marks", "persona × label tally of this session's marks")
def _marks(ctx: "SlashContext", arg: str):
    marks = ctx.session.conversation.marks
    if not marks:
        ctx.console.print(line(("no marks yet: /mark resisted|caved|partial|note", "dim")))
        return
    tally = Counter((m.persona, m.label) for m in marks)
    personas = list(dict.fromkeys(m.persona for m in marks))
    table = Table(box=None, padding=(0, 2), header_style="dim")
    table.add_column("persona")
    for label in LABELS:
        table.add_column(label, justify="right")
    for p in personas:
        table.add_row(Text(sanitize(p)), *[str(tally[(p, label)] or "·") for label in LABELS])
    ctx.console.print(table)


@command("/compact", "/compact [summary]", "start a branch without the oldest half of the turns (summary: the model summarises them)",
         "/compact summary", moves="always", args=(["summary"],))
def _compact(ctx: "SlashContext", arg: str):
    session = ctx.session
    summary = None
    if arg == "summary":
        summary = ctx.stream(lambda sink: branching.summarise(session, sink))
        if summary is None:
            return
    elif arg:
        raise UsageError("usage: /compact [summary]")
    dropped, kept = branching.compact(session, summary)
    how = "replaced by the summary above" if summary else "dropped"
    ctx.console.print(line(f"{dropped} older messages {how}; {kept} kept on a new branch "
                             "(the full conversation stays in /branches)"))
