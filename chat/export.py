"""Export the current branch of a conversation as a Markdown file or one self-contained HTML page.

Everything in a conversation is model (or user) text, so it is treated as untrusted: terminal
control and bidi characters are made visible in both formats (chat/sanitize.py). An export is
evidence, so nothing in it may pose as its structure: in Markdown every message body (replies and
reasoning too) is a fenced block whose fence is longer than any backtick run inside it, and every
name, note and figure on the export's own lines is escaped — a reply's headings, HTML and
``- **Mark: …**`` lines stay text wherever the .md is rendered. In HTML every value is escaped and
reply Markdown is rendered (with raw HTML off) inside its message's own box.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path

from .adapters import scale_text
from .conversation import Conversation, Message
from .errors import UsageError
from .files import write_whole
from .sanitize import sanitize
from .turn import shortfall

__all__ = ["EXPORTERS", "MESSAGES_CSS", "export", "messages_html", "to_html", "to_markdown"]

_HEADER = (("Model", "model"), ("Server", "server"), ("Flavor", "flavor"), ("Session", "session"), ("Exported", "exported"))


@cache
def _markdown():
    """Raw HTML in the text is escaped; validateLink (kept as is) drops javascript:/vbscript:/file: links.
    Images are off so that opening an export never fetches anything from the network. Imported when
    first needed: markdown-it is a tenth of the client's start-up."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table").disable("image")




def clean(text: object) -> str:
    """Text with control and bidi characters made visible (the one sanitizer): an export is evidence,
    nothing in it is dropped, and nothing in it can drive a terminal that shows it."""
    return sanitize("" if text is None else str(text))


def _line(text: object) -> str:
    """Cleaned and on one line: for headers, names and notes."""
    return " ".join(clean(text).split())


