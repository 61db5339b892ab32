"""The environment a tool's command runs in: an allow-list of the client's, without its credentials."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

__all__ = ["ALLOWED_VARIABLES", "SECRET_VARIABLES", "environment"]

SECRET_VARIABLES = ("OPENAI_API_KEY", "GRIDCHAT_API_KEY")
# What commands need to find programs, files and the locale; with LC_*, all that a tool's environment holds.
ALLOWED_VARIABLES = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TERM", "TZ", "TMPDIR")


def environment(secrets: Iterable[str] = (), base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment tools run in: only the allowed names of the client's (ALLOWED_VARIABLES, LC_*),
    less its credentials — any variable holding the key's value (a long key also where it is part of
    a value). Nothing else passes: TMUX, SSH_AUTH_SOCK, DBUS_SESSION_BUS_ADDRESS, DISPLAY … are
    handles to servers that outlive chat, through which a command could leave a process behind."""
    secrets = [s for s in secrets if s]

    def secret(value: str) -> bool:
        return any(value == s or (len(s) >= 8 and s in value) for s in secrets)

    def allowed(name: str) -> bool:
        return name in ALLOWED_VARIABLES or name.startswith("LC_")

    env = os.environ if base is None else base
    return {k: v for k, v in env.items() if allowed(k) and k not in SECRET_VARIABLES and not secret(v)}
