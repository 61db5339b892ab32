"""Failure 10 of the trust issue: text from outside (model, server, tools, files, transcripts)
reaches the terminal only through the one sanitizer: control and bidi characters shown visibly,
markup never interpreted, link targets shown when they differ from the text, HTML shown as text."""

from __future__ import annotations

import json
import os

from command import gridchat
from fake_backend import Reply, ToolCall
from terminal import flat

RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: `ls \u202etxt.hs` reads as `ls sh.txt`
OSC_TITLE = "\x1b]0;PWNED\x07"
NASTY = f"x{OSC_TITLE}\x1b[31mred{RLO}evil[bold red]markup[/bold red]"


def no_raw_controls(data: bytes) -> None:
    assert b"\x1b]0;PWNED" not in data and b"\x1b[31mred" not in data and b"PWNED\x07" not in data
    assert RLO.encode() not in data


def assert_shown_safely(text: str) -> None:
    assert "␛]0;PWNED" in text and "⟨U+202E⟩" in text and "[bold red]markup" in text


def test_list_shows_stored_text_safely(isolated_env):
    directory = isolated_env / "data" / "gridchat" / "sessions"
    directory.mkdir(parents=True)
    events = [{"event": "session", "id": "20261130-000000-abcd", "version": 1},
              {"event": "message", "id": 0, "parent": None, "role": "user", "content": NASTY,
               "persona": f"p{OSC_TITLE}"}]
    (directory / "20261130-000000-abcd.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    r = gridchat("--list", text=False)
    no_raw_controls(r.stdout)
    assert_shown_safely(r.stdout.decode())


def test_probe_list_shows_a_set_title_safely(isolated_env):
    probes = isolated_env / "config" / "gridchat" / "probes"
    probes.mkdir(parents=True)
    (probes / "mine.yaml").write_text(
        "name: mine\ntitle: " + json.dumps(NASTY) + "\nkind: refusal\nlabels:\n  full_compliance: answers\n"
        "  full_refusal: refuses\nprobes:\n  - id: p1\n    category: c\n    expect: answer\n    steps:\n"
        "      - say: hi\n        extract: true\n")
    r = gridchat("probe", "list", env={**os.environ, "COLUMNS": "300"}, text=False)
    assert r.returncode == 0, r.stderr
    no_raw_controls(r.stdout)
    assert_shown_safely(r.stdout.decode())


def test_personas_and_compare_headers_show_names_safely(fake, term, isolated_env):
    personas = isolated_env / "config" / "gridchat" / "personas"
    personas.mkdir(parents=True)
    (personas / "trick.yaml").write_text("name: '[red]trick[/red]'\nsystem: " + json.dumps(NASTY) + "\n")
    fb = fake("vllm")
    t = term(fb, "--persona", "lawful_good")
    t.wait_prompt("lawful_good")
    t.line("/personas")
    t.wait_for("[red]trick[/red]")
    t.wait_prompt("lawful_good")
    t.line("/compare lawful_good,[red]trick[/red] Are you sure?")
    t.wait_for("2 of 2 replies in")
    screen = flat(t.screen())
    assert screen.count("[red]trick[/red]") >= 2  # the /personas row and the compare header, as typed
    assert "␛]0;PWNED" in screen and "⟨U+202E⟩" in screen
    no_raw_controls(t.raw_output())


def test_bidi_controls_are_visible_in_replies_tool_output_and_the_bash_preview(fake, term, tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    fb = fake("vllm")
    command = f"echo 'out{RLO}put' # cat {RLO}txt.hs"
    fb.script(Reply(text=f"model {RLO}text", tool_calls=[ToolCall("bash", json.dumps({"command": command}))]),
              Reply(text="done"))
    t = term(fb, "--workspace", str(ws))
    t.wait_prompt("none")
    t.line("go")
    screen = t.wait_for("Run bash?")
    assert "cat ⟨U+202E⟩txt.hs" in flat(screen) and "model ⟨U+202E⟩text" in flat(screen)
    t.line("y")
    screen = t.wait_for("done")
    assert "out⟨U+202E⟩put" in flat(screen)
    assert RLO.encode() not in t.raw_output()


def test_a_link_shows_its_real_target_and_html_stays_visible(fake, term):
    fb = fake("vllm")
    fb.script(Reply(text="See [https://good.example](http://evil.example) and <https://plain.example>.\n\n"
                         "Inline <b>bold?</b> and a <!-- hidden note --> here.\n\n"
                         "<div>\nblock html\n</div>\n\nThe end."))
    t = term(fb)
    t.wait_prompt("none")
    t.line("links please")
    t.wait_for("The end.")
    t.wait_prompt("none")
    screen = flat(t.screen())
    assert "https://good.example (http://evil.example)" in screen
    assert "https://plain.example" in screen and "https://plain.example (https://plain.example)" not in screen
    assert "<!-- hidden note -->" in screen and "<b>bold?</b>" in screen and "<div>" in screen
    assert b"\x1b]8;" not in t.raw_output()  # no terminal hyperlink whose target differs from its text
