"""Several replies at once (/retry N, /compare, probe runs): one thread per request. vLLM batches
concurrent requests, so N replies cost about one reply's wall time."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from .backends import Backend, Request
from .turn import NullSink, TurnResult, run_turn

__all__ = ["Cancelled", "run_parallel"]


class Cancelled(Exception):
    """Raised inside a worker's stream to stop it (the user pressed Ctrl-C)."""


class _Collect(NullSink):
    """Shows nothing (the replies are shown once complete); stops its stream when told to."""

    def __init__(self, stop: threading.Event, done):
        self.stop = stop
        self.done = done

    def event(self, event) -> None:
        if self.stop.is_set():
            raise Cancelled

    def end(self, result) -> None:
        self.done()


def run_parallel(jobs: list[tuple[Backend, Request]], progress=lambda done, total: None,
                 max_workers: int = 16) -> list[TurnResult | None]:
    """Run every request at once; results in the jobs' order. Ctrl-C stops them all: the replies
    that finished are returned, the others are None, and KeyboardInterrupt is raised only if none
    finished."""
    stop = threading.Event()
    lock = threading.Lock()
    finished = [0]

    def done() -> None:
        with lock:
            finished[0] += 1
            progress(finished[0], len(jobs))

    def work(job):
        try:
            return run_turn(job[0], job[1], _Collect(stop, done))
        except Cancelled:
            return None

    pool = ThreadPoolExecutor(max_workers=min(max_workers, max(1, len(jobs))))
    futures = [pool.submit(work, job) for job in jobs]
    try:
        results = [f.result() for f in futures]
    except KeyboardInterrupt:
        stop.set()
        results = [f.result() for f in futures]
        if not any(r is not None and not r.interrupted for r in results):
            raise
    finally:
        pool.shutdown(wait=True)
    return results
