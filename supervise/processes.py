"""The processes tools start, and ending them: at a timeout, on Ctrl-C, and when the client exits.

On Linux each bash command runs under a supervisor (supervise/reaper.py) that keeps every process it
starts below it, whatever it does to detach, and ends them all when told or when the client dies
(even by SIGKILL). Elsewhere the command gets a process group of its own, ended as one.

A command can kill or stop its own supervisor (it runs as the same user). ``guard_client()``, called
by the client at start-up, makes the client a subreaper too, so what a dead supervisor leaves is
reparented to the client, not to init: the client then kills those strays — every child of its own
it did not start on purpose (``keep()`` names the ones it did: supervisors, servers), with all below
them — when a supervisor dies without reporting, when one does not answer, and in ``end_all()``, and
reaps them. It also hides the client's credentials from its /proc files.

Every job still running is kept in a registry; ``end_all()`` ends them. It runs at exit (atexit),
and the CLI calls it from its SIGTERM and SIGHUP handlers.
"""

from __future__ import annotations

import atexit
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .reaper import GRACE, KILL_WAIT, alive, descendants, end_all_of, process_table, terminate, zombies

__all__ = ["CannotStart", "Ended", "Exit", "Job", "SupervisedJob", "end_all", "end_group", "guard_client", "keep",
           "release", "start"]

REAPER = Path(__file__).with_name("reaper.py")
SUPERVISED = sys.platform.startswith("linux") and bool(sys.executable)
_ENDING_TIME = GRACE + KILL_WAIT + 2  # what a supervisor may take to end its processes

_live: set[Job] = set()
_kept: set[subprocess.Popen] = set()  # the client's children on purpose, until they are reaped
_guarded = False  # the client is a subreaper: what a supervisor leaves comes to it
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36


class CannotStart(Exception):
    """The command could not be started (the supervisor says why)."""


@dataclass(frozen=True, slots=True)
class Exit:
    """How a command ended by itself."""

    code: int  # negative: the signal that killed it
    background: int | None  # processes it left running (None: not known without a supervisor)


@dataclass(frozen=True, slots=True)
class Ended:
    """What ending a job killed; None where it is not known."""

    command: bool | None = None  # the command itself was still running
    others: int | None = None  # other processes killed
    left: int | None = None  # processes that could not be killed
    group_only: bool = False  # no supervisor: its process group was killed, strays may have escaped it
    lost: str | None = None  # what became of a supervisor that did not report ("was killed by signal 9")


