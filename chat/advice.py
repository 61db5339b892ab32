"""What to do next after an error, worded for where the user is: at the interactive prompt (slash
commands) or at the shell (flags). Errors carry the facts; only the UI gives advice."""

from __future__ import annotations

from .errors import ChatError, ContextExceeded, ModelNotFound, NoServerFound, ToolsNotEnabled
from .flavors import flavor_named

__all__ = ["advice", "worded"]

_START_ONE = ("start one with `serve vllm MODEL`, `serve llama MODEL.gguf` or `chat --local`, or point chat at "
              "one with --base-url URL (or OPENAI_BASE_URL)")


def advice(err: ChatError, *, interactive: bool) -> str:
    """The advice for ``err``, or "" where the message says it all."""
    if isinstance(err, ContextExceeded):
        if interactive:
            return "/compact drops or summarises the oldest turns; /clear starts afresh"
        return "shorten the prompt, or serve the model with a larger window"
    if isinstance(err, ModelNotFound):
        return "/model lists what the server has" if interactive else "--model NAME picks one the server has"
    if isinstance(err, ToolsNotEnabled):
        return f"{flavor_named(err.server).tools_advice}, or run chat with --no-tools"
    if isinstance(err, NoServerFound):
        return _START_ONE
    return ""


def worded(err: ChatError, *, interactive: bool) -> str:
    """The error's line with its advice."""
    more = advice(err, interactive=interactive)
    return f"{err} ({more})" if more else str(err)
