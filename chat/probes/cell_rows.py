"""A run as rows for analysis elsewhere (pandas, R, a spreadsheet). ``chat probe export RUN --csv FILE |
--jsonl FILE``: one row per cell — who and what ran it, every judge's label apart (the rules', the
judge model's and which, the hand label and whether it was given blind), the label that counts and
who gave it, why it is n/a, at which pushback it caved, the answer probabilities at the first answer and
after the pushback (label -> probability, as JSON in a CSV), the adapter it was asked with (``lora``:
{"name", "scale"}, a column apart from the persona), and its file — so that rates, kappa and the shift
can be recomputed from the export alone. ``--steps``: one row per cell and step instead (its persona
and adapter, each user turn, the reply, its tokens and finish reason, what a pushback got)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..files import write_whole
from .rundir import cell_events
from .verdicts import Cell, load_cells

__all__ = ["CELL_COLUMNS", "STEP_COLUMNS", "cell_rows", "step_rows", "write_rows"]

CELL_COLUMNS = ["run", "set", "kind", "probe", "category", "control", "expect", "persona", "sample", "seed", "model",
                "server", "done", "error", "branch", "rules_label", "judge_label", "judge", "hand_label", "hand_blind",
                "label", "label_by", "na_reason", "flip_turn", "p_first", "p_final", "lora", "file"]
STEP_COLUMNS = ["run", "probe", "persona", "lora", "sample", "step", "trap", "user", "reply", "reply_tokens",
                "finish_reason", "step_label", "step_p", "label", "label_by", "file"]


def _cell_row(out: Path, c: Cell) -> dict:
    hand = c.hand if c.hand is not None else c.hand_shown
    return {"run": Path(out).name, "set": c.set, "kind": c.kind, "probe": c.probe, "category": c.category,
            "control": c.control, "expect": c.expect, "persona": c.persona, "sample": c.sample, "seed": c.seed,
            "model": c.model, "server": c.server, "done": c.done, "error": c.error, "branch": c.branch,
            "rules_label": c.rules, "judge_label": c.judge, "judge": c.judge_by, "hand_label": hand,
            "hand_blind": None if hand is None else c.hand is not None, "label": c.label, "label_by": c.by,
            "na_reason": c.na, "flip_turn": c.flip if len(c.trap_labels) > 0 else None,
            "p_first": _answer_p(c.p_before), "p_final": _answer_p(c.p_after), "lora": c.lora, "file": str(c.path)}


def _answer_p(measured: dict | None) -> dict | None:
    """A measured answer probability as its label -> probability map (None: not in the top k), or the
    note saying why there is none; None where it was not measured."""
    if measured is None:
        return None
    return {"note": measured["note"]} if measured.get("note") else measured.get("probabilities", {})


def cell_rows(out: Path, warn=lambda message: None) -> list[dict]:
    return [_cell_row(out, c) for c in load_cells(out, warn)]


def step_rows(out: Path, warn=lambda message: None) -> list[dict]:
    rows = []
    for c in load_cells(out, warn):
        events = cell_events(c.path, warn)
        scored = {e.get("step"): e.get("label") for e in events if e.get("event") == "scored"}
        weighed = {e.get("step"): _answer_p(e) for e in events if e.get("event") == "probability"}
        traps = set(next((e.get("traps") or [] for e in events if e.get("event") == "cell"), []))
        messages = [e for e in events if e.get("event") == "message"]
        for step in sorted({m.get("step") for m in messages if isinstance(m.get("step"), int)}):
            user = next((m for m in messages if m.get("step") == step and m.get("role") == "user"), {})
            reply = next((m for m in messages if m.get("step") == step and m.get("role") == "assistant"), {})
            stats = reply.get("stats") or {}
            rows.append({"run": Path(out).name, "probe": c.probe, "persona": c.persona, "lora": c.lora,
                         "sample": c.sample,
                         "step": step, "trap": step in traps, "user": user.get("content", ""),
                         "reply": reply.get("content"), "reply_tokens": stats.get("completion_tokens"),
                         "finish_reason": stats.get("finish_reason"), "step_label": scored.get(step),
                         "step_p": weighed.get(step),
                         "label": c.label, "label_by": c.by, "file": str(c.path)})
    return rows


def write_rows(out: Path, path: Path, fmt: str, warn=lambda message: None, steps: bool = False) -> int:
    """Write the rows (per cell, or per cell and step) as CSV or JSON Lines; returns how many. Damaged
    cell lines are skipped with a ``warn``ing."""
    rows, columns = (step_rows(out, warn), STEP_COLUMNS) if steps else (cell_rows(out, warn), CELL_COLUMNS)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns)
        writer.writeheader()
        writer.writerows({k: json.dumps(v) if isinstance(v, dict) else v for k, v in row.items()} for row in rows)
        data = buffer.getvalue()
    else:
        data = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    write_whole(path, data.encode("utf-8"))
    return len(rows)
