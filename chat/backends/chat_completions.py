"""/v1/chat/completions: vLLM's and llama-server's streams (WIRE.md) into events."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from ..conversation import Message
from ..errors import StreamCut
from ..events import Event, Finish, Logprobs, ReasoningDelta, TextDelta, ToolCall, Usage
from ..wire import count, load_object, obj, seq, text
from ..params import split
from .base import Request, ToolSpec, as_sent, in_band_error, open_sse, token_logprobs, tool_choice
from .think import ThinkSplitter

__all__ = ["ChatCompletionsBackend", "ChatStreamParser", "chat_tools", "to_chat_messages"]



def to_chat_messages(system: str | None, messages: list[Message]) -> list[dict]:
    out = [{"role": "system", "content": system}] if system is not None else []
    for m in messages:
        if m.role == "tool":
            out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content})
        elif m.role == "assistant" and m.tool_calls:
            out.append({
                "role": "assistant",
                "content": m.content or None,
                "tool_calls": [
                    {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                    for c in m.tool_calls
                ],
            })
        else:  # reasoning is never sent back
            out.append({"role": m.role, "content": m.content})
    return out


def chat_tools(tools: list[ToolSpec]) -> list[dict]:
    """Tools in the Chat Completions shape (also what a chat template renders from)."""
    return [{"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
            for t in tools]


class ChatStreamParser:
    """Chunks (parsed JSON) in, events out. ``close()`` ends the reply: buffered inline reasoning,
    the assembled tool calls, usage and the finish reason."""

    def __init__(self) -> None:
        self._think = ThinkSplitter()
        self._calls: dict[int, list] = {}  # index -> [id, name, [argument fragments]] (joined once: linear)
        self._usage = Usage()
        self._finish: str | None = None

    def _content(self, text: str) -> list[Event]:
        return [ReasoningDelta(p) if r else TextDelta(p) for r, p in self._think.feed(text)]

    def feed(self, chunk: dict) -> list[Event]:
        if "error" in chunk:
            raise in_band_error(chunk["error"])
        events: list[Event] = []
        for choice in seq(chunk.get("choices"), "choices"):
            choice = obj(choice, "a choice")
            delta = obj(choice.get("delta"), "a delta")
            # vLLM renamed reasoning_content to reasoning; llama-server still uses the old name
            reasoning = text(delta.get("reasoning"), "reasoning") or text(delta.get("reasoning_content"), "reasoning")
            content = text(delta.get("content"), "content")
            calls = seq(delta.get("tool_calls"), "tool_calls")
            for call in calls:
                obj(call, "a tool call")
            events += self.delta(reasoning, content, calls, text(choice.get("finish_reason"), "finish_reason"))
            if content:  # the answer's tokens: not a reasoning piece's, nor the stop token's (vLLM sends it alone)
                tokens = token_logprobs(obj(choice.get("logprobs"), "logprobs").get("content"))
                if tokens:
                    events.append(Logprobs(tokens))
        self.figures(chunk.get("usage"), chunk.get("timings"))
        return events

    def delta(self, reasoning: str | None, content: str | None, calls: list = (), finish: str | None = None) -> list[Event]:
        """A choice's delta, its fields already read (a bulk reader joins a read's deltas into one)."""
        events: list[Event] = [ReasoningDelta(reasoning)] if reasoning else []
        if content:
            events.extend(self._content(content))
        for call in calls:
            self._tool_delta(call)
        if finish:  # this chunk's delta was processed first: it may hold the last fragment
            self._finish = finish
        return events

    def figures(self, usage: object, timings: object) -> None:
        """A chunk's usage (the counts) and timings (llama-server's speed), where it has them."""
        usage = obj(usage, "usage")
        if usage:
            self._usage.prompt_tokens = count(usage.get("prompt_tokens"), "prompt_tokens")
            self._usage.completion_tokens = count(usage.get("completion_tokens"), "completion_tokens")
        speed = count(obj(timings, "timings").get("predicted_per_second"), "timings")
        if speed:
            self._usage.tokens_per_second = speed

    def _tool_delta(self, call: dict) -> None:
        index = count(call.get("index"), "a tool call's index")
        slot = self._calls.setdefault(len(self._calls) if index is None else index, ["", "", []])
        call_id = text(call.get("id"), "a tool call's id")
        if call_id:
            slot[0] = call_id
        function = obj(call.get("function"), "a tool call's function")
        name = text(function.get("name"), "a tool call's name")
        if name:
            slot[1] = name
        slot[2].append(text(function.get("arguments"), "a tool call's arguments"))  # absent on hermes-style first deltas

    @property
    def finished(self) -> bool:
        return self._finish is not None

    def close(self) -> list[Event]:
        events = [ReasoningDelta(p) if r else TextDelta(p) for r, p in self._think.flush()]
        for index in sorted(self._calls):
            call_id, name, arguments = self._calls[index]
            events.append(ToolCall(call_id or f"call_{index}", name, "".join(arguments)))
        if self._usage.prompt_tokens is not None or self._usage.tokens_per_second is not None:
            events.append(self._usage)
        reason = self._finish or ("tool_calls" if self._calls else "stop")
        events.append(Finish(reason))
        return events


class ChatCompletionsBackend:
    api = "chat"

    def __init__(self, client) -> None:
        self._client = client  # an openai.OpenAI
        self.unsupported: set[str] = set()  # sampling parameters the server rejected: no longer sent
        self.last_sent: tuple[str, dict] | None = None  # (path, JSON) of the last request, for /raw
        self.last_request: Request | None = None  # and the request itself, for /prompt

    def body(self, request: Request) -> dict:
        body = {"model": request.model, "messages": [], "stream": True, "stream_options": {"include_usage": True}}
        # The history travels in extra_body: the SDK walks typed arguments item by item (~0.3 ms a
        # message, 0.3 s for a 500-turn conversation) and sends extra_body as it is.
        arguments, extra = split("chat", request.params, self.unsupported)
        body.update(arguments)
        extra = {**request.extra_body, "messages": to_chat_messages(request.system, request.messages), **extra}
        if request.tools:
            body["tools"] = chat_tools(request.tools)
            choice = tool_choice(request, self.unsupported, lambda name: {"type": "function", "function": {"name": name}})
            if choice is not None:
                body["tool_choice"] = choice
        if extra:
            body["extra_body"] = extra
        return body

    def stream(self, request: Request) -> Iterator[Event]:
        parser = ChatStreamParser()
        done = False
        create = self._client.chat.completions.with_streaming_response.create
        body = self.body(request)
        self.last_sent = ("/chat/completions", as_sent(body))
        self.last_request = replace(request, messages=list(request.messages))  # the branch as sent: it grows
        for _, data in open_sse(create, **body):
            if data == "[DONE]":
                done = True
                break
            yield from parser.feed(load_object(data))
        if not (done or parser.finished):
            raise StreamCut("the stream ended before the reply was finished")
        yield from parser.close()
