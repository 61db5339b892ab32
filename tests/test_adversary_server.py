"""Issue 16's adversarial pass, hostile server and hostile model: each test here reproduces an attack
that breaks a promise of the README's "Security and data safety" section (or of issue 16's catch-all:
what a security-minded user would expect). Each names the promise (boundary) it breaks and the
finding's id in the adversary report (server-N). They fail until the defect is fixed."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fake_backend import Reply, ToolCall
from test_probe_runner import SET, persona_model


def chat(*args, env=None, timeout=60):
    return subprocess.run([sys.executable, "-m", "gridchat", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def done(finish: str = "stop") -> list[str]:
    return [json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}), "[DONE]"]


# -- server-1 · boundary 5 (outside input: linear cost) ------------------------------------------------
# Inline reasoning tags are split by chat/backends/think.py; one delta holding many <think>…</think>
# pairs makes each pair a search over the whole rest of the delta (for the other tag kind) and a copy
# of it: quadratic. 80,000 pairs in one chunk (1.4 MB) took a one-shot 29 s; a 16 MiB line, hours.

PAIRS = 60_000


def test_server_1_inline_think_tags_in_one_chat_chunk_cost_linear_time():
    from gridchat.chat.backends.chat_completions import ChatStreamParser

    chunk = {"choices": [{"index": 0, "delta": {"content": "<think>a</think>b" * PAIRS}}]}
    started = time.perf_counter()
    events = ChatStreamParser().feed(chunk)
    elapsed = time.perf_counter() - started
    assert len(events) == 2 * PAIRS
    assert elapsed < 3, f"{PAIRS:,} think pairs in one delta took {elapsed:.1f} s (quadratic)"


def test_server_1_inline_think_tags_in_one_responses_delta_cost_linear_time():
    from gridchat.chat.backends.responses import ResponsesStreamParser

    started = time.perf_counter()
    events = ResponsesStreamParser().feed("response.output_text.delta", {"delta": "<think>a</think>b" * PAIRS})
    elapsed = time.perf_counter() - started
    assert len(events) == 2 * PAIRS
    assert elapsed < 3, f"{PAIRS:,} think pairs in one delta took {elapsed:.1f} s (quadratic)"


def test_server_1_one_shot_with_a_chunk_of_think_pairs_ends_in_seconds(fake):
    fb = fake("llamacpp")
    chunk = {"choices": [{"index": 0, "delta": {"content": "<think>a</think>b" * 120_000}}]}
    fb.script(Reply(raw_events=[json.dumps(chunk), *done()]))
    try:
        r = chat("--base-url", fb.base_url, "-p", "hi", timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("a 2 MB reply of inline <think> pairs kept chat -p busy for over 30 s")
    assert r.returncode == 0 and r.stdout.strip() == "b" * 120_000


# -- server-2 · boundary 5 (linear cost) and README Speed ("a 20,000-token reply costs per token what a
# short one does") ---------------------------------------------------------------------------------
# chat/render.py keeps the lines not yet committed as one string grown with `self._lines += …`; a
# reply with no blank line (one long paragraph, a list, a code block never closed) is never committed,
# so each new line copies all before it. On a terminal 20,000 lines took 3 s, 80,000 lines 29 s.

def test_server_2_a_long_reply_without_blank_lines_streams_in_linear_time():
    import io

    from gridchat.chat.events import TextDelta
    from gridchat.chat.output import Screen
    from gridchat.chat.sinks import TerminalSink

    sink = TerminalSink(Screen(file=io.StringIO(), width=100), interactive=True)
    lines = 60_000
    started = time.perf_counter()
    for i in range(lines):
        sink.event(TextDelta(f"line {i} of a reply that never leaves a blank line\n"))
    elapsed = time.perf_counter() - started
    assert elapsed < 3, f"streaming {lines:,} lines without a blank one took {elapsed:.1f} s (quadratic)"


# -- server-3 · "Nothing runs unseen": a long command shows its first page "so that its start is on
# screen with the question" --------------------------------------------------------------------------
# PreviewPages pages a preview by its logical lines; one line that wraps to hundreds of screen rows is
# one "line", so the first page scrolls the command's start off the screen and the question offers no
# more pages (and says no line count). With U+2800 (braille blank, shown as blank and not made
# visible) the screen shows nothing but blank rows and the harmless tail.

@pytest.fixture
def workspace(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws


@pytest.mark.parametrize("filler", ["A", "\u2800"], ids=["visible", "braille-blank"])
def test_server_3_a_one_line_command_longer_than_the_screen_keeps_its_start_on_screen(fake, term, workspace, filler):
    command = "touch PWNED; : " + filler * 6000 + "; echo hello"
    fb = fake("vllm")
    fb.script(Reply(tool_calls=[ToolCall("bash", json.dumps({"command": command}))]), Reply(text="Not run, then."))
    t = term(fb, "--workspace", str(workspace))
    t.wait_prompt("none")
    t.line("say hello")
    t.wait_for("Run bash?")
    visible = "\n".join(t.visible())
    question = t.cursor_line()
    t.line("n")
    t.wait_for("Reason, for the model")
    t.keys("Enter")
    t.wait_for("Not run, then.")
    assert "touch PWNED" in visible or "m(ore" in question, \
        f"the command's start is off the screen and nothing says so:\n{visible[-600:]}"
    assert not (workspace / "PWNED").exists()


# -- server-4 · boundary 2 (secrets): README "… and a redirect is refused" -----------------------------
# Detection refuses redirects, but the chat request itself (openai SDK, follow_redirects on) follows
# a 307: the whole conversation goes to the server named in Location, and its answer is shown as the
# model's reply. (httpx drops the Authorization header across origins, so the key itself stays.)

class _Other(BaseHTTPRequestHandler):
    got: list = []

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).got.append((self.path, body))
        data = (b'data: {"choices":[{"index":0,"delta":{"content":"answered by another server"}}]}\n\n'
                b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST  # a 302 turns the POST into a GET: followed all the same


@pytest.fixture
def other_server():
    handler = type("Other", (_Other,), {"got": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler.got
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("status", [307, 302])
def test_server_4_a_redirect_of_the_chat_request_is_refused(fake, other_server, status):
    elsewhere, got = other_server
    fb = fake("vllm")
    fb.script(Reply(status=status, raw_body="", headers={"Location": elsewhere + "/v1/chat/completions"}))
    r = chat("--base-url", fb.base_url, "--api-key", "sk-redirect-test-1234", "-p", "my private question")
    assert not got, f"the request was sent on to {elsewhere}, a server nobody named: {got[0][1][:120]!r}"
    assert "answered by another server" not in r.stdout
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr


# -- server-5 · boundary 5 and README Errors ("a server that stops answering within the timeout" is one
# line; the caps table: /v1/models … "all of it within the timeout") -----------------------------------
# detect.py's deadline covers the body only (limits.read_capped); a server dripping its response
# headers one byte a second never lets detection end: `chat -p` hangs for good.

@pytest.fixture
def header_drip():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=drip, args=(conn,), daemon=True).start()

    def drip(conn):
        try:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            while not stop.wait(1):
                conn.sendall(b"a")
        except OSError:
            pass
        finally:
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    stop.set()
    with contextlib.suppress(OSError):  # wakes the accepting thread (close alone leaves it waiting)
        listener.shutdown(socket.SHUT_RDWR)
    listener.close()


def test_server_5_a_server_dripping_its_headers_is_given_up_on_at_the_timeout(header_drip):
    started = time.monotonic()
    try:
        r = chat("--base-url", header_drip, "-p", "hi", timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("chat -p was still waiting for the server's headers after 30 s (detection's timeout is 5 s)")
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert time.monotonic() - started < 30


# -- server-6 · boundary 2 (secrets): "a server that echoes Bearer sk-… in its error can't make chat
# show … it" ---------------------------------------------------------------------------------------------
# chat/output.py redacts each rendered segment after layout; a key that rich folds over two lines
# (longer than the line: OpenAI project keys are ~164 characters) or crops in a narrow column (a
# panel lane, 51-character classic keys) is in no segment whole, so none matches and it is shown.

LONG_KEY = "sk-proj-" + "Q7w8E9r0T1" * 15 + "XyZ"  # 161 characters
CLASSIC_KEY = "sk-" + "Zq8Wm3Kd7Lp2" * 4  # 51 characters


def test_server_6_a_long_key_echoed_in_an_error_is_not_shown(fake, term):
    fb = fake("vllm")
    fb.echo_auth = True
    fb.script(Reply(status=401, error={"error": {"message": "Invalid API key {auth}", "type": "UnauthorizedError",
                                                 "code": 401}}))
    t = term(fb, "--api-key", LONG_KEY)
    t.wait_prompt("none")
    t.line("hello")
    t.wait_for("server error 401")
    shown = "".join(t.screen().split())
    assert LONG_KEY[8:60] not in shown, "the API key is on the screen, folded over two lines"


def test_server_6_a_key_echoed_into_a_panel_lane_is_not_shown(fake, term):
    fb = fake("vllm")
    fb.echo_auth = True
    fb.responder = lambda body: Reply(text="Your request said {auth} and that is all.", chunk_chars=1000)
    t = term(fb, "--api-key", CLASSIC_KEY, "--persona", "lawful_good")
    t.wait_prompt("lawful_good")
    t.line("/compare lawful_good,chaotic_evil what did I send?")
    t.wait_for("that is all")
    shown = "".join(t.screen().split())
    assert CLASSIC_KEY[3:40] not in shown, "the API key is on the screen, cut to the lane's width"


# -- server-7 · boundary 5: "no backtracking regex over untrusted text" -----------------------------------
# karma_evaluator._SCORED: a lazy label `[A-Za-z _-]*?` followed by `\s*:` backtracks over every split
# of a run of spaces: quadratic in the line. An evaluator that answers "Helpfulness", 200,000 spaces
# and "x" kept `chat probe judge RUN --judge karma:URL` 37 s on one cell (1 MB: ~15 min), and `/judge`
# frozen: Ctrl-C can't stop a regex.

def test_server_7_an_evaluators_line_of_spaces_is_read_in_linear_time():
    from gridchat.chat.probes.karma_evaluator import parse_evaluation

    started = time.perf_counter()
    evaluation = parse_evaluation("EVALUATION\nHelpfulness" + " " * 100_000 + "x\n")
    elapsed = time.perf_counter() - started
    assert not evaluation.scores
    assert elapsed < 2, f"reading a 100 KB evaluator line took {elapsed:.1f} s (quadratic regex)"


# -- server-8 · boundary 4 (files read): "never a traceback" ------------------------------------------------
# `serve vllm DIR` reads the model directory's config.json (a downloaded model: outside input) with a
# bare json.loads and trusts its shape: a list, a wrongly typed field or deep nesting is a raw traceback.

@pytest.mark.parametrize("config", [
    "[]",
    '{"model_type": "llama", "rope_scaling": [1]}',
    '{"architectures": [1, 2]}',
    '{"model_type": "llama", "max_position_embeddings": "131072"}',
    "[" * 100_000 + "]" * 100_000,
], ids=["a-list", "rope-scaling-list", "architectures-ints", "window-a-string", "deep-nesting"])
def test_server_8_a_damaged_config_json_is_one_line_not_a_traceback(tmp_path, config):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(config)
    r = chat("serve", "vllm", str(model), "--dry-run", env={"XDG_STATE_HOME": str(tmp_path / "state")})
    assert "Traceback" not in r.stderr, r.stderr[-600:]
    assert "config.json" in r.stdout + r.stderr


# -- server-9 · boundary 5: "lists shown to the user (10,000 model ids are not one line)" -----------------------
# chat/probes/run_command.py joins a replica's whole model list into its error.

def test_server_9_a_replica_with_ten_thousand_models_is_one_short_line(fake, tmp_path):
    first = fake("vllm")
    first.responder = persona_model
    replica = fake("vllm", models=[f"other-model-{i:05d}" for i in range(10_000)])
    (tmp_path / "set.yaml").write_text(SET)
    r = chat("probe", "run", str(tmp_path / "set.yaml"), "--base-url", first.base_url, "--base-url", replica.base_url,
             "--personas", "lawful_good", "--out", str(tmp_path / "run"))
    assert r.returncode == 1
    longest = max(len(line) for line in (r.stdout + r.stderr).splitlines())
    assert longest < 1000, f"one line of {longest:,} characters"
    assert "9,992 more" in r.stdout + r.stderr


# -- server-10 · issue 16's catch-all (a security-minded user): advice to copy must be safe to paste ---------------
# chat/credentials.py tells the user how to name a server read from a file — "(--base-url URL names
# it)" — with the URL from the (possibly hostile) transcript unquoted: pasting that flag runs whatever
# command substitution the file's address holds.

class _Plain(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        data = json.dumps({"data": [{"id": "m", "owned_by": "vllm", "max_model_len": 4096}]}).encode() \
            if "models" in self.path else b""
        self.send_response(200 if data else 404)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        data = (b'data: {"choices":[{"index":0,"delta":{"content":"hello"}}]}\n\n'
                b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_server_10_the_base_url_advice_is_safe_to_paste(fake, tmp_path):
    plain = ThreadingHTTPServer(("127.0.0.1", 0), _Plain)
    threading.Thread(target=plain.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    try:
        fb = fake("vllm")
        chat("--base-url", fb.base_url, "-p", "hi")
        (session,) = (tmp_path / "data" / "gridchat" / "sessions").glob("*.jsonl")
        marker = tmp_path / "PWNED"
        hostile = f"http://127.0.0.1:{plain.server_address[1]}/v1$(touch${{IFS}}{marker})"
        events = [json.loads(line) for line in session.read_text().splitlines()]
        for event in events:
            if event.get("event") == "server":
                event["base_url"] = hostile
        session.write_text("".join(json.dumps(e) + "\n" for e in events))
        r = chat("--resume", "-p", "again", env={"OPENAI_API_KEY": "sk-paste-test-1234"})
    finally:
        plain.shutdown()
        plain.server_close()
    advice = next(line for line in r.stderr.splitlines() if "not sending your API key" in line)
    flag = advice[advice.rindex("(--base-url "):].removeprefix("(").removesuffix(" names it)")
    pasted = subprocess.run(["bash", "-c", f"printf '%s\\n' {flag}"], capture_output=True, text=True, cwd=tmp_path)
    assert not marker.exists(), f"pasting {flag!r} ran the address's command substitution"
    assert pasted.stdout.split("\n")[1] == hostile, shlex.split(flag)


# -- server-11 · other (not a security break): an address with user:password never reaches the server -----------
# detect.py's urllib takes "user:password@host" as the host name ("Name or service not known"), so
# such an address can't be used at all — and test_secrets.py's
# test_a_key_in_the_address_is_blanked_too holds without the server ever being asked or echoing.

def test_server_11_an_address_with_a_password_reaches_the_server_and_hides_the_password(fake):
    fb = fake("vllm")
    fb.echo_auth = True
    fb.script(Reply(status=401, error={"error": {"message": "bad key {auth}", "type": "UnauthorizedError",
                                                 "code": 401}}))
    r = chat("--base-url", fb.base_url.replace("http://", "http://probe:hunter2-pass@"), "-p", "hello")
    assert fb.requests, f"the server was never reached: {r.stderr.strip()}"
    assert "hunter2-pass" not in r.stdout + r.stderr


# -- server-12 · boundary 3 ("Nothing you said is lost") by way of boundary 2 -------------------------------------
# detect.py holds the user:password of every address it is given as a secret — also an address read
# from a file (a resumed panel's lane). A shared transcript whose lane is http://x:the@host/v1 makes
# "the" a "secret": from then on every "the" the user types is written to the transcript (and shown,
# and exported) as ***.

def test_server_12_a_password_read_from_a_file_does_not_blank_what_the_user_types(fake, term, tmp_path):
    fb, other = fake("vllm"), fake("vllm")
    t = term(fb, "--persona", "lawful_good")
    t.wait_prompt("lawful_good")
    t.line(f"/compare lawful_good,@{other.base_url} hello")
    t.wait_for("panel of 2")
    t.keys("C-d")
    t.wait_exit()
    (session,) = (tmp_path / "data" / "gridchat" / "sessions").glob("*.jsonl")
    events = [json.loads(line) for line in session.read_text().splitlines()]
    for event in events:
        for lane in event.get("lanes") or []:
            if (lane.get("server") or "").rstrip("/") == other.base_url:
                lane["server"] = other.base_url.replace("http://", "http://x:the@")
    session.write_text("".join(json.dumps(e) + "\n" for e in events))
    t = term(fb, "--resume")
    t.wait_prompt("panel of 2")  # the panel left open is open again
    assert ":the@" not in t.screen(), "the lane's password is shown in its name"
    t.line("/panel end")
    t.wait_prompt("lawful_good")
    t.line("the cat sat on the mat")
    t.wait_for("Echo:")
    said = [json.loads(line) for line in session.read_text().splitlines()][-2]
    assert said.get("content") == "the cat sat on the mat", f"recorded as {said.get('content')!r}"


# -- server-13 · boundary 2 (secrets): an address's user:password is blanked out of "any file" chat writes -----------
# The input history (a file chat appends to) takes the typed line before the address in it is
# detected (which is when its credentials become held secrets): `/judge http://alice:PW@host/v1` (or
# `/compare @http://alice:PW@host/v1`) leaves PW in $XDG_DATA_HOME/gridchat/history in plain text.

def test_server_13_a_password_typed_in_an_address_is_not_written_to_the_history(fake, term, tmp_path):
    fb, judge = fake("vllm"), fake("vllm")
    t = term(fb, "--persona", "lawful_good")
    t.wait_prompt("lawful_good")
    t.line("hello")
    t.wait_for("Echo: hello")
    t.line("/judge " + judge.base_url.replace("http://", "http://alice:Sup3rSecretPw@"))
    t.wait_for("error:")
    t.wait_prompt("lawful_good")
    history = (tmp_path / "data" / "gridchat" / "history").read_text()
    assert "Sup3rSecretPw" not in history, "the password is in the input history in plain text"


# -- server-14 · boundary 2 (secrets): blanked out of everything chat "exports" ------------------------------------
# The writer (chat/files.py) redacts the bytes it writes, but an HTML export holds model text
# HTML-escaped: a key with & < > " ' in it (vLLM takes any string as --api-key) that a server echoes
# into a reply is written to `/export html` as sk-a&amp;b…, which no held form matches.

def test_server_14_a_key_with_html_characters_echoed_in_a_reply_is_not_in_an_html_export(tmp_path):
    from gridchat.chat import redact
    from gridchat.chat.conversation import Conversation, Message
    from gridchat.chat.export import export

    key = "sk-a&b<c-Secret99"
    redact.hold(key)
    try:
        conversation = Conversation()
        conversation.add(Message("user", "what did I send?"))
        conversation.add(Message("assistant", f"You sent Bearer {key}"))
        page = export(conversation, {"model": "m"}, "html", tmp_path / "evidence.html").read_text()
    finally:
        redact._forget_all()
    assert "Secret99" not in page, [line for line in page.splitlines() if "Secret99" in line]
