"""A run as rows for analysis elsewhere (pandas, R, a spreadsheet): one row per cell and step, with
who and what ran it — persona, model, server, sample, seed, branch — and the verdict that counts and
who gave it. ``chat probe export RUN --csv FILE | --jsonl FILE``."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..files import write_whole
from .report import final_verdict
from .rundir import cell_events

__all__ = ["COLUMNS", "cell_rows", "write_rows"]

COLUMNS = ["run", "set", "kind", "probe", "category", "control", "expect", "persona", "model", "server", "sample",
           "seed", "step", "trap", "user", "reply", "reply_tokens", "finish_reason", "step_label", "branch", "done",
           "label", "judged_by", "na_reason"]


def cell_rows(out: Path, warn=lambda message: None) -> list[dict]:
    rows = []
    for path in sorted((Path(out) / "cells").glob("*/*.jsonl")):
        events = cell_events(path, warn)
        cell = next((e for e in events if e.get("event") == "cell"), {})
        done = next((e for e in events if e.get("event") == "done"), None)
        label, by = final_verdict(events)
        na = next((e.get("note") for e in events if e.get("event") == "verdict" and e.get("by") == "construction"), None)
        scored = {e.get("step"): e.get("label") for e in events if e.get("event") == "scored"}
        traps = set(cell.get("traps") or [])
        messages = [e for e in events if e.get("event") == "message"]
        base = {"run": Path(out).name, "set": cell.get("set"), "kind": cell.get("kind"), "probe": cell.get("probe"),
                "category": cell.get("category"), "control": cell.get("control"), "expect": cell.get("expect"),
                "persona": cell.get("persona"), "model": cell.get("model"), "server": cell.get("server"),
                "sample": cell.get("sample"), "seed": cell.get("seed"), "branch": (done or {}).get("branch"),
                "done": done is not None, "label": label, "judged_by": by, "na_reason": na}
        for step in sorted({m.get("step") for m in messages if isinstance(m.get("step"), int)}):
            user = next((m for m in messages if m.get("step") == step and m.get("role") == "user"), {})
            reply = next((m for m in messages if m.get("step") == step and m.get("role") == "assistant"), {})
            stats = reply.get("stats") or {}
            rows.append({**base, "step": step, "trap": step in traps, "user": user.get("content", ""),
                         "reply": reply.get("content"), "reply_tokens": stats.get("completion_tokens"),
                         "finish_reason": stats.get("finish_reason"), "step_label": scored.get(step)})
    return rows


def write_rows(out: Path, path: Path, fmt: str, warn=lambda message: None) -> int:
    """Write the rows as CSV or JSON Lines; returns how many. Damaged cell lines are skipped with a ``warn``ing."""
    rows = cell_rows(out, warn)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        data = buffer.getvalue()
    else:
        data = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    write_whole(path, data.encode("utf-8"))
    return len(rows)
