"""End to end in a real terminal: `python -m gridchat` in a tmux pane against the fake backend
(see terminal.py for how the terminal is driven)."""

from __future__ import annotations

import re

import pytest
from fake_backend import Reply, prompt_tokens
from terminal import MODEL, flat, send, sgr_params, unwrap

# -- 1. a plain conversation ------------------------------------------------------------------------

def test_prompt_reply_stats_and_history(fake, term):
    fb = fake("vllm")
    t = term(fb, "--persona", "lawful_evil")
    t.wait_prompt("lawful_evil")
    assert "gridchat" in t.screen()
    # the bottom toolbar (drawn at the bottom once the terminal has told where the cursor is)
    t.wait(lambda: "lawful_evil" in t.visible()[-1] and MODEL in t.visible()[-1], "the bottom toolbar")

    t.line("hello there")
    t.wait_for("Echo: hello there")
    t.wait_prompt("lawful_evil")
    lines = t.screen().splitlines()
    i = lines.index("Echo: hello there")
    assert lines[i - 1] == "lawful_evil › hello there"
    stats = lines[i + 1]
    assert "tokens" in stats and "context" in stats, stats
    # the stats line is dim (SGR 2) where the reply itself is not
    styled = t.screen(escapes=True).splitlines()
    stats_styled = next(line for line in styled if "tokens" in line and "first token" in line)
    assert "2" in sgr_params(stats_styled), repr(stats_styled)

    send(t, "lawful_evil", "and once more", "Echo: and once more")
    bodies = [r.body for r in fb.generations()]
    assert len(bodies) == 2
    assert bodies[0]["messages"] == [
        {"role": "system", "content": "Persona: lawful_evil"},
        {"role": "user", "content": "hello there"},
    ]
    assert bodies[1]["messages"] == [
        {"role": "system", "content": "Persona: lawful_evil"},
        {"role": "user", "content": "hello there"},
        {"role": "assistant", "content": "Echo: hello there"},
        {"role": "user", "content": "and once more"},
    ]
    assert bodies[1]["model"] == MODEL and bodies[1]["stream"] is True
    assert "Traceback" not in t.screen()


# -- 2. switching persona ------------------------------------------------------------------------------

def test_persona_switch_mid_session(fake, term):
    fb = fake("vllm")
    t = term(fb, "--persona", "lawful_evil")
    t.wait_prompt("lawful_evil")
    send(t, "lawful_evil", "hi", "Echo: hi")

    t.line("/persona chaotic_good")
    t.wait_for("persona chaotic_good · system: Persona: chaotic_good")
    t.wait_prompt("chaotic_good")
    send(t, "chaotic_good", "next", "Echo: next")
    assert fb.last_body("/chat/completions")["messages"] == [
        {"role": "system", "content": "Persona: chaotic_good"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Echo: hi"},
        {"role": "user", "content": "next"},
    ]

    t.line("/persona")
    t.wait_for("● chaotic_good")
    t.wait_prompt("chaotic_good")
    grid = t.output_after("chaotic_good › /persona")
    assert "● chaotic_good" in grid and grid.count("●") == 1, grid
    for name in ("lawful_good", "true_neutral", "chaotic_evil", "none"):
        assert name in grid

    t.line("/persona none")
    t.wait_for("persona none · no system message")
    t.wait_prompt("none")
    send(t, "none", "third", "Echo: third")
    messages = fb.last_body("/chat/completions")["messages"]
    assert all(m["role"] != "system" for m in messages), messages
    assert messages == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Echo: hi"},
        {"role": "user", "content": "next"},
        {"role": "assistant", "content": "Echo: next"},
        {"role": "user", "content": "third"},
    ]

    t.line("/persona")
    t.wait_for("● none")
    t.wait_prompt("none")
    listing = t.output_after("none › /persona")
    assert "● none" in listing and listing.count("●") == 1, listing
    assert len(fb.generations()) == 3  # the slash commands sent nothing


