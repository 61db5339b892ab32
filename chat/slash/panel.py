"""The hand-probing loop: /compare opens a panel of personas, models or servers that every next
message goes to at once (push back on all of them), /pick goes on with one, /mark N labels a lane's
reply where it stands, /classify flags answers that flip, /replay reruns a branch against others,
/probe save keeps what was found as a probe file."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

from rich.padding import Padding
from rich.text import Text

from ..cancel import Cancelled, new_token
from ..errors import ChatError, UsageError
from ..render import markdown
from ..sanitize import sanitize
from .registry import Arg, command, line, number, one_line
from .show import columns, progress, reply_body

if TYPE_CHECKING:
    from .context import SlashContext

__all__ = ["ask_panel", "resume_panel"]

SPEC_HELP = ("all | personas, @models, @URLs, comma-separated, crossed with * "
             "(lawful_good,chaotic_evil*@base,@my-lora)")
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")  # no leading "-": it would read as a flag


def _open_panel(ctx: "SlashContext"):
    panel = ctx.panels.open
    if panel is None:
        raise UsageError("no panel open: /compare SPEC MESSAGE opens one")
    return panel


def _answer(ctx: "SlashContext", lane) -> Text | None:
    """What /classify made of the lane's last reply: a flip, its answer, or none of the labels."""
    if lane.flipped:
        return Text(sanitize(f"⇄ flipped: {lane.flipped}"), style="bold yellow")
    if lane.label is None and ctx.panels.classify:
        return Text("answer: none of " + ", ".join(ctx.panels.classify), style="dim")
    return Text(sanitize(f"answer: {lane.label}"), style="dim") if lane.label else None


def _show(ctx: "SlashContext", panel, lanes) -> None:
    """``lanes`` of ``panel`` side by side (or stacked), each under its number and title."""
    def extra(lane):
        if lane.result is None or not lane.result.kept:  # no reply this time: its earlier answer is not news
            return []
        answer = _answer(ctx, lane)
        return [answer] if answer is not None else []

    columns(ctx, [(f"{panel.lanes.index(lane) + 1} · {lane.title(ctx.session)}",
                   reply_body(ctx, lane.result, extra(lane), f"/panel {panel.lanes.index(lane) + 1}"))
                  for lane in lanes])


def _footer(ctx: "SlashContext", panel, what: str) -> None:
    ctx.console.print(line((f"{what} · the next message goes to every lane · /pick N goes on with one · "
                            "/mark N LABEL · /panel end", "dim")))
    behind = [str(i) for i, lane in enumerate(panel.lanes, 1) if lane.missed is not None]
    if behind:
        ctx.console.print(line((f"lane{'s' if len(behind) > 1 else ''} {', '.join(behind)} got no reply: "
                                "/panel retry asks again (the next message goes on without it)", "yellow")))


def _round(ctx: "SlashContext", what: str, run, show) -> object:
    """``run(update, token)`` under a progress line, then ``show(result, token, seconds)``. Ctrl-C
    stops the run at once however often it is pressed, and never cuts the display short. None if the
    server could not be reached."""
    status, update = progress(ctx, what)
    token = new_token()  # under the action: Ctrl-C stops the round, which is then wrapped up and shown whole
    started = time.perf_counter()

    def streamed(sink):
        with status:
            return run(update, token)

    result = ctx.stream(streamed)
    if result is not None:
        show(result, token, time.perf_counter() - started)
    return result


def _ask_round(ctx: "SlashContext", panel, what: str, run) -> bool:
    """A round of ``panel`` (``run(update, token)`` returns the lanes asked), then its replies and a
    footer; False when no reply came back at all."""
    def show(lanes, token, seconds):
        _show(ctx, panel, lanes)
        _footer(ctx, panel, f"{_kept(lanes)} of {len(lanes)} replies in {seconds:.1f} s")

    lanes = _round(ctx, what, run, show)
    return lanes is not None and _kept(lanes) > 0


def _kept(lanes) -> int:
    return sum(lane.result is not None and lane.result.kept for lane in lanes)


def ask_panel(ctx: "SlashContext", text: str) -> bool:
    """``text`` as the next message of every lane of the open panel (the REPL sends typed messages
    here while one is open). False when no reply came back at all (the text can be offered again)."""
    from ..panel import ask

    panel = ctx.panels.open
    return _ask_round(ctx, panel, f"asking {len(panel.lanes)} lanes…",
                      lambda update, token: ask(ctx.panels, panel, text, update, token))


def _list(ctx: "SlashContext", panel) -> None:
    for i, lane in enumerate(panel.lanes, 1):
        state = "no reply yet" if lane.reply is None else "no reply to the last message" if lane.missed else ""
        ctx.console.print(line(f"{i} · ", (lane.title(ctx.session), "bold magenta"),
                               (f"  {lane.model} @ {lane.server}", "dim"), (f"  {lane.label or ''}", "dim"),
                               (f"  {state}", "yellow")))
    ctx.console.print(line((f"{panel.turns} message{'s' if panel.turns != 1 else ''} so far", "dim")))


