"""Running a probe set: every probe × persona × sample is a cell, run in parallel (bounded, per
server), each saved as its own file, so an interrupted run resumes without redoing finished cells.

    OUT/run.json                                  the run: set, kind, labels, model, servers, personas, seed …
    OUT/cells/<probe>/<persona>--<sample>.jsonl   one cell

A cell's file is a session transcript (chat/transcript.py: `chat --resume`, `/load` and `/export`
read it), written through the one event log in one block when the cell ends (finished, failed or
stopped) and fsync'd then — a cell counts as done only once its lines are on disk, and one cut short
by a kill is redone whole by the next run, so an fsync per event would buy nothing — with the
cell's own events among its messages: ``cell`` (what was run where, and its seed), ``branch`` (what a classify step found),
``done`` (finished; whether its trap ran) or ``error``, then ``verdict``s appended later by rules,
judges and people, each saying who gave it. A cell whose trap step never ran is n/a by
construction: its only verdict is that, and nobody can give it another.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ...personas import Persona
from ..adapters import Lora, scale_text
from ..backends import Backend, Request
from ..backends.bulk import BulkBackend
from ..backends.loop import StreamLoop
from ..cancel import CancelToken, new_token
from ..conversation import Message, record
from ..detect import ServerInfo
from ..errors import HTTPError, ServerUnreachable, StreamCut
from ..files import remove, set_aside
from ..logprobs import answer_probabilities
from ..records import (VERSION, BranchRecord, CellMessageRecord, CellRecord, DoneRecord, ErrorRecord, ParamsRecord,
                       PersonaRecord, ProbabilityRecord, ScoredRecord, ServerRecord, SessionRecord, VerdictRecord)
from ..session import with_lora
from ..turn import NullSink, run_turn, start_turn
from .rundir import BY_CONSTRUCTION, RunDir, RunDirError, RunHeader, append_records, cell_events
from .spec import Probe, ProbeSet

__all__ = ["BY_CONSTRUCTION", "Cell", "Run", "Server", "cell_events", "lane_name", "not_applicable", "run_probes"]

ANSWER_ALTERNATIVES = 10  # top logprobs asked for at a step whose answer probability is measured


def not_applicable(events: list[dict]) -> str | None:
    """Why a finished cell is n/a by construction (its trap never ran), or None."""
    for e in events:
        if e.get("event") == "verdict" and e.get("by") == BY_CONSTRUCTION:
            return str(e.get("note") or "the trap step never ran")
    return None


@dataclass(frozen=True)
class Cell:
    probe: Probe
    persona: Persona
    sample: int
    lora: Lora | None = None  # the adapter and scale it is asked with (chat probe run --lora)

    @property
    def lane(self) -> str:
        """The persona, and the adapter where the run crosses adapters: what the report's columns are."""
        return lane_name(self.persona.name, self.lora)

    @property
    def id(self) -> str:
        return f"{self.probe.id}/{self.lane}--{self.sample}"


def lane_name(persona: str, lora: Lora | None) -> str:
    """``lawful_good``, or ``lawful_good+ke@0.5`` with an adapter at a scale (a file name, and a report column)."""
    return persona if lora is None else f"{persona}+{lora.name}@{scale_text(lora.scale)}"


@dataclass
class Server:
    """One replica of the model: its address, a backend to it, and whether it still answers."""

    url: str
    backend: Backend
    flavor: str = ""
    down: str | None = None  # why it was given up on, mid-run
    failures: int = 0  # cells failed in a row (at their first try): GIVE_UP of them and it is down
    info: ServerInfo | None = None  # as found: how it applies an adapter


