"""The one writer (chat/files.py): every file the client writes goes through it — atomic where it
replaces, fsync'd where it appends, locked where two clients could write the same file — and a scan
of the source fails when code goes around it."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from gridchat.chat.eventlog import EventLog
from gridchat.chat.files import FileError, Locked, append, hold_lock, lock_path, write_whole
from gridchat.chat.transcript import load_transcript
from gridchat.personas import load_personas
from test_probe_runner import SET, persona_model
from test_transcript_damage import chat, one_session, saved

REPO = Path(__file__).resolve().parent.parent
PERSONAS = load_personas()


# -- the bypass scan -----------------------------------------------------------------------------------

WRITER = REPO / "chat" / "files.py"
# Writes that are not the client's own records, each with why. Anything else that writes is a bypass.
ALLOWED = {
    # the model's write_file/edit_file: the user's own files, written verbatim where they approved it;
    # no redaction may ever change them (tools/ keeps its own confinement and checks)
    ("tools/files.py", "atomic_write"),
    # the server's log: written by the server process, the client only opens it for the child
    ("serve/process.py", "_new_log"), ("serve/process.py", "start"), ("serve/local.py", "__enter__"),
    # the local model: a binary download into the cache, fetched and renamed into place whole
    ("serve/local.py", "ensure_model"), ("serve/local.py", "_unpack"), ("serve/local.py", "fetch_wheel"),
    # moves the old data directories to the new name, once: no bytes written
    ("chat/config.py", "move_old_dirs"),
    # a pipe back to the client, not a file
    ("supervise/reaper.py", "_report"),
}
_MODE = re.compile(r"[rwxabtU+]{1,4}")  # what an open mode looks like (a zip member's name does not)
_WRITE_FLAGS = {"O_WRONLY", "O_RDWR", "O_CREAT", "O_APPEND", "O_TRUNC"}
_ALWAYS = {"write_text", "write_bytes", "mkstemp", "mkdtemp", "NamedTemporaryFile", "TemporaryFile",
           "SpooledTemporaryFile", "TemporaryDirectory", "mkdir", "makedirs", "replace", "rename", "renames",
           "unlink", "remove", "rmdir", "rmtree", "touch", "truncate", "ftruncate", "write", "copyfile", "copy",
           "copy2", "copytree", "move", "symlink_to", "hardlink_to", "link", "symlink", "chmod"}


def _name(node: ast.AST) -> str:
    return node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""


def _mode(call: ast.Call, position: int) -> str | None:
    """The mode string of an open-like call, if it is a literal ("r" when none is given)."""
    mode = next((k.value for k in call.keywords if k.arg == "mode"), None)
    if mode is None and len(call.args) > position:
        mode = call.args[position]
    if mode is None:
        return "r"
    if isinstance(mode, ast.Constant) and isinstance(mode.value, str):
        return mode.value if _MODE.fullmatch(mode.value) else "r"
    return None


def _writes(call: ast.Call) -> bool:
    func, name = call.func, _name(call.func)
    receiver = _name(func.value) if isinstance(func, ast.Attribute) else ""
    if name == "open" and (isinstance(func, ast.Name) or receiver == "io") or name == "fdopen":
        mode = _mode(call, 1)  # open(path, mode), os.fdopen(fd, mode)
        return mode is None or bool(set(mode) & set("wax+"))
    if name == "open" and receiver == "os":
        flags = {n.attr for n in ast.walk(call.args[1]) if isinstance(n, ast.Attribute)} if len(call.args) > 1 else set()
        devnull = any(isinstance(a, ast.Attribute) and a.attr == "devnull" for a in call.args[:1])
        return bool(flags & _WRITE_FLAGS) and not devnull
    if name == "open":  # Path.open(mode); urllib's and zipfile's opens read
        mode = _mode(call, 0)
        return mode is not None and bool(set(mode) & set("wax+"))
    if name in ("write", "truncate") and receiver != "os":
        return False  # a file object's write: only reachable through an open that is caught above
    if name in ("replace", "remove", "link", "move", "copy") and receiver not in ("os", "shutil"):
        return False  # str.replace, list.remove, dict.copy …
    return name in _ALWAYS


def bypasses() -> list[str]:
    found = []
    paths = sorted((REPO / "gridchat").glob("*.py"))
    for package in ("chat", "personas", "tools", "serve", "supervise"):
        paths += sorted((REPO / package).rglob("*.py"))
    for path in paths:
        if path == WRITER:
            continue
        rel = str(path.relative_to(REPO))
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for function in [tree, *(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))]:
            where = getattr(function, "name", "<module>")
            nested = {id(c) for f in ast.walk(function) if f is not function
                      and isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) for c in ast.walk(f)}
            for node in ast.walk(function):
                if isinstance(node, ast.Call) and id(node) not in nested and _writes(node) \
                        and (rel, where) not in ALLOWED:
                    found.append(f"{rel}:{node.lineno}: {where}: {ast.unparse(node.func)}(…)")
    return found


def test_nothing_writes_a_file_but_the_writer():
    found = bypasses()
    assert not found, "file writes outside chat/files.py (route them through it):\n" + "\n".join(found)


def test_a_typed_path_is_expanded_in_one_place():
    """files-12: `/save ~nosuchuser/x` ended the session with "internal error": pathlib's expanduser
    raises RuntimeError for a user that doesn't exist. A path the user typed is expanded by
    files.typed_path (as a shell does: an unknown ~user stays as typed, then is a missing file)."""
    found = []
    for path in sorted((REPO / "chat").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and _name(node.func) == "expanduser" and \
                    ast.unparse(node.func) != "os.path.expanduser":
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: {ast.unparse(node)}")
    assert not found, "pathlib's expanduser raises for ~nosuchuser; use files.typed_path:\n" + "\n".join(found)
    with pytest.raises(FileError, match="~nosuchuser"):
        write_whole("~nosuchuser/x.md", b"x")


@pytest.mark.parametrize("code", [
    "open(p, 'w')", "open(p, mode='ab')", "Path(p).write_text('x')", "p.write_bytes(b'')", "os.open(p, os.O_WRONLY)",
    "tempfile.mkstemp()", "p.mkdir()", "os.replace(a, b)", "p.unlink()", "os.fdopen(fd, 'wb')", "p.open('a')",
    "shutil.copyfile(a, b)", "os.write(fd, b'')",
])
def test_the_scan_catches_each_kind_of_write(code):
    assert _writes(ast.parse(code).body[0].value)


@pytest.mark.parametrize("code", [
    "open(p)", "open(p, 'rb')", "open(p, encoding='utf-8')", "p.read_text()", "os.open(p, os.O_RDONLY)",
    "os.open(os.devnull, os.O_WRONLY)", "opener.open(request, timeout=3)", "wheel.open('llm/model.gguf')", "text.replace('a', 'b')",
    "f.write(data)", "items.remove(x)", "d.copy()", "os.fdopen(fd, 'rb')",
])
def test_the_scan_leaves_reads_alone(code):
    assert not _writes(ast.parse(code).body[0].value)


# -- the writer ----------------------------------------------------------------------------------------

def test_a_replace_is_whole_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "deep" / "er" / "out.txt"
    write_whole(target, b"first", parents=True)
    write_whole(target, b"second")
    assert target.read_bytes() == b"second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


@pytest.mark.parametrize("bad", ["a\x00b", "dir\x00/x.md"])
def test_a_nul_in_a_path_is_one_error_line(tmp_path, bad):
    with pytest.raises(FileError, match="cannot write") as e:
        write_whole(tmp_path / bad, b"x")
    assert "\n" not in str(e.value)
    with pytest.raises(FileError):
        append(tmp_path / bad, b"x\n")
    with pytest.raises(FileError):
        hold_lock(tmp_path / bad, "a session")


def test_append_adds_whole_blocks(tmp_path):
    log = tmp_path / "sub" / "log.jsonl"
    append(log, b"one\n")
    append(log, b"two\n")
    assert log.read_bytes() == b"one\ntwo\n"


def test_a_lock_is_refused_naming_the_holder_and_free_again_once_released(tmp_path):
    lock = hold_lock(tmp_path / "x.lock", "session x")
    code = ("import sys; from gridchat.chat.files import hold_lock, Locked\n"
            "try:\n    hold_lock(sys.argv[1], 'session x').release()\nexcept Locked as e:\n    print(e); sys.exit(3)")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "x.lock")], capture_output=True, text=True)
    assert r.returncode == 3 and f"pid {os.getpid()}" in r.stdout and "session x" in r.stdout
    lock.release()
    assert not (tmp_path / "x.lock").exists()  # released and gone: no litter
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "x.lock")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


def test_the_same_process_cannot_take_a_lock_twice(tmp_path):
    with hold_lock(tmp_path / "x.lock", "the run"):
        with pytest.raises(Locked, match="the run"):
            hold_lock(tmp_path / "x.lock", "the run")


def test_a_file_a_chat_has_open_is_never_replaced_under_it(tmp_path):
    """files-1/2: write_whole replaced an open transcript (its chat went on appending to a deleted
    file), and a symlink to one found no lock. The writer holds the file's own lock while it replaces
    it, and that lock is keyed on where the file really is."""
    path = tmp_path / "s.jsonl"
    log = EventLog(path, lock_as="session s")
    assert log.append({"event": "session", "id": "s"})
    link = tmp_path / "link.jsonl"
    link.symlink_to(path)
    assert lock_path(link) == lock_path(path)
    for target in (path, link):
        with pytest.raises(Locked, match="open in this chat"):
            write_whole(target, b"replaced")
    assert path.read_bytes().startswith(b'{"event": "session"') and link.is_symlink()
    log.close()
    write_whole(path, b"replaced")  # free once the chat has left it, and no lock left behind
    assert path.read_bytes() == b"replaced" and sorted(p.name for p in tmp_path.iterdir()) == ["link.jsonl", "s.jsonl"]


# -- defect 5: two `chat --resume` on one session ----------------------------------------------------

def _resume_waiting(fb, session_id):
    """A one-shot `chat --resume` that has opened the session and waits for its prompt on stdin."""
    p = subprocess.Popen([sys.executable, "-m", "gridchat", "--base-url", fb.base_url, "--resume", session_id],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = p.stderr.readline()
    assert f"resumed session {session_id}" in first, first + p.stderr.read()
    return p


def test_a_second_resume_of_an_open_session_is_refused_naming_the_other(fake, isolated_env):
    """Defect 5: both went on appending to the one file; the second client's messages became "damaged
    lines" (their ids clashed) that no command could reach."""
    fb = fake("vllm")
    one_session(fb)
    (path,) = saved(isolated_env)
    first = _resume_waiting(fb, path.stem)
    try:
        r = chat("--base-url", fb.base_url, "--resume", path.stem, "-p", "second client")
        assert r.returncode == 1
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and f"pid {first.pid}" in lines[0] and path.stem in lines[0], r.stderr
        assert "Echo: second client" not in r.stdout
    finally:
        out, err = first.communicate("first client", timeout=30)
    assert first.returncode == 0 and "Echo: first client" in out, err
    restored = load_transcript(path, PERSONAS)
    assert not restored.problems
    assert [m.content for m in restored.conversation.messages][-2:] == ["first client", "Echo: first client"]
    r = chat("--base-url", fb.base_url, "--resume", path.stem, "-p", "after it left")  # free again
    assert r.returncode == 0 and "Echo: after it left" in r.stdout, r.stderr


