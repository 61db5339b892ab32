"""The interactive session: one prompt_toolkit PromptSession for input, rich for output, never both
at once (replies are printed between prompts, not under patch_stdout)."""

from __future__ import annotations

import datetime
from contextlib import contextmanager
import threading
from pathlib import Path

from prompt_toolkit import PromptSession
from prompt_toolkit.history import FileHistory, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings
from rich.console import Console
from rich.text import Text

from .. import __version__
from ..tools import Preview
from . import interrupts
from .advice import worded
from .cancel import Cancelled, stopped
from .completion import SlashCompleter
from .datafile import DataFileError, read_bytes
from .errors import ChatError
from .events import ToolCall
from .files import FileError, append
from .limits import MAX_HISTORY
from .output import formatted
from .panel import Panels, close_panel, reopen_panel
from .sanitize import sanitize, valid_text
from .session import Session
from .sinks import PreviewPages, TerminalSink
from .slash import EXIT, dispatch
from .slash.files import show_last_exchange
from .slash.panel import ask_panel, resume_panel
from .toolbox import Decision
from .tty import discard_type_ahead, streaming_mode

__all__ = ["Repl"]


class TerminalApprover:
    """Asks ``Run bash? [y/n/a(lways)]`` under the call's preview (which the sink has shown). Only keys
    pressed once the question is on screen answer it: whatever was typed ahead (while the reply
    streamed) is thrown away first. A long file or diff can be paged through before answering.
    Ctrl-C at the question stops the turn (the call is not run)."""

    def __init__(self, console: Console):
        self.console = console

    def ask(self, call: ToolCall, preview: Preview) -> Decision:
        try:
            with interrupts.asking():
                return self._ask(call, preview)
        except KeyboardInterrupt:  # Ctrl-C at the question (or chat is leaving)
            return Decision(False, stop=True)

    def _ask(self, call: ToolCall, preview: Preview) -> Decision:
        pages = PreviewPages(preview, self.console.size)
        # a command's length is said beside the question: all of it is what runs
        count = f"({pages.lines:,} lines) " if preview.language == "bash" and pages.lines > 1 else ""
        while True:
            more = f"/m(ore: {pages.not_shown:,} lines not shown yet)" if pages.rest else ""
            question = formatted(("bold", f"Run {call.name}? "), ("", f"{count}[y/n/a(lways){more}] "))
            answer = _fresh_answer(question, default="n").lower()
            if answer in ("y", "yes"):
                return Decision(True)
            if answer in ("a", "always"):
                self.console.print(Text(f"{sanitize(call.name)}: always, this session (/approvals reset asks again)",
                                        style="yellow"))
                return Decision(True, always=True)
            if answer in ("n", "no"):
                return Decision(False, reason=_fresh_answer("Reason, for the model (Enter skips): ", default=""))
            if answer in ("m", "more") and pages.rest:
                pages.show_next(self.console)


def _fresh_answer(question, default: str) -> str:
    """A line typed after ``question`` is on screen (type-ahead discarded); ``default`` on Ctrl-D."""
    from prompt_toolkit import prompt

    if stopped():  # Ctrl-C came just before the question did: it answers it
        raise KeyboardInterrupt
    try:
        return prompt(formatted(question) if isinstance(question, str) else question, pre_run=discard_type_ahead,
                      key_bindings=_no_mouse()).strip()
    except EOFError:
        return default


def _no_mouse() -> KeyBindings:
    """Mouse reports are ignored: chat asks for none, and prompt_toolkit's own parser of them fails on
    look-alike sequences (a pasted ``ESC[41m``) with an "Unhandled exception" screen."""
    from prompt_toolkit.keys import Keys

    kb = KeyBindings()
    kb.add(Keys.Vt100MouseEvent)(lambda event: None)
    kb.add(Keys.WindowsMouseEvent)(lambda event: None)
    return kb


def _key_bindings() -> KeyBindings:
    kb = _no_mouse()

    @kb.add("escape", "enter")  # Alt-Enter (or Esc, Enter): a new line instead of sending
    def _(event):
        event.current_buffer.insert_text("\n")

    @kb.add("c-u")  # clears everything before the cursor, every line of it (a message offered again)
    def _(event):
        buffer = event.current_buffer
        buffer.delete_before_cursor(len(buffer.document.text_before_cursor))

    return kb


