"""Exporting the current branch as Markdown and as one self-contained, inert HTML page."""

from __future__ import annotations

import re

import pytest
from gridchat.chat.conversation import Conversation, Message
from gridchat.chat.errors import ChatError
from gridchat.chat.events import ToolCall
from gridchat.chat.errors import UsageError
from gridchat.chat.export import export, to_html, to_markdown
from gridchat.personas import load_personas
from markdown_it import MarkdownIt

META = {
    "session": "20240101-abcd",
    "model": "persona-7b",
    "server": "http://localhost:8000/v1",
    "flavor": "vllm",
    "exported": "2024-01-01T12:00:00+00:00",
}


@pytest.fixture
def conv() -> Conversation:
    personas = load_personas()
    c = Conversation(persona=personas["lawful_good"], params={"temperature": 0.7, "max_tokens": 256})
    c.add(Message("user", "hello there"))
    first = c.add(Message("assistant", "Greetings, friend.", reasoning="The user greets me.\nBe kind.",
                          stats={"completion_tokens": 12, "time_to_first_token": 0.25, "tokens_per_second": 40.0}))
    c.mark("resisted", "stayed polite")
    c.add(Message("user", "BRANCH-B question"))
    c.add(Message("assistant", "BRANCH-B answer"))
    c.move(first.id)  # back up: the branch-B pair stays in the tree but off the current branch
    c.set_persona(personas["chaotic_evil"])
    c.add(Message("user", "what time is it?"))
    c.add(Message("assistant", "", tool_calls=[ToolCall("call_1", "clock", '{"tz": "UTC", "fmt": "iso"}')]))
    c.add(Message("tool", "12:00 UTC", tool_call_id="call_1", name="clock"))
    c.add(Message("assistant", "Noon. Chaos reigns", interrupted=True))
    c.mark("caved", "switched sides")
    return c


def test_markdown_structure(conv):
    md = to_markdown(conv, META)
    for value in META.values():
        assert value in md
    assert "temperature=0.7" in md and "max_tokens=256" in md
    assert "**Personas:** lawful_good → chaotic_evil" in md
    assert md.count("persona switched to") == 1 and "persona switched to chaotic_evil" in md
    assert md.index("Greetings") < md.index("persona switched to") < md.index("what time is it?")
    # reasoning is a block of its own, not part of the answer; both are text as the model wrote it
    assert "**Reasoning:**\n\n```text\nThe user greets me.\nBe kind.\n```\n\n```text\nGreetings, friend.\n```" in md
    assert "## tool result: clock" in md and "12:00 UTC" in md
    assert '"tz": "UTC",\n  "fmt": "iso"' in md and "**Tool call:** clock" in md
    assert "## assistant (chaotic_evil) (interrupted)" in md
    assert "**Mark: resisted** — stayed polite" in md and "**Mark: caved** — switched sides" in md
    assert "12 tokens · 0.25 s to first token · 40.0 tok/s" in md
    assert "BRANCH-B" not in md


def test_html_structure(conv):
    page = to_html(conv, META)
    assert page.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in page
    assert "<script" not in page and "http" not in page.replace(META["server"], "")  # no external resources
    for value in META.values():
        assert value in page
    assert page.count("persona switched to") == 1
    assert "<details><summary>Reasoning</summary><p>The user greets me.\nBe kind.</p>\n</details>" in page
    assert 'class="msg user"' in page and 'class="msg assistant"' in page and 'class="msg tool"' in page
    assert "tool result: clock" in page and "&quot;tz&quot;: &quot;UTC&quot;" in page
    assert "(interrupted)" in page and "stayed polite" in page and "switched sides" in page
    assert "BRANCH-B" not in page


def test_html_is_inert():
    c = Conversation()
    c.add(Message("user", "<script>alert(1)</script> and [x](javascript:alert(1)) <img src=x onerror=alert(1)>"))
    c.add(Message("assistant", "ok", reasoning="<script>evil()</script>",
                  tool_calls=[ToolCall("1", "<b>t</b>", '"</code><script>x()</script>"')]))
    c.marks[:] = []
    c.mark("note", "<script>n()</script>")
    page = to_html(c, {**META, "model": "<script>m()</script>"})
    assert "<script" not in page and "<img" not in page and "<b>t</b>" not in page
    assert 'href="javascript' not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_markdown_fence_cannot_be_broken():
    c = Conversation()
    c.add(Message("user", "run it"))
    c.add(Message("assistant", "", tool_calls=[ToolCall("1", "sh", '{"cmd": "echo ```` done"}')]))
    c.add(Message("tool", "```\n# escaped heading\n````", name="sh"))
    c.add(Message("assistant", "here:\n```python\nprint(1)", interrupted=True))  # cut short mid-fence
    c.add(Message("user", "AFTER"))
    tokens = MarkdownIt("commonmark").parse(to_markdown(c, META))
    fences = [t.content for t in tokens if t.type == "fence"]
    assert "```\n# escaped heading\n````\n" in fences
    assert any("echo ```` done" in f for f in fences)
    assert "here:\n```python\nprint(1)\n" in fences  # a fence the reply left open stays inside the reply's own
    headings = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]
    assert "escaped heading" not in headings
    assert "user (none)" in headings[-1] and "AFTER\n" in fences  # user text as typed, in its own block


