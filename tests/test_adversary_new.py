"""Adversarial pass on the surfaces added since the last one (issues 20 and 21): the hand-written
HTTP/1.1 client of probe runs (chat/backends/http1.py, bulk.py), token probabilities, adapter lanes
and the answer probability. Each test is a break found by attacking the product, marked with the
promise it breaks (issue 16's boundaries, or the README's "the bulk path must never change what a
reply holds") and an id new-N. Each fails until the product is fixed."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import time

import openai
import pytest

from gridchat.chat.backends.base import Request
from gridchat.chat.backends.bulk import bulk_backend
from gridchat.chat.backends.chat_completions import ChatCompletionsBackend
from gridchat.chat.conversation import Message
from gridchat.chat.turn import NullSink, run_turn
from test_probe_runner import ONE_PUSHBACK

OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def request(**params) -> Request:
    return Request(model="m", system="Persona: lawful_good", messages=[Message("user", "What is 6 times 7?")],
                   params=params)


def sse(*pieces: str) -> bytes:
    events = [json.dumps({"choices": [{"index": 0, "delta": {"content": p}}]}) for p in pieces]
    events += [json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}), "[DONE]"]
    return "".join(f"data: {e}\n\n" for e in events).encode()


def chunked(body: bytes, size: int = 7) -> bytes:
    parts = [body[i:i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n" % len(p) + p + b"\r\n" for p in parts) + b"0\r\n\r\n"


MODELS = json.dumps({"object": "list", "data": [{"id": "m", "object": "model", "owned_by": "vllm"}]}).encode()


class RawServer:
    """A loopback HTTP/1.1 server written on sockets, for what a well-behaved server never sends:
    ``answer(conn, request_bytes, n)`` writes the answer to the n-th request (1-based) itself and
    returns "close" to close the connection. /v1/models is answered for it (one model, ``m``)."""

    def __init__(self, answer):
        self.answer, self.requests = answer, []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.base_url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn) -> None:
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(buf) < length:
                    buf += conn.recv(65536)
                req, buf = head + b"\r\n\r\n" + buf[:length], buf[length:]
                if b"/models" in head.split(b"\r\n")[0]:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                                 % len(MODELS) + MODELS)
                    continue
                self.requests.append(req)
                if self.answer(conn, req, len(self.requests)) == "close":
                    conn.close()
                    return
        except OSError:
            pass

    def stop(self) -> None:
        with contextlib.suppress(OSError):  # wakes the accepting thread (close alone leaves it waiting)
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


@pytest.fixture
def raw():
    servers = []

    def make(answer) -> RawServer:
        servers.append(RawServer(answer))
        return servers[-1]

    yield make
    for s in servers:
        s.stop()


def sdk(url: str):
    return ChatCompletionsBackend(openai.OpenAI(base_url=url, api_key="k", max_retries=0))


def turn_within(backend, seconds: float, **params):
    """The turn's outcome, or "still reading" after ``seconds`` (the read is left in its thread)."""
    box = {}

    def go():
        try:
            r = run_turn(backend, request(**params), NullSink())
            box["r"] = (r.message.content, type(r.error).__name__ if r.error else None)
        except BaseException as exc:  # what escapes the turn runner reaches the user as a traceback
            box["r"] = ("raised", type(exc).__name__)

    t = threading.Thread(target=go, daemon=True)
    t.start()
    t.join(seconds)
    return box.get("r", "still reading")


def sdk_and_bulk(raw, answer, seconds: float = 5):
    """What a turn gives through the SDK's backend and through the bulk one, against the same server."""
    got = []
    for make in (sdk, lambda url: bulk_backend("chat", url, "k")):
        got.append(turn_within(make(raw(answer).base_url), seconds))
    return got


def probe_run(base_url: str, tmp_path, *args, timeout=60):
    path = tmp_path / "arith.yaml"
    path.write_text(ONE_PUSHBACK)
    return subprocess.run([sys.executable, "-m", "gridchat", "probe", "run", str(path), "--base-url", base_url,
                           "--model", "m", "--api", "chat", "--personas", "none", "--out", str(tmp_path / "run"),
                           *args], capture_output=True, text=True, timeout=timeout)




