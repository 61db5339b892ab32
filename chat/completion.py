"""Tab completion at the prompt: command names, then each command's arguments as the command declares
them (chat/slash/registry.py: ``args``) — personas and @models (comma and * lists for /compare and
/replay), models, parameters, labels, formats, branch numbers and fork names, a panel's lanes, files."""

from __future__ import annotations

from prompt_toolkit.completion import Completer, Completion, PathCompleter
from prompt_toolkit.document import Document

from .conversation import LABELS, PARAMS
from .panel import Panels
from .session import Session
from .slash import ALIASES, COMMANDS
from .slash.registry import Arg

__all__ = ["SlashCompleter"]


class SlashCompleter(Completer):
    def __init__(self, session: Session, panels: Panels):
        self.session = session
        self.panels = panels
        self.paths = PathCompleter(expanduser=True)

    def _words(self, kind) -> list[str]:
        """The words an argument of ``kind`` (a command's declaration: chat/slash/registry.py) can be."""
        if isinstance(kind, list):
            return kind
        if isinstance(kind, tuple):
            return [w for part in kind for w in self._words(part)]
        s = self.session
        models = s.server.models if s.server else []
        panel = self.panels.open
        return {
            Arg.PERSONAS: lambda: list(s.personas),
            Arg.SPEC: lambda: ["all", *s.personas, *(f"@{m}" for m in models)],
            Arg.MODELS: lambda: list(models),
            Arg.PARAMETERS: lambda: list(PARAMS),
            Arg.LABELS: lambda: list(LABELS),
            Arg.LANES: lambda: [str(i) for i in range(1, len(panel.lanes) + 1)] if panel is not None else [],
            Arg.BRANCHES: lambda: [*(str(b.number) for b in s.conversation.branches()),
                               *(b.name for b in s.conversation.branches() if b.name)],
        }[kind]()

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
        declared = COMMANDS.get(ALIASES.get(command, command))
        kinds = declared.args if declared is not None else ()
        if len(words) > len(kinds):
            return
        kind, word = kinds[len(words) - 1], words[-1]
        if kind == Arg.PATH:
            yield from self.paths.get_completions(Document(word, len(word)), complete_event)
            return
        spec = self._words(kind)
        part = word
        if kind == Arg.SPEC:  # the item being typed: after the last , or *
            part = word[max(word.rfind(","), word.rfind("*")) + 1:]
            if "@" in part.lstrip("@"):  # persona@model: complete the model
                part = part[part.index("@", 1):]
        for option in spec:
            if option.startswith(part):
                yield Completion(option, start_position=-len(part))