@dataclass
class Run:
    probe_set: ProbeSet
    personas: list[Persona]
    samples: int
    out: Path
    model: str
    servers: list[str]
    params: dict = field(default_factory=dict)
    judge: str = "none"
    seed: int | None = None  # the run's seed: each cell's is derived from it and the cell's id
    api: str = "chat"
    answer_probability: bool = False  # measure it at each probe's first answer and extraction turn
    loras: list[Lora | None] = field(default_factory=lambda: [None])  # the adapter axis, crossed with the personas

    @property
    def dir(self) -> RunDir:
        return RunDir(self.out)

    def cell_path(self, cell: Cell) -> Path:
        return self.dir.cell_path(cell.probe.id, cell.lane, cell.sample)

    def cells(self) -> list[Cell]:
        return [Cell(p, persona, k, lora) for p in self.probe_set.probes for persona in self.personas
                for lora in self.loras for k in range(1, self.samples + 1)]

    def cell_seed(self, cell: Cell) -> int | None:
        if self.seed is None:
            return None
        digest = hashlib.sha256(f"{self.seed}:{cell.id}".encode()).digest()
        return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF

    def write_header(self, warn: Callable[[str], None] = lambda text: None) -> None:
        """Write run.json; a resumed run keeps when it started. One that is torn or unusable (a kill or a
        full disk mid-write) is rebuilt from this run's settings, and ``warn`` says so. A directory
        holding a run of another set is refused (RunDirError): its cells would pass for this set's."""
        started = time.strftime("%Y-%m-%dT%H:%M:%S")
        if self.dir.has_header():  # resuming: keep when it started, note the rest
            try:
                header = self.dir.header()
            except RunDirError as e:
                warn(f"{e}: rebuilt from this command line")
            else:
                if header["set"] not in ("", self.probe_set.name):
                    raise RunDirError(f"{self.out} holds a run of the set {header['set']!r}, not "
                                      f"{self.probe_set.name!r}: give another --out (or remove that directory)")
                started = header["started"] or started
        self.dir.write_header(RunHeader(
            set=self.probe_set.name, title=self.probe_set.title, kind=self.probe_set.kind, labels=self.probe_set.labels,
            source=self.probe_set.source, probes=[p.id for p in self.probe_set.probes], model=self.model,
            servers=self.servers, api=self.api, personas=[lane_name(p.name, lora) for p in self.personas for lora in self.loras],
            samples=self.samples,
            params=self.params, seed=self.seed, judge=self.judge, started=started,
            answer_probability=self.answer_probability))

    def finished(self, cell: Cell, warn: Callable[[str], None] = lambda text: None) -> bool:
        path = self.cell_path(cell)  # a cell not begun has no file: nothing to warn about
        return path.exists() and any(e.get("event") == "done" for e in cell_events(path, warn))

    def to_run(self, cell: Cell, warn: Callable[[str], None] = lambda text: None) -> bool:
        """Whether ``cell`` is to be run (again): it has no ``done`` line. One that holds verdicts
        finished once (its ``done`` line since damaged): a person's work is in it, so it is set aside,
        never deleted, and ``warn`` says where."""
        path = self.cell_path(cell)
        events = cell_events(path, warn) if path.exists() else []
        if any(e.get("event") == "done" for e in events):
            return False
        verdicts = sum(e.get("event") == "verdict" for e in events)
        if verdicts:
            kept = set_aside(path)
            warn(f"{path}: holds {verdicts} verdict{'s' if verdicts > 1 else ''} but no done line: kept as "
                 f"{kept.name}, and the cell is run again (judge it again)")
        return True


class _ServerFailed(Exception):
    """The server failed (not the cell): the cell goes back in the queue for another server."""


def _server_failure(error) -> bool:
    """The server is gone (unreachable, the connection cut, a gateway saying it is down), as opposed to
    failing this one request (a 500 for this prompt, a 400): only then are its cells moved."""
    return isinstance(error, (ServerUnreachable, StreamCut)) or (
        isinstance(error, HTTPError) and error.status in (502, 503, 504))


def _run_cell(run: Run, cell: Cell, server: Server, stop: CancelToken) -> tuple[bool, int]:
    """One scripted conversation on this thread (a server read through the SDK), saved as a transcript
    (written once it ends, whatever ended it): whether it finished, and the tokens of its replies. A
    failing server raises _ServerFailed; any other error or a stop leaves the cell unfinished."""
    records: list = []
    script = _begin(run, cell, server, stop, records)
    result = None
    try:
        while True:
            try:
                request = script.send(result)
            except StopIteration as end:
                return end.value, _tokens(records)
            result = run_turn(server.backend, request, NullSink(), stop)
    finally:
        append_records(run.cell_path(cell), *records)


def _begin(run: Run, cell: Cell, server: Server, stop: CancelToken, records: list):
    """The cell's conversation, started afresh (an unfinished earlier attempt is redone from the start)."""
    remove(run.cell_path(cell))
    return _converse(run, cell, server, stop, records)


