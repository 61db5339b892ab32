"""The exception tree: every foreign error comes out as a ChatError with one readable line."""

import importlib
import pkgutil
import socket
import urllib.error

import httpx2
import openai
import pytest
from gridchat.chat.errors import (
    BackendError,
    ChatError,
    ContextExceeded,
    HTTPError,
    ModelNotFound,
    ServerUnreachable,
    StreamCut,
    ToolsNotEnabled,
    from_error_body,
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
    ValueError("Expecting value: line 1 column 1"),
    RuntimeError("something odd"),
]


@pytest.mark.parametrize("exc", FOREIGN, ids=lambda e: type(e).__name__)
def test_no_foreign_error_slips_through(exc):
    err = translate(exc)
    assert isinstance(err, ChatError)
    assert str(err) and "\n" not in str(err)


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
    vllm = from_error_body({"message": '"auto" tool choice requires --enable-auto-tool-choice and '
                                       '--tool-call-parser to be set', "type": "BadRequestError"}, 400)
    llama = from_error_body({"error": {"code": 500, "message": "tools param requires --jinja flag",
                                       "type": "server_error"}})
    assert isinstance(vllm, ToolsNotEnabled) and "--tool-call-parser" in str(vllm)
    assert isinstance(llama, ToolsNotEnabled) and "--jinja" in str(llama)


def test_unknown_model():
    err = from_error_body({"message": "The model `x` does not exist.", "type": "NotFoundError", "code": 404}, 404)
    assert isinstance(err, ModelNotFound) and "`x`" in str(err)


def test_tree():
    assert issubclass(ServerUnreachable, BackendError) and issubclass(ContextExceeded, HTTPError)
    assert issubclass(StreamCut, BackendError) and issubclass(BackendError, ChatError)


def all_modules():
    pkg = importlib.import_module("gridchat")
    yield pkg
    for info in pkgutil.walk_packages(pkg.__path__, "gridchat."):
        if info.name.split(".")[1] in ("chat", "personas", "tools", "serve") and not info.name.endswith("__main__"):
            yield importlib.import_module(info.name)


@pytest.mark.parametrize("module", list(all_modules()), ids=lambda m: m.__name__)
def test_every_module_declares_its_public_surface(module):
    assert hasattr(module, "__all__"), f"{module.__name__} has no __all__"
    for name in module.__all__:
        assert hasattr(module, name), f"{module.__name__}.__all__ names missing {name}"
