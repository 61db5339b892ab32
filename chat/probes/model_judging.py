"""Judges over a run's finished cells: a judge model labelling each with the probe's labels, or the
Karma Electric evaluator scoring it. Every verdict is appended to the cell's file with who gave it;
a reply that can't be parsed is recorded as such, never guessed."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from ..backends import Backend
from ..cancel import new_token
from ..parallel import run_all
from ..records import VerdictRecord
from ..turn import NullSink, run_turn
from .rundir import RunDir, append_records, cell_events
from .runner import not_applicable

__all__ = ["cells_to_judge", "judge_cells", "transcript_of"]


def transcript_of(events: list[dict]) -> list[dict]:
    return [{"role": e["role"], "content": e.get("content", "")} for e in events if e.get("event") == "message"]


def cells_to_judge(out: Path, by: str, warn=lambda message: None) -> list[Path]:
    """Finished cells with no verdict from ``by`` yet (so a judge run resumes too). A cell that is n/a
    by construction (its trap never ran) is never offered: no label could change that."""
    paths = []
    for path in RunDir(out).cell_paths():
        events = cell_events(path, warn)
        if any(e.get("event") == "done" for e in events) and not not_applicable(events) and not any(
                e.get("event") == "verdict" and e.get("by") == by for e in events):
            paths.append(path)
    return paths


def judge_cells(out: Path, labels: dict[str, str], backend: Backend, model: str, *, evaluator: bool = False,
                grammar: bool = False, concurrency: int = 4,
                progress: Callable[[int, int], None] = lambda done, total: None,
                warn: Callable[[str], None] = lambda message: None) -> int:
    """Judge every finished, not yet judged cell; returns how many were judged. Damaged cell lines are
    skipped with a ``warn``ing. The run directory is held meanwhile: a second judge (or a run) on it
    is refused (Locked, naming this process), as two would each judge every cell."""
    with RunDir(out).lock():
        return _judge_cells(out, labels, backend, model, evaluator, grammar, concurrency, progress, warn)


def _judge_cells(out: Path, labels: dict[str, str], backend: Backend, model: str, evaluator: bool, grammar: bool,
                 concurrency: int, progress: Callable[[int, int], None], warn: Callable[[str], None]) -> int:
    by = f"{'evaluator' if evaluator else 'judge'}:{model}"
    paths = cells_to_judge(out, by, warn)
    lock, done = threading.Lock(), [0]
    stop = new_token()  # Ctrl-C: every judge request ends at once; unjudged cells stay for the next run
    progress(0, len(paths))

    def work(path: Path) -> None:
        transcript = transcript_of(cell_events(path, warn))
        if evaluator:
            from .karma_evaluator import evaluation_request, parse_evaluation, verdict_from

            prompt = next((m["content"] for m in reversed(transcript) if m["role"] == "user"), "")
            reply = next((m["content"] for m in reversed(transcript) if m["role"] == "assistant"), "")
            result = run_turn(backend, evaluation_request(prompt, reply, model, grammar), NullSink(), stop)
            verdict = {**verdict_from(parse_evaluation(result.message.content)), "by": by}
        else:
            from .label_judge import judge_request, parse_verdict

            result = run_turn(backend, judge_request(labels, transcript, model), NullSink(), stop)
            label = parse_verdict(result.message.content, list(labels))
            verdict = {"label": label, "by": by, "parsed": label is not None}
        if result.error is None and not result.interrupted:  # a failed request is not a verdict: asked again later
            verdict["raw"] = result.message.content
            append_records(path, VerdictRecord(**verdict))
        with lock:
            done[0] += 1
            progress(done[0], len(paths))

    run_all(work, paths, concurrency, stop)
    return len(paths)