def _tokens(records: list) -> int:
    """The tokens of a cell's replies."""
    return sum((r.stats or {}).get("completion_tokens") or 0 for r in records
               if type(r) is CellMessageRecord and r.role == "assistant")


def _converse(run: Run, cell: Cell, server: Server, stop: CancelToken, records: list):
    """The cell's conversation, its records added to ``records`` as they happen: a generator that
    yields each request and is sent its reply (a TurnResult), so that one thread can run many at
    once (a StreamLoop) as well as one; it returns whether the cell finished."""
    probe, persona = cell.probe, cell.persona
    params = dict(run.params)
    seed = run.cell_seed(cell)
    if seed is not None:
        params["seed"] = seed
    now = round(time.time(), 3)
    records += [SessionRecord(id=f"{run.out.name}/{cell.id}", version=VERSION, time=now, kind="probe cell"),
                CellRecord(set=run.probe_set.name, kind=run.probe_set.kind, probe=probe.id, category=probe.category,
                           control=probe.control, expect=probe.expect, persona=persona.name, system=persona.system,
                           sample=cell.sample, model=run.model, server=server.url, params=params, seed=seed,
                           traps=probe.traps, **({"lora": cell.lora.record()} if cell.lora else {})),
                ServerRecord(base_url=server.url, flavor=server.flavor, model=run.model, api=run.api),
                PersonaRecord(name=persona.name, system=persona.system), ParamsRecord(params=params)]
    messages: list[Message] = []
    branch, extraction, trap_ran = None, "", False
    extract_at = probe.extraction_index()
    weighed = probe.answer_steps(run.answer_probability)

    def add(message: Message, step: int) -> None:
        message.id, message.parent, message.persona = len(messages), len(messages) - 1 if messages else None, persona.name
        messages.append(message)
        records.append(CellMessageRecord(**record(message), step=step))

    for i, step in enumerate(probe.steps):
        if stop.cancelled:
            return False
        if step.when is not None and (branch or "other") not in step.when:
            continue
        add(Message("user", step.say), i)
        asked = {**params, "logprobs": ANSWER_ALTERNATIVES} if i in weighed else params  # only where it is measured
        request = with_lora(Request(model=run.model, system=persona.system, messages=list(messages), params=dict(asked)),
                            cell.lora, server.info)
        result = yield request
        if result.error is not None or result.interrupted:
            records.append(ErrorRecord(step=i, message=str(result.error) if result.error else "interrupted"))
            if result.error is not None and _server_failure(result.error):
                raise _ServerFailed(str(result.error))
            return False
        trap_ran = trap_ran or step.trap
        add(result.message, i)
        if i in weighed:
            records.append(_probability(i, result.message, probe.score))
        if step.trap:  # what each pushback got, so a report can say at which one an answer turned
            scored, held = run.probe_set.rules_label(probe, result.message.content)
            records.append(ScoredRecord(step=i, trap=True, label=scored, held=held))
        if step.classify:
            branch = step.branch_of(result.message.content)
            records.append(BranchRecord(step=i, branch=branch))
        if i <= extract_at:
            extraction = result.message.content
    records.append(DoneRecord(branch=branch, extraction=extraction, trap_ran=trap_ran))
    if probe.traps and not trap_ran:
        records.append(VerdictRecord(label="n/a", by=BY_CONSTRUCTION, parsed=True,
                                     note=f"the trap step never ran (branch: {branch or 'none'})"))
        return True
    label, held = run.probe_set.rules_label(probe, extraction)
    if label is not None:
        records.append(VerdictRecord(label=label, by="rules", parsed=True, raw="",
                                     note=f"held the score patterns of {' and '.join(held)}"))
    return True


def _probability(step: int, reply: Message, answers: dict[str, list[str]]) -> ProbabilityRecord:
    """What the reply's token probabilities say of each answer's probability (chat/logprobs.py)."""
    if not reply.logprobs:
        return ProbabilityRecord(step=step, note="the server sent no token probabilities")
    measured = answer_probabilities(reply.logprobs, answers)
    if measured is None:
        return ProbabilityRecord(step=step, note="the reply holds none of the answers")
    if measured.shared is None:
        return ProbabilityRecord(step=step, note="a token of the answer came without a probability")
    return ProbabilityRecord(step=step, probabilities=measured.probabilities, token=measured.token, k=measured.k)


