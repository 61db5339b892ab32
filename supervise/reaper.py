"""The supervisor each bash call runs under (Linux), and the project's one process-tree killer.

Run by path — ``python -I reaper.py CLIENT_PID OUT_FD STATUS_FD COMMAND`` — with the standard
library only (no gridchat import: it starts in a few tens of milliseconds). It becomes a child
subreaper, so every process the command starts stays below it however it detaches (setsid, nohup,
a double fork: orphans are reparented to it), and asks for a signal when the client dies, even by
SIGKILL. It runs ``bash -c COMMAND`` in a session of its own, stdin /dev/null, stdout and stderr on
OUT_FD (which it closes itself), and writes to STATUS_FD, one line each:

    exit CODE BACKGROUND    bash ended (CODE < 0: killed by that signal), BACKGROUND processes left
    ended RUNNING OTHERS LEFT   after SIGTERM: bash was still running (1/0), how many other processes
                            were killed, how many could not be
    error MESSAGE           bash could not be started

It stays while background processes run and exits when the last one has; on SIGTERM (from the
client at a timeout, Ctrl-C or exit), SIGHUP or SIGINT, or when the client dies, it ends them all.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Collection, Iterator

__all__ = ["GRACE", "KILL_WAIT", "alive", "descendants", "end_all_of", "main", "process_table", "terminate",
           "zombies"]

GRACE = 2.0  # seconds between SIGTERM and SIGKILL
KILL_WAIT = 5.0
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
# The parent-death signal also comes when the client *thread* that started us exits, with the client
# alive: a signal of its own, checked against getppid(), tells the two apart.
CLIENT_GONE = signal.SIGUSR1
ENDING = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


def terminate(signal_all: Callable[[int], None], gone: Callable[[float], bool],
              grace: float = GRACE, kill_wait: float = KILL_WAIT) -> bool:
    """End a set of processes: SIGTERM, up to ``grace`` seconds to exit, then SIGKILL, again and
    again while any is left (one may fork between rounds) for up to ``kill_wait`` seconds.
    ``signal_all(sig)`` signals whatever is there now; ``gone(timeout)`` waits up to timeout for
    all of them to be gone. Whether they all went."""
    signal_all(signal.SIGTERM)
    if gone(grace):
        return True
    deadline = time.monotonic() + kill_wait
    while True:
        signal_all(signal.SIGKILL)
        if gone(min(0.2, max(0.0, deadline - time.monotonic()))):
            return True
        if time.monotonic() >= deadline:
            return False


def end_all_of(find: Callable[[], list[int]], reap: Callable[[], object]) -> tuple[set[int], int]:
    """End every process ``find()`` lists, however many appear meanwhile (see terminate), reaping as
    it goes: the ones signalled, and how many were left alive."""
    touched: set[int] = set()

    def signal_all(sig: int) -> None:
        reap()
        pids = find()
        touched.update(pids)
        # Stopped first, all of them: else bash, seeing its child end, runs the command's next
        # statement (`(slow) ; rm …`) before its own signal comes. Continued last: a stopped process
        # acts on SIGTERM only once continued.
        for s in (signal.SIGSTOP, sig, signal.SIGCONT):
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):  # gone, or not ours to stop
                    os.kill(pid, s)

    def gone(timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            reap()
            if not find():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    if not gone(0):
        terminate(signal_all, gone)
    reap()
    return touched, len(find())


def _stat(pid: int | str) -> list[bytes] | None:
    """The fields of /proc/PID/stat after the command's name (state, parent, group, ...); None once
    there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def alive(pid: int) -> bool:
    """Whether the process runs; a zombie (ended, waiting to be reaped) does not."""
    fields = _stat(pid)
    return fields is not None and fields[0] != b"Z"


def process_table() -> Iterator[tuple[int, int, int]]:
    """(pid, parent pid, process group) of every live process, zombies left out."""
    for entry in os.scandir("/proc"):
        fields = _stat(entry.name) if entry.name.isdigit() else None
        if fields is not None and fields[0] != b"Z":
            yield int(entry.name), int(fields[1]), int(fields[2])


def zombies() -> Iterator[tuple[int, int]]:
    """(pid, parent pid) of every process that has ended and waits to be reaped."""
    for entry in os.scandir("/proc"):
        fields = _stat(entry.name) if entry.name.isdigit() else None
        if fields is not None and fields[0] == b"Z":
            yield int(entry.name), int(fields[1])


def descendants(root: int, spare: Collection[int] = ()) -> set[int]:
    """The live processes below root, less root's children in ``spare`` and everything below them."""
    children: dict[int, list[int]] = {}
    for pid, ppid, _ in process_table():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [child for child in children.get(root, ()) if child not in spare]
    found.update(todo)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _reap() -> dict[int, int]:
    """Wait for every child that has ended; their exit codes (negative: the signal)."""
    ended = {}
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return ended
        if pid == 0:
            return ended
        ended[pid] = os.waitstatus_to_exitcode(status)


def _end_everything(me: int) -> tuple[set[int], int]:
    """Kill every descendant; the ones signalled and how many were left alive."""
    return end_all_of(lambda: descendants(me), _reap)


def _report(fd: int, *words: object) -> None:
    try:
        os.write(fd, (" ".join(map(str, words)) + "\n").encode())
    except OSError:
        pass  # the client is gone: nobody to tell


def _environment() -> dict[bytes, bytes]:
    """The environment the client gave us, as it was: Python's start-up may have added LC_CTYPE to
    os.environ (locale coercion), and the command should see the client's own."""
    with open("/proc/self/environ", "rb") as f:
        return dict(item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item)


def _arm(client: int) -> bool:
    """Subreaper and parent-death signal; False when the client died before the latter was set."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    libc.prctl(PR_SET_PDEATHSIG, int(CLIENT_GONE), 0, 0, 0)
    return os.getppid() == client


def main(argv: list[str]) -> int:
    client, out_fd, status_fd, command = int(argv[1]), int(argv[2]), int(argv[3]), argv[4]
    watched = {signal.SIGCHLD, CLIENT_GONE, *ENDING}
    signal.pthread_sigmask(signal.SIG_BLOCK, watched)  # taken one at a time by sigwaitinfo below
    if not _arm(client):
        return 0
    for fd in (out_fd, status_fd):
        os.set_inheritable(fd, False)
    try:
        bash = os.posix_spawnp("bash", ["bash", "-c", command], _environment(),
                               file_actions=[(os.POSIX_SPAWN_DUP2, out_fd, 1), (os.POSIX_SPAWN_DUP2, out_fd, 2)],
                               setsid=True, setsigmask=(), setsigdef=(signal.SIGPIPE, signal.SIGXFSZ, *watched))
    except OSError as e:
        _report(status_fd, "error", f"cannot start bash: {e.strerror or e}")
        return 1
    finally:
        os.close(out_fd)  # bash and what it starts hold the pipe; its end is theirs
    me, running = os.getpid(), True
    while True:
        sig = signal.sigwaitinfo(watched).si_signo
        if sig == signal.SIGCHLD:
            ended = _reap()
            if running and bash in ended:
                running = False
                _report(status_fd, "exit", ended[bash], len(descendants(me)))
            if not running and not descendants(me):
                return 0
        elif sig != CLIENT_GONE or os.getppid() != client:
            break
    touched, left = _end_everything(me)
    _report(status_fd, "ended", int(bash in touched), len(touched - {bash}), left)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
