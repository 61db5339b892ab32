"""Launching vLLM and llama-server with the right flags, and the embedded local default.

Not built yet: the client names `serve` when it finds no server (see the issue that adds it).
"""

__all__: list[str] = []
