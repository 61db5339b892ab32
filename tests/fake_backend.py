"""A fake vLLM / llama-server: a real HTTP server on a loopback port for tests and manual runs.

It is the server side of the protocol, not a mock of our client. It replays the streaming formats
described in /work/shared/WIRE.md (vLLM and llama-server, Chat Completions and Responses) with
their quirks — vLLM's as vLLM 0.32 sends them, proven against recordings of the real server
(test_vllm_fidelity.py, tests/data/vllm/) — answers the side endpoints (/v1/models, /health, /props, /version, /tokenize), sends
flavor-correct error bodies, and records every request it gets.

    with FakeBackend("vllm") as fb:
        fb.script(Reply(text="hi", tool_calls=[ToolCall("bash", '{"command": "ls"}')]))
        ...point the client at fb.base_url...
        fb.last_body("/chat/completions")

By hand: python tests/fake_backend.py --flavor llamacpp --port 8080 --delay 0.02
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import socket
import string
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterator, Sequence

VLLM_VERSION = "0.32.0"
VLLM_FINGERPRINT = f"vllm-{VLLM_VERSION}-1a3ab007"  # on the last chunk before [DONE]
LLAMA_BUILD = "b6800-1a2b3c4d"
GPT_OSS_CALL_TOKEN = 200012  # vLLM reports the stop token id as stop_reason after a gpt-oss tool call

VLLM_TYPES = {400: "BadRequestError", 401: "UnauthorizedError", 404: "NotFoundError",
              500: "InternalServerError", 501: "NotImplementedError", 503: "ServiceUnavailableError"}
LLAMA_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
               500: "server_error", 501: "not_supported_error", 503: "unavailable_error"}


@dataclass
class ToolCall:
    """A tool call the fake model makes."""
    name: str
    arguments: str  # JSON text, sent in fragments
    # vLLM only: whether the first delta carries "arguments": "" (True) or no key (False, hermes-style).
    # None alternates by index: even indexes omit it, odd ones send "".
    first_delta_arguments: bool | None = None
    # vLLM chat, older engines and other parsers: the finish chunk carries the last argument fragment
    # (0.32 with the hermes parser sends it before, and the finish chunk's delta empty)
    fragment_in_finish: bool = False


@dataclass
class Reply:
    """One scripted model reply."""
    text: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None  # default: "tool_calls" if tool_calls else "stop"; "length" allowed
    chunk_chars: int = 4               # characters per content/reasoning/argument delta
    delay: float = 0.0                 # seconds slept before each delta
    reasoning_field: str | None = None  # chat only; default "reasoning" (vllm) / "reasoning_content" (llamacpp)
    status: int = 200                  # != 200: answer with this HTTP error instead
    error: dict | None = None          # full JSON body for that error (or for the in-band error)
    # N counts every streamed delta: reasoning, content, tool-call openings, argument fragments
    error_after: int | None = None     # after N deltas: in-band error event under HTTP 200, then end
    cut_after: int | None = None       # after N deltas: drop the TCP connection mid-body
    pings: bool = True                 # llamacpp chat: interleave ": ping" SSE comment lines
    stall_after: int | None = None     # after N deltas: send nothing more for stall_seconds (a stuck server)
    stall_seconds: float = 30.0
    header_delay: float = 0.0          # seconds before the response headers are sent (a slow server)
    raw_events: list[str] | None = None  # stream exactly these `data:` payloads (malformed servers), then end
    raw_body: str | bytes | None = None  # with status != 200: this body as it is (an HTML page from a proxy)
    headers: dict = field(default_factory=dict)  # extra response headers (a lying Content-Encoding ...)
    raw_stream: Iterator[bytes] | None = None  # stream exactly these bytes, one HTTP chunk each (hostile streams)
    content_type: str = "text/html"    # of raw_body
    # The answer as tokens (text, probability, {alternative: probability}): its content pieces, and the
    # token probabilities sent when a request asks for them (logprobs); else each piece is a token of 0.9
    tokens: list[tuple[str, float, dict[str, float]]] | None = None


# What vLLM 0.32 adds to each tool it echoes in a Responses object
_TOOL_ECHO = {"strict": None, "allowed_callers": None, "async": None, "defer_loading": None, "output_schema": None}


def overlapping(requests: Sequence[RecordedRequest]) -> bool:
    """Whether the requests were all in flight at one moment (sent in parallel, not one after another).
    A client may have read a stream's last event before the server's thread noted it finished: wait."""
    deadline = time.monotonic() + 5
    while any(r.finished is None for r in requests) and time.monotonic() < deadline:
        time.sleep(0.01)
    return max(r.started for r in requests) < min(r.finished for r in requests)


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict | None
    started: float
    finished: float | None = None
    raw: bytes = b""

    def header(self, name: str, default: str | None = None) -> str | None:
        """A header by case-insensitive name (clients differ in how they spell them)."""
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), default)


@dataclass
class _Piece:
    """One streamed delta: reasoning/content text, a tool call opening, or an argument fragment."""
    kind: str  # "reasoning" | "content" | "call" | "args" | "error"
    text: str = ""
    index: int = 0  # tool-call index


class _Cut(Exception):
    """Raised inside a stream to drop the connection."""


def _hex() -> str:
    return uuid.uuid4().hex


def _alnum(n: int = 32) -> str:
    return "".join(random.choices(string.ascii_letters + string.digits, k=n))


def _dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _data(obj) -> str:
    return f"data: {_dumps(obj)}\n\n"


def _split(text: str, n: int) -> list[str]:
    n = max(1, n)
    return [text[i:i + n] for i in range(0, len(text), n)]


def _text_of(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _items(body: dict) -> list[dict]:
    inp = body.get("input")
    items = body.get("messages") or (inp if isinstance(inp, list) else [])
    return [i for i in items if isinstance(i, dict)]


def prompt_tokens(body: dict) -> int:
    """The fake tokenizer: characters of all message/input text // 4, plus 10 for the template."""
    n = len(body["input"]) if isinstance(body.get("input"), str) else 0
    n += len(body.get("instructions") or "")
    for it in _items(body):
        n += len(_text_of(it.get("content"))) + len(it.get("arguments") or "")
        out = it.get("output")
        n += len(out if isinstance(out, str) else _text_of(out))
        for tc in it.get("tool_calls") or []:
            n += len((tc.get("function") or {}).get("arguments") or "")
    return n // 4 + 10


