"""Launching vLLM and llama-server with the flags chat needs, and the embedded local default.

`serve vllm|llama|local` is the command (serve.cli); ``LocalServer`` is what `chat --local` uses.
"""

from .launch import Launch, LaunchError
from .local import LocalServer

__all__ = ["Launch", "LaunchError", "LocalServer"]
