"""gridchat: a streaming terminal chat client for persona-conditioned models served by vLLM or
llama-server.

The repository root is the ``gridchat`` package (pyproject's package-dir maps it): its four folders
are ``gridchat.chat`` (the client), ``gridchat.personas``, ``gridchat.tools`` and ``gridchat.serve``,
so the installed wheel claims the one top-level name ``gridchat``.
"""

__version__ = "0.2.0"
__all__ = ["__version__"]
