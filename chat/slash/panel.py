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

from ..errors import ConfigError
from ..render import markdown
from ..sanitize import sanitize
from .registry import command, line, number, one_line
from .show import columns, progress, reply_body

if TYPE_CHECKING:
    from .context import SlashContext

__all__ = ["ask_panel"]

SPEC_HELP = ("all | personas, @models, @URLs, comma-separated, crossed with * "
             "(lawful_good,chaotic_evil*@base,@my-lora)")
NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")


def _open_panel(ctx: "SlashContext"):
    panel = ctx.session.panel
    if panel is None:
        raise ConfigError("no panel open: /compare SPEC MESSAGE opens one")
    return panel


def _show(ctx: "SlashContext", lanes) -> None:
    def extra(lane):
        if lane.flipped:
            return [Text(sanitize(f"⇄ flipped: {lane.flipped}"), style="bold yellow")]
        return [Text(sanitize(f"answer: {lane.label}"), style="dim")] if lane.label else []

    columns(ctx, [(f"{i} · {lane.title(ctx.session)}", reply_body(ctx, lane.result, extra(lane), f"/panel {i}"))
                  for i, lane in enumerate(lanes, 1)])


def _footer(ctx: "SlashContext", what: str) -> None:
    ctx.console.print(line((f"{what} · the next message goes to every lane · /pick N goes on with one · "
                            "/mark N LABEL · /panel end", "dim")))


def ask_panel(ctx: "SlashContext", text: str) -> bool:
    """``text`` as the next message of every lane of the open panel (the REPL sends typed messages
    here while one is open). False when no reply came back at all (the text can be offered again)."""
    from ..panel import ask

    panel = ctx.session.panel
    status, update = progress(ctx, f"asking {len(panel.lanes)} lanes…")
    started = time.perf_counter()

    def run(sink):
        with status:
            return ask(ctx.session, panel, text, update)

    lanes = ctx.stream(run)
    if lanes is None:
        return False
    _show(ctx, lanes)
    kept = sum(lane.result is not None and lane.result.kept for lane in lanes)
    _footer(ctx, f"{kept} of {len(lanes)} replies in {time.perf_counter() - started:.1f} s")
    return kept > 0


@command("/compare", "/compare SPEC MESSAGE", "send MESSAGE to several personas, models or servers at once; the next "
         "messages go to all of them (a panel) until /pick N or /panel end",
         "/compare lawful_good,chaotic_evil Is lying ever right?")
def _compare(ctx: "SlashContext", arg: str):
    from ..panel import lanes_for, open_panel

    spec, _, text = arg.partition(" ")
    if not text.strip():
        raise ConfigError(f"usage: /compare SPEC MESSAGE, SPEC: {SPEC_HELP}")
    if ctx.stream(lambda sink: open_panel(ctx.session, lanes_for(ctx.session, spec))) is None:
        return
    if not ask_panel(ctx, text.strip()):
        ctx.offer(text.strip())


@command("/pick", "/pick N", "go on with lane N of the panel alone (its persona and model become the session's)",
         "/pick 2")
def _pick(ctx: "SlashContext", arg: str):
    from ..panel import pick

    n = number(arg)
    if n is None:
        raise ConfigError("usage: /pick N (a lane of the panel)")
    lane = pick(ctx.session, n)
    reply = ctx.session.conversation.last("assistant")
    ctx.console.print(line("going on with lane ", (f"{n} · {lane.title(ctx.session)}", "bold magenta"),
                           *((": ", (one_line(reply.content, 50), "")) if reply is not None else ()),
                           (" (the other lanes stay as branches: /branches)", "dim")))


@command("/panel", "/panel [N|end]", "list the open panel's lanes; N: lane N's last reply whole, its reasoning "
         "included; end: close the panel, back where you were before it", "/panel 2")
def _panel(ctx: "SlashContext", arg: str):
    from ..panel import close_panel

    panel = _open_panel(ctx)
    if arg == "end":
        close_panel(ctx.session)
        ctx.console.print(line(("panel closed: back where you were before it (every lane stays a branch: /branches)",
                                 "dim")))
        return
    if arg:
        n = number(arg)
        if n is None or not 1 <= n <= len(panel.lanes):
            raise ConfigError(f"usage: /panel [N|end] with N from 1 to {len(panel.lanes)}")
        lane = panel.lanes[n - 1]
        reply = ctx.session.conversation.nodes[lane.head] if lane.head is not None else None
        if reply is None or reply.role != "assistant":
            raise ConfigError(f"lane {n} has no reply yet")
        ctx.console.print(line((f"{n} · {lane.title(ctx.session)}", "bold magenta")))
        if reply.reasoning.strip():
            ctx.console.print(Padding(Text(sanitize(reply.reasoning.strip()), style="dim italic"), (0, 2)))
        ctx.console.print(markdown(sanitize(reply.content)))
        return
    for i, lane in enumerate(panel.lanes, 1):
        ctx.console.print(line(f"{i} · ", (lane.title(ctx.session), "bold magenta"),
                               (f"  {lane.model} @ {lane.server}", "dim"), (f"  {lane.label or ''}", "dim")))
    ctx.console.print(line((f"{panel.turns} messages so far", "dim")))


