"""Rendering: model text is made safe, and a long reply costs rendering work per block, not per token."""

import io

from gridchat.chat.render import MarkdownStream
from gridchat.chat.sanitize import sanitize
from rich.console import Console


def test_sanitize_neutralises_control_sequences():
    text = "title \x1b]0;pwned\x07 colour \x1b[31mred\x1b[0m bell \x07 cr \r back \x08 c1 \x9b"
    safe = sanitize(text)
    assert not any(ord(c) < 0x20 and c not in "\n\t" for c in safe)
    assert "\x9b" not in safe and "\x7f" not in sanitize("del \x7f")
    assert "␛]0;pwned" in safe  # visible, not executed
    assert sanitize("tabs\tand\nnewlines stay") == "tabs\tand\nnewlines stay"


def test_blank_looking_characters_outside_the_ignorable_set_are_shown_too():
    """Braille blank, the Egyptian hieroglyph format controls and the musical null notehead draw
    nothing, so they can hide text as zero-width spaces do: shown as ⟨U+…⟩ like them."""
    for char in ("\u2800", "\U00013430", "\U0001343f", "\U0001d159"):
        assert sanitize(f"a{char}b") == f"a⟨U+{ord(char):04X}⟩b"
    assert sanitize("⠁⠃ braille dots stay") == "⠁⠃ braille dots stay"


def test_a_run_of_joiners_is_shown_though_one_joiner_is_kept():
    """ZWJ and ZWNJ are kept for emoji and scripts that need one between two letters, but a run of
    them carries hidden bits (the zero-width message trick): a run is shown, each as ⟨U+…⟩."""
    assert sanitize("👩\u200d💻 and \u0645\u200c\u06cc") == "👩\u200d💻 and \u0645\u200c\u06cc"
    assert sanitize("a\u200d\u200c\u200db") == "a⟨U+200D⟩⟨U+200C⟩⟨U+200D⟩b"


def console(width=80):
    out = io.StringIO()
    return Console(file=out, width=width, force_terminal=False, color_system=None), out


def stream_in_tokens(stream, text, size=3):
    for i in range(0, len(text), size):
        stream.feed(text[i:i + size])
    stream.close()


def test_markdown_is_rendered_and_markup_is_not_interpreted():
    con, out = console()
    stream_in_tokens(MarkdownStream(con), "# Title\n\nSome **bold** and [red]not markup[/red].\n\n- one\n- two\n")
    shown = out.getvalue()
    assert "Title" in shown and "**" not in shown  # Markdown was rendered
    assert "[red]not markup[/red]" in shown  # rich markup was shown literally
    assert "• one" in shown or "- one" in shown


def test_blocks_are_printed_once_each_in_order():
    con, out = console()
    paragraphs = [f"Paragraph number {i} with some words." for i in range(50)]
    stream = MarkdownStream(con)
    stream_in_tokens(stream, "\n\n".join(paragraphs) + "\n")
    shown = out.getvalue()
    assert [shown.count(p) for p in paragraphs] == [1] * 50
    assert shown.index("number 7 ") < shown.index("number 8 ")
    assert stream.blocks_rendered == 50  # one render per finished block, none per token


def test_code_fences_are_not_split_at_blank_lines():
    con, out = console()
    code = "```python\ndef f():\n\n    return 1\n```\n\nAfter.\n"
    stream = MarkdownStream(con)
    stream_in_tokens(stream, code, size=2)
    assert stream.blocks_rendered == 2  # the fence (with its blank line) and the paragraph
    assert "return 1" in out.getvalue() and "```" not in out.getvalue()


def test_rendering_work_does_not_grow_with_reply_length():
    """A 20,000-token reply: renders are counted, not timed (a guard that cannot flake)."""
    def renders(tokens):
        con, _ = console()
        stream = MarkdownStream(con)
        words = [f"w{i} " if i % 40 else "\n\n" for i in range(tokens)]
        for w in words:
            stream.feed(w)
        stream.close()
        return stream.blocks_rendered, tokens // 40

    blocks, paragraphs = renders(20_000)
    assert blocks <= paragraphs + 1


def test_plain_mode_commits_by_line():
    con, out = console()
    stream = MarkdownStream(con, markdown=False, style="dim")
    stream_in_tokens(stream, "thinking line one\nthinking **two**\npartial")
    assert out.getvalue().splitlines() == ["thinking line one", "thinking **two**", "partial"]
