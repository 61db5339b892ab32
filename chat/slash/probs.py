"""/probs: why did it say that? The last reply (or a panel lane's) with each token shaded by the
probability the model gave it, and for one token — by number, by the text it begins, or by default
the first token of the answer — its likeliest alternatives. The probabilities come with the reply
when ``/set logprobs on`` asked for them (chat/logprobs.py reads them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from ..errors import UsageError
from ..logprobs import alternatives, find, first_word, probability
from ..sanitize import sanitize
from .registry import Arg, command, line, number

if TYPE_CHECKING:
    from ..conversation import Message
    from .context import SlashContext

__all__: list[str] = []

# (lowest probability, style, legend): the shading of a token
SHADES = ((0.9, "", "≥90% plain"), (0.5, "black on grey70", "50–90%"), (0.2, "black on dark_orange", "20–50%"),
          (0.0, "white on red3", "below 20%"))
UNKNOWN = ("dim italic", "no figure")  # a token whose probability the server sent as none that could be one
BAR = 24  # the width of a probability bar at 100%


def _shade(p: float | None) -> str:
    return UNKNOWN[0] if p is None else next(style for low, style, _ in SHADES if p >= low)


def _figure(p: float | None, digits: int = 1) -> str:
    return "no figure" if p is None else f"{100 * p:.{digits}f}%"


def _reply(ctx: "SlashContext", args: list[str]) -> tuple["Message", str, list[str]]:
    """The reply asked about, what to call it, and the arguments left: in a panel a first number is a lane."""
    session, panel = ctx.session, ctx.panels.open
    if panel is not None and args and (n := number(args[0])) is not None:
        if not 1 <= n <= len(panel.lanes):
            raise UsageError(f"usage: /probs [LANE] [#TOKEN | TEXT] with LANE from 1 to {len(panel.lanes)}")
        lane = panel.lanes[n - 1]
        if lane.reply is None:
            raise UsageError(f"lane {n} has no reply in this panel yet")
        return session.conversation.nodes[lane.reply], f"lane {n} · {lane.title(session)}", args[1:]
    reply = session.conversation.last("assistant")
    if reply is None:
        raise UsageError("no reply yet")
    return reply, f"the last reply ({reply.persona or 'none'})", args


def _chosen(ctx: "SlashContext", tokens: list[dict], args: list[str]) -> tuple[int, str]:
    """The token to open up, and why that one."""
    if args and args[0].startswith("#"):
        i = number(args[0][1:])
        if i is None or not 1 <= i <= len(tokens):
            raise UsageError(f"usage: /probs [LANE] #N with N from 1 to {len(tokens)} (the reply's tokens)")
        return i - 1, f"token {i}"
    if args:
        wanted = " ".join(args)
        i = find(tokens, wanted)
        if i is None:
            raise UsageError(f"{wanted!r} is not in the reply")
        return i, f"where {wanted!r} begins"
    patterns = [p for ps in ctx.panels.classify.values() for p in ps]
    i = find(tokens, *patterns) if patterns else None
    if i is not None:
        return i, "the first token of the answer (where a /classify pattern begins)"
    return first_word(tokens) or 0, "the first token of the answer (its first word; /classify patterns find it)"


def _summary(ps: list[float | None]) -> str:
    """The reply's tokens counted: how many fell below 50%, their mean, and those with no figure."""
    known = [p for p in ps if p is not None]
    unknown = f" · {len(ps) - len(known)} with no figure" if len(known) < len(ps) else ""
    mean = _figure(sum(known) / len(known) if known else None, 0)
    return f" · {len(ps)} tokens · {sum(p < 0.5 for p in known)} below 50% · mean {mean}{unknown}"


def _shaded(tokens: list[dict], ps: list[float | None], chosen: int) -> Text:
    out = Text()
    for i, token in enumerate(tokens):
        style = _shade(ps[i])
        out.append(sanitize(token["token"]), style=style + (" underline bold" if i == chosen else ""))
    return out


def _alternatives(token: dict) -> Table:
    top, rest = alternatives(token)
    table = Table(show_header=False, box=None, padding=(0, 1))
    for text, p in top:
        mark = "●" if text == token["token"] else " "
        table.add_row(mark, Text(repr(sanitize(text))), Text(f"{100 * p:5.1f}%"), Text("█" * round(BAR * p),
                                                                                     style=_shade(p) or "green"))
    table.add_row("", Text(f"outside the top {len(top)}", style="dim"), Text(f"{100 * rest:5.1f}%", style="dim"), "")
    return table


@command("/probs", "/probs [LANE] [#N | TEXT]", "the last reply (LANE: a panel lane's) with each token shaded by its "
         "probability, and a token's likeliest alternatives: #N, where TEXT begins, or the answer's first token "
         "(needs /set logprobs on)", "/probs 2 Sydney", args=(Arg.LANES,))
def _probs(ctx: "SlashContext", arg: str):
    reply, what, rest = _reply(ctx, arg.split())
    tokens = reply.logprobs
    if not tokens:
        why = ctx.session.logprobs_missing()
        raise UsageError(f"{what} came without token probabilities: "
                         + (why if why else "/set logprobs on asks for them with every reply (then /retry, or "
                            "ask again)"))
    i, why = _chosen(ctx, tokens, rest)
    ps = [None if t["logprob"] is None else probability(t["logprob"]) for t in tokens]
    ctx.console.print(line((what, "bold magenta"), (_summary(ps), "dim")))
    ctx.console.print(_shaded(tokens, ps, i))
    shades = SHADES + ((None, *UNKNOWN),) if None in ps else SHADES
    ctx.console.print(Text.assemble(("shading: ", "dim"), *[(f" {legend} ", style or "dim") for _, style, legend
                                                            in shades]))
    ctx.console.print(line((f"token {i + 1} of {len(tokens)}, {why}: ", "bold"), repr(tokens[i]["token"]),
                           f" {_figure(ps[i])} · the top {len(tokens[i]['top'])} alternatives the server sent "
                           "there:"))
    ctx.console.print(_alternatives(tokens[i]))
