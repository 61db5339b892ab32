"""Judging by hand, blind: the finished cells in a shuffled order (seeded, and kept in the run
directory so a later session goes on in the same order), each shown without its persona, model or
sample until its verdict is given, and without any machine label (the rules' or a judge model's): a
person's label that could have followed a suggestion would only measure agreement with it. One key
per label; ``b`` goes back and changes the last verdict, ``?`` shows what each label means, ``s``
skips, ``q`` quits. Every verdict is written at once, so quitting and coming back goes on where it
stopped, and says whether it was given blind: ``blind: false`` when the machine's label was offered
(``show_suggestion``: Enter takes it) or the cell's identity was shown before it (``unblind``, or a
verdict changed with ``b`` after the first one revealed it). Disagreements with a judge model are
counted afterwards. Cells that are n/a by construction are never shown (no label could change them)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.rule import Rule
from rich.text import Text

from .. import interrupts
from ..cancel import stopped
from ..errors import UsageError
from ..output import formatted
from ..records import VerdictRecord
from ..render import markdown
from ..sanitize import sanitize
from ..tty import discard_type_ahead
from .model_judging import cells_to_judge, transcript_of
from .report import final_verdict
from .rundir import HandOrder, RunDir, append_records, cell_events

__all__ = ["LABEL_KEYS", "hand_judge", "judging_order", "read_key"]

# One key per label, in the set's order: the digits, then letters that are not commands (b, q, s)
LABEL_KEYS = "1234567890acdefghijklmnoprtuvwxyz"
COMMANDS = {"s": "skip", "q": "quit", "b": "back", "?": "help"}


@dataclass(frozen=True)
class _Label:
    """A key's value that gives a label, apart from the commands: a label may be called "quit"."""

    label: str


def read_key(choices: dict[str, str], question: str = "") -> str:
    """Show ``question`` and wait for one key among ``choices`` (key → value); Ctrl-C or Ctrl-D mean
    "quit". The question appears once keys are read, and keys typed before it are thrown away."""
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
    app = Application(layout=Layout(Window(FormattedTextControl(formatted(("class:dim", question))), height=1)),
                      key_bindings=kb, full_screen=False)
    if stopped():  # Ctrl-C came just before the question did
        return "quit"
    with interrupts.asking():  # SIGTERM or SIGHUP ends the question
        return app.run(pre_run=discard_type_ahead)  # only a key pressed once the cell is on screen judges it


def judging_order(out: Path, paths: list[Path], seed: int | None = None, warn=lambda message: None) -> list[Path]:
    """The cells to judge in their blind order: shuffled once with a seed, both kept in
    OUT/hand-order.json; cells that appear later (a resumed run) are shuffled in after them. An
    unusable hand-order.json is a warning, and a new order is made."""
    saved = RunDir(out).hand_order(warn)
    if saved is not None:
        order, seed = list(saved.order), saved.seed
    else:
        order, seed = [], seed if seed is not None else random.SystemRandom().randrange(2**31)
    names = {str(p.relative_to(out)): p for p in paths}
    new = sorted(set(names) - set(order))
    random.Random(f"{seed}:{len(order)}").shuffle(new)
    if new:
        order += new
        RunDir(out).write_hand_order(HandOrder(seed=seed, order=order))
    return [names[name] for name in order if name in names]


def _suggestion(events: list[dict]) -> tuple[str | None, str | None]:
    """The machine verdict to offer: a judge's, else the rules'."""
    machine = [e for e in events if e.get("event") == "verdict" and e.get("by") != "hand"]
    return final_verdict(machine)


def _show_labels(console: Console, keyed: dict[str, str], labels: dict[str, str]) -> None:
    for key, name in keyed.items():
        console.print(Text.assemble((f" {key} ", "reverse"), f" {sanitize(name)}",
                                    (f" — {sanitize(labels[name])}", "dim")))


def _identity(cell: dict) -> str:
    return (f"{cell.get('persona')} · model {cell.get('model')} · sample {cell.get('sample')}"
            + (f" · seed {cell['seed']}" if cell.get("seed") is not None else ""))