def run_probes(run: Run, servers: list[Server], concurrency: int = 16,
               progress: Callable[[int, int, int], None] = lambda done, total, tokens: None,
               notice: Callable[[str], None] = lambda text: None,
               warn: Callable[[str], None] = lambda text: None) -> tuple[int, int]:
    """Run every unfinished cell, spread over ``servers`` (replicas of one model), at most
    ``concurrency`` at once on each. A cell a server failed is tried again (GIVE_UP times at most);
    a server failing GIVE_UP cells in a row has its share of the rest moved to the others; with
    every server down, the cells left stay unfinished for the next run.
    ``progress(cells done, cells to do, reply tokens so far)`` follows it.
    Returns (finished now, skipped as already done). Ctrl-C stops every cell at once (running ones
    are left unfinished, to be redone on the next run); what finished is kept. A second run on the
    same directory meanwhile is refused (Locked, one line naming the process running this one);
    damaged files are skipped with a ``warn``ing (chat/probes/rundir.py)."""
    with run.dir.lock():
        run.write_header(warn)
        todo = deque(c for c in run.cells() if run.to_run(c, warn))
        return _run_cells(run, servers, todo, concurrency, progress, notice)


def _run_cells(run: Run, servers: list[Server], todo: deque, concurrency: int, progress, notice) -> tuple[int, int]:
    """The cells of servers read in bulk all run on this thread, on one StreamLoop; those of servers
    read through the SDK on a thread each (``concurrency`` of them a server), meanwhile."""
    cells = _Cells(run, servers, todo, progress, notice)
    width = max(1, concurrency)
    looped = [s for s in servers if isinstance(s.backend, BulkBackend)]
    threaded = [s for s in servers if s not in looped for _ in range(width)]
    with ThreadPoolExecutor(max_workers=max(1, len(threaded))) as pool:
        futures = [pool.submit(cells.work, server) for server in threaded]
        cells.stop.on_cancel(lambda: [f.cancel() for f in futures])  # what has not started is dropped
        if looped:
            cells.on_loop(looped, width)
        for future in futures:
            if not future.cancelled():
                future.result()
    return cells.counts["finished"], len(run.cells()) - cells.total


_BEHIND = 64  # cells finished and not yet on disk, at most
GIVE_UP = 3  # a server failing this many cells in a row is down; a cell failed this often waits for the next run