class Repl:
    def __init__(self, session: Session, console: Console, history_path=None, left_open: dict | None = None):
        self.session = session
        self.panels = Panels(session, left_open)  # the panel layer's state (left_open: a resumed session's)
        self.console = console
        self.show_reasoning = session.settings.show_reasoning
        self._refill = ""  # text offered again at the next prompt (a send that failed, an unanswered one)
        self._editing = None  # the message an inline /edit replaces, if the next input is sent
        self.approver = TerminalApprover(console)
        session.connection.credentials.ask = self._may_send_key
        session.notify = self.note  # what the session finds worth saying, said as it happens
        if session.transcript is not None:
            session.transcript.on_error(lambda why: self.error(
                f"this session is not being saved: {why} (/save PATH writes it elsewhere)"))
        self.prompt_session = PromptSession(
            history=_history(history_path, self.error),
            completer=SlashCompleter(session, self.panels),
            complete_while_typing=True,
            key_bindings=_key_bindings(),
            bottom_toolbar=self._toolbar,
            prompt_continuation=lambda width, line, soft: " " * width if soft else "… ".rjust(width),
        )

    # -- output helpers ------------------------------------------------------------------------
    def error(self, message: str) -> None:
        self.console.print(Text(f"error: {sanitize(message)}", style="bold red"))

    def note(self, message: str) -> None:
        self.console.print(Text(sanitize(message), style="dim"))

    def _toolbar(self):
        s = self.session
        where = f"{s.server.flavor} @ {s.server.base_url}" if s.server else "not connected"
        api = s.api[0] if s.server else "?"
        who = s.conversation.persona.name
        if self.panels.open is not None:
            who = f"panel: {', '.join(lane.title(s) for lane in self.panels.open.lanes)}"
            who = who if len(who) <= 60 else who[:59] + "…"
        return formatted(("bold", f" {who} "), ("", f"· {s.model or '?'} · {api} · {where} · /help "))

    def _message(self):
        panel = self.panels.open
        if panel is not None:
            return formatted(("ansimagenta bold", f"panel of {len(panel.lanes)}"), ("", " › "))
        return formatted(("ansimagenta bold", self.session.conversation.persona.name), ("", " › "))

    # -- the loop --------------------------------------------------------------------------------
    def run(self) -> int:
        """Until Ctrl-D, /exit, or a signal to leave (what was running is wrapped up and saved first)."""
        with interrupts.action():
            self._connect_and_greet()
        while interrupts.left() is None:
            try:
                typed = self.prompt_session.prompt(self._message, default=self._refill)
            except KeyboardInterrupt:  # Ctrl-C clears the line (a signal to leave ends the loop)
                self._refill, self._editing = "", None
                continue
            except EOFError:
                return 0
            typed = valid_text(typed)  # pasted bytes that weren't UTF-8: U+FFFD, sendable
            self._refill, editing, self._editing = "", self._editing, None
            if not typed.strip():
                continue
            with interrupts.action():  # Ctrl-C now stops what this line started
                if typed.lstrip().startswith("/") and not typed.lstrip().startswith("//"):
                    if dispatch(self, typed) is EXIT:
                        return 0
                    continue
                if editing is not None:  # the inline /edit was sent: the new text becomes a sibling
                    self.session.conversation.move(editing.parent)
                self.send(typed.lstrip()[1:] if typed.lstrip().startswith("//") else typed)
        return 0

    def _connect_and_greet(self) -> None:
        self._preload_once_shown()
        self.console.print(Text(f"gridchat {__version__}", style="bold"), Text("· /help lists commands", style="dim"))
        try:
            self.session.connect()
        except ChatError as err:
            self.error(f"{worded(err, interactive=True)} — messages will retry")
        except Cancelled:  # a server slow to answer: stop waiting, the session goes on
            self.error("connecting was interrupted — messages will retry")
        if self.panels.left_open is not None:  # --resume of a session that had a panel open
            resume_panel(self)
        elif self.session.conversation.messages:  # --resume: where the conversation stands
            show_last_exchange(self)
        if self.session.pending_text:  # --resume of a message that was never answered
            self.offer(self.session.pending_text)

    def _preload_once_shown(self) -> None:
        """Preload (the openai SDK: ~0.25 s of CPU) once the first prompt is drawn: started before, its
        thread took the GIL from connecting and drawing, ~30 ms later to the prompt (bench startup)."""
        started = []

        def start(_app) -> None:
            if not started:
                started.append(True)
                threading.Thread(target=_preload, daemon=True).start()

        self.prompt_session.app.after_render += start

    def send(self, text: str) -> None:
        if self.panels.open is not None:  # a panel is open: the message goes to every lane
            if not ask_panel(self, text):
                self.offer(text)
            return
        result = self.stream(lambda sink: self.session.send(text, sink, self.approver))
        if result is None or result.withdrawn:
            self.offer(text)  # nothing came back: offer the message again, nothing lost

    def stream(self, run):
        """Connect if needed, then run ``run(sink)`` with a terminal sink, keys quiet meanwhile."""
        try:
            self.session.connect()
        except ChatError as err:
            self.error(worded(err, interactive=True))
            return None
        except Cancelled:
            self.error("connecting was interrupted")
            return None
        sink = self.sink()
        with streaming_mode():
            result = run(sink)
        filling = self.session.context_filling()
        if filling:
            used, window = filling
            self.console.print(Text(f"context {100 * used / window:.0f}% full ({used:,} of {window:,} tokens): "
                                    "/compact drops or summarises the oldest turns", style="yellow"))
        return result

    def sink(self) -> TerminalSink:
        return TerminalSink(self.console, show_reasoning=self.show_reasoning, window=self.session.window,
                            interactive=True)

    def ask(self, question: str) -> str | None:
        """A one-line answer from the user; None for Ctrl-C or Ctrl-D, and once chat is leaving."""
        from prompt_toolkit import prompt

        if interrupts.left() is not None or stopped():  # leaving, or Ctrl-C came just before the question
            return None
        try:
            with interrupts.asking():
                return prompt(formatted(question), key_bindings=_no_mouse()).strip()
        except (EOFError, KeyboardInterrupt):
            return None

    def _may_send_key(self, url: str) -> bool:
        """An address read from a file (a resumed session's server, a reopened lane's) gets the API key
        only once the user says so."""
        answer = self.ask(f"{url} comes from the file, not from you: send your API key there? [y/N] ")
        return (answer or "").lower() in ("y", "yes")

    @contextmanager
    def moving(self):
        """A command moves the conversation: an open panel closes first, and opens again if the
        command is refused."""
        panel, head = self.panels.open, self.session.conversation.head
        if panel is None:
            yield
            return
        close_panel(self.panels)
        try:
            yield
        except ChatError:
            reopen_panel(self.panels, panel, head)  # refused before it did anything: as it was
            raise
        self.note("the panel is closed (every lane stays a branch: /branches)")

    def offer(self, text: str) -> None:
        """Put a message back at the prompt exactly as it must be typed to send it again: one that
        starts with "/" gets its "//" back, so Enter sends it instead of running a command."""
        self._refill = _as_typed(text)
        self.note("your message is back at the prompt: Enter sends it again, Ctrl-U clears it")

    def edit_inline(self, old) -> None:
        """Offer ``old``'s text at the prompt; if it is sent, it replaces ``old`` (as a sibling).
        Anything else leaves the conversation as it was."""
        self._refill = _as_typed(old.content)
        self._editing = old
        self.note("edit the message and press Enter to resend it (Ctrl-C leaves it as it was)")


