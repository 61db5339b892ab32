"""Driving `chat` in a real terminal for end-to-end tests: `python -m gridchat` runs in a tmux pane (a real pty, 100x30,
TERM=xterm-256color) against the fake backend running in this process; keys go in with
`tmux send-keys`, what the user sees comes back with `tmux capture-pane`, and the raw bytes the
client wrote to the pty with `tmux pipe-pane`.

Every test has its own tmux server (`-L <unique name>`), killed at the end. Nothing sleeps for a
fixed time: every step waits (with a timeout) for text on the screen or a request at the server.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
WIDTH, HEIGHT = 100, 30
TIMEOUT = 10.0  # seconds any single wait may take before the test fails (with the screen shown)
MODEL = "fake/persona-20b"
# chat runs under this small wrapper, which records its exit status in a file: tmux 3.3 sometimes
# leaves an exited pane process unreaped (a zombie), with #{pane_dead_status} never set. The wrapper
# shrugs off Ctrl-C itself (a handler, not SIG_IGN, so chat gets the default back at exec).
WRAPPER = """\
import os, signal, subprocess, sys
signal.signal(signal.SIGINT, lambda *_: None)
code = subprocess.call(sys.argv[2:])
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(code))
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
"""
TMUX_CONF = """\
set -g status off
set -g remain-on-exit on
set -g history-limit 5000
set -g default-size 100x30
"""



def sgr_params(line: str) -> set[str]:
    """Every SGR parameter a captured line (capture-pane -e) sets: {"2"} for dim, {"3"} italic ..."""
    return {p for seq in re.findall(r"\x1b\[([0-9;]*)m", line) for p in seq.split(";") if p}


def unwrap(text: str) -> str:
    """Join the input's soft-wrapped lines (indented under the prompt, maybe with a "…" mark)."""
    return re.sub(r"\n {2,}(… ?)?", "", text)


def flat(text: str) -> str:
    """Whitespace runs as one space: rich wraps long lines at the window's width."""
    return " ".join(text.split())


