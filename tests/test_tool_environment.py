"""Issue 16, defect 9: tools get an allow-listed environment. Handles to long-lived servers outside
chat (TMUX, SSH_AUTH_SOCK, DBUS_SESSION_BUS_ADDRESS, DISPLAY …) do not pass, so a command can't start
through them a process that outlives chat; the credentials rule still holds for what does pass."""

from __future__ import annotations

import json
import time

from fake_backend import Reply, ToolCall
from gridchat.tools import Workspace, execute, parse_call
from gridchat.tools.environment import environment
from gridchat.supervise.reaper import process_table

HANDLES = {"TMUX": "/tmp/tmux-0/default,1,0", "TMUX_PANE": "%0", "SSH_AUTH_SOCK": "/tmp/ssh-x/agent.1",
           "SSH_AGENT_PID": "4", "DBUS_SESSION_BUS_ADDRESS": "unix:path=/run/user/0/bus", "DISPLAY": ":0",
           "WAYLAND_DISPLAY": "wayland-0", "XDG_RUNTIME_DIR": "/run/user/0", "GPG_AGENT_INFO": "/x:0:1",
           "KRB5CCNAME": "FILE:/tmp/krb5cc_0", "STY": "1.pts-0", "SOME_TOOLS_SETTING": "x"}
ALLOWED = {"PATH": "/usr/bin:/bin", "HOME": "/home/me", "USER": "me", "LOGNAME": "me", "SHELL": "/bin/bash",
           "LANG": "C.UTF-8", "LANGUAGE": "en", "LC_ALL": "C.UTF-8", "LC_TIME": "C", "TERM": "xterm", "TZ": "UTC",
           "TMPDIR": "/tmp"}


def test_only_allowed_names_pass():
    env = environment(base={**HANDLES, **ALLOWED})
    assert env == ALLOWED


def test_the_secrets_rule_still_holds_for_allowed_names():
    key = "sk-test-0123456789abcdef"
    env = environment([key], base={**ALLOWED, "HOME": f"/home/{key}", "OPENAI_API_KEY": key})
    assert "HOME" not in env and "OPENAI_API_KEY" not in env and env["PATH"] == ALLOWED["PATH"]


def test_a_command_that_lists_its_environment_sees_only_allowed_names(tmp_path, monkeypatch):
    for name, value in HANDLES.items():
        monkeypatch.setenv(name, value)
    tool, args = parse_call("bash", json.dumps({"command": "env -0 | cut -z -d= -f1 | tr '\\0' '\\n'"}))
    out = execute(tool, args, Workspace(tmp_path))
    names = set(out.rsplit("\n[exit code 0]", 1)[0].split())
    # bash itself sets a few (PWD, SHLVL, _) that nobody passed
    assert names - {"PWD", "SHLVL", "_", "OLDPWD"} <= set(ALLOWED), names
    assert not names & set(HANDLES), names


def test_a_tmux_escape_leaves_nothing_behind_when_chat_exits(fake, term, tmp_path):
    """chat runs inside tmux (TMUX is set in its environment): a command that opens a tmux window
    for a sleep would hand it to the tmux server, out of chat's reach, if TMUX reached it."""
    ws = tmp_path / "ws"
    ws.mkdir()
    fb = fake("vllm")
    command = "tmux new-window -d 'sleep 4242'; echo tmux-said-$?"
    fb.script(Reply(tool_calls=[ToolCall("bash", json.dumps({"command": command}))]), Reply(text="window done"))
    t = term(fb, "--workspace", str(ws), "--approve", "bash")
    t.wait_prompt("none")
    t.line("open a window")
    t.wait_for("window done")
    t.wait_prompt("none")
    t.keys("C-d")
    t.wait_exit()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and sleeping():
        time.sleep(0.05)
    assert not sleeping(), "tmux's window outlived chat"


def sleeping() -> bool:
    for pid, _, _ in process_table():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().split(b"\0")[:2] == [b"sleep", b"4242"]:
                    return True
        except OSError:
            continue
    return False
