"""/v1/responses: vLLM's and llama-server's event streams (WIRE.md) into events.

The whole input is resent every turn (``previous_response_id`` needs a server-side store that
neither server keeps by default); the persona goes in as an input item with role ``system``, the
way the gpt-oss persona models were used.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from ..conversation import Message
from ..errors import StreamCut, StreamError
from ..events import Event, Finish, Logprobs, ReasoningDelta, TextDelta, ToolCall, Usage
from ..wire import count, load_object, obj, seq, text
from ..params import split
from .base import Request, as_sent, in_band_error, open_sse, token_logprobs, tool_choice
from .think import ThinkSplitter

__all__ = ["ResponsesBackend", "ResponsesStreamParser", "to_input_items"]



def to_input_items(system: str | None, messages: list[Message]) -> list[dict]:
    items = [{"role": "system", "content": system}] if system is not None else []
    for m in messages:
        if m.role == "tool":
            items.append({"type": "function_call_output", "call_id": m.tool_call_id, "output": m.content})
            continue
        if m.content or m.role == "user":
            items.append({"role": m.role, "content": m.content})
        for c in m.tool_calls:
            items.append({"type": "function_call", "call_id": c.id, "name": c.name, "arguments": c.arguments})
    return items


class ResponsesStreamParser:
    """Events (type, parsed JSON) in, our events out. Call ids are taken from the streamed
    ``output_item.added`` items only: ``response.completed`` may carry different item ids."""

    def __init__(self) -> None:
        self._think = ThinkSplitter()
        self._calls: dict[object, list] = {}  # output_index -> [call_id, name, [argument fragments]] (joined once)
        self._emitted: set[object] = set()
        self.finished = False

    def feed(self, kind: str, data: dict) -> list[Event]:
        if kind == "response.output_text.delta":
            delta = text(data.get("delta"), "a text delta")
            tokens = token_logprobs(data.get("logprobs"))
            return [ReasoningDelta(p) if r else TextDelta(p) for r, p in self._think.feed(delta)] + \
                ([Logprobs(tokens)] if tokens else [])
        if kind in ("response.reasoning_text.delta", "response.reasoning_summary_text.delta"):
            return [ReasoningDelta(text(data.get("delta"), "a reasoning delta"))]
        if kind == "response.function_call_arguments.delta":
            self._slot(data)[2].append(text(data.get("delta"), "an arguments delta"))
            return []
        if kind == "response.output_item.added":
            item = obj(data.get("item"), "an output item")
            if item.get("type") == "function_call":
                slot = self._slot(data)
                slot[0] = text(item.get("call_id") or item.get("id"), "a call id") or slot[0]
                slot[1] = text(item.get("name"), "a call's name") or slot[1]
                arguments = text(item.get("arguments"), "a call's arguments")
                slot[2] = [arguments] if arguments else slot[2]
            return []
        if kind in ("response.function_call_arguments.done", "response.output_item.done"):
            # llama-server sends no arguments.done: the finished item is the other place to close a call
            item = obj(data.get("item"), "an output item")
            if kind == "response.output_item.done" and item.get("type") != "function_call":
                return []
            arguments = item.get("arguments", data.get("arguments"))
            return self._close_call(data, text(arguments, "a call's arguments"))
        if kind in ("response.completed", "response.incomplete"):
            return self._completed(obj(data.get("response"), "the response"))
        if kind in ("error", "response.failed"):
            response = obj(data.get("response"), "the response")
            raise in_band_error(response.get("error") or data.get("error") or data)
        return []

    @staticmethod
    def _key(data: dict) -> object:
        """Which call an event is about: vLLM numbers output items; llama-server sends no index,
        and its deltas name the item by the call_id its added-item carried."""
        if "output_index" in data:
            key = data["output_index"]
        elif "item_id" in data:
            key = data["item_id"]
        else:
            item = obj(data.get("item"), "an output item")
            key = item.get("id") or item.get("call_id")
        if key is not None and not isinstance(key, (int, str)):
            raise StreamError(f"the server sent an unreadable stream: an item's index is {type(key).__name__}")
        return key

    def _slot(self, data: dict) -> list:
        return self._calls.setdefault(self._key(data), ["", "", []])

    def _close_call(self, data: dict, arguments: str | None) -> list[Event]:
        key = self._key(data)
        slot = self._calls.get(key)
        if slot is None or key in self._emitted:
            return []
        self._emitted.add(key)  # the complete text, when given, wins over the fragments
        return [ToolCall(slot[0] or f"call_{key}", slot[1], arguments or "".join(slot[2]))]

    def _completed(self, response: dict) -> list[Event]:
        self.finished = True
        events: list[Event] = [ReasoningDelta(p) if r else TextDelta(p) for r, p in self._think.flush()]
        for key in list(self._calls):
            events.extend(self._close_call({"output_index": key}, None))
        if not self._calls:  # nothing streamed as calls: take them from the final response
            for i, item in enumerate(seq(response.get("output"), "the response's output")):
                item = obj(item, "an output item")
                if item.get("type") == "function_call":
                    events.append(ToolCall(text(item.get("call_id"), "a call id") or f"call_{i}",
                                           text(item.get("name"), "a call's name"),
                                           text(item.get("arguments"), "a call's arguments")))
                    self._calls[i] = []
        usage = obj(response.get("usage"), "usage")
        if usage:
            events.append(Usage(count(usage.get("input_tokens"), "input_tokens"),
                                count(usage.get("output_tokens"), "output_tokens")))
        if response.get("status") == "incomplete":
            details = obj(response.get("incomplete_details"), "incomplete_details")
            reason = text(details.get("reason"), "the incomplete reason")
            events.append(Finish("length" if "max_output_tokens" in reason else reason or "incomplete"))
        else:
            events.append(Finish("tool_calls" if self._calls else "stop"))
        return events


class ResponsesBackend:
    api = "responses"

    def __init__(self, client) -> None:
        self._client = client
        self.unsupported: set[str] = set()  # sampling parameters the server rejected: no longer sent
        self.last_sent: tuple[str, dict] | None = None  # (path, JSON) of the last request, for /raw
        self.last_request: Request | None = None  # and the request itself, for /prompt

    def body(self, request: Request) -> dict:
        body = {"model": request.model, "input": [], "stream": True}
        # the whole input goes as extra_body, past the SDK's per-item walk (see ChatCompletionsBackend)
        arguments, extra = split("responses", request.params, self.unsupported)
        body.update(arguments)
        extra = {**request.extra_body, "input": to_input_items(request.system, request.messages), **extra}
        if request.tools:
            body["tools"] = [
                {"type": "function", "name": t.name, "description": t.description, "parameters": t.parameters}
                for t in request.tools
            ]
            choice = tool_choice(request, self.unsupported, lambda name: {"type": "function", "name": name})
            if choice is not None:
                body["tool_choice"] = choice
        if extra:
            body["extra_body"] = extra
        return body

    def stream(self, request: Request) -> Iterator[Event]:
        parser = ResponsesStreamParser()
        create = self._client.responses.with_streaming_response.create
        body = self.body(request)
        self.last_sent = ("/responses", as_sent(body))
        self.last_request = replace(request, messages=list(request.messages))  # the branch as sent: it grows
        for event, data in open_sse(create, **body):
            if data == "[DONE]":
                break
            payload = load_object(data)
            yield from parser.feed(text(payload.get("type"), "an event's type") or event or "error", payload)
            if parser.finished:
                break
        if not parser.finished:
            raise StreamCut("the stream ended before the reply was finished")
