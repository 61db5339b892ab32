"""The processes tools start, and ending them: at a timeout, on Ctrl-C, and when the client exits.

On Linux each bash command runs under a supervisor (tools/reaper.py) that keeps every process it
starts below it, whatever it does to detach, and ends them all when told or when the client dies
(even by SIGKILL). Elsewhere the command gets a process group of its own, ended as one.

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

from .base import ToolError
from .reaper import GRACE, KILL_WAIT, alive, process_table, terminate

__all__ = ["SECRET_VARIABLES", "Ended", "Exit", "Job", "SupervisedJob", "end_all", "end_group", "environment", "start"]

REAPER = Path(__file__).with_name("reaper.py")
SUPERVISED = sys.platform.startswith("linux") and bool(sys.executable)
SECRET_VARIABLES = ("OPENAI_API_KEY", "GRIDCHAT_API_KEY")
_ENDING_TIME = GRACE + KILL_WAIT + 2  # what a supervisor may take to end its processes

_live: set[Job] = set()


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


def environment(secrets: Iterable[str] = (), base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment tools run in: the client's, less its credentials — the API key variables, and
    any variable holding the key's value (a long key also where it is part of a value)."""
    secrets = [s for s in secrets if s]

    def secret(value: str) -> bool:
        return any(value == s or (len(s) >= 8 and s in value) for s in secrets)

    env = os.environ if base is None else base
    return {k: v for k, v in env.items() if k not in SECRET_VARIABLES and not secret(v)}


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
    """The command under its supervisor (tools/reaper.py), which reports on a status pipe."""

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
        self._release()
        if word == "error":
            raise ToolError(rest)
        raise ToolError(f"the command's supervisor ended unexpectedly (status {self.proc.returncode}); "
                        "processes it started may still be running")

    def end(self) -> Ended:
        if self._ended is not None:
            return self._ended
        if self.proc.poll() is not None:  # it ended by itself
            self._release()
            return Ended(False, 0, 0)
        self.signal_end()
        deadline = time.monotonic() + _ENDING_TIME
        try:
            line = self._status.next(deadline)
            while line is not None and not line.startswith("ended "):  # an "exit" line just before
                line = self._status.next(deadline)
        except TimeoutError:
            line = None
        if line is None:  # no report: it did not answer, or was killed
            self.proc.kill()
            self._release()
            self._ended = Ended()
            return self._ended
        return self._ended_by(line.partition(" ")[2])

    def _ended_by(self, report: str) -> Ended:
        running, others, left = map(int, report.split())
        self._release()
        self._ended = Ended(bool(running), others, left)
        return self._ended

    def over(self) -> bool:
        return self.proc.poll() is not None  # the supervisor stays while anything it watches runs

    def signal_end(self) -> None:
        if self.proc.returncode is None:  # once reaped, its pid may be another process's
            try:
                os.kill(self.proc.pid, signal.SIGTERM)  # the supervisor does the rest
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


def start(command: str, cwd: str | os.PathLike, env: Mapping[str, str]) -> Job:
    """Start a bash command, supervised where the platform allows; registered until it is over."""
    _prune()
    job = (SupervisedJob if SUPERVISED else Job)(command, cwd, env)
    _live.add(job)
    return job


def _prune() -> None:
    """Forget the jobs that have ended by themselves (supervisors whose background processes are over)."""
    for job in list(_live):
        if job.over():
            job.end()


def end_all() -> None:
    """End every process the tools started that is still running, and wait (a few seconds at most)
    until they are gone. Safe to call from a signal handler, and more than once."""
    jobs = list(_live)
    _live.clear()
    for job in jobs:
        job.signal_end()  # all at once, so that their graces overlap
    deadline = time.monotonic() + _ENDING_TIME
    for job in jobs:
        if not job.ended_by(deadline):
            job.proc.kill()  # the supervisor did not answer; what it supervised is beyond reach now


atexit.register(end_all)
