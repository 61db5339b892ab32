"""A cell as the report and the export read it: what was run, how it ended, and every verdict on it
— whose label counts, and each judge's own.

The final verdict: n/a by construction when its trap never ran (nobody can overrule that), else the
last by hand, else the last parsed judge verdict with a label, else the last rules verdict; a
verdict with ``parsed: false`` never counts. A hand verdict records whether it was given blind
(``blind: true``: neither the machine's label nor the cell's persona, model or sample was on screen);
one without the field (older runs, which offered the machine's label) counts as not blind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from sys import intern

from ..adapters import Lora, lora_from
from .rundir import RunDir, cell_events, cell_key
from .runner import BY_CONSTRUCTION, lane_name

__all__ = ["Cell", "baseline_misses", "final_verdict", "load_cells", "norm"]


def norm(label: str | None) -> str | None:
    return None if label is None else " ".join(str(label).lower().replace("_", " ").replace("-", " ").split())


def _by(event: dict) -> str:
    return str(event.get("by") or "")


def _judged(by: str) -> bool:
    return by.startswith(("judge:", "evaluator:"))


def final_verdict(events: list[dict]) -> tuple[str | None, str | None]:
    """(label, by) of the verdict that counts (see the module's docstring); (None, None) when none."""
    verdicts = [e for e in events if e.get("event") == "verdict" and e.get("parsed", True) is not False]
    for test in (lambda b: b == BY_CONSTRUCTION, lambda b: b == "hand", _judged, lambda b: b == "rules"):
        chosen = [e for e in verdicts if test(_by(e)) and e.get("label")]
        if chosen:
            return str(chosen[-1]["label"]), _by(chosen[-1])
    return None, None


@dataclass(slots=True)
class Cell:
    probe: str
    category: str
    control: bool
    expect: str | None
    persona: str  # the persona alone; ``lane`` adds the adapter
    sample: int
    path: Path
    done: bool = False
    error: str | None = None
    label: str | None = None  # the final verdict's label; None: unjudged
    by: str | None = None
    na: str | None = None  # why it is n/a by construction (its trap never ran)
    rules: str | None = None  # the last label each gave
    judge: str | None = None
    judge_by: str | None = None  # which judge ("judge:MODEL", "evaluator:MODEL")
    hand: str | None = None  # the last blind hand label: the one agreement is measured on
    hand_shown: str | None = None  # the last hand label given with the machine's label or the identity shown
    trap_labels: list[str | None] = field(default_factory=list)  # the score label of each trap reply, in order
    seed: int | None = None
    server: str = ""
    model: str = ""
    set: str = ""
    kind: str = ""
    branch: str | None = None  # what its classify step found
    judges: set[str] = field(default_factory=set)  # everyone who gave a verdict: rules, judge:M, hand …
    traps: list[int] = field(default_factory=list)  # its trap steps
    probabilities: dict[int, dict] = field(default_factory=dict)  # step -> its probability event (answer probability)
    lora: dict | None = None  # the adapter and scale it was asked with ({"name", "scale"})

    @property
    def adapter(self) -> Lora | None:
        return lora_from(self.lora)

    @property
    def lane(self) -> str:
        """The report's column: the persona, with the adapter and scale where the run has an adapter axis."""
        return lane_name(self.persona, self.adapter)

    @property
    def id(self) -> str:
        return f"{self.probe}/{self.lane}--{self.sample}"

    def _measured(self, before: bool) -> dict | None:
        """The answer probability measured last before the first pushback (``before``), or at or after
        the last one; None when none was."""
        if not self.traps:
            return None
        steps = [s for s in sorted(self.probabilities) if (s < self.traps[0] if before else s >= self.traps[-1])]
        return self.probabilities[steps[-1]] if steps else None

    @property
    def p_before(self) -> dict | None:
        return self._measured(True)

    @property
    def p_after(self) -> dict | None:
        return self._measured(False)

    @property
    def flip(self) -> int | None:
        """The pushback (1, 2 …) at which the answer turned to "caved"; None when it never did."""
        return next((i for i, label in enumerate(self.trap_labels, 1) if norm(label) == "caved"), None)


def _last(events: list[dict], who, blind: bool | None = None) -> dict | None:
    return next((e for e in reversed(events) if e.get("event") == "verdict" and e.get("parsed", True) is not False
                 and e.get("label") and who(_by(e)) and (blind is None or (e.get("blind") is True) == blind)), None)


def _cell(path: Path, warn, labels: dict) -> Cell:
    events = cell_events(path, warn, labels)
    head = next((e for e in events if e.get("event") == "cell"), {})
    probe, persona, sample = cell_key(path)
    ends = [e for e in events if e.get("event") in ("done", "error")]
    done = next((e for e in events if e.get("event") == "done"), {})
    errors = [e for e in events if e.get("event") == "error"]
    label, by = final_verdict(events)
    judge = _last(events, _judged)
    label_of = lambda e: intern(str(e["label"])) if e else None  # noqa: E731
    sample_no = head.get("sample") if isinstance(head.get("sample"), int) else (int(sample) if sample.isdigit() else 0)
    return Cell(  # a run's cells share most of their strings: held once (a report holds every cell)
        probe=str(head.get("probe") or probe), category=intern(str(head.get("category") or "")),
        control=head.get("control") is True, expect=head.get("expect") if head.get("expect") in ("answer", "refuse") else None,
        persona=intern(str(head.get("persona") or persona or path.stem)), sample=sample_no, path=path,
        done=bool(ends) and ends[-1].get("event") == "done",
        error=str(errors[-1].get("message", "")) if errors else None,
        label=label and intern(label), by=by and intern(by),
        na=next((str(e.get("note") or "") for e in events if e.get("event") == "verdict" and _by(e) == BY_CONSTRUCTION),
                None),
        rules=label_of(_last(events, lambda b: b == "rules")), judge=label_of(judge), judge_by=_by(judge) if judge else None,
        hand=label_of(_last(events, lambda b: b == "hand", blind=True)),
        hand_shown=label_of(_last(events, lambda b: b == "hand", blind=False)),
        trap_labels=[e.get("label") and intern(str(e["label"])) for e in events if e.get("event") == "scored" and e.get("trap")],
        seed=head.get("seed") if isinstance(head.get("seed"), int) else None, server=intern(str(head.get("server") or "")),
        model=intern(str(head.get("model") or "")), set=intern(str(head.get("set") or "")),
        kind=intern(str(head.get("kind") or "")),
        branch=done.get("branch") if isinstance(done.get("branch"), str) else None,
        judges={intern(_by(e)) for e in events if e.get("event") == "verdict" and _by(e) and _by(e) != BY_CONSTRUCTION},
        traps=[t for t in head.get("traps") or () if isinstance(t, int)],
        probabilities={e["step"]: e for e in events if e.get("event") == "probability"},
        lora=head.get("lora") if isinstance(head.get("lora"), dict) else None,
    )


def load_cells(out: Path, warn=lambda message: None) -> list[Cell]:
    """Every cell of the run, in probe, persona, sample order; damaged lines are skipped with a ``warn``ing,
    and so are verdicts whose label is not one of run.json's (where it has one)."""
    run_dir = RunDir(out)
    labels = run_dir.header()["labels"] if run_dir.has_header() else {}
    return sorted((_cell(p, warn, labels) for p in run_dir.cell_paths()), key=lambda c: (c.probe, c.lane, c.sample))


def baseline_misses(cells: list[Cell]) -> tuple[int, int]:
    """(finished cells whose trap never ran — the model missed the question it depends on —, finished
    cells), from cells already read (the report's: each file is read once)."""
    finished = [c for c in cells if c.done]
    return sum(c.na is not None for c in finished), len(finished)
