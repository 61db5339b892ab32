"""The exception tree: every foreign error comes out as a ChatError with one readable line."""

import importlib
import pkgutil
import socket
import urllib.error

import httpx2
import openai
import pytest
from gridchat.chat.advice import worded
from gridchat.chat.errors import (
    BackendError,
    ChatError,
    ContextExceeded,
    HTTPError,
    ModelNotFound,
    PathError,
    ServerUnreachable,
    StreamCut,
    ToolsNotEnabled,
    from_error_body,
    paths,
    translate,
)

REQUEST = httpx2.Request("POST", "http://127.0.0.1:8000/v1/chat/completions")


def status_error(status, body):
    response = httpx2.Response(status, request=REQUEST, json=body)
    cls = {400: openai.BadRequestError, 404: openai.NotFoundError}.get(status, openai.InternalServerError)
    return cls("x", response=response, body=body.get("error", body))


FOREIGN = [
    openai.APIConnectionError(request=REQUEST),
    openai.APITimeoutError(request=REQUEST),
    status_error(500, {"error": {"message": "boom\ntrace line", "type": "server_error", "code": 500}}),
    httpx2.RemoteProtocolError("peer closed connection without sending complete message body"),
    httpx2.ReadError("read failed"),
    ConnectionResetError(104, "Connection reset by peer"),
    ConnectionRefusedError(111, "Connection refused"),
    socket.timeout("timed out"),
    urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")),
    OSError("network down"),
    __import__("json").JSONDecodeError("Expecting value", "x", 0),
]


@pytest.mark.parametrize("exc", FOREIGN, ids=lambda e: type(e).__name__)
def test_no_foreign_error_slips_through(exc):
    err = translate(exc)
    assert isinstance(err, ChatError)
    assert str(err) and "\n" not in str(err)


@pytest.mark.parametrize("bug", [RuntimeError("something odd"), AttributeError("'int' object has no attribute 'x'"),
                                 TypeError("unsupported operand"), KeyError("id"), ValueError("bad")])
def test_our_own_bugs_are_not_disguised_as_server_errors(bug):
    """Only known foreign errors are translated; anything else is a bug, left to the top to report."""
    assert translate(bug) is None


