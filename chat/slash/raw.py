"""/raw and /prompt: see exactly what was sent and what came back, and the prompt as the server
rendered it (where did the persona's system message land?)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from rich.padding import Padding
from rich.text import Text

from ..errors import UsageError
from ..sanitize import sanitize
from .registry import command, line

if TYPE_CHECKING:
    from .context import SlashContext

__all__: list[str] = []


def _block(ctx: "SlashContext", title: str, body: str) -> None:
    ctx.console.print(line((title, "bold")))
    ctx.console.print(Padding(Text(sanitize(body)), (0, 2)))


@command("/raw", "/raw", "the last request exactly as sent (JSON, the API key blanked) and the last reply unrendered")
def _raw(ctx: "SlashContext", arg: str):
    request = ctx.session.last_request()
    if request is None:
        raise UsageError("nothing sent yet")
    _block(ctx, f"{request['method']} {request['url']}",
           "\n".join(f"{k}: {v}" for k, v in request["headers"].items()) + "\n\n"
           + json.dumps(request["json"], indent=2, ensure_ascii=False))
    reply = ctx.session.conversation.last("assistant")
    if reply is None:
        return
    if reply.reasoning:
        _block(ctx, "reasoning, as it came", reply.reasoning)
    _block(ctx, "reply, as it came" + (" (cut short)" if reply.interrupted else ""), reply.content or "(empty)")
    for call in reply.tool_calls:
        _block(ctx, f"tool call {call.name} ({call.id}), arguments as sent", call.arguments)


@command("/prompt", "/prompt", "the prompt as the server renders it from this branch (llama-server, vLLM)")
def _prompt(ctx: "SlashContext", arg: str):
    prompt, how = ctx.session.rendered_prompt()
    _block(ctx, f"the prompt as the server renders it ({how})", prompt)