def test_unknown_persona_is_one_line_and_keeps_the_persona(fake, term):
    fb = fake("vllm")
    t = term(fb, "--persona", "lawful_evil")
    t.wait_prompt("lawful_evil")
    t.line("/persona chaotic_wizard")
    t.wait_for("error: unknown persona 'chaotic_wizard'")
    t.wait_prompt("lawful_evil")
    send(t, "lawful_evil", "still me", "Echo: still me")
    assert fb.last_body("/chat/completions")["messages"][0] == {"role": "system", "content": "Persona: lawful_evil"}


# -- 3. Ctrl-C mid-reply -----------------------------------------------------------------------------

def test_ctrl_c_stops_the_reply_and_the_session_goes_on(fake, term):
    fb = fake("vllm")
    long_text = "word " * 400  # 500 pieces of 4 characters, 0.02 s apart: 10 s if left alone
    fb.script(Reply(text=long_text, delay=0.02))
    t = term(fb, "--persona", "lawful_evil")
    t.wait_prompt("lawful_evil")
    t.line("tell me a long story")
    t.wait_for("word word word word")
    first = fb.generations()[0]
    assert first.finished is None, "the reply should still be streaming (it is shown as it comes)"

    t.keys("C-c")
    t.wait_for("[interrupted]")
    t.wait_prompt("lawful_evil")
    assert t.alive()
    assert "Traceback" not in t.screen()
    # the client hung up: the server stopped sending long before the 10 s the reply would take
    t.wait(lambda: first.finished is not None, "the server to see the connection close", timeout=5)
    assert first.finished - first.started < 8

    send(t, "lawful_evil", "go on", "Echo: go on")
    messages = fb.last_body("/chat/completions")["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1]["content"] == "tell me a long story"
    partial = messages[2]["content"]
    assert partial.startswith("word word") and long_text.startswith(partial), partial[:80]
    assert len(partial) < len(long_text)
    assert messages[3] == {"role": "user", "content": "go on"}
    assert t.alive()


def test_ctrl_c_before_the_first_token_offers_the_text_again(fake, term):
    fb = fake("vllm")
    fb.script(Reply(text="too late", delay=5))  # the first piece would come after 5 s
    t = term(fb)
    t.wait_prompt("none")
    t.line("are you there")
    t.wait(lambda: len(fb.generations()) == 1, "the request at the server")
    t.keys("C-c")
    t.wait_for("[interrupted]")
    t.wait_prompt("none", "are you there")  # nothing came back: the message is offered again
    assert "too late" not in t.screen()
    t.keys("Enter")
    t.wait_for("Echo: are you there")
    t.wait_prompt("none")
    # the interrupted attempt left nothing in the conversation
    assert fb.last_body("/chat/completions")["messages"] == [{"role": "user", "content": "are you there"}]


def test_keys_typed_during_a_reply_wait_for_the_next_prompt(fake, term):
    fb = fake("vllm")
    fb.script(Reply(text="slow " * 100, delay=0.02))  # 2.5 s of reply
    t = term(fb)
    t.wait_prompt("none")
    t.line("take your time")
    t.wait_for("slow slow slow")
    t.type("typed ahead")  # while the reply is still streaming
    t.wait_prompt("none", "typed ahead")
    lines = t.screen().splitlines()
    assert [line for line in lines if "typed ahead" in line] == ["none › typed ahead"], lines  # not echoed mid-reply
    assert len(fb.generations()) == 1
    t.keys("Enter")
    t.wait_for("Echo: typed ahead")
    assert fb.last_body("/chat/completions")["messages"][-1] == {"role": "user", "content": "typed ahead"}


def test_ctrl_c_at_the_prompt_clears_the_line_and_stays(fake, term):
    fb = fake("vllm")
    t = term(fb)
    t.wait_prompt("none")
    t.type("half a thought")
    t.wait_prompt("none", "half a thought")
    t.keys("C-c")
    t.wait_prompt("none")
    assert t.alive()
    send(t, "none", "whole", "Echo: whole")
    assert fb.last_body("/chat/completions")["messages"] == [{"role": "user", "content": "whole"}]


# -- 4. leaving ------------------------------------------------------------------------------------------

def test_exit_command_quits_with_status_0(fake, term):
    fb = fake("vllm")
    t = term(fb)
    t.wait_prompt("none")
    t.line("/exit")
    assert t.wait_exit() == 0
    assert "Traceback" not in t.screen()
    assert fb.generations() == []


def test_ctrl_d_at_an_empty_prompt_quits_with_status_0(fake, term):
    fb = fake("vllm")
    t = term(fb)
    t.wait_prompt("none")
    send(t, "none", "one message first", "Echo: one message first")
    t.keys("C-d")
    assert t.wait_exit() == 0
    assert "Traceback" not in t.screen()


# -- 5. errors keep the session and the typed text --------------------------------------------------------

def test_server_error_keeps_session_and_refills_the_prompt(fake, term):
    fb = fake("vllm")
    fb.script(Reply(status=500))
    t = term(fb, "--persona", "lawful_evil")
    t.wait_prompt("lawful_evil")
    t.line("please answer me")
    t.wait_for("500")
    t.wait_prompt("lawful_evil", "please answer me")
    screen = t.screen()
    error_lines = [line for line in screen.splitlines() if "error" in line.lower()]
    assert len(error_lines) == 1 and "500" in error_lines[0], error_lines
    assert "Traceback" not in screen
    assert len(fb.generations()) == 1  # shown at once, not retried behind the user's back
    assert t.alive()

    fb.script(Reply(text="recovered fine"))
    t.keys("Enter")  # the refilled text is sent again as it stands
    t.wait_for("recovered fine")
    t.wait_prompt("lawful_evil")
    # the failed attempt left nothing behind: the message is in the history once
    assert fb.last_body("/chat/completions")["messages"] == [
        {"role": "system", "content": "Persona: lawful_evil"},
        {"role": "user", "content": "please answer me"},
    ]


def test_context_exceeded_shows_the_sizes(fake, term):
    fb = fake("vllm", context_window=50)
    t = term(fb)
    t.wait_prompt("none")
    long_message = " ".join(["lorem"] * 60)  # 359 characters: ~99 fake tokens, the window is 50
    t.line(long_message)
    t.wait_for("context exceeded")
    body = fb.last_body("/chat/completions")
    needed = prompt_tokens(body)
    assert needed > 50
    screen = flat(t.screen())
    assert f"the request needs {needed:,} tokens" in screen, screen
    assert "the server's window is 50" in screen, screen
    assert "Traceback" not in screen
    assert t.alive()
    # the text is offered again at the prompt (it wraps there, indented under the prompt)
    t.wait(lambda: t.cursor_line().endswith("lorem"), "the cursor at the end of the refilled text")
    after = unwrap(t.screen().rsplit("context exceeded", 1)[-1])
    squeezed = [line.replace(" ", "") for line in after.splitlines()]  # a wrap may fall on a space
    assert ("none›" + long_message).replace(" ", "") in squeezed, after
    assert len(fb.generations()) == 1  # a 400 is not retried
    # Enter sends the very same message again (and it fails the same way)
    t.keys("Enter")
    t.wait(lambda: t.screen().count("context exceeded") >= 2, "the second context error")
    gens = fb.generations()
    assert len(gens) == 2 and gens[1].body["messages"] == gens[0].body["messages"] == [
        {"role": "user", "content": long_message}]


# -- 6. unknown commands and empty lines send nothing ---------------------------------------------------

def test_unknown_command_and_empty_enter_send_nothing(fake, term):
    fb = fake("vllm")
    t = term(fb)
    t.wait_prompt("none")
    before = len(fb.requests)

    t.line("/frobnicate now")
    t.wait_for("unknown command /frobnicate")
    t.wait_prompt("none")
    assert len(fb.requests) == before  # nothing at all reached the server
    assert fb.generations() == []

    t.keys("Enter")
    t.wait(lambda: t.screen().splitlines().count("none ›") >= 2, "a fresh prompt after an empty Enter")
    t.wait_prompt("none")
    t.type("   ")
    t.keys("Enter")
    t.wait(lambda: t.screen().splitlines().count("none ›") >= 3, "a fresh prompt after a blank line")
    t.wait_prompt("none")

    send(t, "none", "real message", "Echo: real message")
    gens = fb.generations()
    assert len(gens) == 1, [r.body for r in gens]
    assert gens[0].body["messages"] == [{"role": "user", "content": "real message"}]


def test_double_slash_sends_a_literal_slash(fake, term):
    fb = fake("vllm")
    t = term(fb)
    t.wait_prompt("none")
    send(t, "none", "//frobnicate is not a command", "Echo: /frobnicate is not a command")
    assert fb.last_body("/chat/completions")["messages"] == [
        {"role": "user", "content": "/frobnicate is not a command"}]


# -- 7. Tab completion -----------------------------------------------------------------------------------

def test_tab_completes_commands_and_persona_names(fake, term):
    fb = fake("vllm")
    t = term(fb)
    t.wait_prompt("none")
    t.type("/pers")
    t.wait(lambda: any("/personas" in line for line in t.visible()), "the completion menu")
    t.keys("Tab")
    t.wait_prompt("none", "/persona")

    t.type(" chaotic_")
    t.wait(lambda: any("chaotic_neutral" in line for line in t.visible()), "the persona completion menu")
    menu = "\n".join(t.visible())
    assert "chaotic_good" in menu and "chaotic_evil" in menu and "lawful_good" not in menu, menu
    t.keys("Tab")
    completed = t.wait(lambda: re.fullmatch(r"none › /persona (chaotic_good|chaotic_neutral|chaotic_evil)",
                                            t.cursor_line()), "a completed persona name")
    name = completed.group(1)
    t.keys("Enter")  # sends the completed command: the persona really changes
    t.wait_prompt(name)
    send(t, name, "who am i", "Echo: who am i")
    assert fb.last_body("/chat/completions")["messages"][0] == {"role": "system", "content": f"Persona: {name}"}


# -- 8. multi-line input -----------------------------------------------------------------------------------

def test_alt_enter_adds_a_line_and_paste_keeps_lines(fake, term):
    fb = fake("vllm")
    t = term(fb)
    t.wait_prompt("none")
    t.type("first line")
    t.raw(b"\x1b\r")  # Alt-Enter, as a terminal sends it
    t.type("second line")
    t.wait(lambda: t.cursor_line().endswith("second line"), "the second line being typed")
    assert fb.generations() == []  # Alt-Enter did not send
    lines = t.visible()
    i = lines.index(t.cursor_line())
    assert lines[i - 1] == "none › first line"
    t.keys("Enter")
    t.wait_for("Echo: first line")
    t.wait_prompt("none")
    assert fb.last_body("/chat/completions")["messages"] == [{"role": "user", "content": "first line\nsecond line"}]

    t.raw(b"\x1b[200~line one\nline two\x1b[201~")  # a bracketed paste of two lines
    t.wait(lambda: t.cursor_line().endswith("line two"), "the pasted text")
    assert len(fb.generations()) == 1  # the newline in the paste did not send
    t.keys("Enter")
    t.wait_for("Echo: line one")
    t.wait_prompt("none")
    gens = fb.generations()
    assert len(gens) == 2
    assert gens[1].body["messages"][-1] == {"role": "user", "content": "line one\nline two"}


# -- 9. model text cannot drive the terminal -------------------------------------------------------------

def test_model_text_cannot_drive_the_terminal(fake, term):
    fb = fake("vllm")
    fb.script(Reply(text="safe \x1b]0;HACKED\x07 and \x1b[31mred\x1b[0m [bold]not markup[/bold]"))
    t = term(fb)
    t.wait_prompt("none")
    title_before = t.pane("#{pane_title}")
    t.line("be nasty")
    t.wait_for("not markup")
    t.wait_prompt("none")
    screen = t.screen()
    assert "[bold]not markup[/bold]" in screen, screen
    assert "␛" in screen  # ESC shown as a visible symbol
    assert "␛]0;HACKED" in screen and "␛[31mred" in screen
    raw = t.raw_output()
    assert raw, "pipe-pane captured nothing"
    assert "␛]0;HACKED".encode() in raw
    assert b"\x1b]0;HACKED" not in raw and b"\x1b[31mred" not in raw and b"HACKED\x07" not in raw
    assert t.pane("#{pane_title}") == title_before != "HACKED"
    # the reply is kept as the model sent it (only the display is neutralised)
    send(t, "none", "again", "Echo: again")
    assert fb.last_body("/chat/completions")["messages"][1] == {
        "role": "assistant", "content": "safe \x1b]0;HACKED\x07 and \x1b[31mred\x1b[0m [bold]not markup[/bold]"}


# -- 10. input history persists across sessions --------------------------------------------------------------

def test_input_history_persists(fake, term, isolated_env):
    fb = fake("vllm")
    t = term(fb)
    t.wait_prompt("none")
    send(t, "none", "remember this line", "Echo: remember this line")
    t.line("/exit")
    assert t.wait_exit() == 0
    history = isolated_env / "data" / "gridchat" / "history"
    assert history.is_file()

    t2 = term(fb)
    t2.wait_prompt("none")
    t2.keys("Up")
    t2.wait(lambda: t2.cursor_line() != "none ›", "Up to recall a line")
    if t2.cursor_line() == "none › /exit":  # the last line typed was /exit: one more step back
        t2.keys("Up")
    t2.wait_prompt("none", "remember this line")
    t2.keys("Enter")
    t2.wait_for("Echo: remember this line")
    t2.wait_prompt("none")
    assert fb.last_body("/chat/completions")["messages"] == [{"role": "user", "content": "remember this line"}]


# -- 11. /status -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("flavor,shown", [("vllm", "vllm 0.32.0"), ("llamacpp", "llama-server b6800-1a2b3c4d")])
def test_status_shows_server_model_api_persona_context(fake, term, flavor, shown):
    fb = fake(flavor)
    t = term(fb, "--persona", "lawful_evil")
    t.wait_prompt("lawful_evil")
    send(t, "lawful_evil", "hi", "Echo: hi")
    t.line("/status")
    t.wait_for("last reply")
    t.wait_prompt("lawful_evil")
    out = t.output_after("lawful_evil › /status")
    rows = {line.split()[0]: " ".join(line.split()[1:]) for line in out.splitlines()[1:] if line.strip()
            and not line.startswith("lawful_evil ›")}
    assert rows["server"] == f"{fb.base_url} ({shown})", rows
    assert rows["model"] == MODEL
    flavor_name = "vllm" if flavor == "vllm" else "llama-server"
    assert rows["api"] == f"chat — auto: Chat Completions, which {flavor_name} speaks for every model"
    assert rows["persona"] == "lawful_evil — system: Persona: lawful_evil"
    assert re.fullmatch(r"[\d,]+ / 131,072 tokens \(2 messages\)", rows["context"]), rows["context"]
    assert "reasoning" in rows and "last" in rows
    assert len(fb.generations()) == 1  # /status asked nothing of the model


# -- 12. reasoning -------------------------------------------------------------------------------------------

def test_reasoning_shown_then_hidden_with_think(fake, term):
    fb = fake("vllm")
    fb.script(Reply(reasoning="deep thoughts here", text="the answer"),
              Reply(reasoning="secret musings", text="second answer"))
    t = term(fb)
    t.wait_prompt("none")
    send(t, "none", "think first", "the answer")
    screen = t.wait_for("deep thoughts here")
    assert screen.index("deep thoughts here") < screen.index("the answer")
    styled = next(line for line in t.screen(escapes=True).splitlines() if "deep thoughts here" in line)
    assert {"2", "3"} <= sgr_params(styled), repr(styled)  # dim italic, apart from the answer
    answer = next(line for line in t.screen(escapes=True).splitlines() if "the answer" in line)
    assert "2" not in sgr_params(answer), repr(answer)

    t.line("/think")
    t.wait_for("reasoning hidden")
    t.wait_prompt("none")
    send(t, "none", "again", "second answer")
    assert "secret musings" not in t.screen()
    # reasoning is never sent back to the server
    assert fb.last_body("/chat/completions")["messages"] == [
        {"role": "user", "content": "think first"},
        {"role": "assistant", "content": "the answer"},
        {"role": "user", "content": "again"},
    ]

    t.line("/status")
    t.wait_for("hidden (/think shows it)")
    t.wait_prompt("none")
    assert "hidden (/think shows it)" in t.output_after("none › /status")
