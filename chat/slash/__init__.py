"""Slash commands of the interactive client, one module per group; importing the package registers
them all. The REPL implements ``SlashContext`` and calls ``dispatch``."""

from . import files, general, judge, panel, probing, probs, raw  # noqa: F401  (each registers its commands)
from .context import SlashContext
from .registry import ALIASES, COMMANDS, EXIT, Command, dispatch

__all__ = ["ALIASES", "COMMANDS", "EXIT", "Command", "SlashContext", "dispatch"]
