"""Several replies at once (/retry N, /compare, probe runs): one thread per request. vLLM batches
concurrent requests, so N replies cost about one reply's wall time."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor, as_completed

from .backends import Backend, Request
from .cancel import CancelToken, new_token
from .turn import NullSink, TurnResult, run_turn

__all__ = ["run_all", "run_parallel"]


class _Counted(NullSink):
    """Shows nothing (the replies are shown once complete); counts the ones that ended."""

    def __init__(self, done):
        self.done = done

    def end(self, result) -> None:
        self.done()


def run_parallel(jobs: list[tuple[Backend, Request]], progress=lambda done, total: None,
                 max_workers: int = 16, cancel: CancelToken | None = None,
                 on_result=lambda index, result: None) -> list[TurnResult]:
    """Run every request at once; results in the jobs' order. ``on_result(index, result)`` is called
    in the caller's thread as each reply ends (to keep it at once). Cancelling ``cancel`` (default: a
    token under the action, which Ctrl-C cancels) stops them all at once, stalled ones included: each
    result then holds what had arrived, marked interrupted."""
    token = cancel if cancel is not None else new_token()
    lock = threading.Lock()
    finished = [0]

    def done() -> None:
        with lock:
            finished[0] += 1
            progress(finished[0], len(jobs))

    results: list[TurnResult | None] = [None] * len(jobs)
    pool = ThreadPoolExecutor(max_workers=min(max_workers, max(1, len(jobs))))
    futures = {pool.submit(run_turn, backend, request, _Counted(done), token): i
               for i, (backend, request) in enumerate(jobs)}
    try:
        for future in as_completed(futures):
            i = futures[future]
            results[i] = future.result()
            on_result(i, results[i])
    finally:
        pool.shutdown(wait=True)
    return results


def run_all(work, items: list, workers: int, stop: CancelToken) -> list:
    """``work(item)`` for every item, ``workers`` at a time; results in order (None for an item never
    started). Once ``stop`` is cancelled (Ctrl-C cancels the action it is under) what has not started
    is dropped; ``work`` honours ``stop`` for what runs."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(work, item) for item in items]

        def drop_waiting() -> None:
            for future in futures:
                future.cancel()

        stop.on_cancel(drop_waiting)
        return [None if f.cancelled() else f.result() for f in futures]
