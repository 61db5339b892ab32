"""Running a server process: log to a file, wait for /health with progress, stop it cleanly."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from .launch import Launch

__all__ = ["ServerDied", "ServerProcess", "log_dir"]


def log_dir() -> Path:
    """Where servers' logs go: $XDG_STATE_HOME/gridchat/logs (~/.local/state/…), kept after they stop."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "gridchat" / "logs"


def _new_log(launch: Launch) -> Path:
    slug = "".join(c if c.isalnum() else "-" for c in launch.name.split(" (")[0].lower())
    prefix = f"{slug}-{time.strftime('%Y%m%d-%H%M%S')}-{launch.port}-"
    try:
        log_dir().mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=".log", dir=log_dir())
    except OSError:  # no writable state directory: the system's temporary one still takes it
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=".log")
    os.close(fd)
    return Path(name)


class ServerDied(Exception):
    """The server exited before it was ready; the message carries the tail of its log."""


def _die_with_parent() -> None:
    """In the child: its own process group, and SIGTERM when the parent dies, even by SIGKILL
    (Linux), so a crashed or killed client never leaves a server behind."""
    os.setsid()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass


class ServerProcess:
    def __init__(self, launch: Launch, log_path: Path | None = None):
        self.launch = launch
        self.log_path = log_path or _new_log(launch)
        self.proc: subprocess.Popen | None = None

    def start(self) -> "ServerProcess":
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(self.launch.argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        except OSError as e:
            raise ServerDied(f"cannot start {self.launch.argv[0]}: {e.strerror or e}") from None
        finally:
            log.close()
        from ..supervise.processes import keep  # here, like stop's: only a started server pays for the import

        keep(self.proc)  # a child on purpose: a client sweeping for strays its tools left spares it
        return self

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.rstrip().splitlines()[-lines:])

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.launch.health_url, timeout=2) as response:
                return response.status == 200
        except Exception:  # refused while starting, 503 while loading the model
            return False

    def wait_ready(self, timeout: float | None = None, progress: Callable[[float, str], None] | None = None) -> float:
        """Block until /health answers 200; the seconds it took. ServerDied if it exits first."""
        start = time.monotonic()
        while True:
            code = self.proc.poll()
            if code is not None:
                raise ServerDied(f"{self.launch.name} exited with status {code} before it was ready; "
                                 f"the end of its log ({self.log_path}):\n{self.log_tail()}")
            if self.healthy():
                return time.monotonic() - start
            elapsed = time.monotonic() - start
            if timeout is not None and elapsed > timeout:
                self.stop()
                raise ServerDied(f"{self.launch.name} was not ready after {timeout:.0f} s; the end of its log "
                                 f"({self.log_path}):\n{self.log_tail()}")
            if progress:
                progress(elapsed, self.log_tail(1))
            time.sleep(0.25)

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM to its process group, then SIGKILL after ``grace`` seconds; its exit status."""
        if self.proc is None:
            return None
        from ..supervise.processes import end_group, release  # here, not at the top: serve starts faster

        code = end_group(self.proc, grace)
        release(self.proc)
        return code
