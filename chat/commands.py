"""Slash commands: a registry of small handlers over the session, printing to the REPL's console."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from personas import GRID

from .conversation import PARAMS
from .errors import ChatError
from .render import sanitize
from .sinks import format_stats

if TYPE_CHECKING:
    from .repl import Repl

__all__ = ["COMMANDS", "EXIT", "Command", "dispatch"]

EXIT = object()  # returned by a handler to end the session


@dataclass(frozen=True)
class Command:
    name: str
    usage: str
    help: str
    handler: Callable[["Repl", str], object]
    example: str = ""


COMMANDS: dict[str, Command] = {}
ALIASES = {"/quit": "/exit", "/q": "/exit", "/?": "/help"}


def command(name: str, usage: str, help: str, example: str = ""):
    def register(handler):
        COMMANDS[name] = Command(name, usage, help, handler, example)
        return handler

    return register


def dispatch(repl: "Repl", line: str) -> object:
    """Run one slash command line. Errors are shown as one line; nothing is ever sent to the model."""
    name, _, arg = line.strip().partition(" ")
    name = ALIASES.get(name.lower(), name.lower())
    cmd = COMMANDS.get(name)
    if cmd is None:
        repl.error(f"unknown command {name} — /help lists them (start a message with // to send a literal /)")
        return None
    try:
        return cmd.handler(repl, arg.strip())
    except ChatError as err:
        repl.error(str(err))
        return None


def _line(*parts: tuple[str, str] | str) -> Text:
    """A Text from (text, style) parts, with every text made safe: names can come from servers and files."""
    return Text.assemble(*[(sanitize(p), "") if isinstance(p, str) else (sanitize(p[0]), p[1]) for p in parts])


@command("/help", "/help", "list the commands")
def _help(repl: "Repl", arg: str):
    table = Table(show_header=False, box=None, padding=(0, 2))
    for cmd in COMMANDS.values():
        table.add_row(Text(cmd.usage, style="bold"), Text(cmd.help))
    repl.console.print(table)
    repl.console.print(_line(("Enter sends · Alt-Enter (or Esc then Enter) adds a line · Ctrl-C stops a reply · Ctrl-D quits", "dim")))


@command("/persona", "/persona [NAME]", "switch persona (none: no system message); alone: show the grid",
         "/persona chaotic_good")
def _persona(repl: "Repl", arg: str):
    session = repl.session
    if arg:
        persona = session.set_persona(arg)
        repl.console.print(_line("persona ", (persona.name, "bold magenta"), " · ",
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
    repl.console.print(table)
    others = [n for n in session.personas if n not in GRID]
    extra = [Text(f"● {n}" if n == current else n, style="bold magenta" if n == current else "") for n in others]
    if current == "custom":
        extra.append(Text("● custom", style="bold magenta"))
    repl.console.print(Text("  also: ", style="dim") + Text("  ").join(extra))


def _system_summary(system: str | None) -> str:
    if system is None:
        return "no system message"
    lines = system.strip().splitlines() or [""]
    more = "…" if len(lines[0]) > 80 or len(lines) > 1 else ""
    return f"system: {lines[0][:80]}{more}"


@command("/personas", "/personas", "all personas with their system messages and descriptions")
def _personas(repl: "Repl", arg: str):
    table = Table(box=None, padding=(0, 2), header_style="dim")
    for col in ("", "name", "system message", "description"):
        table.add_column(col)
    current = repl.session.conversation.persona.name
    for p in repl.session.personas.values():
        table.add_row("●" if p.name == current else "", Text(sanitize(p.name), style="bold"),
                      Text(_system_summary(p.system).removeprefix("system: ")),
                      Text(sanitize(p.description) + ("" if p.source == "builtin" else f"  ({p.source})"), style="dim"))
    repl.console.print(table)


@command("/system", "/system [TEXT]", "use TEXT as the system prompt (persona \"custom\"); alone: show it",
         "/system You are a terse pirate.")
def _system(repl: "Repl", arg: str):
    if arg:
        repl.session.set_system(arg)
        repl.console.print(_line("persona ", ("custom", "bold magenta"), " · ", (_system_summary(arg), "dim")))
    else:
        system = repl.session.conversation.system
        repl.console.print(_line(("(no system message)", "dim")) if system is None else Text(sanitize(system)))


@command("/model", "/model [NAME]", "list the server's models, or switch to one", "/model my-lora")
def _model(repl: "Repl", arg: str):
    session = repl.session
    if arg:
        session.set_model(arg)
        repl.console.print(_line("model ", (arg, "bold")))
        return
    server = session.connect()
    for name in server.models:
        window = server.window(name)
        mark = "● " if name == session.model else "  "
        repl.console.print(_line(mark, (name, "bold" if name == session.model else ""),
                                 (f"  window {window:,}" if window else "", "dim")))


@command("/set", "/set NAME VALUE", f"set a sampling parameter ({', '.join(PARAMS)}; VALUE default unsets)",
         "/set temperature 0.7")
def _set(repl: "Repl", arg: str):
    name, _, value = arg.partition(" ")
    if not value.strip():
        params = repl.session.conversation.params
        shown = ", ".join(f"{k}={params[k]}" if k in params else f"{k}=server default" for k in PARAMS)
        repl.console.print(_line(shown) if not name else _line(("usage: /set NAME VALUE", "red")))
        return
    value = repl.session.set_param(name.strip(), value.strip())
    repl.console.print(_line(f"{name} = {'server default' if value is None else value}"))


@command("/status", "/status", "server, model, API (and why), persona, parameters, context")
def _status(repl: "Repl", arg: str):
    repl.console.print(status_table(repl))


def status_table(repl: "Repl") -> Table:
    session = repl.session
    table = Table(show_header=False, box=None, padding=(0, 2))
    server = session.server
    if server is None:
        table.add_row("server", Text("not connected", style="red"))
    else:
        version = f" {server.version}" if server.version else ""
        table.add_row("server", Text(sanitize(f"{server.base_url} ({server.flavor}{version})")))
    table.add_row("model", Text(sanitize(session.model or "?")))
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
    table.add_row("reasoning", Text("shown" if repl.show_reasoning else "hidden (/think shows it)"))
    if session.transcript is not None:
        table.add_row("transcript", Text(sanitize(str(session.transcript.path))))
    if stats:
        table.add_row("last reply", Text(format_stats(stats, window)))
    return table


@command("/clear", "/clear", "forget the conversation (persona and settings stay)")
def _clear(repl: "Repl", arg: str):
    repl.session.conversation.clear()
    repl.session.last_stats = None
    repl.console.print(_line(("conversation cleared", "dim")))


@command("/think", "/think", "toggle showing the model's reasoning")
def _think(repl: "Repl", arg: str):
    repl.show_reasoning = not repl.show_reasoning
    repl.console.print(_line(("reasoning " + ("shown" if repl.show_reasoning else "hidden"), "dim")))


@command("/tools", "/tools", "the model's tools and whether each asks before running")
def _tools(repl: "Repl", arg: str):
    from tools import TOOLS

    toolbox = repl.session.toolbox
    if not toolbox.enabled:
        repl.console.print(_line(("tools are off: none are offered to the model", "yellow")))
    table = Table(show_header=False, box=None, padding=(0, 2))
    for name, tool in TOOLS.items():
        state = toolbox.policy.state(name)
        table.add_row(Text(name, style="bold"), Text(state, style="yellow" if state != "asks" else "green"),
                      Text(tool.description.split(". ")[0], style="dim"))
    repl.console.print(table)
    repl.console.print(_line((f"workspace: {toolbox.workspace.root}", "dim")))


@command("/approvals", "/approvals reset", "ask again before every tool call (undoes a(lways) and --approve)",
         "/approvals reset")
def _approvals(repl: "Repl", arg: str):
    if arg != "reset":
        repl.error("usage: /approvals reset")
        return
    repl.session.toolbox.policy.reset()
    repl.console.print(_line(("every tool asks again", "dim")))


@command("/exit", "/exit, /quit", "leave (Ctrl-D does too)")
def _exit(repl: "Repl", arg: str):
    return EXIT