def test_translation_never_touches_a_half_imported_sdk(monkeypatch):
    """Failure 1: the REPL preloads the SDK in a background thread; an error mapped meanwhile saw a
    partially initialised `openai` in sys.modules (AttributeError: no APIStatusError)."""
    import sys
    import types

    monkeypatch.setitem(sys.modules, "openai", types.ModuleType("openai"))  # mid-import: no attributes yet
    err = translate(urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")))
    assert isinstance(err, ServerUnreachable)
    assert isinstance(translate(ConnectionRefusedError(111, "Connection refused")), ServerUnreachable)


def test_an_html_error_page_gives_its_status_and_title():
    """Failure 13: a proxy's multi-line 502 page read `server error 502: <html>`."""
    page = ("<!DOCTYPE html>\n<html>\n<head>\n<title>502 Bad Gateway</title>\n</head>\n<body>\n"
            "<center><h1>502 Bad Gateway</h1></center>\n<hr><center>nginx/1.25.3</center>\n</body>\n</html>\n")
    err = from_error_body(page, 502)
    assert str(err) == "server error 502: 502 Bad Gateway"
    untitled = from_error_body("<html><body>\n\n<p>The upstream   went <b>away</b></p></body></html>", 503)
    assert str(untitled) == "server error 503: The upstream went away"


def test_kinds():
    assert isinstance(translate(FOREIGN[0]), ServerUnreachable)
    assert isinstance(translate(FOREIGN[3]), StreamCut)
    assert isinstance(translate(FOREIGN[6]), ServerUnreachable)
    assert isinstance(translate(FOREIGN[2]), HTTPError) and translate(FOREIGN[2]).status == 500


@pytest.mark.parametrize("message,prompt,window", [
    ("This model's maximum context length is 8192 tokens. However, you requested 9000 tokens "
     "(8000 in the messages, 1000 in the completion).", 8000, 8192),
    ("You passed 9001 input tokens and requested 200 output tokens. However, the model's context "
     "length is only 8192 tokens, resulting in a maximum input length of 7992 tokens.", 9001, 8192),
    # vLLM 0.32, as the real server answered (tests/data/vllm/chat-context-overflow.json)
    ("This model's maximum context length is 2048 tokens. However, your prompt contains at least 2049 input "
     "tokens, which exceeds this limit even without any output tokens. Please reduce the length of the input "
     "prompt. (parameter=input_tokens, value=2049)", 2049, 2048),
])
def test_vllm_context_wordings(message, prompt, window):
    err = from_error_body({"object": "error", "message": message, "type": "BadRequestError", "code": 400}, 400)
    assert isinstance(err, ContextExceeded) and (err.prompt_tokens, err.window) == (prompt, window)
    assert f"{window:,}" in str(err)


def test_llama_context_fields():
    err = from_error_body({"error": {"code": 400, "type": "exceed_context_size_error", "n_prompt_tokens": 9412,
                                     "n_ctx": 8192, "message": "request (9412 tokens) exceeds the available "
                                     "context size (8192 tokens), try increasing it"}})
    assert isinstance(err, ContextExceeded) and (err.prompt_tokens, err.window) == (9412, 8192)


def test_tool_flag_errors_say_what_to_do():
    """Each flavor knows how it says its tool calling is off (chat/flavors.py) and how to turn it on."""
    from gridchat.chat.flavors import refine

    vllm = refine(from_error_body({"message": '"auto" tool choice requires --enable-auto-tool-choice and '
                                              '--tool-call-parser to be set', "type": "BadRequestError"}, 400))
    llama = refine(from_error_body({"error": {"code": 500, "message": "tools param requires --jinja flag",
                                              "type": "server_error"}}))
    assert isinstance(vllm, ToolsNotEnabled) and "--tool-call-parser" in worded(vllm, interactive=False)
    assert isinstance(llama, ToolsNotEnabled) and "--jinja" in worded(llama, interactive=True)


def test_advice_is_worded_for_where_the_user_is():
    """Errors carry data; the UI words the advice: a one-shot user can't type /compact."""
    err = from_error_body({"error": {"code": 400, "type": "exceed_context_size_error", "n_prompt_tokens": 9412,
                                     "n_ctx": 8192, "message": "request (9412 tokens) exceeds the available"}})
    assert "/compact" not in str(err) and "9,412" in str(err)
    assert "/compact" in worded(err, interactive=True)
    assert "/compact" not in worded(err, interactive=False) and "shorten" in worded(err, interactive=False)
    missing = from_error_body({"message": "The model `x` does not exist.", "type": "NotFoundError", "code": 404}, 404)
    assert "/model" in worded(missing, interactive=True) and "--model" in worded(missing, interactive=False)


def test_unknown_model():
    err = from_error_body({"message": "The model `x` does not exist.", "type": "NotFoundError", "code": 404}, 404)
    assert isinstance(err, ModelNotFound) and "`x`" in str(err)


def test_tree():
    assert issubclass(ServerUnreachable, BackendError) and issubclass(ContextExceeded, HTTPError)
    assert issubclass(StreamCut, BackendError) and issubclass(BackendError, ChatError)


def test_a_path_the_system_refuses_is_one_line_and_nothing_else_is_touched(tmp_path):
    """files-4: a lookup (exists(), is_file()) of a name too long raised ENAMETOOLONG past every
    boundary: "internal error" in chat, a traceback in chat probe and serve. paths() is the one place
    such an OSError becomes a line; anything else (a bug, a pipe that broke) goes on as it is."""
    with pytest.raises(PathError) as e, paths():
        (tmp_path / ("y" * 300)).exists()
    message = str(e.value)
    assert message.endswith("…: File name too long") and "\n" not in message and len(message) < 100
    for other in (BrokenPipeError(32, "Broken pipe"), RuntimeError("a bug"), KeyError("id")):
        with pytest.raises(type(other)), paths():
            raise other


def all_modules():
    pkg = importlib.import_module("gridchat")
    yield pkg
    for info in pkgutil.walk_packages(pkg.__path__, "gridchat."):
        if info.name.split(".")[1] in ("chat", "personas", "tools", "serve", "supervise") and not info.name.endswith("__main__"):
            yield importlib.import_module(info.name)


@pytest.mark.parametrize("module", list(all_modules()), ids=lambda m: m.__name__)
def test_every_module_declares_its_public_surface(module):
    assert hasattr(module, "__all__"), f"{module.__name__} has no __all__"
    for name in module.__all__:
        assert hasattr(module, name), f"{module.__name__}.__all__ names missing {name}"


def test_an_html_error_page_through_the_client(fake):
    """End to end: the proxy's page comes back as the one line above, in one-shot mode too."""
    from command import gridchat
    from fake_backend import Reply

    fb = fake("vllm")
    page = "<html>\n<head><title>502 Bad Gateway</title></head>\n<body>\n<h1>502 Bad Gateway</h1>\n</body>\n</html>\n"
    fb.script(Reply(status=502, raw_body=page))
    r = gridchat("--base-url", fb.base_url, "-p", "hi")
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == "chat: error: server error 502: 502 Bad Gateway"