def test_the_lock_holds_across_clear_and_load_until_chat_leaves(fake, term, isolated_env, tmp_path):
    fb = fake("vllm")
    one_session(fb)
    (path,) = saved(isolated_env)
    other = tmp_path / "other.jsonl"
    other.write_bytes(path.read_bytes())
    t = term(fb, "--resume", path.stem)
    t.wait_prompt("none")

    def refused() -> str:
        r = chat("--base-url", fb.base_url, "--resume", path.stem, "-p", "interloper")
        assert r.returncode == 1 and "Echo" not in r.stdout, r.stderr
        return r.stderr

    assert re.search(r"open in another chat \(pid \d+\)", refused())
    for command in ("/clear", f"/load {other}"):
        t.line(command)
        t.wait_for("loaded" if command.startswith("/load") else "fresh")
        t.wait_prompt("none")
        refused()
    t.line("/quit")
    assert t.wait_exit() == 0
    r = chat("--base-url", fb.base_url, "--resume", path.stem, "-p", "now mine")
    assert r.returncode == 0 and "Echo: now mine" in r.stdout, r.stderr
    assert not load_transcript(path, PERSONAS).problems


# -- a second `chat probe run` on one --out ------------------------------------------------------------

def test_a_second_probe_run_on_the_same_out_is_refused(fake, tmp_path):
    fb = fake("vllm")
    from fake_backend import Reply

    fb.responder = lambda body: Reply(text="It is 42.", delay=0.3)
    (tmp_path / "arithmetic.yaml").write_text(SET)
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "gridchat", "probe", "run", str(tmp_path / "arithmetic.yaml"), "--base-url",
            fb.base_url, "--personas", "lawful_good", "--out", str(out), "--concurrency", "1"]
    first = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not fb.generations() and time.monotonic() < deadline:  # it is running cells
            time.sleep(0.02)
        assert fb.generations(), "the first run never started"
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert r.returncode == 1
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and f"pid {first.pid}" in lines[0] and str(out) in lines[0], r.stderr
    finally:
        first.communicate(timeout=60)
    assert first.returncode == 0
    fb.responder = persona_model
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)  # free again once it ended
    assert r.returncode == 0 and "already done" in r.stdout, r.stderr
    assert json.loads((out / "run.json").read_text())["personas"] == ["lawful_good"]


