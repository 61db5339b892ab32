"""What the adversarial pass broke, kept as tests: a lying or broken server, odd bytes from argv,
stdin and files, odd keys at the prompt, odd output streams. Each ends in one clear line (or goes on),
never in "internal error"."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from command import gridchat
from fake_backend import Reply
from gridchat.chat.detect import detect
from gridchat.chat.errors import ChatError
from terminal import flat


def chat(*args, stdin=None, env=None):
    return gridchat(*args, stdin=stdin, env=env, text=False)


def clean_failure_or_success(r) -> str:
    err = r.stderr.decode("utf-8", "replace")
    assert "internal error" not in err and "Traceback" not in err, err
    assert r.returncode in (0, 1), (r.returncode, err)
    if r.returncode == 1:
        assert len([line for line in err.splitlines() if "error" in line]) == 1, err
    return err


# -- a server that lies about itself ----------------------------------------------------------------------

LYING_MODELS = {
    "a list": "[1]",
    "a string": '"hello"',
    "data a number": '{"data": 5}',
    "id a number": '{"data": [{"id": 5, "owned_by": "vllm"}]}',
    "id a list": '{"data": [{"id": ["x"], "owned_by": "vllm", "max_model_len": 5}]}',
    "window a word": '{"data": [{"id": "m", "owned_by": "vllm", "max_model_len": "abc"}]}',
    "window huge": '{"data": [{"id": "m", "owned_by": "vllm", "max_model_len": ' + "9" * 401 + "}]}",
    "deep nesting": '{"data":' + "[" * 100000 + "]" * 100000 + "}",
}


@pytest.mark.parametrize("body", list(LYING_MODELS.values()), ids=list(LYING_MODELS))
def test_a_lying_model_list(fake, body):
    fb = fake("vllm")
    fb.raw_models = body
    try:
        info = detect(fb.base_url)
    except ChatError as e:
        assert "\n" not in str(e)
    else:
        assert all(isinstance(m, str) for m in info.models)
        assert all(isinstance(w, int) and 0 < w < 10**9 for w in info.windows.values())
    clean_failure_or_success(chat("--base-url", fb.base_url, "-p", "hi"))


LYING_PROPS = {
    "n_ctx a word": '{"default_generation_settings": {"n_ctx": "big"}}',
    "n_ctx a list": '{"default_generation_settings": {"n_ctx": [1]}}',
    "settings a list": '{"default_generation_settings": [1]}',
    "n_ctx huge": '{"default_generation_settings": {"n_ctx": ' + "9" * 401 + "}}",
}


@pytest.mark.parametrize("body", list(LYING_PROPS.values()), ids=list(LYING_PROPS))
def test_lying_props(fake, term, body):
    fb = fake("llamacpp")
    fb.raw_props = body
    t = term(fb, "--persona", "lawful_good")
    t.wait_prompt("lawful_good")
    t.line("hello")
    t.wait_for("Echo: hello")
    t.wait_prompt("lawful_good")
    assert "internal error" not in t.screen() and t.alive()


def usage_chunk(**usage) -> str:
    return json.dumps({"choices": [], "usage": usage})


BROKEN_STREAMS = {
    "completion tokens 10**400": [usage_chunk(prompt_tokens=5, completion_tokens=10**400)],
    "prompt tokens 10**400": [usage_chunk(prompt_tokens=10**400, completion_tokens=3)],
    "speed 10**400": [json.dumps({"choices": [], "timings": {"predicted_per_second": 10**400}})],
    "deep nesting": ["[" * 100000 + "]" * 100000],
}


@pytest.mark.parametrize("extra", list(BROKEN_STREAMS.values()), ids=list(BROKEN_STREAMS))
def test_numbers_and_nesting_no_parser_survives(fake, extra):
    fb = fake("vllm")
    start = json.dumps({"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]})
    stop = json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    fb.script(Reply(raw_events=[start, stop, *extra, "[DONE]"]))
    r = chat("--base-url", fb.base_url, "-p", "hi")
    clean_failure_or_success(r)
    assert r.stdout.startswith(b"hi")


def test_lone_surrogates_from_the_server_are_replaced(fake, term):
    fb = fake("vllm")
    fb.script(Reply(raw_events=[json.dumps({"choices": [{"index": 0, "delta": {"content": "a\ud800b",
                                                                                  "reasoning": "r\udfff"}}]}),
                                json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
                                "[DONE]"]))
    r = chat("--base-url", fb.base_url, "-p", "hi")
    clean_failure_or_success(r)
    assert r.returncode == 0 and r.stdout.decode() == "a\ufffdb\n"


def test_a_lone_surrogate_in_a_tool_call(fake, term, tmp_path):
    fb = fake("vllm")
    call = {"index": 0, "id": "c1", "type": "function", "function": {"name": "ba\udc00sh", "arguments": '{"command": "echo \\ud800"}'}}
    fb.script(Reply(raw_events=[json.dumps({"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]}),
                                json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
                                "[DONE]"]), Reply(text="after the call"))
    t = term(fb, "--workspace", str(tmp_path))
    t.wait_prompt("none")
    t.line("go")
    t.wait_for("after the call")
    t.wait_prompt("none")
    assert "internal error" not in t.screen() and t.alive()


def test_a_body_that_lies_about_its_encoding(fake):
    fb = fake("vllm")
    fb.script(Reply(raw_events=["not gzip at all"], headers={"Content-Encoding": "gzip"}))
    r = chat("--base-url", fb.base_url, "-p", "hi")
    assert r.returncode == 1
    clean_failure_or_success(r)


# -- bytes that aren't UTF-8: argv, stdin ------------------------------------------------------------------

def test_invalid_utf8_on_stdin_and_in_argv_is_sent_replaced(fake):
    fb = fake("vllm")
    r = chat("--base-url", fb.base_url, stdin=b"hello \xff\xfe")
    clean_failure_or_success(r)
    assert r.returncode == 0 and fb.last_body("/chat/completions")["messages"][-1]["content"] == "hello \ufffd\ufffd"
    r = chat("--base-url", fb.base_url, "-p", b"hi \xff".decode("utf-8", "surrogateescape"))
    clean_failure_or_success(r)
    assert r.returncode == 0 and fb.last_body("/chat/completions")["messages"][-1]["content"] == "hi \ufffd"
    r = chat("--base-url", fb.base_url, "--model", b"x\xff".decode("utf-8", "surrogateescape"), "-p", "hi")
    clean_failure_or_success(r)


# -- where the reply goes ------------------------------------------------------------------------------

def test_a_full_stdout_is_one_line(fake):
    fb = fake("vllm")
    with open("/dev/full", "w") as full:
        r = subprocess.run([sys.executable, "-m", "gridchat", "--base-url", fb.base_url, "-p", "hi"], stdout=full,
                           stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=30)
    assert r.returncode == 1
    err = r.stderr.decode()
    assert "internal error" not in err and "No space left on device" in err


def test_a_closed_stdout_is_one_line(fake):
    fb = fake("vllm")
    r = subprocess.run(f"{sys.executable} -m gridchat --base-url {fb.base_url} -p hi >&-", shell=True,
                       stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=30)
    assert r.returncode == 1
    err = r.stderr.decode()
    assert "internal error" not in err and "standard output" in err


# -- odd keys at the prompt -------------------------------------------------------------------------------

def each_an_error(t, prompt: str, commands) -> None:
    """Type each command at the ready prompt; each must answer with an error line and give the prompt back."""
    for command in commands:
        before = t.screen().count("error:")
        t.line(command)
        t.wait(lambda: t.screen().count("error:") > before, f"the error line for {command}")
        t.wait_prompt(prompt)


def test_odd_arguments_to_commands_are_usage_lines(fake, term, tmp_path, monkeypatch):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    monkeypatch.setenv("EDITOR", 'vi "unclosed')
    monkeypatch.delenv("VISUAL", raising=False)
    fb = fake("vllm")
    t = term(fb, "--persona", "lawful_good")
    t.wait_prompt("lawful_good")
    t.line("hello")
    t.wait_for("Echo: hello")
    t.wait_prompt("lawful_good")
    each_an_error(t, "lawful_good", ("/retry ²", "/switch ²", "/save /", f"/save {tmp_path}", f"/export md {fifo}",
                                     f"/save {fifo}", "/edit"))
    t.line("/compare lawful_good,chaotic_evil again?")
    t.wait_prompt("panel of 2")
    each_an_error(t, "panel of 2", ("/pick ³", "/mark ³ caved", "/panel ²", "/compare lawful_good,,", "/compare *@x hi",
                                    "/replay nobody", "/probe save ../../evil", "/classify =x",
                                    "/classify judge file:///etc/passwd", "/persona chaotic_wizard", "/switch 99"))
    t.line("/retry 2")
    t.wait_for("Continue with which?")
    t.line("³")
    t.wait_for("choose one of")
    # Ctrl-C at the question asked again (pressed in the moment between the two it was lost, under load)
    t.wait(lambda: t.cursor_line().startswith("Continue with which?"), "the question asked again")
    t.keys("C-c")
    t.wait_prompt("lawful_good")
    screen = t.screen()
    assert "internal error" not in screen and "Traceback" not in screen and t.alive()
    assert fifo.exists() and not fifo.is_file()  # never replaced by a file


def test_an_editor_that_saves_latin1(fake, term, tmp_path, monkeypatch):
    editor = tmp_path / "latin1_editor.py"
    editor.write_text("import sys\nopen(sys.argv[1], 'wb').write('caf\\xe9'.encode('latin-1'))\n")
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", f"{sys.executable} {editor}")
    fb = fake("vllm")
    t = term(fb)
    t.wait_prompt("none")
    t.line("first words")
    t.wait_for("Echo: first words")
    t.wait_prompt("none")
    t.line("/edit")
    t.wait_for("Echo: caf\ufffd")  # what isn't UTF-8 is replaced, and the edit goes through
    assert "internal error" not in t.screen()


# -- transcripts edited by hand ---------------------------------------------------------------------------

def transcript_lines(tmp_path, fb) -> Path:
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")}
    r = chat("--base-url", fb.base_url, "-p", "first message", env=env)
    assert r.returncode == 0
    (path,) = (tmp_path / "data" / "gridchat" / "sessions").glob("*.jsonl")
    return path


def resume(fb, tmp_path, path):
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")}
    listing = chat("--list", env=env)
    clean_failure_or_success(listing)
    r = chat("--base-url", fb.base_url, "--resume", path.stem, "-p", "go on", env=env)
    clean_failure_or_success(r)
    assert r.returncode == 0
    return listing.stdout.decode(), fb.last_body("/chat/completions")["messages"]


def test_a_deeply_nested_line_is_skipped(fake, tmp_path):
    fb = fake("vllm")
    path = transcript_lines(tmp_path, fb)
    with open(path, "a") as f:
        f.write("[" * 100000 + "]" * 100000 + "\n")
    listing, sent = resume(fb, tmp_path, path)
    assert "1 damaged line skipped" in listing and sent[0]["content"] == "first message"


@pytest.mark.parametrize("damage", ["garbled first line", "a byte order mark"])
def test_a_damaged_first_line_keeps_the_rest(fake, tmp_path, damage):
    fb = fake("vllm")
    path = transcript_lines(tmp_path, fb)
    data = path.read_bytes()
    path.write_bytes(b"\xef\xbb\xbf" + data if damage == "a byte order mark" else b"{garbage" + data[8:])
    listing, sent = resume(fb, tmp_path, path)
    assert sent[0]["content"] == "first message"


def test_surrogates_and_wrongly_typed_stats_in_a_transcript(fake, tmp_path):
    fb = fake("vllm")
    path = transcript_lines(tmp_path, fb)
    events = [json.loads(line) for line in path.read_text().splitlines()]
    for e in events:
        if e.get("role") == "user":
            e["content"] = "first \ud800 message"
        if e.get("role") == "assistant":
            e["stats"] = {"completion_tokens": "x", "tokens_per_second": [1]}
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    listing, sent = resume(fb, tmp_path, path)
    assert sent[0]["content"] == "first \ufffd message"
    from gridchat.chat.export import to_markdown
    from gridchat.chat.transcript import load_transcript

    assert "first \ufffd message" in to_markdown(load_transcript(path, {}).conversation, {})


# -- text that could drive the terminal, in the last few places --------------------------------------------

def test_a_model_name_from_the_server_in_a_one_shot_note(fake):
    fb = fake("vllm", models=["real", "\x1b]0;PWNED\x07\x1b[31mRED\u202e"])
    r = chat("--base-url", fb.base_url, "--model", "other", "-p", "hi")
    assert b"\x1b]0;PWNED" not in r.stderr and "\u202e".encode() not in r.stderr and "␛]0;PWNED" in r.stderr.decode()


def test_persona_names_in_the_grid_prompt_and_toolbar(fake, term, isolated_env):
    personas = isolated_env / "config" / "gridchat" / "personas"
    personas.mkdir(parents=True)
    (personas / "e.yaml").write_text('name: "zz\\e]0;PWNTITLE\\a\\e[41mRED\\e]52;c;UFdORUQ=\\a\\u202e"\nsystem: hi\n')
    fb = fake("vllm", models=["\u202eevil-model"])
    t = term(fb, "--persona", "zz\x1b]0;PWNTITLE\x07\x1b[41mRED\x1b]52;c;UFdORUQ=\x07\u202e")
    t.wait_for("⟨U+202E⟩")
    t.line("/persona")
    t.wait_for("also:")
    raw = t.raw_output()
    assert b"\x1b]0;PWNTITLE" not in raw and b"\x1b]52;" not in raw and "\u202e".encode() not in raw


def test_an_image_shows_its_real_target(fake, term):
    fb = fake("vllm")
    fb.script(Reply(text="- item\n\n![https://good.example/img](http://evil.example/img)\n\nafter"))
    t = term(fb)
    t.wait_prompt("none")
    t.line("image")
    t.wait_for("after")
    assert "http://evil.example/img" in " ".join(t.screen().split())


# -- files and settings --------------------------------------------------------------------------------------

def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize("where,text", [
    ("config/gridchat/config.yaml", "approve: &a [*a]\n"),
    ("config/gridchat/config.yaml", "persona: lawful_good\nbase: &a {x: *a}\n"),
    ("config/gridchat/personas/p.yaml", "name: p\nsystem: &a [*a]\n"),
    ("config/gridchat/config.yaml", "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                                    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                                    "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
                                    "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n"),
])
def test_yaml_aliases_can_neither_loop_nor_explode(fake, isolated_env, where, text):
    fb = fake("vllm")
    path = write(isolated_env / where, text)
    r = chat("--base-url", fb.base_url, "-p", "hi")
    assert r.returncode == 0, r.stderr
    err = clean_failure_or_success(r)
    assert f"warning: {path}" in err


def test_a_fifo_where_a_persona_file_should_be(fake, isolated_env):
    fb = fake("vllm")
    directory = isolated_env / "config" / "gridchat" / "personas"
    directory.mkdir(parents=True)
    os.mkfifo(directory / "p.yaml")
    r = chat("--base-url", fb.base_url, "-p", "hi")
    assert r.returncode == 0 and "p.yaml" in r.stderr.decode() and "not a regular file" in r.stderr.decode()


def test_a_named_config_file_that_is_not_there(fake, isolated_env, tmp_path):
    fb = fake("vllm")
    for args, env in ((["--config", str(tmp_path / "nope.yaml")], {}), ([], {"GRIDCHAT_CONFIG": str(tmp_path / "nope.yaml")}),
                      (["--config", str(tmp_path)], {})):
        r = chat("--base-url", fb.base_url, *args, "-p", "hi", env={**os.environ, **env})
        assert r.returncode == 1 and "cannot read" in r.stderr.decode(), r.stderr


@pytest.mark.parametrize("line,fragment", [("approve: [rm_rf]", "approve"), ("workspace: /nonexistent/dir", "workspace"),
                                           ("persona: nobody", "persona")])
def test_config_values_checked_late_are_still_warnings(fake, isolated_env, line, fragment):
    fb = fake("vllm")
    path = write(isolated_env / "config/gridchat/config.yaml", f"temperature: 0.5\n{line}\n")
    r = chat("--base-url", fb.base_url, "-p", "hi")
    assert r.returncode == 0, r.stderr
    err = r.stderr.decode()
    assert f"warning: {path}:2: {fragment}" in err and fb.last_body("/chat/completions")["temperature"] == 0.5


def test_probe_run_refuses_nonsense_counts(fake):
    fb = fake("vllm")
    for flag in ("--samples", "--concurrency"):
        r = chat("probe", "run", "sycophancy", "--base-url", fb.base_url, flag, "-5")
        assert r.returncode != 0 and flag in r.stderr.decode() and not [q for q in fb.requests if q.method == "POST"]


# -- signals and Ctrl-C at awkward moments ------------------------------------------------------------------

def test_ctrl_c_while_connecting_at_start_keeps_the_session(fake, term):
    fb = fake("vllm")
    fb.models_drip = 1.0  # a proxy that dribbles the model list
    t = term(fb, "--persona", "lawful_good")
    t.wait_for("gridchat")
    t.keys("C-c")
    t.wait_prompt("lawful_good")
    assert t.alive() and "Traceback" not in t.screen()


def test_a_second_ctrl_c_right_after_the_reply_leaves_no_dangling_message(fake):
    """A Ctrl-C arriving while a reply is wrapped up (drawn) cancels the action again and raises
    nothing: the reply stays whole, recorded before it was drawn (it was once lost half-recorded)."""
    import os
    import signal

    from gridchat.chat import interrupts
    from gridchat.chat.config import Settings
    from gridchat.chat.session import Session
    from gridchat.chat.turn import NullSink
    from gridchat.personas import load_personas

    class SecondCtrlC(NullSink):
        def end(self, result):
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, while the reply is being drawn

    fb = fake("vllm")
    s = Session(Settings(base_url=fb.base_url), load_personas())
    with interrupts.action():
        s.send("first", NullSink())
    with interrupts.action() as token:
        result = s.send("second", SecondCtrlC())
    assert token.cancelled and not result.withdrawn and result.message.content == "Echo: second"
    with interrupts.action():
        s.send("third", NullSink())
    roles = [m["role"] for m in fb.last_body("/chat/completions")["messages"]]
    assert roles == ["user", "assistant", "user", "assistant", "user"]


def test_sigterm_mid_reply_keeps_what_was_shown(fake, term, isolated_env):
    import signal

    from gridchat.chat.transcript import load_transcript
    from test_terminal_probing import chat_pid

    fb = fake("vllm")
    fb.script(Reply(text="word " * 400, delay=0.02))
    t = term(fb)
    t.wait_prompt("none")
    t.line("tell me everything")
    t.wait_for("word word word word word")
    os.kill(chat_pid(t), signal.SIGTERM)
    assert t.wait_exit() == 128 + signal.SIGTERM
    (path,) = (isolated_env / "data" / "gridchat" / "sessions").glob("*.jsonl")
    replies = [m for m in load_transcript(path, {}).conversation.nodes if m.role == "assistant"]
    assert len(replies) == 1 and replies[0].interrupted and replies[0].content.startswith("word word word")


@pytest.mark.parametrize("keys", [b"\x1b[41m", b"\x1b[1;2m", b"\x1b[5M", b"\x1b[M\xff\xff\xff", b"\x1b[<0;1;1M"],
                         ids=["SGR", "SGR 2", "CSI M", "X10 mouse", "SGR mouse"])
def test_stray_escape_sequences_at_the_prompt(fake, term, keys):
    fb = fake("vllm")
    t = term(fb)
    t.wait_prompt("none")
    t.raw(keys)
    t.type("hello")
    t.keys("Enter")
    t.wait_for("Echo:")
    screen = t.screen()
    assert "Unhandled exception" not in screen and "Traceback" not in screen and t.alive()


# -- the second adversarial pass ---------------------------------------------------------------------------

def test_a_header_that_is_not_ascii(fake):
    fb = fake("vllm")
    fb.script(Reply(raw_events=[json.dumps({"choices": [{"index": 0, "delta": {"content": "fine"},
                                                          "finish_reason": "stop"}]}), "[DONE]"],
                    headers={"X-Note": "caf\xe9"}))
    r = chat("--base-url", fb.base_url, "-p", "hi")
    clean_failure_or_success(r)
    assert r.returncode == 0 and r.stdout.decode().strip() == "fine"


@pytest.mark.parametrize("error", [
    {"message": "This model's maximum context length is 4096 tokens. However, you requested 1" + "0" * 5000
                + " tokens (1" + "0" * 5000 + " in the messages, 0 in the completion).", "type": "BadRequestError"},
    {"message": "This model's maximum context length is , tokens. However, you requested , tokens (, in the "
                "messages).", "type": "BadRequestError"},
    {"message": "request exceeds the available context size", "type": "exceed_context_size_error", "n_ctx": "abc",
     "n_prompt_tokens": "lots"},
    {"message": "request exceeds the available context size", "type": "exceed_context_size_error", "n_ctx": {},
     "n_prompt_tokens": [1]},
], ids=["5000 digits", "commas", "words", "shapes"])
def test_context_errors_with_nonsense_numbers(fake, error):
    fb = fake("vllm")
    fb.script(Reply(status=400, error={"error": {**error, "code": 400}}))
    r = chat("--base-url", fb.base_url, "-p", "hi")
    assert r.returncode == 1 and "context exceeded" in clean_failure_or_success(r)


def test_inputs_with_thousands_of_digits(fake, term, isolated_env):
    digits = "9" * 5000
    fb = fake("vllm")
    t = term(fb)
    t.wait_prompt("none")
    t.line("hello")
    t.wait_for("Echo: hello")
    for command in (f"/retry {digits}", f"/switch {digits}", f"/expand {digits}"):
        t.wait_prompt("none")
        before = t.screen().count("error:")
        t.line(command)
        t.wait(lambda: t.screen().count("error:") > before, f"the error line for {command[:10]}")
    assert "internal error" not in t.screen() and t.alive()
    write(isolated_env / "config/gridchat/config.yaml", f"temperature: 0.5\nmax_tokens: {digits}\n")
    r = chat("--base-url", fb.base_url, "-p", "hi")
    assert r.returncode == 0 and "config.yaml" in clean_failure_or_success(r)


def test_yaml_booleans_are_no_numbers(fake, isolated_env):
    fb = fake("vllm")
    path = write(isolated_env / "config/gridchat/config.yaml", "max_tokens: true\ntemperature: false\n")
    r = chat("--base-url", fb.base_url, "-p", "hi")
    err = r.stderr.decode()
    assert r.returncode == 0 and f"{path}:1: max_tokens" in err and f"{path}:2: temperature" in err
    body = fb.last_body("/chat/completions")
    assert "max_tokens" not in body and "temperature" not in body


def test_fifos_where_chat_reads(fake, isolated_env, tmp_path, term):
    fb = fake("vllm")
    sessions = isolated_env / "data" / "gridchat" / "sessions"
    sessions.mkdir(parents=True)
    os.mkfifo(sessions / "zz.jsonl")
    (sessions / "dir.jsonl").mkdir()
    r = chat("--list")
    assert r.returncode == 0 and "not a regular file" in r.stdout.decode()
    r = chat("--base-url", fb.base_url, "--resume", "-p", "hi")
    assert r.returncode == 1 and "no saved sessions" in r.stderr.decode()
    os.mkfifo(isolated_env / "data" / "gridchat" / "history")
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    t = term(fb)
    t.wait_prompt("none")
    t.line(f"/load {fifo}")
    t.wait_for("not a regular file")
    assert t.alive()


def test_invisible_characters_are_shown_in_an_approval(fake, term, tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    fb = fake("vllm")
    hidden = "echo hi" + "".join(chr(0xE0000 + ord(c)) for c in "; rm -rf x") + "\u200b"
    fb.script(Reply(tool_calls=[__import__("fake_backend").ToolCall("bash", json.dumps({"command": hidden}))]),
              Reply(text="ok"))
    t = term(fb, "--workspace", str(ws))
    t.wait_prompt("none")
    t.line("go")
    screen = "".join(t.wait_for("Run bash?").split())  # the line wraps
    assert "⟨U+E003B⟩" in screen and "⟨U+200B⟩" in screen
    assert "\U000E003B".encode() not in t.raw_output()


def test_probe_run_refuses_a_file_as_its_directory_and_absurd_sizes(fake, tmp_path):
    fb = fake("vllm")
    (tmp_path / "file").write_text("x")
    for args in (["--out", str(tmp_path / "file")], ["--out", str(tmp_path / "file" / "sub")],
                 ["--samples", "1000000000"]):
        r = chat("probe", "run", "sycophancy", "--base-url", fb.base_url, *args)
        assert r.returncode == 1 and "Traceback" not in r.stderr.decode(), r.stderr


def test_debug_zero_means_off(fake):
    fb = fake("vllm")
    fb.script(Reply(raw_events=["[" * 100000], headers={}))
    r = chat("--base-url", fb.base_url, "-p", "hi", env={**os.environ, "GRIDCHAT_DEBUG": "0"})
    assert "Traceback" not in r.stderr.decode()


def test_sigterm_before_the_first_token_keeps_the_question(fake, term, isolated_env):
    import signal

    from gridchat.chat.transcript import load_transcript
    from test_terminal_probing import chat_pid

    fb = fake("vllm")
    fb.script(Reply(text="late", header_delay=5))
    t = term(fb)
    t.wait_prompt("none")
    t.line("a question worth keeping")
    t.wait(lambda: any(r.method == "POST" for r in fb.requests), "the request")
    os.kill(chat_pid(t), signal.SIGTERM)
    assert t.wait_exit() == 128 + signal.SIGTERM
    (path,) = (isolated_env / "data" / "gridchat" / "sessions").glob("*.jsonl")
    assert [m.content for m in load_transcript(path, {}).conversation.messages] == ["a question worth keeping"]


def test_detection_never_follows_a_redirect_with_the_key(fake):
    import http.server
    import threading

    other = fake("vllm", api_key="sk-secret")  # would answer the key, if it were sent there

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(307)
            self.send_header("Location", other.base_url + "/models")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    try:
        r = chat("--base-url", f"http://127.0.0.1:{server.server_address[1]}/v1", "--api-key", "sk-secret", "-p", "hi")
    finally:
        server.shutdown()
    assert r.returncode == 1 and "redirects" in clean_failure_or_success(r)
    assert not [q for q in other.requests if q.header("Authorization")]


def test_file_names_too_long_for_the_file_system_are_one_line_errors(fake, term, tmp_path):
    """Found by the panel's adversarial pass (B7): a name longer than the file system takes (ENAMETOOLONG)
    ended the session with "internal error" wherever chat writes or reads a file the user names."""
    fb = fake("vllm")
    long = tmp_path / ("a" * 300 + ".jsonl")
    t = term(fb)
    t.wait_prompt("none")
    for line in (f"/save {long}", f"/export md {long}", f"/load {long}", f"/save {long}/x"):
        before = flat(t.screen()).count("File name too long")
        t.line(line)
        t.wait(lambda: flat(t.screen()).count("File name too long") > before, line)
        t.wait_prompt("none")
    assert t.alive() and "internal error" not in t.screen()