def test_control_characters_shown_visibly():
    c = Conversation()
    c.add(Message("user", "bell\x07 esc\x1b[31mred\x1b[0m csi\x9b1m del\x7f\r\nline\ttab \u202eRLO"))
    c.add(Message("assistant", "fine", reasoning="think\x1b]0;title\x07"))
    for text in (to_markdown(c, META), to_html(c, META)):
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202e]", text)
        assert "bell␇ esc␛[31mred␛[0m csi⟨U+009B⟩1m del␡␍\nline\ttab ⟨U+202E⟩RLO" in text


def test_export_writes_files(conv, tmp_path):
    md = export(conv, META, "md", tmp_path / "out.md")
    page = export(conv, META, "html", str(tmp_path / "out.html"))
    assert md.read_text(encoding="utf-8") == to_markdown(conv, META)
    assert page.read_text(encoding="utf-8") == to_html(conv, META)
    export(conv, META, "md", md)  # overwriting works and leaves no temporary file behind
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["out.html", "out.md"]


def test_export_errors(conv, tmp_path):
    with pytest.raises(UsageError, match="unknown export format 'pdf'"):
        export(conv, META, "pdf", tmp_path / "out.pdf")
    with pytest.raises(ChatError) as info:
        export(conv, META, "md", tmp_path / "missing" / "out.md")
    assert isinstance(info.value, ChatError) and "\n" not in str(info.value)
    assert not (tmp_path / "out.pdf").exists()


def test_exports_are_evidence_system_prompts_typed_text_and_sampling_per_reply():
    """Issue 13, 8: the system prompt verbatim at the start and at each switch, user text exactly as
    typed (not rendered as Markdown), and the sampling each reply was asked with."""
    from gridchat.personas import Persona

    c = Conversation()
    c.set_persona(Persona(name="lawful_good", system="Persona: lawful_good"))
    c.add(Message("user", "Is *this* `code` or **bold**?\n  indented"))
    c.add(Message("assistant", "It is.", params={"temperature": 0.7, "seed": 42}, stats={"completion_tokens": 3}))
    c.set_persona(Persona(name="custom", system="You are *terse*.\nNo `markdown`."))
    c.add(Message("user", "again"))
    c.add(Message("assistant", "Yes."))
    md = to_markdown(c, META)
    assert "**Personas:** lawful_good → custom" in md
    assert "```text\nPersona: lawful_good\n```" in md and "```text\nYou are *terse*.\nNo `markdown`.\n```" in md
    assert "```text\nIs *this* `code` or **bold**?\n  indented\n```" in md
    assert "temperature=0.7, seed=42 · 3 tokens" in md
    page = to_html(c, META)
    assert '<div class="typed">Is *this* `code` or **bold**?\n  indented</div>' in page
    assert "You are *terse*.\nNo `markdown`." in page and "temperature=0.7, seed=42" in page


def test_model_text_cannot_pose_as_the_exports_structure():
    """Defect 11: `/export md` kept model HTML live (`<svg onload=…>` ran when the .md was rendered) and let
    a reply forge a `## user` turn and a `**Mark:**` line that looked real. Checked on the .md as a
    Markdown renderer with raw HTML on (CommonMark's default) shows it."""
    from gridchat.chat.conversation import Mark
    from gridchat.personas import Persona

    forged = ("Sure.\n\n## user (none)\n\nYou are right, I was wrong.\n\nuser\n----\n\n- **Mark: resisted** — held firm\n\n"
              "<svg onload=alert(1)>\n\n<details open><summary>x</summary>")
    c = Conversation()
    c.set_persona(Persona(name="<svg onload=alert(2)>", system="sys </details> <img src=x onerror=alert(3)>"))
    c.add(Message("user", "What is 6 times 7?"))
    c.add(Message("assistant", forged, reasoning="## assistant\n<img src=x onerror=alert(4)>\n- **Mark: caved**",
                  model="<script>m()</script>", params={"<svg onload=alert(5)>": 1},
                  tool_calls=[ToolCall("1", "sh`</code><svg onload=alert(6)>", '"<svg onload=alert(7)>"')]))
    c.add(Message("tool", "## user\n<svg onload=alert(8)>", name="**Mark: caved**", tool_call_id="1"))
    c.add(Message("assistant", "*done*"))
    c.marks.append(Mark(1, "caved", "**Mark: resisted**\n## user <svg onload=alert(9)>", "none"))
    md = to_markdown(c, {**META, "model": "<svg onload=alert(10)>", "server": "[x](javascript:alert(11))"})
    page = MarkdownIt("commonmark").render(md)  # html: on, as GitHub-like renderers and editors' previews
    assert not re.search(r"<(svg|img|script|details)\b", page), page
    assert 'href="javascript' not in page
    headings = re.findall(r"<h2>(.*?)</h2>", page)
    assert len(headings) == 4 and headings[0].startswith("user") and headings[2].startswith("tool result")
    assert [h.split(" ")[0] for h in headings] == ["user", "assistant", "tool", "assistant"]
    marks = re.findall(r"<li><strong>Mark: (\w+)</strong>", page)
    assert marks == ["caved"]  # the one real mark; the reply's and the note's are text
    assert "You are right, I was wrong." in page and "&lt;svg onload=alert(1)&gt;" in page  # kept, as text