def hand_judge(out: Path, labels: dict[str, str], console: Console, key_reader=read_key, *, unblind: bool = False,
               show_suggestion: bool = False, seed: int | None = None, warn=lambda message: None) -> tuple[int, list]:
    """Judge the cells that have no hand verdict yet. Returns (verdicts given, disagreements with a
    judge model: (probe, persona, sample, judge, its label, yours)). Damaged files are skipped with a
    ``warn``ing. The run directory is held meanwhile (a second judge or a run on it is refused)."""
    if len(labels) > len(LABEL_KEYS):
        raise UsageError(f"hand judging takes at most {len(LABEL_KEYS)} labels, one key each; this set has "
                         f"{len(labels)}: judge it with a model (--judge URL)")
    with RunDir(out).lock():
        return _judge_by_hand(out, labels, console, key_reader, unblind, show_suggestion, seed, warn)


def _judge_by_hand(out: Path, labels: dict[str, str], console: Console, key_reader, unblind: bool,
                   show_suggestion: bool, seed: int | None, warn) -> tuple[int, list]:
    paths = judging_order(out, cells_to_judge(out, "hand", warn), seed, warn)
    keyed = dict(zip(LABEL_KEYS, labels))
    choices = {key: _Label(name) for key, name in keyed.items()} | COMMANDS
    shown = [what for what, on in (("persona, model and sample", unblind), ("the machine's label", show_suggestion)) if on]
    console.print(Text(f"{len(paths)} cells to judge, in a shuffled order; persona, model, sample and any machine "
                       "label stay hidden until you give a verdict" + (f" ({' and '.join(shown)} shown: these "
                                                                      "verdicts are not blind)" if shown else "")
                       + ".", style="dim"))
    console.print(Text("keys: " + " · ".join(f"{key} {sanitize(n)}" for key, n in keyed.items())
                       + " · ? what the labels mean · b back · s skip · q quit (resumable)", style="dim"))
    given: dict[Path, tuple[str, dict, tuple]] = {}  # path -> (label, cell, machine verdict)
    i = 0
    while i < len(paths):
        path = paths[i]
        events = cell_events(path, warn)
        cell = next((e for e in events if e.get("event") == "cell"), {})
        _show_cell(console, events, cell, f"{i + 1}/{len(paths)}", unblind)
        machine = _suggestion(events)
        offered = machine[0] if show_suggestion else None
        answer = key_reader({**choices, **({"enter": _Label(offered)} if offered else {})},
                            (f"Enter: {offered} ({machine[1]}) · " if offered else "") + "your verdict?")
        if answer == "quit":
            break
        if answer == "help":
            _show_labels(console, keyed, labels)
        elif answer == "back":
            i = _back(console, i, given.get(paths[i - 1]) if i else None)
        elif answer == "skip":
            console.print(Text("skipped", style="dim"))
            i += 1
        else:
            label = answer.label
            blind = not (unblind or show_suggestion or path in given)  # a changed verdict: the identity was shown
            append_records(path, VerdictRecord(label=label, by="hand", blind=blind, parsed=True))
            given[path] = (label, cell, machine)
            done = next((e for e in events if e.get("event") == "done"), {})
            console.print(Text.assemble(("→ ", "green"), (label, "bold green"),
                                        ("" if unblind else sanitize(f"   (was: {_identity(cell)}, branch "
                                                                     f"{done.get('branch') or '-'})"), "dim")))
            i += 1
    disagreements = [(c.get("probe"), c.get("persona"), c.get("sample"), by, theirs, label)
                     for label, c, (theirs, by) in given.values()
                     if theirs and by and by.startswith(("judge:", "evaluator:")) and theirs != label]
    return len(given), disagreements


def _show_cell(console: Console, events: list[dict], cell: dict, position: str, unblind: bool) -> None:
    who = f" · {_identity(cell)}" if unblind else ""
    console.print(Rule(Text(sanitize(f"cell {position} · {cell.get('probe')}"
                                     f"{' · control' if cell.get('control') else ''}{who}"), style="bold")))
    for m in transcript_of(events):
        console.print(Text(m["role"], style="bold magenta" if m["role"] == "assistant" else "bold cyan"))
        console.print(markdown(sanitize(m["content"])))


def _back(console: Console, i: int, previous: tuple | None) -> int:
    """Back to the cell before ``i`` (its index), saying what was said about it."""
    if i == 0:
        console.print(Text("nothing to go back to", style="dim"))
        return i
    console.print(Text(f"back to cell {i}" + (f" (you said {previous[0]})" if previous else ""), style="yellow"))
    return i - 1
