"""Tab completion at the prompt: command names, then each command's arguments — personas and
@models (comma and * lists for /compare and /replay), models, parameters, labels, formats, branch
numbers and fork names, a panel's lanes, files."""

from __future__ import annotations

from prompt_toolkit.completion import Completer, Completion, PathCompleter
from prompt_toolkit.document import Document

from .conversation import LABELS, PARAMS
from .panel import Panels
from .session import Session
from .slash import ALIASES, COMMANDS

__all__ = ["SlashCompleter"]

PATH = "path"  # an argument that is a file name


class SlashCompleter(Completer):
    def __init__(self, session: Session, panels: Panels):
        self.session = session
        self.panels = panels
        self.paths = PathCompleter(expanduser=True)

    def _arguments(self, command: str) -> list:
        """What each argument of ``command`` can be, in order: a list of words or PATH."""
        s = self.session
        personas = list(s.personas)
        branches = [str(b.number) for b in s.conversation.branches()] + [b.name for b in s.conversation.branches() if b.name]
        models = s.server.models if s.server else []
        panel = self.panels.open
        lanes = [str(i) for i in range(1, len(panel.lanes) + 1)] if panel is not None else []
        spec = ["all", *personas, *(f"@{m}" for m in models)]
        return {
            "/persona": [personas], "/compare": [spec], "/replay": [spec], "/model": [models],
            "/set": [list(PARAMS), ["default"]], "/mark": [[*lanes, *LABELS], list(LABELS) if lanes else []],
            "/export": [["md", "html"], PATH], "/save": [PATH], "/load": [PATH], "/approvals": [["reset"]],
            "/switch": [branches], "/compact": [["summary"]], "/pick": [lanes], "/panel": [[*lanes, "retry", "end"]],
            "/classify": [["judge", "off"]], "/probe": [["save"]],
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
        part = word
        if command in ("/compare", "/replay"):  # the item being typed: after the last , or *
            part = word[max(word.rfind(","), word.rfind("*")) + 1:]
            if "@" in part.lstrip("@"):  # persona@model: complete the model
                part = part[part.index("@", 1):]
        for option in spec:
            if option.startswith(part):
                yield Completion(option, start_position=-len(part))
