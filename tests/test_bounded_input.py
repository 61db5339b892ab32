"""Issue 16, boundary 5: every read from a server or a file has a size cap and linear cost. Each cap
is hit here by a hostile server or file, which gets one clean line; long inputs cost linear time."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from gridchat.chat.transcript import list_sessions, load_transcript


# -- transcript replay: linear in the number of messages ----------------------------------------------

def write_session(path: Path, n: int, forks: int = 0) -> Path:
    """A session of ``n`` messages in one line of conversation; with ``forks``, that many head moves
    back to its start and on again (each move a walk to the root, were paths rebuilt per move)."""
    with open(path, "w") as f:
        f.write('{"event":"session","id":"big","version":1,"time":1}\n')
        f.write('{"event":"persona","name":"none","system":null,"time":1}\n')
        for i in range(n):
            role = "user" if i % 2 == 0 else "assistant"
            parent = "null" if i == 0 else i - 1
            f.write(f'{{"event":"message","id":{i},"parent":{parent},"role":"{role}","content":"message {i}",'
                    f'"persona":"none","time":1}}\n')
        for _ in range(forks):
            f.write(f'{{"event":"head","id":0,"time":1}}\n{{"event":"head","id":{n - 1},"time":1}}\n')
    return path


def load_seconds(path: Path) -> float:
    started = time.perf_counter()
    restored = load_transcript(path, {})
    elapsed = time.perf_counter() - started
    assert len(restored.conversation.messages) == len(restored.conversation.nodes)  # the whole line, rebuilt
    return elapsed


def test_a_million_message_session_loads_in_seconds(tmp_path):
    small = load_seconds(write_session(tmp_path / "small.jsonl", 100_000))
    big = load_seconds(write_session(tmp_path / "big.jsonl", 1_000_000))
    assert big < 30, f"1,000,000 messages took {big:.1f} s"
    assert big < 10 * small * 2.5, f"100k: {small:.2f} s, 1M: {big:.2f} s: not linear"


def test_head_moves_cost_no_walk_to_the_root_each(tmp_path):
    path = write_session(tmp_path / "moves.jsonl", 20_000, forks=20_000)
    assert load_seconds(path) < 10


def test_panel_turns_cost_no_walk_to_the_root_each(tmp_path):
    n = 20_000
    path = write_session(tmp_path / "panel.jsonl", n)
    lane = f'{{"persona":"none","system":null,"model":"m","server":"","head":{n - 1}}}'
    with open(path, "a") as f:
        f.writelines(f'{{"event":"panel","lanes":[{lane},{lane}],"start":0,"turns":1,"time":1}}\n' for _ in range(n))
    started = time.perf_counter()
    assert load_transcript(path, {}).panel is not None
    assert time.perf_counter() - started < 10


def test_listing_and_resuming_a_bushy_session_is_linear(tmp_path):
    """Every reply retried: half the messages are leaves, each a branch."""
    n = 100_000
    path = tmp_path / "bushy.jsonl"
    with open(path, "w") as f:
        f.write('{"event":"session","id":"bushy","version":1,"time":1}\n')
        for i in range(n):  # a user message, then a reply to it and a retried one
            user, parent = 3 * i, (3 * i - 2 if i else "null")
            f.write(f'{{"event":"message","id":{user},"parent":{parent},"role":"user","content":"q","time":1}}\n'
                    f'{{"event":"message","id":{user + 1},"parent":{user},"role":"assistant","content":"a","time":1}}\n'
                    f'{{"event":"message","id":{user + 2},"parent":{user},"role":"assistant","content":"b","time":1}}\n')
    started = time.perf_counter()
    (info,) = list_sessions(tmp_path)
    conversation = load_transcript(path, {}).conversation
    assert len(conversation.branches()) == n + 1 and info.messages == 3 * n
    assert time.perf_counter() - started < 20