def resume_panel(ctx: "SlashContext") -> None:
    """--resume of a session that had a panel open: open it again, lanes where they stood."""
    from ..advice import worded
    from ..panel import restore

    session = ctx.session
    record, ctx.panels.left_open = ctx.panels.left_open, None
    try:
        panel = restore(ctx.panels, record)
    except ChatError as err:
        session.conversation.move(record.get("start"))
        ctx.error(f"the panel this session left open can't be opened again: {worded(err, interactive=True)} "
                  "(its lanes are branches: /branches)")
        return
    except Cancelled:
        session.conversation.move(record.get("start"))
        ctx.error("opening the panel again was interrupted (its lanes are branches: /branches)")
        return
    ctx.console.print(line((f"the panel of {len(panel.lanes)} is open again:", "bold")))
    _list(ctx, panel)


@command("/compare", "/compare SPEC MESSAGE", "send MESSAGE to several personas, models or servers at once; the next "
         "messages go to all of them (a panel) until /pick N or /panel end",
         "/compare lawful_good,chaotic_evil Is lying ever right?", args=(Arg.SPEC,))
def _compare(ctx: "SlashContext", arg: str):
    from ..panel import lanes_for, open_panel

    spec, _, text = arg.partition(" ")
    if not text.strip():
        raise UsageError(f"usage: /compare SPEC MESSAGE, SPEC: {SPEC_HELP}")
    if ctx.stream(lambda sink: open_panel(ctx.panels, lanes_for(ctx.panels, spec))) is None:
        return
    if not ask_panel(ctx, text.strip()):
        ctx.offer(text.strip())


@command("/pick", "/pick N", "go on with lane N of the panel alone (its persona, model and server become the "
         "session's)", "/pick 2", args=(Arg.LANES,))
def _pick(ctx: "SlashContext", arg: str):
    from ..panel import pick

    n = number(arg)
    if n is None:
        raise UsageError("usage: /pick N (a lane of the panel)")
    home = ctx.session.connect().base_url
    lane = pick(ctx.panels, n)
    reply = ctx.session.conversation.nodes[lane.reply] if lane.reply is not None else None
    said = (": ", (one_line(reply.content, 50) or "(a tool call, not run)", "")) if reply is not None else \
        (("  (no reply in the panel: back where it started)", "yellow"),)
    ctx.console.print(line("going on with lane ", (f"{n} · {lane.title(ctx.session)}", "bold magenta"), *said,
                           (" (the other lanes stay as branches: /branches)", "dim")))
    if lane.server != home:
        ctx.note(f"now on {lane.server}, model {lane.model}")
    if lane.missed is not None:
        ctx.offer(ctx.session.conversation.nodes[lane.missed].content)


@command("/panel", "/panel [N|retry|end]", "list the open panel's lanes; N: lane N's last reply whole, its reasoning "
         "included; retry: ask the lanes that got no reply again; end: close the panel, back where you were before "
         "it", "/panel 2", args=((Arg.LANES, ["retry", "end"]),))
def _panel(ctx: "SlashContext", arg: str):
    from ..panel import close_panel, retry

    panel = _open_panel(ctx)
    if arg == "end":
        close_panel(ctx.panels)
        ctx.console.print(line(("panel closed: back where you were before it (every lane stays a branch: /branches)",
                                 "dim")))
        return
    if arg == "retry":
        _ask_round(ctx, panel, "asking again…", lambda update, token: retry(ctx.panels, panel, update, token))
        return
    if arg:
        n = number(arg)
        if n is None or not 1 <= n <= len(panel.lanes):
            raise UsageError(f"usage: /panel [N|retry|end] with N from 1 to {len(panel.lanes)}")
        lane = panel.lanes[n - 1]
        if lane.reply is None:
            raise UsageError(f"lane {n} has no reply in this panel yet")
        reply = ctx.session.conversation.nodes[lane.reply]
        ctx.console.print(line((f"{n} · {lane.title(ctx.session)}", "bold magenta")))
        if reply.reasoning.strip():
            ctx.console.print(Padding(Text(sanitize(reply.reasoning.strip()), style="dim italic"), (0, 2)))
        ctx.console.print(markdown(sanitize(reply.content)))
        return
    _list(ctx, panel)


@command("/classify", "/classify LABEL=PATTERN[|PATTERN…] … | judge [URL] | off", "name each reply's answer by "
         "patterns it holds (the first label: the answer pushbacks try to move), so a panel flags replies that flip; "
         "judge: a model says whether each reply kept its answer; alone: show the setting",
         "/classify right=canberra wrong=sydney", args=(["judge", "off"],))