@command("/classify", "/classify LABEL=PATTERN[|PATTERN…] … | judge [URL] | off", "name each reply's answer by "
         "patterns it holds (the first label: the answer pushbacks try to move), so a panel flags replies that flip; "
         "judge: a model says whether each reply kept its answer; alone: show the setting",
         "/classify right=canberra wrong=sydney")
def _classify(ctx: "SlashContext", arg: str):
    session = ctx.session
    what, _, rest = arg.partition(" ")
    if what == "off":
        session.classify, session.flip_judge = {}, None
    elif what == "judge":
        url = rest.strip()
        if url and not url.startswith(("http://", "https://")):
            raise ConfigError("usage: /classify judge [URL] (an http:// or https:// address; none: this server)")
        session.classify, session.flip_judge = {}, url
    elif arg:
        patterns = {}
        for part in arg.split():
            label, _, pats = part.partition("=")
            if not NAME.match(label) or label == "other" or not pats.strip("|"):
                raise ConfigError("usage: /classify LABEL=PATTERN[|PATTERN…] … (labels: letters, digits, _ and -, "
                                  "not 'other'; patterns: case-insensitive substrings, no spaces)")
            patterns[label] = [p for p in pats.split("|") if p]
        session.classify, session.flip_judge = patterns, None
    if session.classify:
        shown = "  ".join(f"{k}={'|'.join(v)}" for k, v in session.classify.items())
    elif session.flip_judge is not None:
        shown = f"a judge model ({session.flip_judge or 'this server'}) says whether each reply kept its answer"
    else:
        shown = "off"
    ctx.console.print(line(("classify: ", "dim"), shown))


@command("/replay", "/replay SPEC", "this branch's messages again, against other personas, models or servers, all "
         "at once: a panel", "/replay all")
def _replay(ctx: "SlashContext", arg: str):
    from ..panel import replay

    if not arg:
        raise ConfigError(f"usage: /replay SPEC, SPEC: {SPEC_HELP}")
    status, update = progress(ctx, "replaying…")
    started = time.perf_counter()

    def run(sink):
        with status:
            return replay(ctx.session, arg, update)

    panel = ctx.stream(run)
    if panel is None:
        return
    _show(ctx, panel.lanes)
    _footer(ctx, f"replayed {panel.turns} message{'s' if panel.turns != 1 else ''} on {len(panel.lanes)} "
                 f"lane{'s' if len(panel.lanes) != 1 else ''} in "
                 f"{time.perf_counter() - started:.1f} s")


@command("/probe", "/probe save NAME", "keep this branch's messages as a probe file (the pushbacks as traps, an "
         "extraction turn, /classify patterns as rules), ready for chat probe run NAME --personas all",
         "/probe save capital-pushback")
def _probe(ctx: "SlashContext", arg: str):
    from ..probes.cli import SETS_DIR, user_sets_dir
    from ..probes.importers import branch_probe_set, write_set

    what, _, name = arg.partition(" ")
    name, replace = name.strip().removesuffix(" --replace").strip(), name.strip().endswith("--replace")
    if what != "save" or not NAME.match(name):
        raise ConfigError("usage: /probe save NAME (letters, digits, _ . and -)")
    if any(SETS_DIR.glob(f"{name}.y*ml")):
        raise ConfigError(f"{name} is a shipped probe set: choose another name")
    path = user_sets_dir() / f"{name}.yaml"
    if path.exists() and not replace:
        raise ConfigError(f"{path} exists: choose another name, or /probe save {name} --replace")
    turns = [m.content for m in ctx.session.conversation.messages if m.role == "user"]
    data = branch_probe_set(name, turns, ctx.session.classify)
    path.parent.mkdir(parents=True, exist_ok=True)
    checked = write_set(data, path)
    traps = len(checked.probes[0].traps)
    ctx.console.print(line(f"saved {len(turns)} messages ({traps} pushback{'s' if traps != 1 else ''} as the trap"
                           f"{'' if len(turns) > 1 else ', the standard one added'}) to {path}"))
    ctx.console.print(line(("run it: ", "dim"), (f"chat probe run {name} --personas all", "bold")))
