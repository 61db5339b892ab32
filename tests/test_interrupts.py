"""Ctrl-C (issue 16, boundary 7): only the front-end turns SIGINT into a cancel, per user action; the
core installs no signal handler and never handles KeyboardInterrupt; tools end with the action's token."""

from __future__ import annotations

import ast
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from test_tool_safety import wait_dead

REPO = Path(__file__).resolve().parent.parent
# the front-ends: they, and only they, turn keys and signals into cancels
FRONT_ENDS = {"chat/interrupts.py", "chat/cli.py", "chat/repl.py", "chat/oneshot.py", "chat/probes/cli.py",
              "chat/probes/hand_judging.py", "serve/cli.py", "serve/engine.py", "serve/process.py"}
# processes of their own (the supervisor of a tool's command) and the leaf that ends commands
OWN = {"supervise/reaper.py", "supervise/processes.py", "tools/bash.py"}


def _core_files():
    for path in (REPO / "chat").rglob("*.py"):
        rel = str(path.relative_to(REPO))
        if rel not in FRONT_ENDS and not rel.startswith("chat/slash/"):
            yield rel, path


def test_the_core_installs_no_signal_handler_and_catches_no_keyboard_interrupt():
    found = []
    for rel, path in _core_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("signal.signal", "signal.setitimer"):
                found.append(f"{rel}:{node.lineno}: {ast.unparse(node.func)}")
            if isinstance(node, ast.ExceptHandler) and node.type is not None and "KeyboardInterrupt" in ast.unparse(node.type):
                found.append(f"{rel}:{node.lineno}: except {ast.unparse(node.type)}")
    assert not found, "the core handles signals itself:\n" + "\n".join(found)


def test_ctrl_c_during_an_action_cancels_its_token_and_raises_nothing():
    """A KeyboardInterrupt can't land anywhere inside an action (a live view's start, a record)."""
    from gridchat.chat import interrupts
    from gridchat.chat.cancel import new_token

    with interrupts.action() as token:
        child = new_token()
        os.kill(os.getpid(), signal.SIGINT)
        deadline = time.monotonic() + 5
        while not child.cancelled and time.monotonic() < deadline:
            time.sleep(0.01)
    assert token.cancelled and child.cancelled and child.reason == "interrupted"
    with pytest.raises(KeyboardInterrupt):  # outside an action Ctrl-C is what it always was
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)


def test_a_running_command_ends_with_the_actions_token(tmp_path):
    from gridchat.chat import interrupts
    from gridchat.chat.cancel import new_token
    from gridchat.tools import Workspace, parse_call

    ws = Workspace(tmp_path)
    tool, args = parse_call("bash", json.dumps({"command": "sleep 4343 & echo $! > bg.pid; sleep 4343"}))
    with interrupts.action() as action:
        stop = new_token()
        threading.Timer(0.7, action.cancel).start()
        started = time.monotonic()
        out = tool.run(args, ws, None, stop)
    assert time.monotonic() - started < 10
    assert "stopped before it finished: the user interrupted the turn (Ctrl-C)" in out, out
    child = int((tmp_path / "bg.pid").read_text())
    assert wait_dead([child]) == []