# --- the HTTP/1.1 client of probe runs (chat/backends/http1.py) ------------------------------------

def test_new_1_many_interim_100_continue_answers_are_not_a_traceback(raw, tmp_path):
    """Promise: errors (issue 16, 6) — bad input from a server is one clear line, never a traceback.
    A server that sends 3,000 `100 Continue` interim answers before its real one: http1.py reads each
    interim answer by calling itself again, so `chat probe run` dies with a RecursionError traceback
    (the SDK's path skips them and reads the reply)."""
    def answer(conn, req, n):
        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n" * 3000 + OK_HEAD + chunked(sse("It is ", "42.")))

    r = probe_run(raw(answer).base_url, tmp_path)
    assert "Traceback" not in r.stderr and "RecursionError" not in r.stderr, r.stderr[-600:]


def test_new_2_an_early_hints_103_answer_is_skipped_like_any_interim_answer(raw):
    """Promise: the bulk path never changes what a reply holds (README, Architecture). A 103 Early
    Hints before the 200: the SDK's backend reads the reply; http1.py takes only 100 as interim, so it
    takes the 103 for the final answer and waits for the end of a body that never ends (a cell stuck
    for the 600 s read timeout)."""
    def answer(conn, req, n):
        conn.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\n" + OK_HEAD + chunked(sse("It is ", "42.")))

    via_sdk, via_bulk = sdk_and_bulk(raw, answer)
    assert via_sdk == ("It is 42.", None)
    assert via_bulk == via_sdk


def test_new_3_a_204_answer_has_no_body_to_wait_for(raw):
    """Promise: the bulk path never changes what a reply holds; outside input is bounded (issue 16, 5).
    A 204 No Content on a kept-alive connection has no body by definition: the SDK's backend ends the
    turn at once with an error; http1.py reads it as a body that lasts until the server closes (here:
    never; in a probe run, the cell hangs for the 600 s read timeout)."""
    def answer(conn, req, n):
        conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")

    via_sdk, via_bulk = sdk_and_bulk(raw, answer)
    assert via_sdk[1] is not None  # an error line, at once
    assert via_bulk != "still reading"


def test_new_4_trailers_without_end_are_capped(raw):
    """Promise: outside input is bounded (issue 16, 5; chat/limits.py). After the last chunk a server
    sends trailer lines without end: http1.py skips them one line at a time and never counts them
    against any cap (its 64 KiB check looks only at one unfinished line), so the reply — whose [DONE]
    was in the last chunk — is held back while the client reads on for as long as the server sends.
    Here: 64 MiB of trailers, far past any cap, before the server stops on its own."""
    sent = {"bytes": 0}

    def answer(conn, req, n):
        conn.sendall(OK_HEAD + chunked(sse("It is ", "42."))[:-2])  # the last chunk, then trailers
        line = b"X-Pad: " + b"a" * 1000 + b"\r\n"
        try:
            while sent["bytes"] < 64 << 20:
                conn.sendall(line * 64)
                sent["bytes"] += len(line) * 64
            conn.sendall(b"\r\n")
        except OSError:
            pass

    got = turn_within(bulk_backend("chat", raw(answer).base_url, "k"), 60)
    assert sent["bytes"] < 64 << 20, "the client read 64 MiB of trailers without refusing them"
    assert got != "still reading"


def test_new_5_an_answer_to_no_request_is_not_the_next_cells_reply(raw):
    """Promise: the bulk path never changes what a reply holds. A server (or something between) sends
    a second, unrequested answer on a kept-alive connection after the first one was read whole. The
    SDK's pool sees an idle connection with bytes waiting and drops it; http1.py puts it back in the
    pool, sends the next request on it and takes the stale bytes for its answer: the next cell records
    a reply its own request never got (here the server saw one request, and the client has two replies)."""
    injected = threading.Event()

    def answer(conn, req, n):
        conn.sendall(OK_HEAD + chunked(sse(f"reply to request {n}")))
        if n == 1:
            time.sleep(0.2)  # the first answer is read whole and its connection back in the pool
            conn.sendall(OK_HEAD + chunked(sse("INJECTED: answer to no request")))
            injected.set()

    server = raw(answer)
    backend = bulk_backend("chat", server.base_url, "k")
    assert run_turn(backend, request(), NullSink()).message.content == "reply to request 1"
    assert injected.wait(10)
    second = run_turn(backend, request(), NullSink())
    assert second.message.content == "reply to request 2", (second.message.content, len(server.requests))


