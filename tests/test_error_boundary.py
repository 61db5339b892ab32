"""The error boundary (issue 16, boundary 6): one exception tree, drawn in chat/errors.py's docstring;
one table-driven mapping of foreign errors, used as a scoped context manager around network calls;
terminal errors handled where the terminal is touched."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = [p for p in REPO.rglob("*.py")
           if not {"tests", "bench", "build", ".venv", ".git"} & set(p.relative_to(REPO).parts)]


def _classes_deriving_from(names: set[str]) -> dict[str, str]:
    """Every class in the package whose bases name one of ``names`` (transitively): name -> file."""
    found: dict[str, str] = {}
    grew = True
    while grew:
        grew = False
        for path in PACKAGE:
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ClassDef) and node.name not in found and any(
                        ast.unparse(b).split(".")[-1] in names | set(found) for b in node.bases):
                    found[node.name] = str(path.relative_to(REPO))
                    grew = True
    return found


def test_every_user_facing_error_lives_in_the_one_tree():
    """A ChatError subclass defined anywhere else, or missing from the tree the docstring draws, fails."""
    from gridchat.chat import errors

    classes = _classes_deriving_from({"ChatError"})
    elsewhere = {name: where for name, where in classes.items() if where != "chat/errors.py"}
    assert not elsewhere, f"ChatErrors defined outside chat/errors.py: {elsewhere}"
    drawn = errors.__doc__
    missing = [name for name in ["ChatError", *classes] if f" {name} " not in drawn]
    assert not missing, f"not in the tree errors.py's docstring draws: {missing}"
    assert set(classes) | {"ChatError"} <= set(errors.__all__)


def test_only_the_boundary_translates_foreign_errors():
    """Nobody but chat/errors.py calls translate() or catches the SDK's or httpx2's own exceptions: the
    rest put ``network()`` around the call."""
    found = []
    for path in PACKAGE:
        if path.name == "errors.py" and path.parent.name == "chat":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            where = f"{path.relative_to(REPO)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("translate", "errors.translate"):
                found.append(f"{where}: translate()")
            if isinstance(node, ast.ExceptHandler) and node.type is not None:
                caught = ast.unparse(node.type)
                if any(p in caught for p in ("openai.", "httpx2.", "urllib.error.", "APIError", "APIStatusError")):
                    found.append(f"{where}: except {caught}")
    assert not found, "foreign errors handled outside the boundary:\n" + "\n".join(found)


def test_network_maps_known_errors_and_lets_bugs_through():
    import http.client
    import json

    from gridchat.chat.errors import ServerUnreachable, StreamCut, StreamError, network

    for raised, expected in [(ConnectionRefusedError(111, "refused"), ServerUnreachable),
                             (ConnectionResetError(104, "reset"), StreamCut), (TimeoutError(), ServerUnreachable),
                             (http.client.IncompleteRead(b""), StreamError),
                             (json.JSONDecodeError("bad", "x", 0), StreamError)]:
        with pytest.raises(expected):
            with network():
                raise raised
    with pytest.raises(KeyError):  # a bug of ours is never disguised as a server error
        with network():
            raise KeyError("bug")


def test_the_sdk_and_httpx2_errors_map_by_the_table():
    import httpx2
    import openai

    from gridchat.chat.errors import ContextExceeded, ServerUnreachable, StreamCut, network

    request = httpx2.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    response = httpx2.Response(400, request=request, json={"error": {"message": "maximum context length is 10 tokens"}})
    cases = [(openai.BadRequestError("bad", response=response, body={"message": "maximum context length is 10"}),
              ContextExceeded),
             (openai.APIConnectionError(request=request), ServerUnreachable),
             (httpx2.ReadError("reset", request=request), StreamCut)]
    for raised, expected in cases:
        with pytest.raises(expected):
            with network():
                raise raised


def test_a_file_error_is_never_called_a_network_error(tmp_path):
    """OSError means "network error" only inside network(): writing where one can't is a file error."""
    from gridchat.chat.errors import FileError
    from gridchat.chat.files import write_whole

    target = tmp_path / "no-such-dir" / "deeper" / "x.md"
    os.chmod(tmp_path, 0o500)
    try:
        with pytest.raises(FileError, match="cannot write") as err:
            write_whole(target, b"x")
        assert "network" not in str(err.value)
    finally:
        os.chmod(tmp_path, 0o700)


def test_the_terminal_settings_survive_a_stdin_that_is_not_a_terminal():
    """termios.error is not an OSError: touching a terminal that isn't one (a pipe, a closed pty) must
    not end the session."""
    from gridchat.chat.tty import streaming_mode

    read, write = os.pipe()
    try:
        with open(read, closefd=False) as stream:
            with streaming_mode(stream):
                pass
    finally:
        os.close(read)
        os.close(write)


def test_discarding_type_ahead_survives_a_stdin_that_is_not_a_terminal(monkeypatch):
    import sys

    from gridchat.chat import tty

    read, write = os.pipe()
    try:
        with open(read, closefd=False) as stream:
            monkeypatch.setattr(sys, "stdin", stream)
            tty.discard_type_ahead()
    finally:
        os.close(read)
        os.close(write)
