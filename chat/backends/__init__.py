"""Backends turn a server's stream into typed events (chat.events); one per wire API."""

from .base import Backend, Request, ToolSpec

__all__ = ["Backend", "Request", "ToolSpec", "make_backend"]


def make_backend(api: str, client) -> Backend:
    """The backend for ``api`` ("chat" or "responses") over an ``openai.OpenAI`` client."""
    if api == "responses":
        from .responses import ResponsesBackend

        return ResponsesBackend(client)
    from .chat_completions import ChatCompletionsBackend

    return ChatCompletionsBackend(client)
