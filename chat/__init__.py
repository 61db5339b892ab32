"""persona-chat: a streaming terminal client for persona-conditioned models on vLLM or llama-server."""

__version__ = "0.1.0"
__all__ = ["__version__"]