def render_template(messages: list, tools: list | None = None) -> str:
    """The fake model's chat template (ChatML-like), as /apply-template and vLLM's /tokenize use it;
    the tools offered come first, as real templates put them in the prompt."""
    head = f"<|im_start|>tools\n{_dumps(tools)}<|im_end|>\n" if tools else ""
    turns = "".join(f"<|im_start|>{m.get('role')}\n{_text_of(m.get('content'))}<|im_end|>\n"
                    for m in messages if isinstance(m, dict))
    return head + turns + "<|im_start|>assistant\n"


def _last_user_text(body: dict) -> str:
    if isinstance(body.get("input"), str):
        return body["input"]
    for it in reversed(_items(body)):
        if it.get("role") == "user":
            return _text_of(it.get("content"))
    return ""


class _Turn:
    """One generation: the reply cut into pieces, plus ids and usage numbers shared by all formats."""

    def __init__(self, backend: FakeBackend, reply: Reply, body: dict):
        self.reply, self.body = reply, body
        self.vllm = backend.flavor == "vllm"
        self.model = body.get("model") or backend.models[0]
        self.created = int(time.time())
        self.started = time.time()
        self.finish = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
        self.cmpl_id = "chatcmpl-" + (_hex() if self.vllm else _alnum())
        self.resp_id = "resp_" + (_hex() if self.vllm else _alnum())
        self.tool_ids = [("chatcmpl-tool-" + _hex()) if self.vllm else _alnum() for _ in reply.tool_calls]
        n = reply.chunk_chars
        self.pieces = [_Piece("reasoning", s) for s in _split(reply.reasoning, n)]
        self.pieces += [_Piece("content", t[0]) for t in reply.tokens] if reply.tokens is not None else \
            [_Piece("content", s) for s in _split(reply.text, n)]
        self.top = body.get("top_logprobs") if body.get("logprobs") or "message.output_text.logprobs" in (
            body.get("include") or ()) else None  # the alternatives asked for with each token
        self.probs = {i: t for i, t in enumerate(reply.tokens or ())}
        for i, tc in enumerate(reply.tool_calls):
            self.pieces.append(_Piece("call", index=i))
            self.pieces += [_Piece("args", s, i) for s in _split(tc.arguments, n)]
        self.prompt_tokens = prompt_tokens(body)
        self.completion_tokens = max(1, sum(p.kind != "call" for p in self.pieces))
        self.reasoning_tokens = sum(p.kind == "reasoning" for p in self.pieces)
        self.reasoning_field = reply.reasoning_field or ("reasoning" if self.vllm else "reasoning_content")

    def stream(self) -> Iterator[_Piece]:
        """Yield the pieces with the reply's delay; end with an "error" piece or a cut if scripted."""
        r = self.reply
        for i, p in enumerate(self.pieces + [None]):
            if r.cut_after is not None and (p is None or i >= r.cut_after):
                raise _Cut
            if r.error_after is not None and (p is None or i >= r.error_after):
                yield _Piece("error")
                return
            if r.stall_after is not None and i == r.stall_after:
                time.sleep(r.stall_seconds)
            if p is None:
                return
            if r.delay:
                time.sleep(r.delay)
            yield p

    def inband_error(self) -> dict:
        if self.reply.error is not None:
            return self.reply.error
        if self.vllm:
            return {"error": {"message": "fake in-band error", "type": "InternalServerError", "param": None,
                              "code": 500}}
        return {"error": {"code": 500, "message": "fake in-band error", "type": "server_error"}}

    def chat_usage(self) -> dict:
        u = {"prompt_tokens": self.prompt_tokens, "total_tokens": self.prompt_tokens + self.completion_tokens,
             "completion_tokens": self.completion_tokens}
        if not self.vllm:
            u["prompt_tokens_details"] = {"cached_tokens": 0}
        else:
            u["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
        return u

    def timings(self) -> dict:
        pn, cn = self.prompt_tokens, self.completion_tokens
        pms = pn * 0.25
        cms = max((time.time() - self.started) * 1000, cn * 8.0)
        return {"cache_n": 0, "prompt_n": pn, "prompt_ms": pms, "prompt_per_token_ms": pms / pn,
                "prompt_per_second": pn * 1000 / pms, "predicted_n": cn, "predicted_ms": cms,
                "predicted_per_token_ms": cms / cn, "predicted_per_second": cn * 1000 / cms}

    # -- Chat Completions ---------------------------------------------------------------------------

    def token_logprobs(self, p: _Piece, chat: bool) -> list[dict]:
        """The piece as one token with its log-probability and the ``top_logprobs`` alternatives asked for,
        in each server's shape (llama-server adds ids; vLLM's Responses deltas carry no bytes)."""
        index = [q for q in self.pieces if q.kind == "content"].index(p)
        text, prob, others = self.probs.get(index, (p.text, 0.9, {"…": 0.05}))
        top = sorted({text: prob, **others}.items(), key=lambda a: -a[1])[:self.top or 0]

        def entry(token: str, q: float) -> dict:
            out = {"token": token, "logprob": math.log(q)}
            if chat:
                out["bytes"] = list(token.encode())
            return out if self.vllm else {"id": 1000 + len(token), **out}

        return [{**entry(text, prob), "top_logprobs": [entry(t, q) for t, q in top]}]

    def chat_delta(self, p: _Piece) -> dict:
        if p.kind == "reasoning":
            return {self.reasoning_field: p.text}
        if p.kind == "content":
            self.piece = p  # the token its logprobs describe
            return {"content": p.text}
        if p.kind == "args":
            return {"tool_calls": [{"index": p.index, "function": {"arguments": p.text}}]}
        tc = self.reply.tool_calls[p.index]
        if not self.vllm:  # llama-server: "arguments" always present on the first delta
            return {"tool_calls": [{"index": p.index, "id": self.tool_ids[p.index], "type": "function",
                                    "function": {"name": tc.name, "arguments": ""}}]}
        fn = {"name": tc.name}
        with_args = tc.first_delta_arguments
        if with_args if with_args is not None else p.index % 2 == 1:
            fn["arguments"] = ""
        return {"tool_calls": [{"id": self.tool_ids[p.index], "type": "function", "index": p.index,
                                "function": fn}]}

    def chat_logprobs(self, delta: dict) -> dict | None:
        """A chunk's logprobs: the content token it carries, when they were asked for."""
        if self.top is None or not delta.get("content"):
            return None
        return {"content": self.token_logprobs(self.piece, True)}

    def chat_stream(self) -> Iterator[str]:
        include_usage = bool((self.body.get("stream_options") or {}).get("include_usage"))
        if self.vllm:
            head = {"id": self.cmpl_id, "object": "chat.completion.chunk", "created": self.created,
                    "model": self.model}

            def chunk(delta, finish=None, final=False):
                if "tool_calls" in delta:  # vLLM 0.32 sets content to null beside a tool-call delta
                    delta = {"content": None, **delta}
                choice = {"index": 0, "delta": delta, "logprobs": self.chat_logprobs(delta), "finish_reason": finish}
                if final:
                    choice["stop_reason"] = GPT_OSS_CALL_TOKEN if finish == "tool_calls" else None
                if "role" not in delta:
                    choice["token_ids"] = None
                return {**head, "choices": [choice]}
        else:
            head = {"created": self.created, "id": self.cmpl_id, "model": self.model,
                    "system_fingerprint": LLAMA_BUILD, "object": "chat.completion.chunk"}

            def chunk(delta, finish=None, final=False):
                logprobs = self.chat_logprobs(delta)
                return {"choices": [{"finish_reason": finish, "index": 0, "delta": delta,
                                     **({"logprobs": logprobs} if logprobs else {})}], **head}

        pings = not self.vllm and self.reply.pings
        first = chunk({"role": "assistant", "content": "" if self.vllm else None})
        yield _data({**first, "prompt_token_ids": None, "prompt_text": None} if self.vllm else first)
        if pings:
            yield ": ping\n\n"
        # vLLM sends the last token in the finish chunk when cut by length (older engines and other
        # parsers: also a call's last argument fragment)
        last = self.pieces[-1] if self.pieces else None
        hold = self.vllm and last is not None and (self.finish == "length" or (
            last.kind == "args" and self.reply.tool_calls[last.index].fragment_in_finish))
        held = None
        for n, p in enumerate(self.stream(), 1):
            if p.kind == "error":
                if held is not None:
                    yield _data(chunk(held))
                yield _data(self.inband_error())
                if self.vllm:  # recent llama-server builds end the stream right after the error
                    yield "data: [DONE]\n\n"
                return
            if hold and p is last:
                held = self.chat_delta(p)
                continue
            yield _data(chunk(self.chat_delta(p)))
            if pings and n % 3 == 0:
                yield ": ping\n\n"
        final = held if held is not None else {}
        out = [chunk(final, self.finish, final=True)]
        if include_usage:
            out.append({"choices": [], **head, "usage": self.chat_usage()} if not self.vllm
                       else {**head, "choices": [], "usage": self.chat_usage()})
        if not self.vllm:
            out[-1]["timings"] = self.timings()
        else:
            out[-1]["system_fingerprint"] = VLLM_FINGERPRINT
        for obj in out:
            yield _data(obj)
        yield "data: [DONE]\n\n"

    def chat_full(self) -> dict:
        calls = [{"id": self.tool_ids[i], "type": "function", "function": {"name": tc.name, "arguments": tc.arguments}}
                 for i, tc in enumerate(self.reply.tool_calls)]
        text = self.reply.text or None
        if self.vllm:
            msg = {"role": "assistant", "content": text, "refusal": None, "annotations": None, "audio": None,
                   "function_call": None, "tool_calls": calls, self.reasoning_field: self.reply.reasoning or None}
            return {"id": self.cmpl_id, "object": "chat.completion", "created": self.created, "model": self.model,
                    "choices": [{"index": 0, "message": msg, "logprobs": None, "finish_reason": self.finish,
                                 "stop_reason": None}],
                    "service_tier": None, "system_fingerprint": None,
                    "usage": {**self.chat_usage(), "prompt_tokens_details": None},
                    "prompt_logprobs": None, "kv_transfer_params": None}
        msg = {"role": "assistant", "content": text if text or not calls else None}
        if self.reply.reasoning:
            msg[self.reasoning_field] = self.reply.reasoning
        if calls:
            msg["tool_calls"] = calls
        return {"choices": [{"finish_reason": self.finish, "index": 0, "message": msg}], "created": self.created,
                "model": self.model, "system_fingerprint": LLAMA_BUILD, "object": "chat.completion",
                "usage": self.chat_usage(), "id": self.cmpl_id, "timings": self.timings()}

    # -- Responses ----------------------------------------------------------------------------------

    def response_obj(self, status: str, output: list, usage: dict | None) -> dict:
        if not self.vllm:
            if status == "in_progress":  # llama-server's created/in_progress events carry just these
                return {"id": self.resp_id, "object": "response", "status": status}
            return {"id": self.resp_id, "object": "response", "created_at": self.created, "status": status,
                    "model": self.model, "output": output, "usage": usage}
        b = self.body
        incomplete = status == "incomplete"
        return {"id": self.resp_id, "created_at": self.created,
                "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
                "instructions": b.get("instructions"), "metadata": None, "model": self.model,
                "object": "response", "output": output, "parallel_tool_calls": True,
                "temperature": b.get("temperature", 1.0), "tool_choice": b.get("tool_choice", "auto"),
                "tools": [{**t, **_TOOL_ECHO} for t in b.get("tools", [])], "top_p": b.get("top_p", 1.0),
                "background": False,
                "max_output_tokens": b.get("max_output_tokens"), "max_tool_calls": None,
                "previous_response_id": None, "prompt": None, "reasoning": None, "service_tier": "auto",
                "status": status, "text": None, "top_logprobs": None, "truncation": "disabled",
                "usage": usage, "user": None, "presence_penalty": b.get("presence_penalty", 0.0),
                "frequency_penalty": b.get("frequency_penalty", 0.0), "kv_transfer_params": None,
                "ec_transfer_params": None, "input_messages": None, "output_messages": None}

    def response_usage(self) -> dict:
        p, c = self.prompt_tokens, self.completion_tokens
        if not self.vllm:
            return {"input_tokens": p, "output_tokens": c, "total_tokens": p + c,
                    "input_tokens_details": {"cached_tokens": 0}}
        return {"input_tokens": p, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0,
                                                             "input_tokens_per_turn": [], "cached_tokens_per_turn": []},
                "output_tokens": c,
                "output_tokens_details": {"reasoning_tokens": self.reasoning_tokens, "tool_output_tokens": 0,
                                          "output_tokens_per_turn": [], "tool_output_tokens_per_turn": []},
                "total_tokens": p + c}

    def output_item(self, it: dict, done: bool, item_id: str | None = None) -> dict:
        """An output item as output_item.added (done=False) or .done / the final response shows it."""
        iid = item_id or it["id"]
        status = "completed" if done else "in_progress"
        if it["kind"] == "reasoning":
            content = [{"text": it["text"], "type": "reasoning_text"}] if done else (None if self.vllm else [])
            item = {"id": iid, "summary": [], "type": "reasoning", "content": content,
                    "encrypted_content": None if self.vllm else ""}
            return {**item, "status": status} if self.vllm or not done else item
        if it["kind"] == "message":
            content = [self.text_part(it["text"], done)] if done else []
            item = {"id": iid, "content": content, "role": "assistant", "status": status, "type": "message"}
            return {**item, "phase": None} if self.vllm else item
        tc = self.reply.tool_calls[it["index"]]
        item = {"arguments": it["text"] if done else "", "call_id": it["call_id"], "name": tc.name,
                "type": "function_call"}
        if self.vllm:
            return {**item, "id": iid, "async": None, "caller": None, "namespace": None, "status": status}
        return {**item, "status": status}

    def text_part(self, text: str, done: bool) -> dict:
        if self.vllm:
            return {"annotations": [], "text": text, "type": "output_text", "logprobs": None if done else []}
        return {"type": "output_text", "annotations": [], "logprobs": [], "text": text} if done else \
            {"type": "output_text", "text": ""}

    def responses_stream(self) -> Iterator[str]:
        seq = itertools.count()
        v = self.vllm

        def ev(type_: str, **fields) -> str:
            obj = {"type": type_, **fields}
            if v:
                obj["sequence_number"] = next(seq)
            return f"event: {type_}\ndata: {_dumps(obj)}\n\n"

        def where(it: dict, content: bool = True) -> dict:
            """The item_id / output_index / content_index fields, as each server sends them."""
            if not v:
                return {"item_id": it["id"]}
            loc = {"item_id": it["id"], "output_index": it["output_index"]}
            return {**loc, "content_index": it["content_index"]} if content else loc

        def open_(it: dict) -> Iterator[str]:
            yield ev("response.output_item.added", **({"output_index": it["output_index"]} if v else {}),
                     item=self.output_item(it, False))
            if it["kind"] == "reasoning" and v:  # vLLM 0.32: a content part (older engines: reasoning_part)
                yield ev("response.content_part.added", **where(it), part={"text": "", "type": "reasoning_text"})
            elif it["kind"] == "message":
                yield ev("response.content_part.added", **where(it), part=self.text_part("", False))

        def delta(it: dict, text: str) -> str:
            if it["kind"] == "reasoning":
                return ev("response.reasoning_text.delta", **where(it), delta=text)
            if it["kind"] == "message":
                tokens = self.token_logprobs(self.piece, False) if self.top is not None else []
                return ev("response.output_text.delta", **where(it), delta=text, **({"logprobs": tokens} if v else {}))
            return ev("response.function_call_arguments.delta", **where(it, False), delta=text)

        def close(it: dict) -> Iterator[str]:
            text = it["text"]
            if it["kind"] == "reasoning" and v:
                yield ev("response.reasoning_text.done", **where(it), text=text)
                yield ev("response.content_part.done", **where(it), part={"text": text, "type": "reasoning_text"})
            elif it["kind"] == "message":
                yield ev("response.output_text.done", **where(it), text=text, **({"logprobs": []} if v else {}))
                yield ev("response.content_part.done", **where(it), part=self.text_part(text, True))
            elif it["kind"] == "call" and v:
                yield ev("response.function_call_arguments.done", **where(it, False), arguments=text,
                         name=self.reply.tool_calls[it["index"]].name)
            yield ev("response.output_item.done", **({"output_index": it["output_index"]} if v else {}),
                     item=self.output_item(it, True))

        yield ev("response.created", response=self.response_obj("in_progress", [], None))
        yield ev("response.in_progress", response=self.response_obj("in_progress", [], None))
        items: list[dict] = []
        for p in self.stream():
            if p.kind == "error":
                err = self.inband_error()
                if not v:  # llama-server sends the error as a bare data line and stops
                    yield _data(err)
                elif self.reply.error is not None:
                    yield f"event: error\ndata: {_dumps(err)}\n\n"
                else:
                    e = err["error"]
                    yield ev("error", code=e["type"], message=e["message"], param=None)
                return
            prev = items[-1] if items else None
            it = self.item_for(p, items)
            if it is not prev:
                if prev is not None and v:  # llama-server closes every item only at the end
                    yield from close(prev)
                yield from open_(it)
            if p.kind != "call":
                it["text"] += p.text
                self.piece = p
                yield delta(it, p.text)
        for it in items[-1:] if v else items:
            yield from close(it)
        yield ev("response.completed", response=self.responses_final(items))

    def responses_final(self, items: list[dict]) -> dict:
        # vLLM rebuilds the final output separately, so its item ids differ from the streamed ones
        output = [self.output_item(it, True, ("fc_" if it["kind"] == "call" else "msg_") + _hex() if self.vllm
                                   else None) for it in items]
        status = "incomplete" if self.vllm and self.finish == "length" else "completed"
        return self.response_obj(status, output, self.response_usage())

    def item_for(self, p: _Piece, items: list[dict]) -> dict:
        """The output item piece p belongs to: the last of items, or a new one appended to them."""
        kind = {"reasoning": "reasoning", "content": "message"}.get(p.kind, "call")
        if items and items[-1]["kind"] == kind and items[-1]["index"] == p.index:
            return items[-1]
        it = {"kind": kind, "index": p.index, "text": "", "output_index": len(items),
              "content_index": sum(i["kind"] != "call" for i in items)}  # vLLM never resets it between items
        if kind == "call":
            it["call_id"] = "call_" + _hex() if self.vllm else "fc_" + self.tool_ids[p.index]
            it["id"] = "fc_" + _hex() if self.vllm else it["call_id"]
        elif self.vllm:
            it["id"] = ("rs_" if kind == "reasoning" else "msg_") + _hex()
        else:
            it["id"] = ("rs_" if kind == "reasoning" else "msg_") + _alnum()
        items.append(it)
        return it

    def responses_full(self) -> dict:
        items: list[dict] = []
        for p in self.pieces:
            it = self.item_for(p, items)
            if p.kind != "call":
                it["text"] += p.text
        res = self.responses_final(items)
        if not self.vllm:
            res["completed_at"] = res["created_at"]
        return res


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    backend: FakeBackend

    def handle_error(self, request, client_address):
        # a client that hangs up (Ctrl-C) is normal here: no traceback
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # chunked streams, so that a cut body is detectably incomplete
    server: _Server

    def version_string(self) -> str:
        return "uvicorn" if self.server.backend.flavor == "vllm" else "llama.cpp"

    def log_message(self, format, *args) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.backend._conns.add(self.connection)

    def finish(self) -> None:
        self.server.backend._conns.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raw = b""
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                raw += self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return raw
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _dispatch(self) -> None:
        b = self.server.backend
        raw = self._read_body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        rec = RecordedRequest(self.command, self.path, dict(self.headers.items()), body, time.time(), raw=raw)
        with b._lock:
            b.requests.append(rec)
        self._rec = rec
        if b.verbose:
            print(f"{self.command} {self.path}", file=sys.stderr, flush=True)
        try:
            self._route(b, self.path.split("?")[0], body)
        except _Cut:
            self._drop()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True
        finally:
            rec.finished = rec.finished or time.time()

    # -- plumbing -----------------------------------------------------------------------------------

    def _echo(self, text: str) -> str:
        """With echo_auth, "{auth}" in what is sent becomes the request's Authorization header, as
        a careless server's error message shows it."""
        if not self.server.backend.echo_auth:
            return text
        return text.replace("{auth}", self.headers.get("Authorization") or "(no Authorization header)")

    def _send_json(self, status: int, obj) -> None:
        data = self._echo(_dumps(obj)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self._rec.finished = time.time()  # before the last byte, so a client that got it sees it set
        self.wfile.write(data)

    def _send_raw(self, status: int, text: str | bytes, content_type: str, headers: dict | None = None) -> None:
        data = self._echo(text).encode() if isinstance(text, str) else text
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self._rec.finished = time.time()
        self.wfile.write(data)

    def _drip(self, data: bytes, every: float) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        for byte in data:
            self.wfile.write(bytes([byte]))
            self.wfile.flush()
            time.sleep(every)

    def _send_error(self, status: int, message: str, etype: str | None = None, **extra) -> None:
        if self.server.backend.flavor == "vllm":
            err = {"message": message, "type": etype or VLLM_TYPES.get(status, "BadRequestError"),
                   "param": extra.get("param"), "code": status}
        else:
            err = {"code": status, "message": message, "type": etype or LLAMA_TYPES.get(status, "server_error"),
                   **extra}
        self._send_json(status, {"error": err})

    def _not_found(self) -> None:
        if self.server.backend.flavor == "vllm":
            self._send_json(404, {"detail": "Not Found"})  # FastAPI's own 404
        else:
            self._send_error(404, "File Not Found")

    def _stream(self, events: Iterator[str], headers: dict | None = None) -> None:
        self.send_response(200)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        vllm = self.server.backend.flavor == "vllm"
        self.send_header("Content-Type", "text/event-stream; charset=utf-8" if vllm else "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for text in events:
            data = self._echo(text).encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))  # one HTTP chunk per event: flushed at once
        self._rec.finished = time.time()
        self.wfile.write(b"0\r\n\r\n")

    def _stream_bytes(self, chunks: Iterator[bytes], headers: dict) -> None:
        self.send_response(200)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for data in chunks:
            if data:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self._rec.finished = time.time()
        self.wfile.write(b"0\r\n\r\n")

    def _drop(self) -> None:
        """Close mid-body without the terminating chunk."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- endpoints ----------------------------------------------------------------------------------

    def _route(self, b: FakeBackend, path: str, body) -> None:
        vllm = b.flavor == "vllm"
        if not vllm:
            path = {"/models": "/v1/models", "/chat/completions": "/v1/chat/completions",
                    "/responses": "/v1/responses"}.get(path, path)  # llama-server also serves these bare
        if b.api_key and path.startswith("/v1/") and self.headers.get("Authorization") != f"Bearer {b.api_key}":
            if vllm:
                return self._send_json(401, {"error": "Unauthorized {auth}" if b.echo_auth else "Unauthorized"})
            return self._send_error(401, "Invalid API Key {auth}" if b.echo_auth else "Invalid API Key")
        if b.loading and not vllm:
            return self._send_error(503, "Loading model")
        if self.command == "GET":
            if path == "/v1/models":
                if b.models_drip:
                    return self._drip(_dumps(b._models_json()).encode(), b.models_drip)
                if b.raw_models is not None:
                    return self._send_raw(200, b.raw_models, "application/json")
                return self._send_json(200, b._models_json())
            if path == "/health":
                if vllm:
                    self.send_response(200)
                    self.send_header("Content-Length", "0")
                    self._rec.finished = time.time()
                    return self.end_headers()
                return self._send_json(200, {"status": "ok"})
            if path == "/props" and not vllm:
                if b.raw_props is not None:
                    return self._send_raw(200, b.raw_props, "application/json")
                return self._send_json(200, b._props_json())
            if path == "/lora-adapters" and not vllm:
                return self._send_json(200, [{"id": i, "path": f"/models/{name}.gguf", "scale": 1.0, "task_name": "",
                                              "prompt_prefix": ""} for i, name in enumerate(b.adapters)])
            if path == "/version" and vllm:
                return self._send_json(200, {"version": VLLM_VERSION})
            return self._not_found()
        if path == "/tokenize":
            return self._tokenize(b, body or {})
        if path == "/detokenize" and vllm:  # the fake's tokens for a chat are its characters
            return self._send_json(200, {"prompt": "".join(chr(i) for i in (body or {}).get("tokens", []))})
        if path == "/apply-template" and not vllm:
            body = body or {}  # the chat request's own parser: its tools are rendered too
            return self._send_json(200, {"prompt": render_template(body.get("messages") or [], body.get("tools"))})
        api = {"/v1/chat/completions": "chat", "/v1/responses": "responses"}.get(path)
        if api is None or (api == "responses" and not b.responses_api):
            return self._not_found()
        if not isinstance(body, dict):
            return self._send_error(400, "Invalid JSON body")
        problem = self._validate(b, api, body)
        if problem:
            return self._send_error(*problem[:2], **problem[2])
        reply = b._next_reply(body)
        if reply.header_delay:
            time.sleep(reply.header_delay)
        if reply.status != 200:
            if reply.raw_body is not None:
                return self._send_raw(reply.status, reply.raw_body, reply.content_type, reply.headers)
            if reply.error is not None:
                return self._send_json(reply.status, reply.error)
            return self._send_error(reply.status, HTTPStatus(reply.status).phrase)
        if reply.raw_stream is not None:
            return self._stream_bytes(reply.raw_stream, reply.headers)
        if reply.raw_events is not None and body.get("stream"):
            return self._stream((f"data: {e}\n\n" for e in reply.raw_events), reply.headers)
        t = _Turn(b, reply, body)
        if body.get("stream"):
            return self._stream(t.chat_stream() if api == "chat" else t.responses_stream())
        # non-streaming: the same reply, delivered at once
        if reply.delay:
            time.sleep(reply.delay * len(t.pieces))
        if reply.error_after is not None:
            err = t.inband_error()
            code = (err.get("error") or {}).get("code") if isinstance(err.get("error"), dict) else None
            return self._send_json(code if isinstance(code, int) else 500, err)
        if reply.cut_after is not None:
            data = _dumps(t.chat_full() if api == "chat" else t.responses_full()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[:len(data) // 2])
            raise _Cut
        self._send_json(200, t.chat_full() if api == "chat" else t.responses_full())

    def _validate(self, b: FakeBackend, api: str, body: dict) -> tuple | None:
        """The request checks the real servers make before generating: (status, message, extra) or None."""
        for name in sorted(b.rejects & set(body)):
            return 400, f"Unrecognized request argument supplied: {name}", {}
        ctx, p = b.context_window, prompt_tokens(body)
        if b.flavor == "llamacpp":  # llama-server ignores "model"
            if body.get("grammar") and body.get("tools"):
                return 400, "Cannot use custom grammar constraints with tools.", {}
            if body.get("logprobs") and body.get("tools") and body.get("stream"):
                return 400, "logprobs is not supported with tools + stream", {}
            if api == "responses" and body.get("previous_response_id"):
                return 400, "llama.cpp does not support 'previous_response_id'.", {}
            if p > ctx:
                return 400, f"request ({p} tokens) exceeds the available context size ({ctx} tokens), try " \
                            f"increasing it", {"etype": "exceed_context_size_error", "n_prompt_tokens": p, "n_ctx": ctx}
            return None
        model = body.get("model")
        if model is not None and model not in b.models + b.adapters:
            return 404, f"The model `{model}` does not exist.", {"param": "model"}
        if api == "responses":
            if body.get("previous_response_id"):
                return 404, f"Response with id '{body['previous_response_id']}' not found.", \
                    {"etype": "invalid_request_error"}
            seen = set()
            for it in _items(body):
                if it.get("type") == "function_call":
                    seen.add(it.get("call_id"))
                elif it.get("type") == "function_call_output" and it.get("call_id") not in seen:
                    return 400, f"No call message found for {it.get('call_id')}", {}
        elif body.get("tools") and not b.tool_flags and body.get("tool_choice", "auto") in ("auto", None):
            return 400, '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set', {}
        q = body.get("max_output_tokens") if api == "responses" else \
            body.get("max_completion_tokens", body.get("max_tokens"))
        q = q or 0
        if p + q > ctx:
            return 400, (f"This model's maximum context length is {ctx} tokens. However, you requested {p + q} "
                         f"tokens ({p} in the messages, {q} in the completion). Please reduce the length of the "
                         f"messages or completion."), {}
        return None

    def _tokenize(self, b: FakeBackend, body: dict) -> None:
        if b.flavor == "vllm" and "messages" in body:  # a chat: its template rendered, a token per character
            tokens = [ord(c) for c in render_template(body["messages"], body.get("tools"))]
            return self._send_json(200, {"count": len(tokens), "max_model_len": b.context_window, "tokens": tokens,
                                         "token_strs": None})
        if b.flavor == "vllm":
            n = (len(body.get("prompt") or "") + 3) // 4
            return self._send_json(200, {"count": n, "max_model_len": b.context_window,
                                         "tokens": list(range(1000, 1000 + n)), "token_strs": None})
        text = body.get("content") or ""
        if isinstance(text, list):
            text = "".join(x for x in text if isinstance(x, str))
        pieces = _split(text, 4)
        if body.get("with_pieces"):
            return self._send_json(200, {"tokens": [{"id": 1000 + i, "piece": s} for i, s in enumerate(pieces)]})
        self._send_json(200, {"tokens": [1000 + i for i in range(len(pieces))]})


class FakeBackend:
    """A fake vLLM ("vllm") or llama-server ("llamacpp") on 127.0.0.1; see the module docstring."""

    def __init__(self, flavor: str = "vllm", models: Sequence[str] = ("fake/persona-20b",),
                 context_window: int = 131072, n_ctx_train: int = 131072, responses_api: bool = True,
                 tool_flags: bool = True, *, host: str = "127.0.0.1", port: int = 0,
                 api_key: str | None = None):
        if flavor not in ("vllm", "llamacpp"):
            raise ValueError(f"unknown flavor {flavor!r}")
        self.flavor, self.models = flavor, list(models)
        self.context_window, self.n_ctx_train = context_window, n_ctx_train
        self.responses_api, self.tool_flags = responses_api, tool_flags
        self.host, self.port = host, port
        self.api_key = api_key      # None: accept any (or no) bearer token
        self.loading = False        # llamacpp: True answers 503 "Loading model" everywhere
        self.echo_delay = 0.0       # delay of the default echo replies
        # With an empty script: a function of the request body giving the reply (a model whose
        # answer depends on the persona, say); None echoes.
        self.responder: Callable[[dict], Reply] | None = None
        self.verbose = False        # print each request line to stderr
        self.rejects: set[str] = set()  # request fields answered with a 400, as strict servers do
        self.raw_models: str | None = None  # /v1/models answers this text instead (a lying server)
        self.raw_props: str | None = None  # llamacpp /props answers this text instead
        self.models_drip: float = 0.0  # send /v1/models one byte every this many seconds (a stuck proxy)
        self.echo_auth = False  # "{auth}" in anything sent becomes the request's Authorization header
        # LoRA adapters by name: llama-server lists them at /lora-adapters (a request's "lora" field sets
        # their scales); vLLM serves each as a model of its own whose parent is the base model
        self.adapters: list[str] = []
        self.requests: list[RecordedRequest] = []
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""
        self.root_url = ""

    def start(self) -> FakeBackend:
        self._server = _Server((self.host, self.port), _Handler)
        self._server.backend = self
        # socketserver's accept blocks once select() has said a connection waits: if none is there by
        # then, the serving thread hung, and stop() with it (seen once in a full serial run); with a
        # timeout that accept ends and the loop goes on (accepted connections stay blocking)
        self._server.socket.settimeout(1.0)
        self.port = self._server.server_address[1]
        self.root_url = f"http://{self.host}:{self.port}"
        self.base_url = self.root_url + "/v1"
        # a short poll: shutdown() waits up to one interval (the default 0.5 s, paid by every test)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01},
                                        name="fake-backend", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        for conn in list(self._conns):  # keep-alive and in-flight connections would linger otherwise
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._server.server_close()
        self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> FakeBackend:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def script(self, *replies: Reply) -> None:
        """Queue replies, consumed one per generation request (chat or responses)."""
        with self._lock:
            self._script.extend(replies)

    @property
    def pending(self) -> int:
        """Scripted replies not consumed yet."""
        return len(self._script)

    def generations(self) -> list[RecordedRequest]:
        """The requests that asked for a reply (the side endpoints /models, /tokenize, ... left out)."""
        with self._lock:
            return [r for r in self.requests if r.path.split("?")[0].endswith(("/chat/completions", "/responses"))]

    def last_body(self, path_suffix: str = "") -> dict:
        with self._lock:
            for r in reversed(self.requests):
                if r.path.split("?")[0].endswith(path_suffix):
                    return r.body
        raise LookupError(f"no request whose path ends with {path_suffix!r}")

    def _next_reply(self, body: dict) -> Reply:
        with self._lock:
            if self._script:
                return self._script.popleft()
        if self.responder is not None:
            return self.responder(body)
        return Reply(text="Echo: " + _last_user_text(body), delay=self.echo_delay)

    def _models_json(self) -> dict:
        now = int(time.time())
        if self.flavor == "vllm":
            return {"object": "list", "data": [
                {"id": m, "object": "model", "created": now, "owned_by": "vllm", "root": m, "parent": None,
                 "max_model_len": self.context_window,
                 "permission": [{"id": "modelperm-" + _hex(), "object": "model_permission", "created": now,
                                 "allow_create_engine": False, "allow_sampling": True, "allow_logprobs": True,
                                 "allow_search_indices": False, "allow_view": True, "allow_fine_tuning": False,
                                 "organization": "*", "group": None, "is_blocking": False}]}
                for m in self.models] + [
                {"id": name, "object": "model", "created": now, "owned_by": "vllm", "root": f"/adapters/{name}",
                 "parent": self.models[0], "max_model_len": self.context_window, "permission": []}
                for name in self.adapters]}
        return {"models": [{"name": m, "model": m, "modified_at": "", "size": "", "digest": "", "type": "model",
                            "description": "", "tags": [""], "capabilities": ["completion"], "parameters": "",
                            "details": {"parent_model": "", "format": "gguf", "family": "", "families": [""],
                                        "parameter_size": "", "quantization_level": ""}} for m in self.models],
                "object": "list",
                "data": [{"id": m, "object": "model", "created": now, "owned_by": "llamacpp",
                          "meta": {"vocab_type": 2, "n_vocab": 128256, "n_ctx_train": self.n_ctx_train,
                                   "n_embd": 4096, "n_params": 8030261248, "size": 4920733696}}
                         for m in self.models]}

    def _props_json(self) -> dict:
        return {"default_generation_settings": {
                    "id": 0, "id_task": -1, "n_ctx": self.context_window, "speculative": False,
                    "is_processing": False,
                    "params": {"n_predict": -1, "temperature": 0.8, "top_k": 40, "top_p": 0.95, "min_p": 0.05,
                               "seed": 4294967295, "stream": True, "reasoning_format": "deepseek"}},
                "total_slots": 1, "model_alias": self.models[0], "model_path": self.models[0],
                "modalities": {"vision": False, "audio": False}, "chat_template": "{# fake #}",
                "bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "build_info": LLAMA_BUILD,
                "webui": True}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Serve a fake vLLM / llama-server until Ctrl-C.")
    ap.add_argument("--flavor", choices=["vllm", "llamacpp"], default="vllm")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--delay", type=float, default=0.0, help="seconds between streamed deltas")
    ap.add_argument("--model", action="append", help="served model id (repeatable)")
    ap.add_argument("--context-window", type=int, default=131072)
    ap.add_argument("--api-key")
    ap.add_argument("--no-responses", action="store_true", help="/v1/responses answers 404")
    ap.add_argument("--no-tool-flags", action="store_true", help="vllm: requests with tools get the 400")
    ap.add_argument("-v", "--verbose", action="store_true", help="print each request line")
    a = ap.parse_args(argv)
    fb = FakeBackend(a.flavor, a.model or ["fake/persona-20b"], context_window=a.context_window,
                     responses_api=not a.no_responses, tool_flags=not a.no_tool_flags, host=a.host, port=a.port,
                     api_key=a.api_key)
    fb.echo_delay, fb.verbose = a.delay, a.verbose
    fb.start()
    print(f"fake {a.flavor} backend serving {fb.models} at {fb.base_url} (Ctrl-C to stop)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fb.stop()


if __name__ == "__main__":
    main()
