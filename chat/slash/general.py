"""The everyday slash commands: help, personas, model, parameters, status, tools, leaving."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from ...personas import GRID
from ..adapters import scale_text, unread_note
from ..conversation import PARAMS
from ..errors import UsageError
from ..limits import MAX_ROWS, listed
from ..sanitize import sanitize
from ..sinks import format_stats
from .registry import COMMANDS, EXIT, Arg, command, line, number

if TYPE_CHECKING:
    from .context import SlashContext

__all__ = ["adapter_line", "status_table"]


@command("/help", "/help", "list the commands")
def _help(ctx: "SlashContext", arg: str):
    table = Table(show_header=False, box=None, padding=(0, 2))
    for cmd in COMMANDS.values():
        table.add_row(Text(cmd.usage, style="bold"), Text(cmd.help))
    ctx.console.print(table)
    ctx.console.print(line(("Enter sends · Alt-Enter (or Esc then Enter) adds a line · Ctrl-C stops a reply · Ctrl-D quits", "dim")))


@command("/persona", "/persona [NAME]", "switch persona (none: no system message); alone: show the grid",
         "/persona chaotic_good", moves="with an argument", args=(Arg.PERSONAS,))
def _persona(ctx: "SlashContext", arg: str):
    session = ctx.session
    if arg:
        persona = session.set_persona(arg)
        ctx.console.print(line("persona ", (persona.name, "bold magenta"), " · ",
                                 (_system_summary(persona.system), "dim")))
        return
    current = session.conversation.persona.name
    table = Table(show_header=True, box=None, padding=(0, 2), header_style="dim")
    table.add_column("")
    for law in ("lawful", "neutral", "chaotic"):
        table.add_column(law)
    for row, moral in enumerate(("good", "neutral", "evil")):
        names = GRID[row * 3: row * 3 + 3]
        table.add_row(Text(moral, style="dim"), *[
            Text(f"● {n}", style="bold magenta") if n == current else Text(f"  {n}") for n in names
        ])
    ctx.console.print(table)
    others = [n for n in session.personas if n not in GRID]
    extra = [Text(sanitize(f"● {n}" if n == current else n), style="bold magenta" if n == current else "")
             for n in others]
    if current == "custom":
        extra.append(Text("● custom", style="bold magenta"))
    ctx.console.print(Text("  also: ", style="dim") + Text("  ").join(extra))


def _system_summary(system: str | None) -> str:
    if system is None:
        return "no system message"
    lines = sanitize(system).strip().splitlines() or [""]
    more = "…" if len(lines[0]) > 80 or len(lines) > 1 else ""
    return f"system: {lines[0][:80]}{more}"


@command("/personas", "/personas", "all personas with their system messages and descriptions")
def _personas(ctx: "SlashContext", arg: str):
    table = Table(box=None, padding=(0, 2), header_style="dim")
    for col in ("", "name", "system message", "description"):
        table.add_column(col)
    current = ctx.session.conversation.persona.name
    for p in ctx.session.personas.values():
        table.add_row("●" if p.name == current else "", Text(sanitize(p.name), style="bold"),
                      Text(_system_summary(p.system).removeprefix("system: ")),
                      Text(sanitize(p.description) + ("" if p.source == "builtin" else f"  ({p.source})"), style="dim"))
    ctx.console.print(table)


@command("/system", "/system [TEXT]", "use TEXT as the system prompt (persona \"custom\"); alone: show it",
         "/system You are a terse pirate.", moves="with an argument")
def _system(ctx: "SlashContext", arg: str):
    if arg:
        ctx.session.set_system(arg)
        ctx.console.print(line("persona ", ("custom", "bold magenta"), " · ", (_system_summary(arg), "dim")))
    else:
        system = ctx.session.conversation.system
        ctx.console.print(line(("(no system message)", "dim")) if system is None else Text(sanitize(system)))


@command("/model", "/model [NAME]", "list the server's models, or switch to one", "/model my-lora",
         moves="with an argument", args=(Arg.MODELS,))
def _model(ctx: "SlashContext", arg: str):
    session = ctx.session
    if arg:
        session.set_model(arg)
        ctx.console.print(line("model ", (arg, "bold")))
        return
    server = session.connect()
    shown = _rows(server.models, session.model)
    for name in shown:
        window = server.window(name)
        mark = "● " if name == session.model else "  "
        ctx.console.print(line(mark, (name, "bold" if name == session.model else ""),
                                 (f"  window {window:,}" if window else "", "dim")))
    if len(server.models) > len(shown):
        ctx.console.print(line((f"  … and {len(server.models) - len(shown):,} more (Tab after /model completes "
                                "every name)", "dim")))


def _rows(names: list[str], current: str | None) -> list[str]:
    """The names a list shows a row each: a server can list thousands, so the first MAX_ROWS, and the
    current one where it is further on (how many more is the caller's line)."""
    shown = names[:MAX_ROWS]
    return shown + [current] if current in names and current not in shown else shown


@command("/set", "/set NAME VALUE", f"set a sampling parameter ({', '.join(PARAMS)}; VALUE default unsets)",
         "/set temperature 0.7", args=(Arg.PARAMETERS, ["default"]))
def _set(ctx: "SlashContext", arg: str):
    name, _, value = arg.partition(" ")
    if not value.strip():
        params = ctx.session.conversation.params
        shown = ", ".join(f"{k}={params[k]}" if k in params else f"{k}=server default" for k in PARAMS)
        ctx.console.print(line(shown) if not name else line(("usage: /set NAME VALUE", "red")))
        return
    value = ctx.session.set_param(name.strip(), value.strip())
    ctx.console.print(line(f"{name} = {'server default' if value is None else value}"))
    missing = ctx.session.logprobs_missing() if name.strip() == "logprobs" and value is not None else None
    if missing:
        ctx.note(missing)


@command("/status", "/status", "server, model, API (and why), persona, parameters, context")
def _status(ctx: "SlashContext", arg: str):
    ctx.console.print(status_table(ctx))


def status_table(ctx: "SlashContext") -> Table:
    session = ctx.session
    table = Table(show_header=False, box=None, padding=(0, 2))
    server = session.server
    if server is None:
        table.add_row("server", Text("not connected", style="red"))
    else:
        version = f" {server.version}" if server.version else ""
        table.add_row("server", Text(sanitize(f"{server.base_url} ({server.flavor}{version})")))
    table.add_row("model", Text(sanitize(session.model or "?")))
    adapter = adapter_line(session)
    if adapter:
        table.add_row("adapter", Text(sanitize(adapter)))
    api, why = session.api
    table.add_row("api", Text(f"{api} — {why}"))
    persona = session.conversation.persona
    table.add_row("persona", Text(sanitize(f"{persona.name} — {_system_summary(persona.system)}")))
    params = session.conversation.params
    table.add_row("parameters", Text(", ".join(f"{k}={v}" for k, v in params.items()) or "server defaults"))
    stats = session.last_stats
    window = session.window
    used = stats.context_used if stats else None
    context = f"{used:,}" if used is not None else "—"
    context += f" / {window:,}" if window else " / window unknown"
    table.add_row("context", Text(f"{context} tokens ({len(session.conversation.messages)} messages)"))
    table.add_row("reasoning", Text("shown" if ctx.show_reasoning else "hidden (/think shows it)"))
    if session.transcript is not None:
        failed = session.transcript.failed
        table.add_row("transcript", Text(sanitize(f"not being saved: {failed} (/save PATH writes it elsewhere)"),
                                         style="red") if failed else Text(sanitize(str(session.transcript.path))))
    if stats:
        table.add_row("last reply", Text(format_stats(stats, window)))
    return table


def adapter_line(session) -> str | None:
    """The LoRA adapter the session asks with, or the server's own (None: the server has none)."""
    server = session.server
    if session.lora is not None:
        return f"{session.lora}, {server.kind.lora_how if server else ''}"
    if server is None or not server.adapters:
        return None
    held = listed((f"{a.name}×{scale_text(a.scale)}" if server.kind.lora_scales else a.name for a in server.adapters),
                  unread=server.adapters_unread)
    return f"none asked for: as the server has it ({held}; /lora changes it)"


@command("/lora", "/lora [SCALE | NAME | NAME:SCALE | default]", "the server's LoRA adapters; with an argument, "
         "ask with one at a scale (0: the base model; llama-server per request, vLLM by the adapter's model name); "
         "default: as the server has it", "/lora 0.5", moves="with an argument")
def _lora(ctx: "SlashContext", arg: str):
    session = ctx.session
    if arg:
        lora = session.set_lora(None if arg.lower() in ("default", "off", "none") else arg)
        ctx.console.print(line("adapter ", (str(lora) if lora else "as the server has it", "bold")))
        return
    server = session.connect()
    if not server.adapters:
        ctx.console.print(line(("the server has no LoRA adapters (serve llama MODEL.gguf --lora FILE, serve vllm "
                                "MODEL --lora NAME=PATH start one with them)", "dim")))
        return
    names = [a.name for a in server.adapters]
    shown = _rows(names, session.lora and session.lora.name)
    for name in shown:
        mark = "● " if session.lora and session.lora.name == name else "  "
        ctx.console.print(line(mark, (name, "bold"), (f"  {server.kind.lora_how}", "dim")))
    more = len(names) - len(shown) + server.adapters_unread
    if more:
        ctx.console.print(line((f"  … and {more:,} more{unread_note(server.adapters_unread)}", "dim")))
    ctx.console.print(line(("now: ", "dim"), adapter_line(session) or ""))


@command("/clear", "/clear", "start a fresh conversation (persona and settings stay; the old one stays in the transcript)",
         moves="always")
def _clear(ctx: "SlashContext", arg: str):
    ctx.session.clear()
    ctx.console.print(line(("a fresh conversation: no messages, no branches (the old ones are in the transcript)",
                            "dim")))


@command("/think", "/think", "toggle showing the model's reasoning")
def _think(ctx: "SlashContext", arg: str):
    ctx.show_reasoning = not ctx.show_reasoning
    ctx.console.print(line(("reasoning " + ("shown" if ctx.show_reasoning else "hidden"), "dim")))


@command("/tools", "/tools", "the model's tools and whether each asks before running")
def _tools(ctx: "SlashContext", arg: str):
    from ...tools import TOOLS

    toolbox = ctx.session.toolbox
    if not toolbox.enabled:
        ctx.console.print(line(("tools are off: none are offered to the model", "yellow")))
    table = Table(show_header=False, box=None, padding=(0, 2))
    for name, tool in TOOLS.items():
        state = toolbox.policy.state(name)
        table.add_row(Text(name, style="bold"), Text(state, style="yellow" if state != "asks" else "green"),
                      Text(tool.description.split(". ")[0], style="dim"))
    ctx.console.print(table)
    ctx.console.print(line((f"workspace: {toolbox.workspace.root}", "dim")))


@command("/expand", "/expand [N]", "show the whole output of the last tool call (N: the Nth from last)", "/expand 2")
def _expand(ctx: "SlashContext", arg: str):
    results = [m for m in ctx.session.conversation.messages if m.role == "tool"]
    n = number(arg) if arg else 1
    if not results or n is None or not 1 <= n <= len(results):
        raise UsageError(f"no tool output to show{'' if not results else f' (1 to {len(results)})'}")
    message = results[-n]
    ctx.console.print(line((f"{message.name} · the whole output", "dim")))
    ctx.console.print(Padding(Text(sanitize(message.content)), (0, 4)))


@command("/approvals", "/approvals reset", "ask again before every tool call (undoes a(lways) and --approve)",
         "/approvals reset", args=(["reset"],))
def _approvals(ctx: "SlashContext", arg: str):
    if arg != "reset":
        ctx.error("usage: /approvals reset")
        return
    ctx.session.toolbox.policy.reset()
    ctx.console.print(line(("every tool asks again", "dim")))


@command("/exit", "/exit, /quit", "leave (Ctrl-D does too)")
def _exit(ctx: "SlashContext", arg: str):
    return EXIT
