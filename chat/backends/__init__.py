"""Backends turn a server's stream into typed events (chat.events); one per wire API."""

from .base import Backend, Request, ToolSpec

__all__ = ["Backend", "Request", "ToolSpec", "make_backend", "make_client"]


def make_backend(api: str, client) -> Backend:
    """The backend for ``api`` ("chat" or "responses") over an ``openai.OpenAI`` client."""
    if api == "responses":
        from .responses import ResponsesBackend

        return ResponsesBackend(client)
    from .chat_completions import ChatCompletionsBackend

    return ChatCompletionsBackend(client)


def make_client(base_url: str, api_key: str | None = None, max_retries: int = 0):
    """An ``openai.OpenAI`` for ``base_url``: no retries by default (errors show at once and the text
    is offered again), the fast transport where it applies, and every body capped (chat/limits.py).
    Every client chat makes is made here."""
    import openai  # ~0.4 s: imported when the first request is sent (or preloaded meanwhile)

    from .transport import bounded_body, fast_transport_for

    transport = fast_transport_for(base_url)
    http_client = openai.DefaultHttpxClient(**({"transport": transport} if transport is not None else {}),
                                            event_hooks={"response": [bounded_body]},  # caps every body
                                            follow_redirects=False)  # a redirect is an error (errors.py)
    return openai.OpenAI(base_url=base_url, api_key=api_key or "not-needed", max_retries=max_retries,
                         http_client=http_client)
