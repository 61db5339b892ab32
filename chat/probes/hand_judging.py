"""Judging by hand: each finished cell's conversation, one key per label. Every answer is written at
once, so quitting and coming back goes on where it stopped. A judge's verdict, if any, is shown as
the suggestion (Enter accepts it) and disagreements are counted."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.rule import Rule
from rich.text import Text

from ..render import markdown
from ..sanitize import sanitize
from .model_judging import cells_to_judge, transcript_of
from .report import final_verdict
from .runner import append_event, cell_events

__all__ = ["hand_judge", "read_key"]


def read_key(choices: dict[str, str]) -> str:
    """Wait for one key among ``choices`` (key → value); Ctrl-C or Ctrl-D mean "quit"."""
    from prompt_toolkit.application import Application
    from prompt_toolkit.key_binding import KeyBindings
    from prompt_toolkit.layout import Layout
    from prompt_toolkit.layout.containers import Window
    from prompt_toolkit.layout.controls import FormattedTextControl

    kb = KeyBindings()
    if "enter" in choices:  # Enter pressed before raw mode reaches us as a line feed
        choices = {**choices, "c-j": choices["enter"]}
    for key, value in choices.items():
        kb.add(key)(lambda event, value=value: event.app.exit(result=value))
    for key in ("c-c", "c-d"):
        kb.add(key)(lambda event: event.app.exit(result="quit"))
    app = Application(layout=Layout(Window(FormattedTextControl(""), height=1)), key_bindings=kb,
                      full_screen=False)
    return app.run()


def _suggestion(events: list[dict]) -> tuple[str | None, str | None]:
    """The machine verdict to offer: a judge's, else the rules'."""
    machine = [e for e in events if e.get("event") == "verdict" and e.get("by") != "hand"]
    return final_verdict(machine)


def hand_judge(out: Path, labels: dict[str, str], console: Console, key_reader=read_key) -> tuple[int, list]:
    """Judge the cells that have no hand verdict yet. Returns (judged, disagreements)."""
    paths = cells_to_judge(out, "hand")
    names = list(labels)
    judged, disagreements = 0, []
    for n, path in enumerate(paths, 1):
        events = cell_events(path)
        cell = next(e for e in events if e.get("event") == "cell")
        done = next(e for e in events if e.get("event") == "done")
        console.print(Rule(Text(f"{n}/{len(paths)} · {cell['probe']} · {cell['persona']} · sample {cell['sample']}"
                                f"{' · control' if cell.get('control') else ''} · branch {done.get('branch') or '-'}",
                                style="bold")))
        for m in transcript_of(events):
            console.print(Text(m["role"], style="bold magenta" if m["role"] == "assistant" else "bold cyan"))
            console.print(markdown(sanitize(m["content"])))
        suggested, by = _suggestion(events)
        for i, name in enumerate(names, 1):
            console.print(Text.assemble((f" {i} ", "reverse"), f" {name}", (f" — {labels[name]}", "dim")))
        hint = f"Enter: {suggested} ({by}) · " if suggested else ""
        console.print(Text(f"{hint}s: skip · q: quit (resumable)", style="dim"))
        choices = {str(i): name for i, name in enumerate(names, 1)}
        choices.update({"s": "skip", "q": "quit"})
        if suggested:
            choices["enter"] = suggested
        answer = key_reader(choices)
        if answer == "quit":
            break
        if answer == "skip":
            continue
        append_event(path, {"event": "verdict", "label": answer, "by": "hand", "parsed": True})
        judged += 1
        if suggested and by != "rules" and suggested != answer:
            disagreements.append((cell["probe"], cell["persona"], cell["sample"], by, suggested, answer))
        console.print(Text(f"→ {answer}", style="green"))
    return judged, disagreements