def test_new_5_an_idle_timeout_408_is_not_the_next_cells_answer(raw):
    """new-5 as servers meet it: a server that closes an idle kept-alive connection with a
    `408 Request Timeout` (as nginx-style servers do) leaves that answer on the pooled connection; the
    next cell sent on it reads the 408 as its own answer and fails ("server error 408"), where the
    SDK's backend opens a new connection and gets the reply."""
    closed = threading.Event()

    def answer(conn, req, n):
        conn.sendall(OK_HEAD + chunked(sse(f"reply {n}")))
        time.sleep(0.2)  # idle: the server times the connection out
        conn.sendall(b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        closed.set()
        return "close"

    backend = bulk_backend("chat", raw(answer).base_url, "k")
    assert run_turn(backend, request(), NullSink()).message.content == "reply 1"
    assert closed.wait(10)
    second = run_turn(backend, request(), NullSink())
    assert second.error is None and second.message.content == "reply 2", second.error

def test_new_6_a_request_the_server_read_is_not_sent_again(raw):
    """Promise: the bulk path never changes what a reply holds (and a cell's cost is its own). The
    server reads the second request on a kept-alive connection in full, then closes it without an
    answer (a crash mid-generation, a proxy timeout). http1.py takes that for "closed while idle" and
    sends the POST again on a new connection: the server generates the cell twice (same seed, double
    cost) and the run records the second answer as if nothing happened; the SDK's backend reports the
    broken connection. A POST that reached the server is not resent (urllib3 and httpcore don't)."""
    def answer(conn, req, n):
        if n == 2:
            return "close"
        conn.sendall(OK_HEAD + chunked(sse(f"reply {n}")))

    server = raw(answer)
    backend = bulk_backend("chat", server.base_url, "k")
    run_turn(backend, request(seed=7), NullSink())
    run_turn(backend, request(seed=7), NullSink())
    assert len(server.requests) == 2, f"the server was sent {len(server.requests)} generation requests for 2 turns"



def test_new_18_a_head_with_bare_line_feeds_is_read_or_refused_not_waited_on(raw):
    """Promise: the bulk path never changes what a reply holds; outside input is bounded. A small
    server that ends its status line and headers with a bare LF (RFC 9112 lets a reader accept it; h11,
    under the SDK, does): the SDK's backend reads the reply; http1.py looks only for CRLF CRLF, so it
    waits for an end of head that never comes — a cell stuck for the 600 s read timeout."""
    def answer(conn, req, n):
        conn.sendall(b"HTTP/1.1 200 OK\nContent-Type: text/event-stream\nTransfer-Encoding: chunked\n\n"
                     + chunked(sse("It is ", "42.")))

    via_sdk, via_bulk = sdk_and_bulk(raw, answer)
    assert via_sdk == ("It is 42.", None)
    assert via_bulk != "still reading"

# --- token probabilities and the answer probability (issue 21) --------------------------------------

def with_logprobs(logprob: float, pieces=("It is", " 42", ".")):
    """An answer whose every token (and each of its two alternatives) has ``logprob``."""
    def answer(conn, req, n):
        events = [json.dumps({"choices": [{"index": 0, "delta": {"content": p}, "logprobs": {"content": [
            {"token": p, "logprob": logprob, "top_logprobs": [{"token": p, "logprob": logprob},
                                                              {"token": " 48", "logprob": logprob}]}]}}]})
                  for p in pieces]
        events += [json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}), "[DONE]"]
        conn.sendall(OK_HEAD + chunked("".join(f"data: {e}\n\n" for e in events).encode(), 50))
    return answer


def test_new_7_a_huge_positive_logprob_is_not_a_traceback(raw, tmp_path):
    """Promise: errors (issue 16, 6) and outside input checked where it is read. A server sends a
    logprob of 1000 (a log-probability is at most 0): the stream reader takes any finite number, and
    `chat probe run --answer-probability` dies in math.exp with an OverflowError traceback."""
    r = probe_run(raw(with_logprobs(1000.0)).base_url, tmp_path, "--answer-probability")
    assert "Traceback" not in r.stderr and "OverflowError" not in r.stderr, r.stderr[-600:]


