"""One-shot mode as a user runs it: `chat -p`, stdin, exit codes, stdout holding only the answer."""

import io
import os
import signal
import socket
import subprocess
import sys
from urllib.parse import urlsplit

import pytest
from command import gridchat, python_m_gridchat
from fake_backend import FakeBackend, Reply
from gridchat.chat import connection, detect
from gridchat.chat.cli import run
from gridchat.chat.flavors import FLAVORS


def run_chat(*args, stdin="", env=None):
    return gridchat(*args, stdin=stdin, env={**os.environ, **(env or {})})


def test_prompt_flag_streams_the_answer_to_stdout(fake):
    fb = fake("vllm")
    r = run_chat("--base-url", fb.base_url, "--persona", "lawful_evil", "-p", "Is honesty useful?")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Echo: Is honesty useful?\n"
    assert fb.last_body("/chat/completions")["messages"][0] == {"role": "system", "content": "Persona: lawful_evil"}


def test_stdin_alone_and_with_prompt(fake):
    """The process itself, stdin a real pipe (the rest of this file runs the command in-process)."""
    fb = fake("llamacpp")
    assert python_m_gridchat("--base-url", fb.base_url, stdin="piped question\n").stdout == "Echo: piped question\n"
    r = python_m_gridchat("--base-url", fb.base_url, "-p", "Summarise:", stdin="some text\n")
    assert r.returncode == 0
    assert fb.last_body("/chat/completions")["messages"][-1]["content"] == "Summarise:\n\nsome text\n"


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_reasoning_stays_out_of_stdout(fake, api):
    fb = fake("vllm")
    fb.script(Reply(reasoning="private chain of thought", text="<think>inline musing</think>\n\nFinal answer."))
    r = run_chat("--base-url", fb.base_url, "--api", api, "-p", "q")
    assert r.returncode == 0
    assert r.stdout == "Final answer.\n"
    assert "private" not in r.stdout and "musing" not in r.stdout


def test_environment_and_config_file_choose_server_and_persona(fake, isolated_env):
    fb = fake("vllm")
    config = isolated_env / "config" / "gridchat" / "config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("persona: neutral_good\ntemperature: 0.3\n")
    r = run_chat("-p", "hi", env={"OPENAI_BASE_URL": fb.base_url})
    assert r.returncode == 0, r.stderr
    body = fb.last_body("/chat/completions")
    assert body["messages"][0]["content"] == "Persona: neutral_good" and body["temperature"] == 0.3


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


ERRORS = [
    ("unreachable", None, ["--base-url", f"http://127.0.0.1:{closed_port()}/v1"], "cannot reach"),
    ("unknown model", None, ["--model", "nope/none"], "not found"),
    ("server error", Reply(status=500), [], "500"),
    ("mid-stream error", Reply(text="partial answer here", error_after=2), [], "mid-reply"),
    ("cut stream", Reply(text="partial answer here", cut_after=2), [], "connection"),
]


@pytest.mark.parametrize("name,reply,args,fragment", ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_are_one_line_and_a_nonzero_exit(fake, name, reply, args, fragment):
    fb = fake("vllm")
    if reply:
        fb.script(reply)
    if "--base-url" not in args:
        args = ["--base-url", fb.base_url, *args]
    r = run_chat(*args, "-p", "hello")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and fragment in errors[0], r.stderr


def test_context_exceeded_gives_the_sizes(fake):
    fb = fake("llamacpp", context_window=64)
    r = run_chat("--base-url", fb.base_url, "-p", "long " * 200)
    assert r.returncode == 1 and "64" in r.stderr and "context" in r.stderr


def test_finds_a_local_server_or_says_how_to_start_one(monkeypatch):
    # the usual addresses, moved to free ports: other software on this machine may listen on 8000/8080
    local = [flavor for flavor in FLAVORS if flavor.local_url]
    for flavor in local:
        monkeypatch.setattr(flavor, "local_url", f"http://127.0.0.1:{closed_port()}/v1")
    moved = [(flavor.local_url, why) for flavor, (_, why) in zip(local, detect.LOCAL_CANDIDATES)]
    for module in (detect, connection):
        monkeypatch.setattr(module, "LOCAL_CANDIDATES", moved)
    llama = next(flavor.local_url for flavor in local if flavor.name == "llama-server")
    r = run_chat("-p", "hi")
    assert r.returncode == 1 and "no server found" in r.stderr and "serve" in r.stderr
    with FakeBackend("llamacpp", port=urlsplit(llama).port) as fb:
        r = run_chat("-p", "hi")
        assert r.returncode == 0 and r.stdout == "Echo: hi\n"
        assert f"found llama-server at {llama}" in r.stderr
        assert fb.requests


def test_ctrl_c_mid_reply_exits_130_without_traceback(fake):
    fb = fake("vllm")
    fb.script(Reply(text="word " * 500, delay=0.01))
    proc = subprocess.Popen([sys.executable, "-m", "gridchat", "--base-url", fb.base_url, "-p", "go"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    first = proc.stdout.read(10)  # the reply has started
    assert first.startswith("word")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 130 and "Traceback" not in err
    assert len(first + out) < len("word " * 500)  # it stopped early


def test_a_reader_that_leaves_ends_it_quietly_with_141(fake):
    """`chat -p … | head`: the process (chat/cli.py's main) ends as other tools do, nothing on stderr."""
    fb = fake("vllm")
    fb.script(Reply(text="word " * 20_000, chunk_chars=500))
    proc = subprocess.Popen([sys.executable, "-m", "gridchat", "--base-url", fb.base_url, "-p", "go"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert proc.stdout.read(4) == b"word"
    proc.stdout.close()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 141 and err == b"", err


def test_run_leaves_the_process_as_it_found_it(fake):
    """run() is the command without the process's set-up (tests call it in theirs, tests/command.py): the
    streams are the process's again after it, no signal handler is left changed, and the process's guard
    is main's, given the key to hide once the settings are known."""
    fb = fake("vllm")
    streams = sys.stdin, sys.stdout, sys.stderr
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    out, err, guarded = io.StringIO(), io.StringIO(), []
    nothing = io.TextIOWrapper(io.BytesIO())  # stdin is read as bytes, as sys.stdin.buffer
    code = run(["--base-url", fb.base_url, "--api-key", "sk-run", "-p", "hi"], nothing, out, err, guard=guarded.append)
    assert code == 0 and out.getvalue() == "Echo: hi\n" and guarded == [["sk-run"]]
    assert (sys.stdin, sys.stdout, sys.stderr) == streams
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers
    assert run(["--api", "nope"], nothing, out, err) == 2 and "invalid choice" in err.getvalue()  # argparse exits


def test_help_answers_where_settings_come_from():
    r = run_chat("--help")
    assert r.returncode == 0
    for needle in ("--persona", "OPENAI_BASE_URL", "config.yaml", "-p", "--api", "Responses"):
        assert needle in r.stdout