def _as_typed(message: str) -> str:
    """What to type to send ``message``: a message starting with "/" is typed with "//"."""
    return "/" + message.lstrip() if message.lstrip().startswith("/") else message


class _SafeFileHistory(FileHistory):
    """The input history file, appended to through the one writer (two chats at once never interleave
    an entry); a disk that fails later costs the history, never the session."""

    def __init__(self, path, warn):
        super().__init__(str(path))
        self._warn = warn

    def load_history_strings(self):
        """The newest entries, newest first, from the file's last MAX_HISTORY bytes (it only grows: a
        sparse or huge one must not be read whole), through the one file reader; none if unreadable."""
        try:
            data = read_bytes(Path(self.filename), MAX_HISTORY, tail=True)
        except DataFileError:
            return []
        entries, lines = [], None if len(data) == MAX_HISTORY else []  # None: a cut may be inside the first entry
        for line in f"{data.decode('utf-8', 'replace')}\n".split("\n"):
            if line.startswith("+"):  # an entry's line (FileHistory's format); any other line ends it
                if lines is not None:
                    lines.append(line[1:])
            else:
                if lines:
                    entries.append("\n".join(lines))
                lines = []
        return entries[::-1]

    def store_string(self, string: str) -> None:
        entry = f"\n# {datetime.datetime.now()}\n" + "".join(f"+{line}\n" for line in string.split("\n"))
        try:
            append(self.filename, entry.encode("utf-8", "replace"))
        except FileError as e:
            if self._warn is not None:
                self._warn(f"input history not saved: {e}")
                self._warn = None


def _history(path, warn):
    """The history kept across sessions, or one for this session only where the file can't be used."""
    if path is None:
        return InMemoryHistory()
    try:
        if path.exists() and not path.is_file():  # a FIFO would block the prompt for ever
            raise FileError(f"cannot write {path}: not a regular file")
        append(path, b"")
    except FileError as e:
        warn(f"input history is kept for this session only: {e}")
        return InMemoryHistory()
    return _SafeFileHistory(path, warn)


def _preload() -> None:
    """Import what the first reply needs while the user types (the openai SDK takes ~0.4 s)."""
    try:
        import openai  # noqa: F401
        import rich.markdown  # noqa: F401
    except Exception:
        pass
