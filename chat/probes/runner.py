"""Running a probe set: every persona × sample is a cell, run in parallel (bounded), each saved as
its own JSONL file, so an interrupted run resumes without redoing finished cells.

    OUT/run.json                                  the run: set, kind, labels, model, server, personas, ...
    OUT/cells/<probe>/<persona>--<sample>.jsonl   cell, message…, branch…, done | error, verdict…

A cell's file is written as it goes and flushed per event; "done" marks it finished. Verdicts are
appended later by rules, judges and people, each saying who gave it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ...personas import Persona
from ..backends import Backend, Request
from ..cancel import CancelToken
from ..conversation import Message
from ..eventlog import append_events, read_log
from ..turn import NullSink, run_turn
from .spec import Probe, ProbeSet, matches

__all__ = ["Cell", "Run", "append_event", "cell_events", "run_probes"]


def append_event(path: Path, event: dict) -> None:
    append_events(path, event)


def cell_events(path: Path) -> list[dict]:
    """A cell file's events (chat/eventlog.py: a torn last line and damaged lines are skipped)."""
    try:
        return read_log(path).events
    except OSError:
        return []


@dataclass(frozen=True)
class Cell:
    probe: Probe
    persona: Persona
    sample: int

    def path(self, out: Path) -> Path:
        return out / "cells" / self.probe.id / f"{self.persona.name}--{self.sample}.jsonl"


@dataclass
class Run:
    probe_set: ProbeSet
    personas: list[Persona]
    samples: int
    out: Path
    model: str
    server: str
    params: dict = field(default_factory=dict)
    judge: str = "none"

    def cells(self) -> list[Cell]:
        return [Cell(p, persona, k) for p in self.probe_set.probes for persona in self.personas
                for k in range(1, self.samples + 1)]

    def write_header(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        header = {"set": self.probe_set.name, "title": self.probe_set.title, "kind": self.probe_set.kind,
                  "labels": self.probe_set.labels, "source": self.probe_set.source, "model": self.model,
                  "server": self.server, "personas": [p.name for p in self.personas], "samples": self.samples,
                  "params": self.params, "judge": self.judge, "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
        path = self.out / "run.json"
        if path.exists():  # resuming: keep when it started, note the rest
            header["started"] = json.loads(path.read_text(encoding="utf-8")).get("started", header["started"])
        path.write_text(json.dumps(header, indent=2, ensure_ascii=False), encoding="utf-8")

    def finished(self, cell: Cell) -> bool:
        return any(e.get("event") == "done" for e in cell_events(cell.path(self.out)))


def _run_cell(run: Run, cell: Cell, backend: Backend, stop: CancelToken) -> bool:
    """One scripted conversation; True when it finished. An error or a stop leaves it unfinished."""
    path = cell.path(run.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)  # an unfinished earlier attempt is redone from the start
    probe, persona = cell.probe, cell.persona
    append_event(path, {"event": "cell", "set": run.probe_set.name, "kind": run.probe_set.kind, "probe": probe.id,
                        "category": probe.category, "control": probe.control, "expect": probe.expect,
                        "persona": persona.name, "system": persona.system, "sample": cell.sample,
                        "model": run.model, "server": run.server, "params": run.params})
    messages: list[Message] = []
    branch, extraction = None, ""
    extract_at = probe.extraction_index()
    for i, step in enumerate(probe.steps):
        if stop.cancelled:
            return False
        if step.when is not None and (branch or "other") not in step.when:
            continue
        messages.append(Message("user", step.say))
        append_event(path, {"event": "message", "role": "user", "content": step.say, "step": i})
        request = Request(model=run.model, system=persona.system, messages=list(messages), params=dict(run.params))
        result = run_turn(backend, request, NullSink(), stop)
        if result.error is not None or result.interrupted:
            append_event(path, {"event": "error", "step": i,
                                "message": str(result.error) if result.error else "interrupted"})
            return False
        reply = result.message
        messages.append(Message("assistant", reply.content))
        append_event(path, {"event": "message", "role": "assistant", "content": reply.content,
                            "reasoning": reply.reasoning, "step": i, "stats": reply.stats})
        if step.classify:
            branch = step.branch_of(reply.content)
            append_event(path, {"event": "branch", "step": i, "branch": branch})
        if i <= extract_at:
            extraction = reply.content
    append_event(path, {"event": "done", "branch": branch, "extraction": extraction})
    label = next((label for label, patterns in probe.score.items() if matches(patterns, extraction)), None)
    if label is not None:
        append_event(path, {"event": "verdict", "label": label, "by": "rules", "parsed": True,
                            "raw": "", "note": "matched the probe's score patterns"})
    return True


def run_probes(run: Run, backend: Backend, concurrency: int = 16,
               progress: Callable[[int, int], None] = lambda done, total: None) -> tuple[int, int]:
    """Run every unfinished cell, at most ``concurrency`` at once. Returns (finished now, skipped as
    already done). Ctrl-C stops every cell at once (running ones are left unfinished, to be redone on
    the next run); what finished is kept."""
    run.write_header()
    todo = [c for c in run.cells() if not run.finished(c)]
    skipped = len(run.cells()) - len(todo)
    stop = CancelToken()
    done = [0]
    lock = threading.Lock()
    progress(0, len(todo))

    def work(cell: Cell) -> bool:
        ok = _run_cell(run, cell, backend, stop)
        with lock:
            done[0] += 1
            progress(done[0], len(todo))
        return ok

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        futures = [pool.submit(work, c) for c in todo]
        try:
            finished = sum(1 for f in futures if f.result())
        except KeyboardInterrupt:
            stop.cancel()
            for f in futures:
                f.cancel()
            raise
    return finished, skipped
