"""Several replies at once (/retry N, /compare, probe runs): one thread per request. vLLM batches
concurrent requests, so N replies cost about one reply's wall time."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from .backends import Backend, Request
from .cancel import CancelToken
from .turn import NullSink, TurnResult, run_turn

__all__ = ["run_parallel"]


class _Counted(NullSink):
    """Shows nothing (the replies are shown once complete); counts the ones that ended."""

    def __init__(self, done):
        self.done = done

    def end(self, result) -> None:
        self.done()


def run_parallel(jobs: list[tuple[Backend, Request]], progress=lambda done, total: None,
                 max_workers: int = 16, cancel: CancelToken | None = None) -> list[TurnResult]:
    """Run every request at once; results in the jobs' order. Ctrl-C (or ``cancel``) stops them all
    at once, stalled ones included: each result then holds what had arrived, marked interrupted."""
    token = cancel if cancel is not None else CancelToken()
    lock = threading.Lock()
    finished = [0]

    def done() -> None:
        with lock:
            finished[0] += 1
            progress(finished[0], len(jobs))

    pool = ThreadPoolExecutor(max_workers=min(max_workers, max(1, len(jobs))))
    futures = [pool.submit(run_turn, backend, request, _Counted(done), token) for backend, request in jobs]
    try:
        try:
            return [f.result() for f in futures]
        except KeyboardInterrupt:
            token.cancel()  # every connection is shut down: the workers end now
            return [f.result() for f in futures]
    finally:
        pool.shutdown(wait=True)