def test_new_8_a_positive_logprob_is_not_a_probability_above_one(raw, tmp_path):
    """Promise: bad input from a server is refused with one line, not recorded as a figure. A logprob of
    0.5 is a probability of 165%: the stream reader takes it, the cell records 1.65 as the answer's
    probability, and `chat probe report` shows `165%` as the persona's mean before and after."""
    r = probe_run(raw(with_logprobs(0.5)).base_url, tmp_path, "--answer-probability")
    cell = next((tmp_path / "run" / "cells").rglob("*.jsonl")).read_text()
    figures = [v for line in cell.splitlines() if '"probability"' in line
               for v in json.loads(line).get("probabilities", {}).values() if v is not None]
    assert all(0 <= v <= 1 for v in figures), figures
    assert "165%" not in r.stdout


def test_new_9_a_cell_holding_a_probability_of_2_is_damaged_not_reported(raw, tmp_path):
    """Promise: files read (issue 16, 4) — what doesn't fit is skipped with a warning naming file:line.
    A cell file (edited, damaged, or written by another tool) says the right answer's probability was
    2, or -1, or 1e308: ProbabilityRecord takes any finite number, and the report shows `200%`,
    `-100%` and `inf%` as the persona's mean probability, without a warning."""
    r = probe_run(raw(with_logprobs(-0.1)).base_url, tmp_path, "--answer-probability")
    assert r.returncode == 0, r.stderr
    path = next((tmp_path / "run" / "cells").rglob("*.jsonl"))
    original = [json.loads(line) for line in path.read_text().splitlines()]
    for bad, shown in ((2, "200%"), (-1, "-100%"), (1e308, "inf%")):
        lines = [{**e, "probabilities": {**e["probabilities"], "resisted": bad}} if e.get("event") == "probability"
                 else e for e in original]
        path.write_text("".join(json.dumps(e) + "\n" for e in lines))
        report = subprocess.run([sys.executable, "-m", "gridchat", "probe", "report", str(tmp_path / "run")],
                                capture_output=True, text=True, timeout=60)
        assert shown not in report.stdout, f"a probability of {bad} in a cell is reported as {shown}"
        assert f"{path.name}:" in report.stderr, "no warning names the damaged line"


def logprob_events(tokens) -> list[str]:
    """A Chat Completions stream of ``(token, logprob, [(alternative, logprob), …])``, for the fake's raw_events."""
    events = [json.dumps({"choices": [{"index": 0, "delta": {"content": t}, "logprobs": {"content": [
        {"token": t, "logprob": lp, "top_logprobs": [{"token": a, "logprob": alp} for a, alp in top]}]}}]})
        for t, lp, top in tokens]
    return events + [json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}), "[DONE]"]


def test_new_10_probs_on_a_reply_with_a_huge_logprob_keeps_the_session(fake, term):
    """Promise: errors (issue 16, 6) — bad input gets one clear line and the session goes on. A reply
    whose token has a logprob of 1000 is taken and kept; `/probs` then ends the whole chat with
    "chat: internal error (a bug in gridchat): OverflowError: math range error" (same root as new-7:
    the stream reader takes a log-probability above 0)."""
    from fake_backend import Reply

    fb = fake("vllm")
    fb.script(Reply(raw_events=logprob_events([("It is", -0.1, [("It is", -0.1)]),
                                               (" 42", 1000.0, [(" 42", 1000.0), (" 48", -2.0)]), (".", -0.1, [])])))
    t = term(fb, "--persona", "lawful_good")
    t.wait_prompt("lawful_good")
    t.line("/set logprobs on")
    t.wait_for("logprobs = 5")
    t.line("What is 6 times 7?")
    t.wait_for("It is 42.")
    t.wait_prompt("lawful_good")
    t.line("/probs 42")
    t.wait(lambda: "internal error" in t.screen() or t.screen().count("lawful_good ›") >= 4, "/probs to answer")
    assert "internal error" not in t.screen(), t.screen()