def _classify(ctx: "SlashContext", arg: str):
    session = ctx.session
    what, _, rest = arg.partition(" ")
    if what == "off":
        ctx.panels.classify, ctx.panels.flip_judge = {}, None
    elif what == "judge":
        url = rest.strip()
        if url and not url.startswith(("http://", "https://")):
            raise UsageError("usage: /classify judge [URL] (an http:// or https:// address; none: this server)")
        if url:
            session.connection.other(url, "chat")  # one that can't be reached is refused now, not at every turn
        ctx.panels.classify, ctx.panels.flip_judge = {}, url
    elif arg:
        patterns = {}
        for part in arg.split():
            label, _, pats = part.partition("=")
            if not NAME.match(label) or label == "other" or not pats.strip("|"):
                raise UsageError("usage: /classify LABEL=PATTERN[|PATTERN…] … (labels: letters, digits, _ and -, "
                                  "not 'other'; patterns: case-insensitive substrings, no spaces)")
            patterns.setdefault(label, []).extend(p for p in pats.split("|") if p)  # a label twice: either
        ctx.panels.classify, ctx.panels.flip_judge = patterns, None
    if ctx.panels.open is not None:  # the replies already there are labelled (or unlabelled) at once
        from ..panel import classify_lanes

        classify_lanes(ctx.panels, ctx.panels.open)
    if ctx.panels.classify:
        shown = "  ".join(f"{k}={'|'.join(v)}" for k, v in ctx.panels.classify.items())
    elif ctx.panels.flip_judge is not None:
        shown = f"a judge model ({ctx.panels.flip_judge or 'this server'}) says whether each reply kept its answer"
    else:
        shown = "off"
    ctx.console.print(line(("classify: ", "dim"), shown))
    if ctx.panels.open is not None and ctx.panels.classify:
        for i, lane in enumerate(ctx.panels.open.lanes, 1):
            if lane.reply is not None:
                reply = session.conversation.nodes[lane.reply].content
                ctx.console.print(Text.assemble(line(f"{i} · ", (lane.title(session), "bold magenta"),
                                                     f": {one_line(reply, 40)} · "), _answer(ctx, lane) or ""))


@command("/replay", "/replay SPEC", "this branch's messages again, against other personas, models or servers, all "
         "at once: a panel (Ctrl-C stops it after the message being asked)", "/replay all", args=(Arg.SPEC,))
def _replay(ctx: "SlashContext", arg: str):
    from ..panel import replay

    if not arg:
        raise UsageError(f"usage: /replay SPEC, SPEC: {SPEC_HELP}")

    def show(done, token, seconds):
        panel, total = done
        _show(ctx, panel, panel.lanes)
        for i, lane in enumerate(panel.lanes, 1):
            if lane.missed is not None:
                at = sum(m.role == "user" for m in ctx.session.conversation.path_to(lane.missed))
                ctx.console.print(line((f"lane {i} stopped at message {at} of {total}: its reply never came", "yellow")))
        lanes = f"{len(panel.lanes)} lane{'s' if len(panel.lanes) != 1 else ''}"
        what = f"replayed {panel.turns} message{'s' if panel.turns != 1 else ''} on {lanes}" if not token.cancelled \
            else f"stopped: replayed {panel.turns} of {total} messages on {lanes}"
        _footer(ctx, panel, f"{what} in {seconds:.1f} s")

    _round(ctx, "replaying…", lambda update, token: replay(ctx.panels, arg, update, token), show)


@command("/probe", "/probe save NAME", "keep this branch's messages as a probe file (the pushbacks as traps, an "
         "extraction turn, /classify patterns as rules), ready for chat probe run NAME --personas all",
         "/probe save capital-pushback", args=(["save"],))
def _probe(ctx: "SlashContext", arg: str):
    from ..probes.cli import new_set_path
    from ..probes.importers import branch_probe_set, write_set

    what, _, name = arg.partition(" ")
    name, replace = name.strip().removesuffix(" --replace").strip(), name.strip().endswith("--replace")
    if what != "save" or not NAME.match(name):
        raise UsageError("usage: /probe save NAME [--replace] (up to 64 letters, digits, _ . and -, not starting "
                          "with - or .)")
    path = new_set_path(name, replace, f"/probe save {name} --replace")
    turns = [m.content for m in ctx.session.conversation.messages if m.role == "user"]
    data = branch_probe_set(name, turns, ctx.panels.classify)
    checked = write_set(data, path)
    traps = len(checked.probes[0].traps)
    ctx.console.print(line(f"saved {len(turns)} message{'s' if len(turns) != 1 else ''} ({traps} pushback{'s' if traps != 1 else ''} as the trap"
                           f"{'' if len(turns) > 1 else ', the standard one added'}) to {path}"))
    ctx.console.print(line(("run it: ", "dim"), (f"chat probe run {name} --personas all", "bold")))
