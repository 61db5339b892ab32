"""Regression guards for speed that count work instead of timing it (the timings live in bench/)."""

import subprocess
import sys

from gridchat.chat.backends.base import Request
from gridchat.chat.backends.chat_completions import ChatCompletionsBackend
from gridchat.chat.backends.responses import ResponsesBackend
from gridchat.chat.config import Settings
from gridchat.chat.conversation import Message
from gridchat.chat.session import Session
from gridchat.chat.turn import NullSink
from gridchat.personas import load_personas


def imported_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys\nprint(' '.join(sys.modules))"],
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_the_prompt_does_not_wait_for_the_openai_sdk():
    """The SDK takes ~0.4 s to import: the REPL loads it in the background, never on the way to the prompt."""
    modules = imported_after("import gridchat.chat.cli, gridchat.chat.repl, gridchat.chat.session, gridchat.chat.sinks")
    assert "openai" not in modules and "httpx2" not in modules


def test_one_shot_mode_needs_no_prompt_toolkit_or_markdown():
    modules = imported_after("import gridchat.chat.cli, gridchat.chat.oneshot, gridchat.chat.session, gridchat.chat.sinks")
    assert "prompt_toolkit" not in modules and "rich.markdown" not in modules


def test_history_bypasses_the_sdks_per_item_walk():
    """The SDK transforms typed arguments item by item; a long history must travel untouched."""
    history = [Message("user" if i % 2 == 0 else "assistant", f"m{i}") for i in range(1000)]
    request = Request("m", "Persona: lawful_good", history)
    chat = ChatCompletionsBackend(None).body(request)
    assert chat["messages"] == [] and len(chat["extra_body"]["messages"]) == 1001
    responses = ResponsesBackend(None).body(request)
    assert responses["input"] == [] and len(responses["extra_body"]["input"]) == 1001


def test_a_turn_writes_only_what_is_new_to_the_transcript(fake):
    fb = fake("vllm")
    events = []
    s = Session(Settings(base_url=fb.base_url), load_personas())
    for i in range(200):
        s.send(f"message {i}", NullSink())
    s.conversation.listener = events.append
    s.send("one more", NullSink())
    assert [e.event for e in events] == ["message", "message"]  # the user's and the reply: no re-dump
