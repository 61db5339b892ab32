"""Judging by hand, blind: the finished cells in a shuffled order (seeded, and kept in the run
directory so a later session goes on in the same order), each shown without its persona, model or
sample until its verdict is given. One key per label; ``b`` goes back and changes the last verdict,
``?`` shows what each label means, ``s`` skips, ``q`` quits. Every verdict is written at once, so
quitting and coming back goes on where it stopped. A judge model's verdict, if any, is offered as
the suggestion (Enter takes it) and disagreements with it are counted; cells that are n/a by
construction are never shown (no label could change them)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from rich.console import Console
from rich.rule import Rule
from rich.text import Text

from ..limits import read_file
from ..render import markdown
from ..sanitize import sanitize
from .model_judging import cells_to_judge, transcript_of
from .report import final_verdict
from .runner import append_event, cell_events

__all__ = ["hand_judge", "judging_order", "read_key"]


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


def judging_order(out: Path, paths: list[Path], seed: int | None = None) -> list[Path]:
    """The cells to judge in their blind order: shuffled once with a seed, both kept in
    OUT/hand-order.json; cells that appear later (a resumed run) are shuffled in after them."""
    record = out / "hand-order.json"
    try:
        saved = json.loads(read_file(record))
        order, seed = list(saved["order"]), saved["seed"]
    except (OSError, ValueError, KeyError, TypeError):
        order, seed = [], seed if seed is not None else random.SystemRandom().randrange(2**31)
    names = {str(p.relative_to(out)): p for p in paths}
    new = sorted(set(names) - set(order))
    random.Random(f"{seed}:{len(order)}").shuffle(new)
    if new:
        order += new
        record.write_text(json.dumps({"seed": seed, "order": order}, indent=1), encoding="utf-8")
    return [names[name] for name in order if name in names]


def _suggestion(events: list[dict]) -> tuple[str | None, str | None]:
    """The machine verdict to offer: a judge's, else the rules'."""
    machine = [e for e in events if e.get("event") == "verdict" and e.get("by") != "hand"]
    return final_verdict(machine)


def _show_labels(console: Console, labels: dict[str, str]) -> None:
    for i, (name, description) in enumerate(labels.items(), 1):
        console.print(Text.assemble((f" {i} ", "reverse"), f" {sanitize(name)}", (f" — {sanitize(description)}", "dim")))


def _identity(cell: dict) -> str:
    return (f"{cell.get('persona')} · model {cell.get('model')} · sample {cell.get('sample')}"
            + (f" · seed {cell['seed']}" if cell.get("seed") is not None else ""))


def hand_judge(out: Path, labels: dict[str, str], console: Console, key_reader=read_key, *, unblind: bool = False,
               seed: int | None = None) -> tuple[int, list]:
    """Judge the cells that have no hand verdict yet. Returns (verdicts given, disagreements with a
    judge model: (probe, persona, sample, judge, its label, yours))."""
    paths = judging_order(out, cells_to_judge(out, "hand"), seed)
    names = list(labels)
    choices = {str(i): name for i, name in enumerate(names, 1)} | {"s": "skip", "q": "quit", "b": "back", "?": "help"}
    console.print(Text(f"{len(paths)} cells to judge, in a shuffled order; persona, model and sample stay hidden "
                       "until you give a verdict" + (" (--unblind: shown)" if unblind else "") + ".", style="dim"))
    console.print(Text("keys: " + " · ".join(f"{i} {sanitize(n)}" for i, n in enumerate(names, 1))
                       + " · ? what the labels mean · b back · s skip · q quit (resumable)", style="dim"))
    given: dict[Path, tuple[str, dict, tuple]] = {}  # path -> (label, cell, suggestion)
    i = 0
    while i < len(paths):
        path = paths[i]
        events = cell_events(path)
        cell = next((e for e in events if e.get("event") == "cell"), {})
        done = next((e for e in events if e.get("event") == "done"), {})
        who = f" · {_identity(cell)}" if unblind else ""
        console.print(Rule(Text(sanitize(f"cell {i + 1}/{len(paths)} · {cell.get('probe')}"
                                         f"{' · control' if cell.get('control') else ''}{who}"), style="bold")))
        for m in transcript_of(events):
            console.print(Text(m["role"], style="bold magenta" if m["role"] == "assistant" else "bold cyan"))
            console.print(markdown(sanitize(m["content"])))
        suggested, by = _suggestion(events)
        console.print(Text((f"Enter: {suggested} ({by}) · " if suggested else "") + "your verdict?", style="dim"))
        answer = key_reader({**choices, **({"enter": suggested} if suggested else {})})
        if answer == "quit":
            break
        if answer == "help":
            _show_labels(console, labels)
            continue
        if answer == "back":
            if i == 0:
                console.print(Text("nothing to go back to", style="dim"))
                continue
            i -= 1
            previous = given.get(paths[i])
            console.print(Text(f"back to cell {i + 1}" + (f" (you said {previous[0]})" if previous else ""), style="yellow"))
            continue
        if answer == "skip":
            console.print(Text("skipped", style="dim"))
            i += 1
            continue
        append_event(path, {"event": "verdict", "label": answer, "by": "hand", "parsed": True})
        given[path] = (answer, cell, (suggested, by))
        console.print(Text.assemble(("→ ", "green"), (answer, "bold green"),
                                    ("" if unblind else sanitize(f"   (was: {_identity(cell)}, branch "
                                                                 f"{done.get('branch') or '-'})"), "dim")))
        i += 1
    disagreements = [(c.get("probe"), c.get("persona"), c.get("sample"), by, theirs, label)
                     for label, c, (theirs, by) in given.values()
                     if theirs and by and by.startswith(("judge:", "evaluator:")) and theirs != label]
    return len(given), disagreements