def test_every_writer_of_verdicts_holds_the_run_directory(fake, tmp_path):
    """Files-10 (issue 16): a judge model and hand judging take the run's lock, as a run does; two at
    once each judged every cell (twice the verdicts and the judge's cost)."""
    from gridchat.chat.probes.hand_judging import hand_judge
    from gridchat.chat.probes.model_judging import judge_cells
    from gridchat.chat.probes.rundir import RunDir

    with RunDir(tmp_path).lock():
        with pytest.raises(Locked, match="is open in this chat"):
            judge_cells(tmp_path, {"a": "", "b": ""}, None, "judge-model")
        with pytest.raises(Locked, match="is open in this chat"):
            hand_judge(tmp_path, {"a": "", "b": ""}, None)
    assert judge_cells(tmp_path, {"a": "", "b": ""}, None, "judge-model") == 0  # free again


def test_a_nul_in_a_typed_path_is_one_error_line_and_the_session_goes_on(fake, term, tmp_path):
    """A pasted path with a NUL in it: the OS layer raises ValueError, not OSError; it ended chat with
    "internal error"."""
    fb = fake("vllm")
    t = term(fb)
    t.wait_prompt("none")
    t.line("hello")
    t.wait_for("Echo: hello")
    for n, command in enumerate(("/save a\x00b.jsonl", "/export md a\x00b.md", "/load a\x00b.jsonl"), 1):
        t.raw(b"\x1b[200~" + command.encode() + b"\x1b[201~")
        t.keys("Enter")
        t.wait(lambda: t.screen().count("a␀b") >= n or "internal error" in t.screen(), f"the error for {command!r}")
        t.wait_prompt("none")
    screen = t.screen()
    assert "internal error" not in screen and "Traceback" not in screen and t.alive()
    assert screen.count("cannot write") == 2 and "cannot read" in screen


def test_a_session_leaves_no_lock_behind(fake, isolated_env):
    fb = fake("vllm")
    one_session(fb)
    (path,) = saved(isolated_env)
    r = chat("--base-url", fb.base_url, "--resume", path.stem, "-p", "again")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_a_replaced_file_keeps_its_permissions_and_a_new_one_gets_the_usual(tmp_path):
    new = write_whole(tmp_path / "new.md", b"x")
    assert new.stat().st_mode & 0o777 == 0o666 & ~_umask()
    private = tmp_path / "private.jsonl"
    private.write_bytes(b"old")
    private.chmod(0o600)
    write_whole(private, b"new")
    assert private.stat().st_mode & 0o777 == 0o600 and private.read_bytes() == b"new"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
