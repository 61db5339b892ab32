"""The terminal-output boundary (issue 16, boundary 1): every character that reaches the terminal
passes chat/output.py. The scan fails on any other way out; the rest shows the boundary doing its
job on what reaches it unprepared."""

from __future__ import annotations

import ast
import io
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = [p for p in REPO.rglob("*.py")
           if not {"tests", "bench", "build", ".venv", ".git"} & set(p.relative_to(REPO).parts)]
BOUNDARY = REPO / "chat" / "output.py"
# Processes of their own whose output never reaches the user's terminal: the supervisor's status lines
# go to a pipe the client reads, the built-in engine's to its log file.
OWN_PROCESSES = {REPO / "supervise" / "reaper.py", REPO / "serve" / "engine.py"}


def _bypasses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        where = f"{path.relative_to(REPO)}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.ImportFrom) and node.module == "rich" and any(a.name == "print" for a in node.names):
            found.append(f"{where}: rich's print")
        if isinstance(node, ast.ClassDef) and any(ast.unparse(b).endswith("Console") for b in node.bases):
            found.append(f"{where}: a Console subclass")
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        if name == "print":
            found.append(f"{where}: print()")
        elif re.fullmatch(r"sys\.(__)?std(out|err)(__)?\.write", name):
            found.append(f"{where}: {name}()")
        elif name.split(".")[-1] in ("Console", "FormattedText", "HTML", "ANSI", "ArgumentParser"):
            found.append(f"{where}: {name}() built outside the boundary")
        elif name == "os.write" and node.args and ast.unparse(node.args[0]) in ("1", "2", "sys.stdout.fileno()",
                                                                                "sys.stderr.fileno()"):
            found.append(f"{where}: os.write to a standard stream")
        elif name.split(".")[-1] == "prompt" and node.args and isinstance(node.args[0], (ast.Constant, ast.JoinedStr)):
            found.append(f"{where}: prompt() with a plain string (use output.formatted)")
    return found


def test_nothing_reaches_the_terminal_around_the_boundary():
    """Fails on a print site added anywhere but chat/output.py: a bare print, sys.stdout.write, a
    Console, FormattedText or argparse parser built elsewhere, a prompt given a plain string."""
    found = [b for path in PACKAGE if path != BOUNDARY and path not in OWN_PROCESSES for b in _bypasses(path)]
    assert not found, "output that bypasses chat/output.py:\n" + "\n".join(found)


def test_the_scan_sees_each_kind_of_bypass(tmp_path):
    """The scan itself can fail: each way around the boundary is caught."""
    sample = tmp_path / "sample.py"
    sample.write_text("import sys, os\nfrom rich.console import Console\nfrom rich import print\n"
                      "print('x')\nsys.stdout.write('x')\nsys.stderr.write('x')\nConsole()\n"
                      "FormattedText([])\nos.write(2, b'x')\nprompt('question? ')\nclass C(Console): pass\n"
                      "argparse.ArgumentParser()\n")
    global REPO
    saved, REPO = REPO, tmp_path
    try:
        kinds = _bypasses(sample)
    finally:
        REPO = saved
    assert len(kinds) == 10, kinds


def _screen(**options):
    from gridchat.chat.output import Screen

    buffer = io.StringIO()
    return Screen(file=buffer, force_terminal=True, width=80, color_system="truecolor", **options), buffer


HOSTILE = ("title\x1b]0;PWNED\x07 clip\x1b]52;c;ZWNobyBwd25lZA==\x07 clear\x1b[2J region\x1b[5;10r "
           "bidi\u202eevil\u202c tag\U000e0041 selector\U000e0100 bell\x07 c1\x9b31m")


def _escapes(output: str) -> list[str]:
    """Every escape sequence in the output other than rich's own SGR colouring."""
    return [m for m in re.findall(r"\x1b(?:\[[0-9;?]*[A-Za-z]|\].*?(?:\x07|\x1b\\)|.)", output)
            if not re.fullmatch(r"\x1b\[[0-9;]*m", m)]


def test_whatever_a_renderable_holds_is_shown_not_obeyed():
    """Text put in a rich renderable unsanitized — a table title, a cell, a Text, a rule — is made
    visible at the boundary: no OSC, no cursor or region moves, no bidi or invisible characters."""
    from rich.rule import Rule
    from rich.table import Table
    from rich.text import Text

    screen, buffer = _screen()
    table = Table(title=Text(HOSTILE))
    table.add_column(Text(HOSTILE))
    table.add_row(Text(HOSTILE, style="bold"))
    screen.print(table)
    screen.print(Rule(Text(HOSTILE)))
    screen.print(Text(HOSTILE, style="dim"))
    output = buffer.getvalue()
    assert not _escapes(output), _escapes(output)
    for forbidden in ("\x07", "\x9b", "\u202e", "\U000e0041", "\U000e0100"):
        assert forbidden not in output
    assert "␛]0;PWNED" in output and "⟨U+202E⟩" in output and "⟨U+E0041⟩" in output


def test_no_hyperlinks_reach_the_terminal():
    """A link style (a disguised target) is never rendered as an OSC 8 hyperlink."""
    from rich.text import Text

    screen, buffer = _screen()
    screen.print(Text("click here", style="link https://evil.example/"))
    assert "\x1b]8" not in buffer.getvalue() and "click here" in buffer.getvalue()


def test_secrets_held_are_blanked_on_screen(monkeypatch):
    from gridchat.chat import redact
    from rich.text import Text

    monkeypatch.setattr(redact, "_held", set())
    monkeypatch.setattr(redact, "_pattern", None)
    redact.hold("sk-secret-123")
    screen, buffer = _screen()
    screen.print(Text("server error 401: bad key Bearer sk-secret-123"))
    assert "sk-secret-123" not in buffer.getvalue() and "Bearer ***" in buffer.getvalue()


def test_say_and_writer_make_text_safe(capsys):
    from gridchat.chat.output import Writer, say

    say(f"chat: error: {HOSTILE}")
    out = io.StringIO()
    Writer(out).write(HOSTILE)
    for text in (capsys.readouterr().err, out.getvalue()):
        assert "\x1b" not in text and "\u202e" not in text and "␛]0;PWNED␇" in text


def test_a_terminal_that_went_away_ends_output_quietly():
    """A closed window (EIO on the pty) must not raise out of a print: what is being recorded still
    gets recorded (issue 16, defect 4)."""
    import errno

    from gridchat.chat.output import Screen

    class DeadPty(io.StringIO):
        def write(self, text):
            raise OSError(errno.EIO, "Input/output error")

    screen = Screen(file=DeadPty(), force_terminal=True)
    screen.print("the last redraw")
    screen.print("and another")
    assert screen.gone


@pytest.mark.parametrize("char", ["\u202e", "\u200b", "\U000e0041", "\ufe00", "\u3164"])
def test_prompt_toolkit_draws_invisible_characters_visibly(char):
    """Whatever prompt_toolkit draws — prompt, toolbar, the text being typed — shows bidi and
    invisible characters as ⟨U+XXXX⟩."""
    from gridchat.chat.output import formatted
    from prompt_toolkit.layout.screen import Char

    formatted("x")  # the guard is in place once formatted text has been made
    assert Char(char).char == f"⟨U+{ord(char):04X}⟩"