class Term:
    """One `chat` process in a detached tmux session of its own tmux server."""

    def __init__(self, tmp_path: Path):
        self.socket = f"pc-test-{os.getpid()}-{uuid.uuid4().hex[:10]}"
        self.dir = tmp_path / f"term-{uuid.uuid4().hex[:6]}"
        self.dir.mkdir(parents=True)
        self.conf = self.dir / "tmux.conf"
        self.conf.write_text(TMUX_CONF)
        self.raw_path = self.dir / "raw.out"
        self.status_path = self.dir / "exit-status"
        self.socket_path = ""
        self.started = False

    # -- tmux plumbing ---------------------------------------------------------------------------
    def tmux(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run(["tmux", "-L", self.socket, "-f", str(self.conf), *args],
                              capture_output=True, text=True, timeout=10)
        if check and proc.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def start(self, fb, *args: str) -> "Term":
        """Run `chat --base-url <fb's> ARGS`; with fb None, `chat ARGS` (e.g. `probe judge DIR`)."""
        env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE", "COLUMNS", "LINES")}
        env["TERM"] = "xterm-256color"
        # XDG_CONFIG_HOME / XDG_DATA_HOME come from the autouse isolated_env fixture, through env
        assert "XDG_DATA_HOME" in env and "XDG_CONFIG_HOME" in env
        command = ["env", "TERM=xterm-256color", sys.executable, "-c", WRAPPER, str(self.status_path),
                   sys.executable, "-m", "gridchat", *(["--base-url", fb.base_url] if fb is not None else []), *args]
        proc = subprocess.run(
            ["tmux", "-L", self.socket, "-f", str(self.conf), "new-session", "-d", "-s", "t",
             "-x", str(WIDTH), "-y", str(HEIGHT), "-c", str(self.dir), *command,
             ";", "pipe-pane", "-O", "-t", "t", f"cat >> '{self.raw_path}'"],
            env=env, capture_output=True, text=True, timeout=10)
        if proc.returncode != 0:
            raise RuntimeError(f"tmux new-session failed: {proc.stderr.strip()}")
        self.started = True
        self.socket_path = self.pane("#{socket_path}")
        return self

    def close(self) -> None:
        if self.started:
            self.tmux("kill-server", check=False)
            self.started = False
            if self.socket_path:  # tmux leaves the socket file behind
                Path(self.socket_path).unlink(missing_ok=True)

    # -- input -------------------------------------------------------------------------------------
    def type(self, text: str) -> None:
        """Type text literally (no tmux key names)."""
        assert not text.endswith(";"), "tmux would read a trailing ; as a command separator"
        self.tmux("send-keys", "-t", "t", "-l", text)

    def keys(self, *names: str) -> None:
        """Press keys by tmux name: Enter, Tab, Up, C-c, C-d ..."""
        self.tmux("send-keys", "-t", "t", *names)

    def raw(self, data: bytes) -> None:
        """Write exact bytes to the pty, as a terminal would for a paste or Alt-Enter."""
        self.tmux("send-keys", "-t", "t", "-H", *[f"{b:02x}" for b in data])

    def line(self, text: str) -> None:
        self.type(text)
        self.keys("Enter")

    # -- output ------------------------------------------------------------------------------------
    def screen(self, escapes: bool = False) -> str:
        """Everything shown so far: the scrollback and the visible window, trailing blanks cut."""
        args = ["capture-pane", "-p", "-J", "-S", "-", "-t", "t"] + (["-e"] if escapes else [])
        return "\n".join(line.rstrip() for line in self.tmux(*args).splitlines()).rstrip("\n")

    def visible(self) -> list[str]:
        return [line.rstrip() for line in self.tmux("capture-pane", "-p", "-t", "t").splitlines()]

    def cursor_line(self) -> str:
        y = int(self.tmux("display-message", "-p", "-t", "t", "#{cursor_y}").strip())
        lines = self.visible()
        return lines[y] if y < len(lines) else ""

    def raw_output(self) -> bytes:
        return self.raw_path.read_bytes() if self.raw_path.exists() else b""

    def pane(self, fmt: str) -> str:
        return self.tmux("display-message", "-p", "-t", "t", fmt).strip()

    def exit_status(self) -> int | None:
        """chat's exit status once it has ended (negative: killed by that signal), else None."""
        return int(self.status_path.read_text()) if self.status_path.exists() else None

    # -- waiting -------------------------------------------------------------------------------------
    def wait(self, predicate, what: str, timeout: float = TIMEOUT):
        """Poll until predicate() is truthy; fail showing the screen otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout} s waiting for {what}; screen:\n{self.screen()}")
            time.sleep(0.05)

    def wait_for(self, text: str, timeout: float = TIMEOUT) -> str:
        """Wait until text is on the screen (whitespace-insensitively); return the screen."""
        def seen():
            s = self.screen()
            return s if text in s or flat(text) in flat(s) else None
        return self.wait(seen, repr(text), timeout)

    def wait_prompt(self, persona: str, typed: str = "", timeout: float = TIMEOUT) -> None:
        """Wait until the input prompt is up (cursor on it), holding exactly `typed`."""
        want = f"{persona} › {typed}".rstrip()
        self.wait(lambda: self.cursor_line() == want, f"the prompt {want!r}", timeout)

    def wait_exit(self, timeout: float = TIMEOUT) -> int:
        """Wait for chat to end; its exit status."""
        self.wait(lambda: self.status_path.exists(), "chat to exit", timeout)
        return self.exit_status()

    def alive(self) -> bool:
        return self.exit_status() is None

    def output_after(self, marker: str) -> str:
        """The screen from the last line containing marker on (a command's own output)."""
        s = self.screen()
        i = s.rfind(marker)
        assert i != -1, f"{marker!r} not on screen:\n{s}"
        return s[s.rfind("\n", 0, i) + 1:]


def page_through(t: Term, question: str, pages: int = 6) -> None:
    """Answer m at an approval question until every page of its preview is shown."""
    for _ in range(pages):
        if "m(ore" not in t.cursor_line():
            return
        shown = t.screen().count(question)
        t.line("m")
        t.wait(lambda: t.screen().count(question) > shown, "the next page")
    assert "m(ore" not in t.cursor_line(), f"more than {pages} pages"


def send(t: Term, persona: str, text: str, expect: str) -> str:
    """Type a message at a ready prompt, wait for `expect` after it (not an earlier reply's) and the
    next prompt."""
    marker = f"{persona} › {text}"[:60]  # a long message is wrapped by the prompt itself
    before = t.screen().count(marker)
    t.line(text)

    def answered() -> bool:
        s = t.screen()
        return s.count(marker) > before and expect in s[s.rfind(marker):]

    t.wait(answered, f"{expect!r} after {text!r}")
    t.wait_prompt(persona)
    return t.screen()
