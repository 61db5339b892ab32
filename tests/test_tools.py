"""Each tool's edge cases, and the workspace confinement every file tool relies on."""

import os
import signal
import stat
import threading
import time

import pytest
from gridchat.tools import TOOLS, ToolError, Workspace, execute, parse_call
from gridchat.tools.bash import HEAD_BYTES, TAIL_BYTES
from test_tool_safety import wait_dead


@pytest.fixture
def ws(tmp_path):
    root = tmp_path / "ws"
    root.mkdir()
    return Workspace(root)


def call(ws, name, **args):
    import json

    tool, parsed = parse_call(name, json.dumps(args))
    if tool.check:
        try:
            tool.check(parsed, ws)
        except ToolError as e:
            return f"error: {e}"
    return execute(tool, parsed, ws)


# -- the workspace ------------------------------------------------------------------------------

def test_paths_inside_are_resolved(ws):
    (ws.root / "sub").mkdir()
    assert ws.resolve("sub/a.txt") == ws.root / "sub" / "a.txt"
    assert ws.resolve(str(ws.root / "sub")) == ws.root / "sub"  # absolute, but inside
    assert ws.resolve("sub/../a.txt") == ws.root / "a.txt"


@pytest.mark.parametrize("path", ["../outside.txt", "sub/../../outside.txt", "/etc/passwd", "~/.bashrc", ""])
def test_paths_outside_are_refused(ws, path):
    with pytest.raises(ToolError):
        ws.resolve(path)