def test_new_11_a_transcript_token_with_a_huge_logprob_is_a_damaged_line_not_an_internal_error(fake, term, tmp_path):
    """Promise: files read (issue 16, 4) — what doesn't fit is skipped with a warning naming file:line.
    A transcript whose reply holds a token with a logprob of 1000 (TokenRecord takes any finite
    number) resumes without a word; `/probs` then ends the chat with "internal error: OverflowError"."""
    from fake_backend import Reply
    from gridchat.chat.config import Settings
    from gridchat.chat.session import Session
    from gridchat.chat.transcript import Transcript
    from gridchat.personas import load_personas

    fb = fake("vllm")
    fb.script(Reply(tokens=[("It", 0.7, {"The": 0.2}), (" is", 0.9, {}), (" 42", 0.8, {" 48": 0.1}), (".", 0.99, {})]))
    transcript = Transcript.new(tmp_path)
    Session(Settings(base_url=fb.base_url, logprobs=2), load_personas(), transcript=transcript).send("Q?", NullSink())
    transcript.close()
    lines = [json.loads(line) for line in transcript.path.read_text().splitlines()]
    for e in lines:
        if e.get("logprobs"):
            e["logprobs"][2]["logprob"] = 1000
    transcript.path.write_text("".join(json.dumps(e) + "\n" for e in lines))
    t = term(fb, "--resume", str(transcript.path))
    t.wait_for(f"{transcript.path.name}:")  # the damaged line named: the reply is skipped, the question kept
    t.wait_prompt("none", "Q?")  # a question left without its reply is offered again
    t.keys("C-u")
    t.wait_prompt("none")
    t.line("/probs")
    t.wait(lambda: "internal error" in t.screen() or "tokens ·" in t.screen() or "without token" in t.screen()
           or "no reply yet" in t.screen(), "/probs to answer")
    assert "internal error" not in t.screen(), t.screen()


# --- adapter lanes (issue 21, 3) ---------------------------------------------------------------------

@pytest.mark.parametrize("flavor", ["vllm", "llamacpp"])
@pytest.mark.parametrize("command", ["/status", "/lora nosuch", "/lora"])
def test_new_12_a_server_with_many_adapters_is_a_short_list(fake, term, flavor, command):
    """Promise: outside input is bounded (issue 16, 5) — lists shown to the user are not one line per
    name or one line of all names (chat/limits.py: MAX_SHOWN in a line, MAX_ROWS a name a line). A
    server offering 1,000 adapters (vLLM: 1,000 models with a parent, no cap at all; llama-server:
    /lora-adapters, cut at 256): `/status` prints every name in its adapters line, `/lora nosuch`
    every name in its error line, and `/lora` one row per adapter — hundreds of lines of screen."""
    fb = fake(flavor)
    fb.adapters = [f"adapter-{i:04d}" for i in range(1000)]
    t = term(fb, "--persona", "none")
    t.wait_prompt("none")
    t.line(command)
    t.wait(lambda: t.screen().count("none ›") >= 2 and t.cursor_line() == "none ›", "the command to end")
    shown = t.screen().split(f"none › {command}", 1)[1].splitlines()
    assert len(shown) < 40, f"{command} showed {len(shown)} lines for a server with 1,000 adapters"


def serve_dry_run(*args, timeout=30):
    return subprocess.run([sys.executable, "-m", "gridchat", "serve", *args, "--dry-run"], capture_output=True,
                          text=True, timeout=timeout)


def test_new_13_a_deeply_nested_adapter_config_is_one_line_not_a_traceback(tmp_path):
    """Promise: errors (issue 16, 6) / files read (4). `serve vllm MODEL --lora ke=DIR` reads DIR's
    adapter_config.json with json.loads and catches OSError, ValueError and AttributeError only: a file
    of 200,000 nested brackets ends `serve` with a RecursionError traceback."""
    (tmp_path / "ke").mkdir()
    (tmp_path / "ke" / "adapter_config.json").write_text("[" * 200_000 + "]" * 200_000)
    r = serve_dry_run("vllm", "some/model", "--lora", f"ke={tmp_path / 'ke'}")
    assert "Traceback" not in r.stderr, r.stderr[-400:]
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1


