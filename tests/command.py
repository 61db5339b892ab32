"""Running a gridchat command in the test's own process: chat/cli.py's ``run`` with the given
arguments, standard input and environment, its output captured as `python -m gridchat` would give
it — without starting a Python and importing the client each time (about 0.7 s a command).

``gridchat`` answers as ``subprocess.run(..., capture_output=True)`` does, so a test reads the same
``returncode``, ``stdout`` and ``stderr``. What only a process has — signals, exit codes seen by a
shell, a closed or full stdout, the tools' subreaper — is tested through `python -m gridchat` itself
(test_oneshot.py, test_adversarial.py, test_tool_safety.py, the real-terminal tests)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from gridchat.chat import redact
from gridchat.chat.cli import run

__all__ = ["gridchat", "python_m_gridchat"]


def gridchat(*args: str, stdin: str | bytes | None = None, env: Mapping[str, str] | None = None,
             cwd: str | os.PathLike | None = None, text: bool = True) -> subprocess.CompletedProcess:
    """`chat ARGS` run in this process. ``stdin``: what is piped in (none: an empty pipe, as from
    /dev/null); ``env``: the whole environment (none: this process's); ``cwd``: the directory it
    runs in; ``text``: the output decoded as a text-mode subprocess's is (UTF-8, universal
    newlines), else bytes."""
    data = stdin.encode() if isinstance(stdin, str) else stdin or b""
    streams = [io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"),
               io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True),
               io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="backslashreplace", write_through=True)]
    with _environment(env), _directory(cwd), _fresh_secrets():
        code = run(list(map(str, args)), *streams)
    out, err = (s.buffer.getvalue() for s in streams[1:])
    if text:
        out, err = (io.TextIOWrapper(io.BytesIO(b), encoding="utf-8").read() for b in (out, err))
    return subprocess.CompletedProcess(["chat", *args], code, out, err)


def python_m_gridchat(*args: str, stdin: str | bytes | None = None, env: Mapping[str, str] | None = None,
                      text: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    """`python -m gridchat ARGS` in a process of its own, answering as ``gridchat`` does."""
    return subprocess.run([sys.executable, "-m", "gridchat", *map(str, args)], capture_output=True, text=text,
                          input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
                          env=None if env is None else dict(env), timeout=timeout)


@contextmanager
def _environment(env: Mapping[str, str] | None) -> Iterator[None]:
    if env is None:
        yield
        return
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextmanager
def _directory(cwd) -> Iterator[None]:
    saved = os.getcwd()
    os.chdir(cwd or saved)
    try:
        yield
    finally:
        os.chdir(saved)


@contextmanager
def _fresh_secrets() -> Iterator[None]:
    """The secrets a command holds are its own, as in a process of its own: none before, none after."""
    redact._forget_all()
    try:
        yield
    finally:
        redact._forget_all()
