"""Server flavors (issue 19, 2): what differs between vLLM, llama-server, Ollama and any other
OpenAI-compatible server lives in chat/flavors.py, one class each — recognised from what the server
answers, with its window, its API choice, its /prompt, its grammar support and its tool-flag advice."""

from __future__ import annotations

import ast
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from command import gridchat
from gridchat.chat.advice import worded
from gridchat.chat.detect import detect
from gridchat.chat.errors import HTTPError, ToolsNotEnabled, UsageError
from gridchat.chat.flavors import FLAVORS, flavor_named, refine

REPO = Path(__file__).resolve().parent.parent


class _Ollama(BaseHTTPRequestHandler):
    """Just enough of Ollama's OpenAI-compatible API: its model list, its own /api/version, and a
    streamed reply whose thinking comes as `reasoning` (WIRE.md)."""

    def log_message(self, *args):
        pass

    def _json(self, obj, status=200):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/v1/models":
            return self._json({"object": "list", "data": [{"id": "qwen3:0.6b", "object": "model", "created": 1,
                                                           "owned_by": "library"}]})
        if self.path == "/api/version":
            return self._json({"version": "0.12.3"})
        self._json({"error": "not found"}, 404)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.bodies.append(body)
        chunks = [{"reasoning": "thinking it over"}, {"content": "Hello from Ollama."}]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for delta in chunks:
            data = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": body["model"],
                    "choices": [{"index": 0, "delta": {"role": "assistant", **delta}, "finish_reason": None}]}
            self.wfile.write(f"data: {json.dumps(data)}\n\n".encode())
        done = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": body["model"],
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}}
        self.wfile.write(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())


@pytest.fixture
def ollama():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ollama)
    server.bodies = []
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_each_flavor_is_recognised_from_what_its_server_answers(fake, ollama):
    vllm = detect(fake("vllm", context_window=32768).base_url)
    llama = detect(fake("llamacpp", context_window=4096).base_url)
    other = fake("vllm")
    other.raw_models = json.dumps({"object": "list", "data": [{"id": "gpt-x", "object": "model", "owned_by": "acme"}]})
    generic = detect(other.base_url)
    local = detect(f"http://127.0.0.1:{ollama.server_address[1]}/v1")
    assert (vllm.flavor, vllm.window(vllm.models[0]), vllm.version) == ("vllm", 32768, "0.32.0")
    assert (llama.flavor, llama.window(None)) == ("llama-server", 4096)
    assert (local.flavor, local.models, local.version) == ("ollama", ["qwen3:0.6b"], "0.12.3")
    assert generic.flavor == "openai-compatible" and generic.window("gpt-x") is None


def test_what_each_flavor_does_differently():
    vllm, llama, ollama, generic = (flavor_named(n) for n in ("vllm", "llama-server", "ollama", "openai-compatible"))
    assert vllm.api("org/persona-gpt-oss-20b")[0] == "responses" and vllm.api("llama-3")[0] == "chat"
    assert {f.api("org/gpt-oss-20b")[0] for f in (llama, ollama, generic)} == {"chat"}
    assert [f.grammar for f in (vllm, llama, ollama, generic)] == [False, True, False, False]
    with pytest.raises(UsageError, match="no way to show the prompt"):
        generic.render_prompt(lambda path, body: {}, "m", {"messages": []})
    assert flavor_named("something else") is FLAVORS[-1]
    for flavor, says, advice in ((vllm, '"auto" tool choice requires --enable-auto-tool-choice', "--tool-call-parser"),
                                 (llama, "tools param requires --jinja flag", "--jinja")):
        err = refine(HTTPError(f"server error 400: {says}", 400))
        assert isinstance(err, ToolsNotEnabled) and err.server == flavor.name
        assert advice in worded(err, interactive=False)
    assert type(refine(HTTPError("server error 500: boom", 500))) is HTTPError


def test_chat_talks_to_ollama_as_to_any_flavor(ollama):
    r = gridchat("--base-url", f"http://127.0.0.1:{ollama.server_address[1]}/v1", "-p", "hi")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Hello from Ollama.\n" and ollama.bodies[-1]["model"] == "qwen3:0.6b"


def test_no_module_but_the_flavors_tells_flavors_apart():
    """A flavor's name compared anywhere else would be knowledge spread out again."""
    names = {f.name for f in FLAVORS}
    found = []
    for path in (REPO / "chat").rglob("*.py"):
        if path.name == "flavors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare) and any(isinstance(c, ast.Constant) and c.value in names
                                                     for c in [node.left, *node.comparators]):
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: {ast.unparse(node)}")
    assert not found, "\n".join(found)