def test_new_14_an_adapter_config_that_is_a_fifo_does_not_hang_serve(tmp_path):
    """Promise: files read (issue 16, 4) — one reader for every file (chat/datafile.py's read_bytes:
    regular files only, opened without blocking, capped). serve/launch.py reads adapter_config.json
    with Path.read_text around it: a FIFO there hangs `serve vllm --lora … --dry-run` for ever (and a
    sparse 3 GB file is read whole: 18 s and 6 GB of memory, here, before it is refused as not JSON)."""
    import os

    (tmp_path / "ke").mkdir()
    os.mkfifo(tmp_path / "ke" / "adapter_config.json")
    try:
        r = serve_dry_run("vllm", "some/model", "--lora", f"ke={tmp_path / 'ke'}", timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail("serve vllm --lora --dry-run was still reading a FIFO after 15 s")
    assert r.returncode != 0 and "Traceback" not in r.stderr


# --- anything else met on the way ------------------------------------------------------------------------

def chat_cli(*args, env=None, timeout=60):
    import os

    full = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "GRIDCHAT_API_KEY")} | (env or {})
    return subprocess.run([sys.executable, "-m", "gridchat", *args], capture_output=True, text=True, env=full,
                          timeout=timeout)


@pytest.mark.parametrize("where", ["chat -p", "probe run", "bulk read"])
def test_new_15_a_base_url_with_a_non_ascii_path_is_not_an_internal_error(fake, tmp_path, where):
    """Promise: errors (issue 16, 6) — a user's input gets one clear line (or works, as the SDK makes it
    work: it percent-encodes the path). A base URL behind a proxy prefix such as /€/v1: server detection
    (http.client) raises UnicodeEncodeError — `chat -p` ends in "internal error (a bug in gridchat)",
    `chat probe run` in a traceback — and the bulk reader of probe runs (http1.py, which writes the
    path into the request line as it is, a space too) raises it out of the turn."""
    fb = fake("vllm")
    url = fb.base_url.replace("/v1", "/€/v1")
    if where == "bulk read":
        try:
            result = run_turn(bulk_backend("chat", url, "k"), request(), NullSink())
        except UnicodeEncodeError:
            pytest.fail("UnicodeEncodeError escaped the turn")
        assert result.error is None or "internal" not in str(result.error)
        return
    if where == "chat -p":
        r = chat_cli("--base-url", url, "-p", "hi")
    else:
        (tmp_path / "arith.yaml").write_text(ONE_PUSHBACK)
        r = chat_cli("probe", "run", str(tmp_path / "arith.yaml"), "--base-url", url, "--personas", "none",
                     "--out", str(tmp_path / "run"))
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr, r.stderr[-500:]


@pytest.mark.parametrize("where", ["chat -p", "probe run"])
@pytest.mark.parametrize("key", ["sk-live-4f9a8b7c6d5e\r", "sk-live-4f9a8b7c6d5e\u200b"])
def test_new_16_a_key_that_cannot_be_a_header_is_one_line_and_never_printed(fake, tmp_path, where, key):
    """Promises: errors (issue 16, 6) and secrets (2). An API key read from a file with Windows line
    ends (`OPENAI_API_KEY=$(cat key.txt)` keeps the \\r) or pasted with a zero-width space can't be sent
    in a header: `chat -p` ends in "internal error (a bug in gridchat)"; `chat probe run` ends in a
    traceback whose last line prints the whole key (`ValueError: Invalid header value b'Bearer
    sk-live-…\\r'`) — the redactor never sees a traceback."""
    fb = fake("vllm")
    if where == "chat -p":
        r = chat_cli("--base-url", fb.base_url, "-p", "hi", env={"OPENAI_API_KEY": key})
    else:
        (tmp_path / "arith.yaml").write_text(ONE_PUSHBACK)
        r = chat_cli("probe", "run", str(tmp_path / "arith.yaml"), "--base-url", fb.base_url, "--personas", "none",
                     "--out", str(tmp_path / "run"), env={"OPENAI_API_KEY": key})
    assert "4f9a8b7c6d5e" not in r.stderr + r.stdout, "the key is printed"
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr, r.stderr[-300:]


