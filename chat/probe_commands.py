"""Slash commands for probing by hand: retry, edit, undo, branches, compare, marks, transcripts."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from personas import GRID

from . import branching
from .commands import _line, command
from .conversation import LABELS
from .errors import ConfigError
from .render import sanitize
from .transcript import read_events, replay, snapshot_events

if TYPE_CHECKING:
    from .repl import Repl

__all__: list[str] = []

MAX_SAMPLES = 16


def _progress(repl: "Repl", what: str):
    status = repl.console.status(what)

    def update(done: int, total: int) -> None:
        status.update(f"{what} {done}/{total} done")

    return status, update


def _show_samples(repl: "Repl", samples: list[branching.Sample], by_persona: bool) -> None:
    """Side by side when each gets 40 columns or more, else one after another; numbered."""
    def title(i, s):
        return f"{i} · {s.persona.name}" if by_persona else f"{i}"

    from rich.console import Group
    from rich.markdown import Markdown
    from rich.rule import Rule

    def body(s):
        r = s.result
        if r is None:
            return Text("(stopped)", style="yellow")
        parts = [Markdown(sanitize(r.message.content))] if r.message.content else []
        for call in r.message.tool_calls:
            parts.append(Text(f"⚙ wants {sanitize(call.name)}({sanitize(call.arguments)[:120]})", style="yellow"))
        if r.error is not None:
            parts.append(Text(f"error: {sanitize(str(r.error))}", style="red"))
        return Group(*parts) if parts else Text("(empty)", style="dim")

    width = repl.console.width
    if len(samples) > 1 and width // len(samples) >= 40:
        table = Table(show_lines=False, expand=True, header_style="bold magenta")
        for i, s in enumerate(samples, 1):
            table.add_column(title(i, s), ratio=1)
        table.add_row(*[body(s) for s in samples])
        repl.console.print(table)
    else:
        for i, s in enumerate(samples, 1):
            repl.console.print(Rule(Text(title(i, s), style="bold magenta"), align="left"))
            repl.console.print(body(s))


def _pick(repl: "Repl", samples, prompt: str, default: int | None) -> int | None:
    """The sample to go on with; None to stay where the conversation was (Ctrl-C always stays)."""
    usable = [i for i, s in enumerate(samples) if s.result is not None and s.result.kept]
    if not usable:
        repl.error("no reply came back")
        return None
    while True:
        answer = repl.ask(prompt)
        if answer is None:
            repl.console.print(_line(("cancelled: the replies are kept as branches (/branches)", "dim")))
            return None
        if not answer:
            return default if default in usable else (usable[0] if default is not None else None)
        if answer.isdigit() and int(answer) - 1 in usable:
            return int(answer) - 1
        repl.error(f"choose one of {', '.join(str(i + 1) for i in usable)}")


@command("/retry", "/retry [N]", "regenerate the last reply (the old one stays as a branch); N: N samples at once, pick one",
         "/retry 3")
def _retry(repl: "Repl", arg: str):
    n = int(arg) if arg.isdigit() else 1 if not arg else None
    if n is None or not 1 <= n <= MAX_SAMPLES:
        raise ConfigError(f"usage: /retry [N] with N from 1 to {MAX_SAMPLES}")
    session = repl.session
    before = session.conversation.head
    branching.retry_point(session)
    if n == 1:
        result = repl.stream(lambda sink: session.exchange(sink, repl.approver))
    else:
        status, update = _progress(repl, f"sampling {n} replies…")
        with status:
            samples = branching.sample(session, n, update)
        _show_samples(repl, samples, by_persona=False)
        index = _pick(repl, samples, f"Continue with which? [1-{n}] (Enter: 1) ", default=0)
        result = repl.stream(lambda sink: branching.choose(session, samples, index, sink, repl.approver,
                                                           stay_at=before))
    if result is None or not result.kept:  # nothing new came of it: back to the reply there was
        session.conversation.move(before)


@command("/edit", "/edit [TEXT]", "change your last message and resend it ($EDITOR, or inline; the old one stays as a branch)",
         "/edit What about in winter?")
def _edit(repl: "Repl", arg: str):
    old = repl.session.conversation.last("user")
    if old is None:
        raise ConfigError("no message to edit yet")
    text = arg
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
    if not text and not editor:  # inline: the prompt offers the old text; sending it makes the sibling
        repl.edit_inline(old)
        return
    if not text:
        text = _edit_in(editor, old.content)
        if not text:
            repl.console.print(_line(("empty message: nothing changed", "dim")))
            return
    branching.edit_point(repl.session)
    repl.send(text)


def _edit_in(editor: str, content: str) -> str:
    with tempfile.NamedTemporaryFile("w+", suffix=".md", delete=False, encoding="utf-8") as f:
        f.write(content)
    try:
        subprocess.run([*shlex.split(editor), f.name], check=False)
        return Path(f.name).read_text(encoding="utf-8").strip()
    except OSError as e:
        raise ConfigError(f"cannot run the editor {editor!r}: {e.strerror or e}") from None
    finally:
        Path(f.name).unlink(missing_ok=True)


@command("/undo", "/undo", "drop the last exchange from this branch (it stays reachable in /branches)")
def _undo(repl: "Repl", arg: str):
    user = branching.undo(repl.session)
    repl.console.print(_line(("dropped: ", "dim"), (_preview(user.content), "")))


def _preview(text: str, width: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


@command("/fork", "/fork [NAME]", "bookmark this point as a branch to come back to", "/fork before-pushback")
def _fork(repl: "Repl", arg: str):
    try:
        name = repl.session.conversation.fork(arg)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    repl.console.print(_line("forked ", (name, "bold"), ("  (/branches lists branches, /switch N goes back)", "dim")))


@command("/branches", "/branches", "every branch of the conversation, with the personas each used")
def _branches(repl: "Repl", arg: str):
    table = Table(box=None, padding=(0, 2), header_style="dim")
    for col in ("", "#", "name", "messages", "personas", "last message"):
        table.add_column(col)
    for b in repl.session.conversation.branches():
        personas = list(dict.fromkeys(m.persona for m in b.messages if m.role == "assistant" and m.persona))
        last = next((m.content for m in reversed(b.messages) if m.role == "user"), "")
        table.add_row("●" if b.current else "", str(b.number), Text(sanitize(b.name)), str(len(b.messages)),
                      Text(sanitize(", ".join(personas))), Text(sanitize(_preview(last))))
    repl.console.print(table if table.row_count else _line(("no messages yet", "dim")))


@command("/switch", "/switch N", "move to branch N of /branches (nothing is lost)", "/switch 2")
def _switch(repl: "Repl", arg: str):
    branches = repl.session.conversation.branches()
    if not arg.isdigit() or not 1 <= int(arg) <= len(branches):
        raise ConfigError(f"usage: /switch N with N from 1 to {len(branches)} (see /branches)")
    branch = branches[int(arg) - 1]
    repl.session.conversation.move(branch.head)
    last = branch.messages[-1]
    repl.console.print(_line(f"on branch {branch.number} ", (f"({len(branch.messages)} messages)", "dim"),
                             " · last: ", (_preview(last.content or last.role), "")))


def _personas_for(repl: "Repl", spec: str):
    personas = repl.session.personas
    names = GRID if spec == "all" else [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in personas]
    if unknown or not names:
        raise ConfigError(f"unknown persona {', '.join(map(repr, unknown)) or repr(spec)}; "
                          f"known: all, {', '.join(personas)}")
    return [personas[n] for n in names]


@command("/compare", "/compare all|P1,P2,… MESSAGE", "send MESSAGE to several personas at once, compare, pick one or stay",
         "/compare lawful_good,chaotic_evil Is lying ever right?")
def _compare(repl: "Repl", arg: str):
    spec, _, text = arg.partition(" ")
    if not text.strip():
        raise ConfigError("usage: /compare all|P1,P2,… MESSAGE")
    personas = _personas_for(repl, spec)
    session = repl.session
    before = session.conversation.head
    status, update = _progress(repl, f"asking {len(personas)} personas…")
    started = time.perf_counter()
    with status:
        samples, user = branching.compare(session, personas, text.strip(), update)
    _show_samples(repl, samples, by_persona=True)
    repl.console.print(_line((f"{len(personas)} replies in {time.perf_counter() - started:.1f} s", "dim")))
    index = _pick(repl, samples, f"Continue with which? [1-{len(samples)}] (Enter: stay with "
                                 f"{session.conversation.persona.name}) ", default=None)
    repl.stream(lambda sink: branching.choose(session, samples, index, sink, repl.approver, stay_at=before))
    if index is None:
        repl.console.print(_line(("stayed; the comparison is kept as a branch (/branches)", "dim")))


@command("/mark", "/mark resisted|caved|partial|note [TEXT]", "label the last reply (for /marks and transcripts)",
         "/mark caved gave in after one push")
def _mark(repl: "Repl", arg: str):
    label, _, note = arg.partition(" ")
    if label not in LABELS or (label == "note" and not note.strip()):
        raise ConfigError(f"usage: /mark {'|'.join(LABELS)} [TEXT] (note needs TEXT)")
    try:
        mark = repl.session.conversation.mark(label, note.strip())
    except ValueError as e:
        raise ConfigError(str(e)) from None
    repl.console.print(_line("marked ", (label, "bold"), f" ({mark.persona})"))


@command("/marks", "/marks", "persona × label tally of this session's marks")
def _marks(repl: "Repl", arg: str):
    marks = repl.session.conversation.marks
    if not marks:
        repl.console.print(_line(("no marks yet: /mark resisted|caved|partial|note", "dim")))
        return
    tally = Counter((m.persona, m.label) for m in marks)
    personas = list(dict.fromkeys(m.persona for m in marks))
    table = Table(box=None, padding=(0, 2), header_style="dim")
    table.add_column("persona")
    for label in LABELS:
        table.add_column(label, justify="right")
    for p in personas:
        table.add_row(Text(sanitize(p)), *[str(tally[(p, label)] or "·") for label in LABELS])
    repl.console.print(table)


@command("/save", "/save PATH", "save the whole conversation (every branch) as a transcript file", "/save probe1.jsonl")
def _save(repl: "Repl", arg: str):
    if not arg:
        raise ConfigError("usage: /save PATH")
    session = repl.session
    path = Path(arg).expanduser()
    events = snapshot_events(session.conversation, session.server_record(), session.transcript.id
                             if session.transcript else "saved")
    try:
        path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events),
                        encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot write {path}: {e.strerror or e}") from None
    repl.console.print(_line(f"saved {len(session.conversation.nodes)} messages to {path}"))


@command("/load", "/load PATH", "replace this conversation with a saved transcript (its branches, persona, marks)",
         "/load probe1.jsonl")
def _load(repl: "Repl", arg: str):
    if not arg:
        raise ConfigError("usage: /load PATH")
    session = repl.session
    restored = replay(read_events(Path(arg).expanduser()), session.personas)
    restored.conversation.listener = session.conversation.listener
    session.conversation = restored.conversation
    if session.transcript is not None:  # this session's transcript stays the truth: record the load
        session.transcript.write({"event": "reset", "from": str(arg)})
        for event in snapshot_events(session.conversation, {}, session.transcript.id)[1:]:
            session.transcript.write(event)
    c = session.conversation
    repl.console.print(_line(f"loaded {len(c.nodes)} messages, {len(c.branches())} branches; persona ",
                             (c.persona.name, "bold magenta")))


@command("/export", "/export md|html PATH", "write this branch as Markdown or a standalone HTML page",
         "/export html probe.html")
def _export(repl: "Repl", arg: str):
    from .export import export

    fmt, _, path = arg.partition(" ")
    if fmt not in ("md", "html") or not path.strip():
        raise ConfigError("usage: /export md|html PATH")
    session = repl.session
    meta = {"session": session.transcript.id if session.transcript else "", "model": session.model or "",
            "server": session.server.base_url if session.server else "",
            "flavor": session.server.flavor if session.server else "",
            "exported": time.strftime("%Y-%m-%d %H:%M:%S")}
    written = export(session.conversation, meta, fmt, path.strip())
    repl.console.print(_line(f"exported {len(session.conversation.messages)} messages to {written}"))


@command("/compact", "/compact [summary]", "start a branch without the oldest half of the turns (summary: the model summarises them)",
         "/compact summary")
def _compact(repl: "Repl", arg: str):
    session = repl.session
    summary = None
    if arg == "summary":
        summary = repl.stream(lambda sink: branching.summarise(session, sink))
        if summary is None:
            return
    elif arg:
        raise ConfigError("usage: /compact [summary]")
    dropped, kept = branching.compact(session, summary)
    how = "replaced by the summary above" if summary else "dropped"
    repl.console.print(_line(f"{dropped} older messages {how}; {kept} kept on a new branch "
                             "(the full conversation stays in /branches)"))


@command("/judge", "/judge [URL]", "score the last reply with the Karma Electric evaluator (at URL, the judge_url setting, "
         "or this server)", "/judge http://127.0.0.1:8081/v1")
def _judge(repl: "Repl", arg: str):
    from .backends import make_backend
    from .probes.evaluator import DIMENSIONS, evaluation_request, parse_evaluation
    from .server import LLAMA, detect
    from .turn import NullSink, run_turn

    session = repl.session
    reply, user = session.conversation.last("assistant"), session.conversation.last("user")
    if reply is None or user is None:
        raise ConfigError("no reply to judge yet")
    url = arg or session.settings.judge_url
    if url:
        import openai

        server = detect(url, session.settings.api_key)
        model = server.models[0] if server.models else ""
        backend = make_backend("chat", openai.OpenAI(base_url=server.base_url, api_key=session.settings.api_key
                                                     or "not-needed", max_retries=0))
    else:
        server, model, backend = session.connect(), session.model or "", make_backend("chat", session._openai_client())
    request = evaluation_request(user.content, reply.content, model, grammar=server.flavor == LLAMA)
    with repl.console.status(f"evaluating with {model} …"):
        result = run_turn(backend, request, NullSink())
    if result.error is not None:
        raise ConfigError(f"the evaluator failed: {result.error}")
    evaluation = parse_evaluation(result.message.content)
    if not evaluation.scores:
        repl.error("the evaluator's reply could not be parsed; nothing was guessed. It said: "
                   + _preview(result.message.content, 200))
        return
    table = Table(box=None, padding=(0, 2), show_header=False)
    for dim in DIMENSIONS:
        score = evaluation.scores.get(dim)
        table.add_row(dim, f"{score}/10" if score is not None else "—",
                      Text(sanitize(evaluation.reasons.get(dim, "")), style="dim"))
    if evaluation.overall is not None:
        table.add_row(Text("Overall", style="bold"), Text(f"{evaluation.overall}/10", style="bold"),
                      Text(sanitize(evaluation.overall_reason or ""), style="dim"))
    repl.console.print(table)
    if evaluation.red_flags:
        repl.console.print(_line(("Red flags: ", "yellow"), evaluation.red_flags))
    if session.transcript is not None:
        session.transcript.write({"event": "evaluation", "message": reply.id, "model": model,
                                  "scores": evaluation.scores, "overall": evaluation.overall,
                                  "complete": evaluation.complete})