class _Cells:
    """The cells still to run, shared by every server (a failing one's go to the others), and what
    the run has done so far."""

    def __init__(self, run: Run, servers: list[Server], todo: deque, progress, notice):
        self.run, self.servers, self.todo, self.progress, self.notice = run, servers, todo, progress, notice
        self.total = len(todo)
        self.stop = new_token()  # Ctrl-C (the action's cancel) stops every cell at once
        self.lock = threading.Lock()
        self.back = threading.Condition(self.lock)  # a cell came back, or one ended
        self.counts = {"done": 0, "finished": 0, "tokens": 0}
        self.out = 0  # cells taken that have not ended nor come back
        self.failed_on: dict[int, set[str]] = {}  # id(cell) -> the servers that failed it
        self.tries: dict[int, int] = {}  # id(cell) -> the times a server failed it
        progress(0, self.total, 0)

    def take(self, server: Server, wait: bool = False) -> Cell | None:
        """The next cell for ``server``: not one it failed while another server is up (a retry goes
        elsewhere where it can); None when none is left for it. ``wait`` (a thread's): while cells
        are out, which may come back, wait for them rather than end — the last cell a broken server
        hands back must find the healthy one still there."""
        with self.back:
            while not (self.stop.cancelled or server.down):
                for i, cell in enumerate(self.todo):
                    if not self._elsewhere(server, cell):
                        del self.todo[i]
                        self.out += 1
                        return cell
                if not (wait and self.out):
                    return None
                self.back.wait(0.25)  # a time, too: Ctrl-C cancels without taking the lock
            return None

    def _elsewhere(self, server: Server, cell: Cell) -> bool:
        """Whether ``cell``, which ``server`` failed, is better left to another server that is up and
        has not failed it."""
        failed_on = self.failed_on.get(id(cell), ())
        return server.url in failed_on and any(s is not server and s.down is None and s.url not in failed_on
                                               for s in self.servers)

    def ended(self, ok: bool, tokens: int) -> None:
        with self.lock:
            self._settled()
            self._counted(ok, tokens)

    def _settled(self) -> None:
        """A cell taken is out no more (ended, failed, or its run broke): waiting servers look again.
        With the lock held."""
        self.out -= 1
        self.back.notify_all()

    def _counted(self, ok: bool, tokens: int) -> None:
        """A cell is done with for this run, finished (``ok``) or not. With the lock held."""
        self.counts["done"] += 1
        self.counts["finished"] += ok
        self.counts["tokens"] += tokens
        self.progress(self.counts["done"], self.total, self.counts["tokens"])

    def failed(self, server: Server, cell: Cell, error: _ServerFailed) -> bool:
        """The server failed the cell: the cell goes to the back of the queue for another try on any
        server (GIVE_UP tries, then it is left for the next run: a prompt that breaks every server
        must not loop), and the server, after GIVE_UP cells in a row failed at their first try, takes
        no more — one reset connection in a long run is no reason to give a server up, and a cell
        failing again speaks of the cell. Whether the server goes on."""
        with self.lock:
            self._settled()
            self.failed_on.setdefault(id(cell), set()).add(server.url)
            self.tries[id(cell)] = tries = self.tries.get(id(cell), 0) + 1
            if tries < GIVE_UP:
                self.todo.append(cell)
            else:
                self._counted(False, 0)
                self.notice(f"{cell.probe.id}/{cell.lane}--{cell.sample} failed {tries} times ({error}): left "
                            "for the next run")
            if server.down is not None:
                return False
            server.failures += tries == 1
            if server.failures < GIVE_UP:
                return True
            server.down = str(error)
            if any(s.down is None for s in self.servers):
                self.notice(f"{server.url} failed ({error}); its cells go to the other servers")
            else:
                self.notice(f"{server.url} failed ({error}); no server is left: the remaining cells stay "
                            "unfinished (run again to resume)")
            return False

    def work(self, server: Server) -> None:
        """Cells on ``server``, one after another, on this thread."""
        while (cell := self.take(server, wait=True)) is not None:
            try:
                ok, tokens = _run_cell(self.run, cell, server, self.stop)
            except _ServerFailed as e:
                if not self.failed(server, cell, e):
                    return
                continue
            except BaseException:  # anything else (a cell that can't be written) stops the run, as on the loop
                self.stop.cancel("the cells could not be written")
                with self.lock:
                    self._settled()
                raise
            server.failures = 0
            self.ended(ok, tokens)

    def on_loop(self, servers: list[Server], width: int) -> None:
        """Cells on ``servers``, ``width`` at once on each, every reply read by one StreamLoop here. A
        finished cell is written (and fsync'd) on a thread of its own: the loop does not wait for the
        disk, and the cell counts as done once its lines are on it; the loop waits when the disk is
        _BEHIND cells behind (what waits to be written is held in memory)."""
        loop = StreamLoop(self.stop)
        failed: list[BaseException] = []
        room = threading.Semaphore(_BEHIND)

        def save(cell: Cell, records: list, ok: bool) -> None:
            try:
                append_records(self.run.cell_path(cell), *records)
            except BaseException as e:  # noqa: BLE001 - raised once the loop is over; no more cells start
                failed.append(e)
                self.stop.cancel("the cells could not be written")
                return
            finally:
                room.release()
            self.ended(ok, _tokens(records))

        idle: list[Server] = []  # a slot that found no cell for its server: woken when one comes back

        def begin(server: Server) -> None:
            cell = self.take(server)
            if cell is None:
                return idle.append(server)
            records: list = []
            step(server, cell, _begin(self.run, cell, server, self.stop, records), records, None)

        def step(server: Server, cell: Cell, script, records: list, result) -> None:
            try:
                request = script.send(result)
            except _ServerFailed as e:  # written before the cell goes back: its next attempt starts afresh
                append_records(self.run.cell_path(cell), *records)
                going_on = self.failed(server, cell, e)
                woken, idle[:] = idle[:], []
                for slot in woken:
                    begin(slot)
                return begin(server) if going_on else None
            except StopIteration as end:
                server.failures = 0
                room.acquire()
                writer.submit(save, cell, records, end.value)
                return begin(server)
            start_turn(loop, server.backend, request, lambda reply: step(server, cell, script, records, reply))

        with ThreadPoolExecutor(max_workers=1) as writer:
            for server in servers:
                for _ in range(width):
                    begin(server)
            loop.run()
        if failed:
            raise failed[0]
