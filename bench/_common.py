"""Shared by the benchmarks: the fake backend (the tests' loopback server), timing, a pty runner."""

from __future__ import annotations

import os
import pty
import select
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the fake backend lives with the tests

from fake_backend import FakeBackend, Reply  # noqa: E402

__all__ = ["FakeBackend", "ROOT", "Reply", "median_time", "python", "run_in_pty", "subprocess_time", "tokens_reply"]


def median_time(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_in_pty(argv: list[str], env: dict | None = None, cols: int = 120, rows: int = 40) -> float:
    """Run a command on a pseudo-terminal, draining its output as a terminal would; wall seconds."""
    import fcntl
    import struct
    import termios

    start = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe(argv[0], argv, {**os.environ, "TERM": "xterm-256color", **(env or {})})
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    while True:
        ready, _, _ = select.select([fd], [], [], 30)
        if not ready:
            break
        try:
            if not os.read(fd, 1 << 16):
                break
        except OSError:
            break
    os.waitpid(pid, 0)
    os.close(fd)
    return time.perf_counter() - start


def tokens_reply(n: int) -> Reply:
    """A Markdown reply of about n tokens (one token per delta), paragraphs and a code block or two."""
    words = []
    for i in range(n):
        if i % 400 == 200:
            words.append("\n\n```python\n")
        elif i % 400 == 260:
            words.append("\n```\n\n")
        elif i % 60 == 59:
            words.append("\n\n")
        else:
            words.append(f"w{i % 97} " if i % 9 else "**bold** ")
    text = "".join(words)
    return Reply(text=text, chunk_chars=max(1, len(text) // n))


def python() -> str:
    return sys.executable


def subprocess_time(argv, **kw) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    return time.perf_counter() - start