def test_symlinks_leading_out_are_refused(ws, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    (ws.root / "link").symlink_to(secret)
    (ws.root / "dirlink").symlink_to(tmp_path)
    for path in ("link", "dirlink/secret.txt"):
        with pytest.raises(ToolError, match="outside the workspace"):
            ws.resolve(path)
    assert "outside the workspace" in call(ws, "read_file", path="link")
    assert "outside the workspace" in call(ws, "write_file", path="dirlink/new.txt", content="x")
    assert secret.read_text() == "top secret" and not (tmp_path / "new.txt").exists()


def test_symlinks_inside_are_fine(ws):
    (ws.root / "real.txt").write_text("hello\n")
    (ws.root / "alias.txt").symlink_to(ws.root / "real.txt")
    assert "hello" in call(ws, "read_file", path="alias.txt")


# -- read_file ------------------------------------------------------------------------------------

def test_read_numbers_lines(ws):
    (ws.root / "a.txt").write_text("alpha\nbeta\n")
    assert call(ws, "read_file", path="a.txt") == "     1\talpha\n     2\tbeta"


def test_read_pages_with_offset_and_limit(ws):
    (ws.root / "big.txt").write_text("".join(f"line {i}\n" for i in range(1, 5001)))
    first = call(ws, "read_file", path="big.txt")
    assert first.splitlines()[0] == "     1\tline 1" and "\tline 2000" in first and "line 2001" not in first
    assert "read on with offset 2001" in first
    page = call(ws, "read_file", path="big.txt", offset=4999, limit=10)
    assert page == "  4999\tline 4999\n  5000\tline 5000"
    assert "past the end" in call(ws, "read_file", path="big.txt", offset=9000)


def test_read_caps_huge_lines(ws):
    (ws.root / "wide.txt").write_text("x" * 50_000 + "\n")
    out = call(ws, "read_file", path="wide.txt")
    assert len(out) < 3000 and "48,000 more characters" in out


@pytest.mark.parametrize("content,fragment", [(b"\x00\x01\x02binary", "binary"), (b"\xff\xfe latin?", "UTF-8")])
def test_read_refuses_binary(ws, content, fragment):
    (ws.root / "blob.bin").write_bytes(content)
    assert call(ws, "read_file", path="blob.bin").startswith("error:") and fragment in call(ws, "read_file", path="blob.bin")


def test_read_missing_and_directories(ws):
    assert "no such file" in call(ws, "read_file", path="nope.txt")
    (ws.root / "d").mkdir()
    assert "is a directory" in call(ws, "read_file", path="d")


# -- write_file -----------------------------------------------------------------------------------

def test_write_creates_with_parents_and_leaves_no_temp_files(ws):
    assert "created" in call(ws, "write_file", path="deep/er/new.txt", content="hi\n")
    assert (ws.root / "deep/er/new.txt").read_text() == "hi\n"
    assert os.listdir(ws.root / "deep/er") == ["new.txt"]


def test_write_overwrite_keeps_the_mode(ws):
    script = ws.root / "run.sh"
    script.write_text("#!/bin/sh\necho old\n")
    script.chmod(0o750)
    assert "overwrote" in call(ws, "write_file", path="run.sh", content="#!/bin/sh\necho new\n")
    assert script.read_text() == "#!/bin/sh\necho new\n"
    assert stat.S_IMODE(script.stat().st_mode) == 0o750


def test_write_preview_is_a_diff_or_the_whole_new_file(ws):
    (ws.root / "a.txt").write_text("one\ntwo\n")
    tool = TOOLS["write_file"]
    diff = tool.preview(tool.args(path="a.txt", content="one\nTWO\n"), ws)
    assert diff.language == "diff" and "-two" in diff.body and "+TWO" in diff.body
    new = tool.preview(tool.args(path="b.txt", content="\n".join(map(str, range(100)))), ws)
    assert new.summary == "create b.txt (100 lines)" and new.body.splitlines() == list(map(str, range(100)))
    assert new.lines == 100


# -- edit_file ------------------------------------------------------------------------------------

def test_edit_once(ws):
    f = ws.root / "code.py"
    f.write_text("x = 1\ny = 2\n")
    f.chmod(0o600)
    assert "1 replacement" in call(ws, "edit_file", path="code.py", old_string="y = 2", new_string="y = 3")
    assert f.read_text() == "x = 1\ny = 3\n" and stat.S_IMODE(f.stat().st_mode) == 0o600


def test_edit_ambiguous_or_missing(ws):
    f = ws.root / "code.py"
    f.write_text("a\na\na\n")
    out = call(ws, "edit_file", path="code.py", old_string="a", new_string="b")
    assert out.startswith("error:") and "3 times" in out and f.read_text() == "a\na\na\n"
    assert "not found" in call(ws, "edit_file", path="code.py", old_string="zzz", new_string="b")
    assert "3 replacements" in call(ws, "edit_file", path="code.py", old_string="a", new_string="b", replace_all=True)
    assert f.read_text() == "b\nb\nb\n"


def test_edit_preview_is_a_unified_diff(ws):
    (ws.root / "t.txt").write_text("keep\nold line\nkeep\n")
    tool = TOOLS["edit_file"]
    p = tool.preview(tool.args(path="t.txt", old_string="old line", new_string="new line"), ws)
    assert "--- a/t.txt" in p.body and "-old line" in p.body and "+new line" in p.body


# -- bash -----------------------------------------------------------------------------------------

def test_bash_runs_in_the_workspace_and_reports_the_exit_code(ws):
    out = call(ws, "bash", command="pwd; echo oops >&2; exit 3")
    assert str(ws.root) in out and "oops" in out and out.endswith("[exit code 3]")


def test_bash_has_no_stdin(ws):
    start = time.monotonic()
    out = call(ws, "bash", command="cat; echo after")
    assert "after" in out and time.monotonic() - start < 5


def test_bash_timeout_kills_the_whole_group(ws):
    out = call(ws, "bash", command="(sleep 60 & echo $! > child.pid; wait) ; echo never", timeout=1)
    assert "timed out after 1 s" in out and "never" not in out
    child = int((ws.root / "child.pid").read_text())
    assert wait_dead([child]) == []


def test_bash_output_keeps_head_and_tail(ws):
    out = call(ws, "bash", command="seq 1 200000")
    assert out.startswith("1\n2\n3\n") and "199999\n200000\n" in out
    assert "bytes of output cut" in out and len(out) < HEAD_BYTES + TAIL_BYTES + 200


def test_ctrl_c_kills_a_running_command(ws):
    tool, args = parse_call("bash", '{"command": "sleep 30 & echo $! > bg.pid; sleep 30"}')
    timer = threading.Timer(0.7, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        tool.run(args, ws)
    assert time.monotonic() - start < 10
    child = int((ws.root / "bg.pid").read_text())
    assert wait_dead([child]) == []


# -- malformed calls --------------------------------------------------------------------------------

@pytest.mark.parametrize("name,arguments,fragment", [
    ("bash", '{"command": "ls"', "not valid JSON"),
    ("bash", '["ls"]', "JSON object"),
    ("bash", "{}", "command"),
    ("read_file", '{"path": 42}', "path"),
    ("read_file", '{"path": "a", "offset": "soon"}', "offset"),
    ("edit_file", '{"path": "a", "old_string": "x"}', "new_string"),
    ("rm_rf", '{}', "unknown tool"),
])
def test_malformed_calls_are_errors_not_crashes(name, arguments, fragment):
    with pytest.raises(ToolError, match=fragment):
        parse_call(name, arguments)


def test_schemas_are_plain_objects():
    for tool in TOOLS.values():
        schema = tool.schema()
        assert schema["type"] == "object" and schema["required"]
        assert all("anyOf" not in p and "description" in p for p in schema["properties"].values())


@pytest.mark.parametrize("content,lines", [(b"a\r\nb\r\n", ["a", "b"]), (b"a\n\nb", ["a", "", "b"]),
                                           (b"only", ["only"]), (b"\n", [""])])
def test_read_line_ends(ws, content, lines):
    (ws.root / "f.txt").write_bytes(content)
    assert call(ws, "read_file", path="f.txt").splitlines() == [f"{i:6}\t{t}" for i, t in enumerate(lines, 1)]


def test_read_output_cap_says_where_to_go_on(ws):
    (ws.root / "wide.txt").write_text(("y" * 1990 + "\n") * 200)
    out = call(ws, "read_file", path="wide.txt")
    assert len(out) <= 100_200 and out.endswith("[lines 1–50 of 200; read on with offset 51]")
    assert "\ty" in call(ws, "read_file", path="wide.txt", offset=200)
    assert "has 200 lines; offset 201 is past the end" in call(ws, "read_file", path="wide.txt", offset=201)
    (ws.root / "empty.txt").write_text("")
    assert call(ws, "read_file", path="empty.txt") == "empty.txt is empty"
