"""gridchat: a streaming terminal chat client for persona-conditioned models served by vLLM or
llama-server.

This folder holds the package's own files; pyproject's package-dir maps the repository's four folders
into it — ``gridchat.chat`` ← chat/ (the client), ``gridchat.personas`` ← personas/, ``gridchat.tools``
← tools/, ``gridchat.serve`` ← serve/ — so the installed wheel, and an editable install alike, claim
the one top-level name ``gridchat`` and nothing else of the checkout (tests/, bench/) is part of it.
"""

__version__ = "0.2.0"
__all__ = ["__version__"]