# What can start inline Markdown or HTML: escaped with a backslash (CommonMark escapes any ASCII
# punctuation); an underscore inside a word can't, and stays as it is (lawful_good).
_INLINE = re.compile(r"[\\`*\[\]<>&!|~#]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def _md(text: object) -> str:
    """Text for one of the export's own Markdown lines: on one line, and nothing in it is Markdown."""
    return _INLINE.sub(lambda m: "\\" + m.group(), _line(text))


def _fence(text: str, lang: str = "") -> str:
    """A fenced block whose fence is longer than any backtick run in the text."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text}\n{fence}"


def _arguments(raw: str) -> str:
    """Tool-call arguments pretty-printed when they are JSON, as sent otherwise."""
    try:
        return json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
    except (TypeError, ValueError):
        return raw


def _params(conversation: Conversation) -> str:
    return ", ".join(f"{k}={v}" for k, v in conversation.params.items()) or "server defaults"


def _stats(message: Message) -> str:
    """A reply's figures and the sampling it was asked with (evidence of how it came about)."""
    stats = message.stats or {}
    parts = [f"model {_line(message.model)}"] if message.model else []
    parts += [f"adapter {_line(message.lora['name'])}×{scale_text(message.lora['scale'])}"] if message.lora else []
    parts += [", ".join(f"{k}={v}" for k, v in message.params.items())] if message.params else []
    if stats.get("completion_tokens") is not None:
        parts.append(f"{stats['completion_tokens']:,} tokens")
    if stats.get("time_to_first_token") is not None:
        parts.append(f"{stats['time_to_first_token']:.2f} s to first token")
    if stats.get("tokens_per_second"):
        parts.append(f"{stats['tokens_per_second']:.1f} tok/s")
    short = shortfall(message)
    if short:
        parts.append(f"✂ {_line(short)}")
    return " · ".join(parts)


def _title(message: Message) -> str:
    if message.role == "tool":
        return f"tool result: {_line(message.name or '?')}"
    role = _line(message.role)
    return f"{role} ({_line(message.persona)})" if message.persona else role


def _first_persona(conversation: Conversation) -> str:
    return next((m.persona for m in conversation.messages if m.role != "tool" and m.persona), conversation.persona.name)


def _personas(conversation: Conversation) -> str:
    """The personas of this branch in the order they were used: "lawful_good → chaotic_evil"."""
    used = list(dict.fromkeys(m.persona for m in conversation.messages if m.role != "tool" and m.persona))
    return " → ".join(used or [conversation.persona.name])


def _system(conversation: Conversation, persona: str) -> str | None:
    """The system message a persona sent, as it was sent; None: no system message."""
    if persona == conversation.persona.name:
        return conversation.persona.system
    return conversation.systems.get(persona)


def _walk(conversation: Conversation):
    """(message, persona it switched to or None, its marks) along the current branch."""
    current = _first_persona(conversation)
    for message in conversation.messages:
        switched = None
        if message.role != "tool" and message.persona and message.persona != current:
            current = switched = message.persona
        yield message, switched, [k for k in conversation.marks if k.message == message.id]


def _md_system(conversation: Conversation, persona: str) -> list[str]:
    system = _system(conversation, persona)
    if system is None:
        return [f"*{_md(persona)}: no system message*", ""]
    return [f"**System message ({_md(persona)}), as sent:**", "", _fence(clean(system), "text"), ""]


def _md_body(message: Message) -> list[str]:
    """A message's text as typed or as the model wrote it: fenced, so none of it can be structure."""
    out = []
    if message.reasoning:
        out += ["**Reasoning:**", "", _fence(clean(message.reasoning), "text"), ""]
    if message.content or message.role != "assistant":
        out += [_fence(clean(message.content), "" if message.role == "tool" else "text"), ""]
    for call in message.tool_calls:
        out += [f"**Tool call:** {_md(call.name)}", "", _fence(clean(_arguments(call.arguments)), "json"), ""]
    return out


def to_markdown(conversation: Conversation, meta: dict) -> str:
    out = ["# Conversation export", ""]
    out += [f"- **{label}:** {_md(meta.get(key, ''))}" for label, key in _HEADER]
    out += [f"- **Sampling:** {_md(_params(conversation))}", f"- **Personas:** {_md(_personas(conversation))}", ""]
    out += _md_system(conversation, _first_persona(conversation))
    for message, switched, marks in _walk(conversation):
        if switched:
            out += ["---", "", f"**persona switched to {_md(switched)}**", ""] + _md_system(conversation, switched)
        out += [f"## {_md(_title(message))}{' (interrupted)' if message.interrupted else ''}", ""]
        out += _md_body(message)
        out += [f"- **Mark: {_md(k.label)}**" + (f" — {_md(k.note)}" if k.note else "") for k in marks]
        out += [""] if marks else []
        if _stats(message):
            out += [f"*{_md(_stats(message))}*", ""]
    return "\n".join(out).rstrip("\n") + "\n"


MESSAGES_CSS = """
.msg { border-radius: 8px; padding: .6rem 1rem; margin: 1rem 0; border-left: 4px solid; }
.user { background: #eef4ff; border-color: #3b6fd8; }
.assistant { background: #f6f6f6; border-color: #888; }
.tool { background: #fff8e6; border-color: #d89b3b; }
.role { font-weight: bold; font-size: .9em; color: #555; }
.interrupted { color: #b00; }
.divider { text-align: center; color: #7a3db8; margin: 1.5rem 0; border-top: 1px dashed #7a3db8; padding-top: .3rem; }
details { color: #555; margin: .4rem 0; } summary { cursor: pointer; font-style: italic; }
pre { background: #272822; color: #f8f8f2; padding: .6rem; border-radius: 6px; overflow-x: auto; white-space: pre-wrap; }
code { font-family: ui-monospace, monospace; }
.marks { margin: .4rem 0; padding-left: 1.2rem; color: #333; } .stats { font-size: .8em; color: #777; }
.typed { white-space: pre-wrap; overflow-wrap: anywhere; }
.system { background: #f3eefc; border-left: 4px solid #7a3db8; border-radius: 8px; padding: .5rem 1rem; margin: 1rem 0;
          font-size: .9em; color: #444; } .system .typed { color: #222; margin-top: .3rem; }
"""
_CSS = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
header dl { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
header dt { font-weight: bold; } header dd { margin: 0; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: .2rem .5rem; }
""" + MESSAGES_CSS


def _code(text: str) -> str:
    return f"<pre><code>{html.escape(clean(text))}</code></pre>"


def to_html(conversation: Conversation, meta: dict) -> str:
    e = html.escape
    rows = [(label, meta.get(key, "")) for label, key in _HEADER]
    rows += [("Sampling", _params(conversation)), ("Personas", _personas(conversation))]
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(_line(meta.get('model', '')) or 'Conversation')} — gridchat export</title>",
        f"<style>{_CSS}</style></head><body>",
        "<header><h1>Conversation export</h1><dl>",
        *(f"<dt>{label}</dt><dd>{e(_line(value))}</dd>" for label, value in rows),
        "</dl></header><main>",
        messages_html(conversation),
        "</main></body></html>",
    ]
    return "\n".join(out) + "\n"


def _html_system(conversation: Conversation, persona: str) -> str:
    system = _system(conversation, persona)
    if system is None:
        return f'<div class="system">{html.escape(_line(persona))}: no system message</div>'
    return (f'<div class="system">System message ({html.escape(_line(persona))}), as sent:'
            f'<div class="typed">{html.escape(clean(system))}</div></div>')


def messages_html(conversation: Conversation) -> str:
    """The current branch's messages as HTML sections (styled by MESSAGES_CSS): for a page of one
    conversation, or many (a probe report's cells)."""
    e = html.escape
    out = [_html_system(conversation, _first_persona(conversation))]
    for message, switched, marks in _walk(conversation):
        if switched:
            out.append(f'<div class="divider">persona switched to <b>{e(_line(switched))}</b></div>')
            out.append(_html_system(conversation, switched))
        flag = ' <span class="interrupted">(interrupted)</span>' if message.interrupted else ""
        out.append(f'<section class="msg {e(_line(message.role))}"><div class="role">{e(_title(message))}{flag}</div>')
        if message.reasoning:
            out.append(f"<details><summary>Reasoning</summary>{_markdown().render(clean(message.reasoning))}</details>")
        if message.role == "tool":
            out.append(_code(message.content))
        elif message.role == "user":  # as typed, not rendered: a probe's exact wording is the evidence
            out.append(f'<div class="typed">{e(clean(message.content))}</div>')
        elif message.content:
            out.append(_markdown().render(clean(message.content)))
        for call in message.tool_calls:
            out.append(f"<div>Tool call: <code>{e(_line(call.name))}</code></div>{_code(_arguments(call.arguments))}")
        if marks:
            items = (f"<li><b>{e(_line(k.label))}</b>" + (f" — {e(_line(k.note))}" if k.note else "") + "</li>" for k in marks)
            out.append(f'<ul class="marks">{"".join(items)}</ul>')
        if _stats(message):
            out.append(f'<div class="stats">{e(_stats(message))}</div>')
        out.append("</section>")
    return "\n".join(out)


# An exporter is one entry: its name (the file suffix and /export's argument), what it writes, and how.
EXPORTERS: dict[str, tuple[str, Callable[[Conversation, dict], str]]] = {
    "md": ("Markdown", to_markdown),
    "html": ("a standalone HTML page", to_html),
}


def export(conversation: Conversation, meta: dict, fmt: str, path) -> Path:
    """Write the export whole (chat/files.py); return its path."""
    if fmt not in EXPORTERS:
        raise UsageError(f"unknown export format {fmt!r} (choose {' or '.join(EXPORTERS)})")
    return write_whole(path, EXPORTERS[fmt][1](conversation, meta).encode("utf-8"))
