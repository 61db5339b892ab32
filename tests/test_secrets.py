"""Secrets (issue 16, boundary 2): a server that echoes the request's Authorization header in its
errors must not get the API key shown, recorded, exported or judged with — on any error path — and
the key goes only to servers the user named this run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from command import gridchat
from fake_backend import FakeBackend, Reply
from test_probe_runner import SET

KEY = "sk-live-4f9a8b7c6d5e"
ECHO = "{auth}"  # the fake backend puts the request's Authorization header here


def chat(*args, env=None, stdin=None):
    return gridchat(*args, stdin=stdin, env={**os.environ, "OPENAI_API_KEY": KEY, **(env or {})})


def files_under(root: Path) -> dict[Path, str]:
    return {p: p.read_text(encoding="utf-8", errors="replace") for p in root.rglob("*") if p.is_file()}


def assert_no_key(*texts: str, where: str = "") -> None:
    for text in texts:
        assert KEY not in text, f"the API key leaked {where}: …{text[max(0, text.find(KEY) - 80):text.find(KEY) + 40]}…"


ERRORS = {
    "401": Reply(status=401, error={"error": {"message": f"bad key {ECHO}", "type": "UnauthorizedError",
                                              "code": 401}}),
    "404 model": Reply(status=404, error={"error": {"message": f"The model `x` does not exist. {ECHO}",
                                                    "type": "NotFoundError", "code": 404}}),
    "context": Reply(status=400, error={"error": {"message": f"This model's maximum context length is 100 tokens. "
                                                             f"You sent {ECHO}", "type": "BadRequestError",
                                                  "code": 400}}),
    "html page": Reply(status=502, raw_body=f"<html><head><title>Bad gateway: {ECHO}</title></head></html>"),
    "plain text": Reply(status=503, raw_body=f"upstream said no to {ECHO}", content_type="text/plain"),
    "in-band": Reply(text="partial answer", error_after=3,
                     error={"error": {"message": f"mid-stream failure for {ECHO}", "type": "InternalServerError",
                                      "code": 500}}),
}


@pytest.mark.parametrize("kind", list(ERRORS))
@pytest.mark.parametrize("api", ["chat", "responses"])
def test_one_shot_errors_never_show_or_record_the_key(fake, isolated_env, kind, api):
    fb = fake("vllm")
    fb.echo_auth = True
    fb.script(ERRORS[kind])
    r = chat("--base-url", fb.base_url, "--api", api, "-p", "hello")
    assert r.returncode == 1
    if kind != "context":  # its message is reworded with the sizes, echo and all
        assert "***" in r.stderr, r.stderr  # the echo came, blanked
    assert_no_key(r.stdout, r.stderr, where="on screen")
    for path, text in files_under(isolated_env / "data").items():
        assert_no_key(text, where=f"in {path}")


def test_detection_errors_never_show_the_key(fake):
    fb = fake("llamacpp", api_key="another-key")
    fb.echo_auth = True
    r = chat("--base-url", fb.base_url, "-p", "hello")
    assert r.returncode == 1 and "***" in r.stderr
    assert_no_key(r.stderr)


def test_a_key_in_the_address_is_blanked_too(fake):
    fb = fake("vllm")
    fb.echo_auth = True
    fb.script(ERRORS["401"])
    url = fb.base_url.replace("http://", "http://probe:hunter2-pass@")
    r = chat("--base-url", url, "-p", "hello", env={"OPENAI_API_KEY": ""})
    assert "hunter2-pass" not in r.stderr + r.stdout
    assert "cHJvYmU6aHVudGVyMi1wYXNz" not in r.stderr  # base64 of probe:hunter2-pass (Basic auth)


def test_probe_cells_reports_and_exports_hold_no_key(fake, tmp_path):
    fb = fake("vllm")
    fb.echo_auth = True
    fb.responder = lambda body: ERRORS["in-band"] if len(body["messages"]) > 2 else Reply(text="42")
    (tmp_path / "arith.yaml").write_text(SET)
    out = tmp_path / "run"
    r = chat("probe", "run", str(tmp_path / "arith.yaml"), "--base-url", fb.base_url, "--personas",
             "lawful_good,chaotic_evil", "--out", str(out))
    shown = r.stdout + r.stderr
    assert_no_key(shown, where="on screen")
    export = chat("probe", "export", str(out), "--csv", str(tmp_path / "cells.csv"))
    report = chat("probe", "report", str(out), "--html", str(tmp_path / "report.html"))
    assert_no_key(export.stdout + export.stderr + report.stdout + report.stderr, where="on screen")
    written = files_under(out) | files_under(tmp_path)
    assert any("***" in text for text in written.values()), "the error with the echo was not recorded at all"
    for path, text in written.items():
        assert_no_key(text, where=f"in {path}")


def test_a_judge_gets_the_key_it_was_named_with_and_never_shows_it(fake, tmp_path):
    """`chat probe judge DIR --judge URL`: the URL is named on the command line, so a judge behind
    auth gets the key (it used to get none); its echoed errors are blanked."""
    fb = fake("vllm")
    fb.responder = lambda body: Reply(text="42")
    (tmp_path / "arith.yaml").write_text(SET)
    out = tmp_path / "run"
    assert chat("probe", "run", str(tmp_path / "arith.yaml"), "--base-url", fb.base_url, "--personas",
                "lawful_good", "--out", str(out)).returncode == 0
    judge = fake("vllm", api_key=KEY)
    judge.echo_auth = True
    judge.responder = lambda body: Reply(status=500, error={"error": {"message": f"judge broke {ECHO}",
                                                                      "type": "InternalServerError", "code": 500}})
    r = chat("probe", "judge", str(out), "--judge", judge.base_url)
    assert any(q.header("Authorization") == f"Bearer {KEY}" for q in judge.requests)
    assert_no_key(r.stdout, r.stderr)
    for path, text in files_under(out).items():
        assert_no_key(text, where=f"in {path}")


def test_the_repl_shows_no_key_and_its_exports_hold_none(fake, term, tmp_path, isolated_env):
    fb = fake("vllm")
    fb.echo_auth = True
    fb.script(Reply(text="fine"), ERRORS["in-band"], ERRORS["401"])
    t = term(fb, "--api-key", KEY, "--persona", "lawful_good")
    t.wait_prompt("lawful_good")
    t.line("first")
    t.wait_for("fine")
    t.line("second")
    t.wait_for("mid-stream failure")
    t.line("third")
    t.wait_for("bad key")
    t.keys("C-u")  # the message offered again
    t.line("/export md out.md")
    t.wait_for("exported")
    t.line("/save out.jsonl")
    t.wait_for("saved")
    t.line("/raw")
    t.wait_for("Authorization")
    assert_no_key(t.screen(), t.raw_output().decode("utf-8", "replace"), where="on screen")
    for path, text in (files_under(t.dir) | files_under(isolated_env / "data")).items():
        assert_no_key(text, where=f"in {path}")


# -- credentials go only to servers the user named this run ------------------------------------------------

def _transcript_on(server: FakeBackend, path: Path) -> Path:
    events = [{"event": "session", "id": "s1", "version": 1},
              {"event": "server", "base_url": server.base_url, "flavor": "vllm", "model": server.models[0], "api": "chat"},
              {"event": "persona", "name": "none", "system": None},
              {"event": "message", "id": 0, "parent": None, "role": "user", "content": "hi"},
              {"event": "message", "id": 1, "parent": 0, "role": "assistant", "content": "hello"}]
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def test_resume_from_a_file_never_sends_the_key_to_the_server_it_names(fake, tmp_path):
    """Defect 7: `chat --resume FILE` sent the API key to the server recorded in FILE."""
    elsewhere = fake("vllm")
    path = _transcript_on(elsewhere, tmp_path / "found.jsonl")
    r = chat("--resume", str(path), "-p", "go on")
    assert r.returncode == 0, r.stderr
    assert elsewhere.requests, "the recorded server was not used at all"
    assert not [q for q in elsewhere.requests if q.header("Authorization") == f"Bearer {KEY}"]
    assert "not sending your API key" in r.stderr


def test_resume_from_a_file_asks_before_sending_the_key(fake, term, tmp_path):
    elsewhere = fake("vllm")
    path = _transcript_on(elsewhere, tmp_path / "found.jsonl")
    t = term(None, "--api-key", KEY, "--resume", str(path))
    t.wait_for("send your API key")
    assert not [q for q in elsewhere.requests if q.header("Authorization")]  # nothing before the answer
    t.type("y")
    t.keys("Enter")
    t.wait_prompt("none")
    t.line("go on")
    t.wait_for("Echo: go on")
    assert elsewhere.requests[-1].header("Authorization") == f"Bearer {KEY}"


def test_a_named_server_gets_the_key_whatever_the_file_says(fake, tmp_path):
    named, elsewhere = fake("vllm"), fake("vllm")
    path = _transcript_on(elsewhere, tmp_path / "found.jsonl")
    r = chat("--resume", str(path), "--base-url", named.base_url, "-p", "go on")
    assert r.returncode == 0, r.stderr
    assert not elsewhere.requests
    assert named.requests[-1].header("Authorization") == f"Bearer {KEY}"


@pytest.mark.parametrize("args", [("--api-key", "sk-typed-4f9a8b7c", "--bogus", "sk-typed-4f9a8b7c"),
                                  ("probe", "run", "arith", "sk-typed-4f9a8b7c", "--api-key=sk-typed-4f9a8b7c"),
                                  ("--ap=sk-typed-4f9a8b7c", "-p", "hi")])
def test_a_usage_error_echoing_a_typed_key_never_shows_it(args):
    """argparse echoes what it could not place: a key given where no flag takes it (`chat probe run`
    has no --api-key) is blanked in that echo like everywhere else."""
    r = gridchat(*args)
    assert r.returncode == 2 and "***" in r.stderr
    assert "4f9a8b7c" not in r.stderr + r.stdout


def test_an_abbreviated_api_flag_is_not_taken_for_a_key():
    """`chat probe run … --ap chat` is --api chat there: holding `chat` as a key would blank the word
    from every line the run prints."""
    from gridchat.chat import redact

    redact.hold_given(["probe", "run", "arith", "--ap", "chat", "--a=responses"], {})
    assert redact.redact("chat probe: responses in chat") == "chat probe: responses in chat"