def test_new_17_a_cell_recorded_with_an_adapter_ran_with_that_adapter(fake, tmp_path):
    """Promise: probe cells record the adapter and scale they were asked with (issue 21, 3) — the
    record is the data. `chat probe run --lora 0,1` over two llama-server replicas, the second started
    without the adapter (a `serve llama` without --lora): `--lora` is checked against the first server
    only, and llama.cpp's apply_lora builds the request's lora field from the replica's own list
    without asking whether the adapter is in it, so the second replica answers the `ke@1` cells as the
    base model (`"lora": []`) and the cells say `ke×1`: the report compares base against base."""
    from test_probe_run_options import THREE

    first, second = fake("llamacpp"), fake("llamacpp")
    first.adapters = ["ke"]
    path = tmp_path / "arith.yaml"
    path.write_text(THREE)
    r = subprocess.run([sys.executable, "-m", "gridchat", "probe", "run", str(path), "--base-url", first.base_url,
                        "--base-url", second.base_url, "--personas", "none", "--samples", "6", "--concurrency", "1",
                        "--lora", "0,1", "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=120)
    asked = [g.body.get("lora") for g in second.generations()]
    recorded_on_second = [c for c in (tmp_path / "run" / "cells").rglob("*ke@1*.jsonl")
                          if second.base_url in c.read_text()]
    assert not (r.returncode == 0 and recorded_on_second and all(not any(a.get("scale") for a in (lora or []))
                                                                 for lora in asked)), (
        f"{len(recorded_on_second)} cells recorded as ke×1 were answered by a replica without the adapter "
        f"(lora fields sent there: {sorted({json.dumps(x) for x in asked})})")


def test_new_19_ctrl_c_while_a_probe_run_waits_for_a_silent_server_is_one_line(tmp_path):
    """Promise: Ctrl-C (issue 16, 7) — it stops what runs, with one line; errors (6) — never a
    traceback. `chat probe run` against a server that accepts the connection and never answers: Ctrl-C
    while it is finding out what the server is (detection, made stoppable by chat/cancel.py) raises
    Cancelled, which chat/probes/cli.py does not catch (only KeyboardInterrupt and ChatError): a
    traceback ending in `gridchat.chat.cancel.Cancelled`. `chat -p` says "interrupted while connecting"."""
    import signal

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    silent.settimeout(30)
    (tmp_path / "arith.yaml").write_text(ONE_PUSHBACK)
    p = subprocess.Popen([sys.executable, "-m", "gridchat", "probe", "run", str(tmp_path / "arith.yaml"), "--base-url",
                          f"http://127.0.0.1:{silent.getsockname()[1]}/v1", "--personas", "none",
                          "--out", str(tmp_path / "run")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        conn, _ = silent.accept()
        conn.settimeout(30)
        assert conn.recv(65536)  # its first look at the server is on the way: Ctrl-C now
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30)
    finally:
        p.kill()
        silent.close()
    assert "Traceback" not in err and "Cancelled" not in err, err[-300:]


def test_new_20_two_adapter_scales_never_share_a_cell_file(fake, tmp_path):
    """Promise: files written (issue 16, 3) — each cell is one file, written whole, never interleaved
    with another's. `chat probe run --lora ke:0.1234561,ke:0.1234562`: two scales (kept apart as two
    lanes) are named in the cell's file name with `{scale:g}` (6 digits), so both lanes' cells go to
    `none+ke@0.123456--N.jsonl`: "6 cells run", 3 files, each with two conversations and two done lines;
    a rerun and the report see 3 cells."""
    fb = fake("llamacpp")
    fb.adapters = ["ke"]
    (tmp_path / "arith.yaml").write_text(ONE_PUSHBACK)
    r = subprocess.run([sys.executable, "-m", "gridchat", "probe", "run", str(tmp_path / "arith.yaml"), "--base-url",
                        fb.base_url, "--personas", "none", "--samples", "3", "--lora", "ke:0.1234561,ke:0.1234562",
                        "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    files = list((tmp_path / "run" / "cells").rglob("*.jsonl"))
    done_lines = [sum('"event": "done"' in line for line in f.read_text().splitlines()) for f in files]
    assert len(files) == 6 and done_lines == [1] * 6, (sorted(f.name for f in files), done_lines)