def _group_alive(pgid: int) -> bool:
    if sys.platform.startswith("linux"):  # zombies left out: one orphaned to an init that never reaps is gone
        return any(group == pgid for _, _, group in process_table())
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def end_group(proc: subprocess.Popen, grace: float = GRACE) -> int | None:
    """End a process started in a group of its own, and everything still in that group (SIGTERM, a
    grace, SIGKILL); its exit status."""
    def signal_all(sig: int) -> None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass

    def gone(timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while proc.poll() is None or _group_alive(proc.pid):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    if not gone(0):
        terminate(signal_all, gone, grace)
    return proc.poll()


class _StatusLines:
    """Lines from the supervisor's status pipe, read with a deadline."""

    def __init__(self, fd: int):
        self.fd = fd
        self.buffer = b""
        self.closed = False

    def close(self) -> None:
        if not self.closed:
            os.close(self.fd)
        self.closed, self.buffer = True, b""

    def next(self, deadline: float) -> str | None:
        """The next line; None at the end (the supervisor is gone); TimeoutError at the deadline."""
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        while b"\n" not in self.buffer:
            if self.closed:
                return None
            if not poller.poll(max(0.0, deadline - time.monotonic()) * 1000):
                raise TimeoutError
            data = os.read(self.fd, 4096)
            self.buffer += data
            self.closed = not data
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode()


class Job:
    """One bash command, started; its output is ``output``, to be read to its end. This base runs
    it in a process group of its own (killed as one, deaf to our Ctrl-C): the fallback where no
    supervisor can be had."""

    def __init__(self, command: str, cwd: str | os.PathLike, env: Mapping[str, str]):
        self.proc = subprocess.Popen(["bash", "-c", command], cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        keep(self.proc)
        self.output: BinaryIO = self.proc.stdout

    def wait(self, timeout: float) -> Exit | Ended | None:
        """How the command ended (Ended: someone else ended it); None if it still runs after timeout
        seconds."""
        try:
            return Exit(self.proc.wait(timeout=timeout), None)
        except subprocess.TimeoutExpired:
            return None

    def end(self) -> Ended:
        """Kill the command and everything it started (SIGTERM, a grace, SIGKILL); what was killed."""
        end_group(self.proc)
        _live.discard(self)
        return Ended(group_only=True)

    def over(self) -> bool:
        """Whether it and whatever it left in the background have ended."""
        return self.proc.poll() is not None and not _group_alive(self.proc.pid)

    def signal_end(self) -> None:
        """Start ending it; returns at once."""
        if not self.over():  # an empty group's id may be another's by now
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def ended_by(self, deadline: float) -> bool:
        """Wait until it is gone, up to the deadline (this fallback may take the grace past it)."""
        end_group(self.proc)
        return True


class SupervisedJob(Job):
    """The command under its supervisor (supervise/reaper.py), which reports on a status pipe."""

    def __init__(self, command: str, cwd: str | os.PathLike, env: Mapping[str, str]):
        out_r, out_w = os.pipe()
        status_r, status_w = os.pipe()
        try:
            # a session of its own: the terminal's Ctrl-C and hangup reach the client, which ends it
            self.proc = subprocess.Popen(
                [sys.executable, "-I", str(REAPER), str(os.getpid()), str(out_w), str(status_w), command],
                cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                pass_fds=(out_w, status_w), start_new_session=True)
        except BaseException:
            os.close(out_r)
            os.close(status_r)
            raise
        finally:
            os.close(out_w)  # only the command may hold the write ends: EOF when it is done
            os.close(status_w)
        keep(self.proc)
        self.output = os.fdopen(out_r, "rb")
        self._status = _StatusLines(status_r)
        self._ended: Ended | None = None

    def wait(self, timeout: float) -> Exit | Ended | None:
        try:
            line = self._status.next(time.monotonic() + timeout)
        except TimeoutError:
            return None
        word, _, rest = (line or "").partition(" ")
        if word == "exit":
            code, background = map(int, rest.split())
            if not background:
                self._release()
            return Exit(code, background)
        if word == "ended":
            return self._ended_by(rest)
        if word == "error":
            self._release()
            raise CannotStart(rest)
        return self._lost()  # gone without a word: the command killed it

    def end(self) -> Ended:
        if self._ended is not None:
            return self._ended
        if self.proc.poll() is not None:  # it ended by itself, or was killed
            if self.proc.returncode:
                return self._lost()
            self._release()
            return Ended(False, 0, 0)
        self.signal_end()
        deadline = time.monotonic() + _ENDING_TIME
        try:
            line = self._status.next(deadline)
            while line is not None and not line.startswith("ended "):  # an "exit" line just before
                line = self._status.next(deadline)
        except TimeoutError:
            return self._lost("did not answer and was killed")
        if line is None:  # killed while ending
            return self._lost()
        return self._ended_by(line.partition(" ")[2])

    def _lost(self, why: str | None = None) -> Ended:
        """The supervisor is gone without its report, or does not answer (``why``): kill it, and end
        what it leaves (it comes to the client, when guarded)."""
        if why is None:
            try:
                self.proc.wait(timeout=1)  # its status pipe closed as it died
            except subprocess.TimeoutExpired:
                why = "stopped reporting and was killed"
        if why is not None:
            self.proc.kill()  # stopped or not: SIGKILL acts at once
        self._release()
        code = self.proc.returncode
        if why is None:
            why = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
        swept = _sweep()
        self._ended = Ended(others=swept and swept[0], left=swept and swept[1], lost=why)
        return self._ended

    def _ended_by(self, report: str) -> Ended:
        running, others, left = map(int, report.split())
        self._release()
        self._ended = Ended(bool(running), others, left)
        return self._ended

    def over(self) -> bool:
        return self.proc.poll() is not None  # the supervisor stays while anything it watches runs

    def signal_end(self) -> None:
        if self.proc.returncode is None:  # once reaped, its pid may be another process's
            try:  # the supervisor does the rest; continued, if the command stopped it
                os.kill(self.proc.pid, signal.SIGTERM)
                os.kill(self.proc.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def ended_by(self, deadline: float) -> bool:
        """Only /proc and a sleep, no locks: a signal handler may call it."""
        while alive(self.proc.pid):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def _release(self) -> None:
        """The supervisor is done or ending: reap it, close its status pipe and forget it."""
        _live.discard(self)
        try:
            self.proc.wait(timeout=_ENDING_TIME)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._status.close()
        _reap_strays()  # the zombies it had not reaped yet are the client's now


def start(command: str, cwd: str | os.PathLike, env: Mapping[str, str]) -> Job:
    """Start a bash command, supervised where the platform allows; registered until it is over."""
    _prune()
    job = (SupervisedJob if SUPERVISED else Job)(command, cwd, env)
    _live.add(job)
    return job


def _prune() -> None:
    """Forget the jobs that have ended by themselves (supervisors whose background processes are over,
    or that were killed: what they left is ended), and reap strays that have ended."""
    for job in list(_live):
        if job.over():
            job.end()
    _reap_strays()


def keep(proc: subprocess.Popen) -> None:
    """A child the client started on purpose (a supervisor, a server): never taken for a stray while
    it runs. It is forgotten once its Popen has reaped it; ``release()`` forgets it sooner."""
    _kept.add(proc)


def release(proc: subprocess.Popen) -> None:
    _kept.discard(proc)


def _deliberate() -> set[int]:
    """The pids of the kept children not yet reaped (a reaped one's pid may be anyone's by now)."""
    for proc in [p for p in list(_kept) if p.returncode is not None]:
        _kept.discard(proc)
    return {p.pid for p in list(_kept)}


def _strays() -> set[int]:
    """The client's children it did not start on purpose — what dead supervisors left — and every
    process below them."""
    return descendants(os.getpid(), spare=_deliberate())


def _reap_strays() -> None:
    """Reap the strays that have ended (never a kept child: its Popen wants its exit status)."""
    if not _guarded:
        return
    me, kept = os.getpid(), _deliberate()
    for pid, parent in list(zombies()):
        if parent == me and pid not in kept:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def _sweep() -> tuple[int, int] | None:
    """End every stray (SIGTERM, a grace, SIGKILL) and reap them: (how many were killed, how many could
    not be). None when the client is no subreaper: orphans went to init, out of its sight. Only /proc,
    signals and sleeps: a signal handler may call it."""
    if not _guarded:
        return None
    touched, left = end_all_of(_strays, _reap_strays)
    return len(touched), left


def guard_client(secrets: Iterable[str | None] = ()) -> bool:
    """Call once in the client, at start-up, before any tool runs (Linux; elsewhere it does nothing).

    - The client becomes a child subreaper: processes whose supervisor a command killed or stopped
      come to it, and are ended (see the module's docstring), instead of living on under init.
    - It becomes non-dumpable: its /proc/PID/environ (the API key variable), mem and the like are
      unreadable to other processes of its user — its tools included. Root still reads them; so do
      tools reading a config file the user can read. Side effects: no core dumps, and a debugger of
      the same user cannot attach (children are dumpable again once they exec).
    - Each of ``secrets`` (the --api-key value) is blanked out in its command line, which
      /proc/PID/cmdline (ps) shows to every user of the machine, whatever the above.

    Whether the client is a subreaper now."""
    global _guarded
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return False
    _guarded = _guarded or libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    _blank_in_command_line([s.encode() for s in secrets if s], ctypes)
    return _guarded


def _blank_in_command_line(secrets: list[bytes], ctypes) -> None:
    """Overwrite, in this process's own argument strings (what /proc/self/cmdline reads), every
    argument that is a secret or ends in =secret, with asterisks of the same length. Python works
    on its own copies (sys.argv): nothing else reads these bytes."""
    if not secrets:
        return
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        start, end = int(fields[45]), int(fields[46])  # arg_start, arg_end: fields 48 and 49 of proc(5)
    except (OSError, IndexError, ValueError):
        return
    if not 0 < start < end:
        return
    offset = 0
    for arg in ctypes.string_at(start, end - start).split(b"\0"):
        for secret in secrets:
            if arg == secret or arg.endswith(b"=" + secret):
                ctypes.memset(start + offset + len(arg) - len(secret), ord("*"), len(secret))
                break
        offset += len(arg) + 1


def end_all() -> None:
    """End every process the tools started that is still running, and wait (a few seconds at most)
    until they are gone; then the strays, when the client is guarded. Safe to call from a signal
    handler, and more than once."""
    jobs = list(_live)
    _live.clear()
    for job in jobs:
        job.signal_end()  # all at once, so that their graces overlap
    deadline = time.monotonic() + _ENDING_TIME
    for job in jobs:
        if not job.ended_by(deadline):
            job.proc.kill()  # the supervisor did not answer: what it supervised comes to the sweep
            job.ended_by(time.monotonic() + 1)  # once it is dead, they are the client's children
    _sweep()


atexit.register(end_all)
