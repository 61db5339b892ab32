"""Tab completion at the prompt: command names, then each command's arguments — personas (comma
lists for /compare), models, parameters, labels, formats, branch numbers and fork names, files."""

from __future__ import annotations

from prompt_toolkit.completion import Completer, Completion, PathCompleter
from prompt_toolkit.document import Document

from .conversation import LABELS, PARAMS
from .session import Session
from .slash import ALIASES, COMMANDS

__all__ = ["SlashCompleter"]

PATH = "path"  # an argument that is a file name


class SlashCompleter(Completer):
    def __init__(self, session: Session):
        self.session = session
        self.paths = PathCompleter(expanduser=True)

    def _arguments(self, command: str) -> list:
        """What each argument of ``command`` can be, in order: a list of words or PATH."""
        s = self.session
        personas = list(s.personas)
        branches = [str(b.number) for b in s.conversation.branches()] + [b.name for b in s.conversation.branches() if b.name]
        return {
            "/persona": [personas], "/compare": [["all", *personas]], "/model": [s.server.models if s.server else []],
            "/set": [list(PARAMS), ["default"]], "/mark": [list(LABELS)], "/export": [["md", "html"], PATH],
            "/save": [PATH], "/load": [PATH], "/approvals": [["reset"]], "/switch": [branches],
            "/compact": [["summary"]],
        }.get(command, [])

    def get_completions(self, document, complete_event):
        text = document.text_before_cursor
        if not text.startswith("/") or "\n" in text:
            return
        if " " not in text:
            for name in [*COMMANDS, *ALIASES]:
                if name.startswith(text):
                    yield Completion(name, start_position=-len(text))
            return
        command, _, rest = text.partition(" ")
        words = rest.split(" ")
        specs = self._arguments(ALIASES.get(command, command))
        if len(words) > len(specs):
            return
        spec, word = specs[len(words) - 1], words[-1]
        if spec == PATH:
            yield from self.paths.get_completions(Document(word, len(word)), complete_event)
            return
        head, _, part = word.rpartition(",") if command == "/compare" else ("", "", word)
        for option in spec:
            if option.startswith(part):
                yield Completion(option, start_position=-len(part))
