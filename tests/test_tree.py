"""The conversation tree: moves never lose a message, and what is sent is always the head's path."""

import pytest
from gridchat.chat.conversation import Conversation, Message
from gridchat.personas import load_personas

PERSONAS = load_personas()


def exchange(c, text):
    c.add(Message("user", text))
    return c.add(Message("assistant", f"re: {text}"))


def contents(c):
    return [m.content for m in c.messages]


def test_path_follows_the_head_and_siblings_keep_old_replies():
    c = Conversation()
    exchange(c, "a")
    user = c.last("user")
    c.move(user.id)
    c.add(Message("assistant", "re: a (again)"))
    assert contents(c) == ["a", "re: a (again)"]
    assert [m.content for m in c.children(user.id)] == ["re: a", "re: a (again)"]
    assert len(c.branches()) == 2 and c.branches()[1].current


def test_fork_points_are_branches_even_when_not_leaves():
    c = Conversation()
    exchange(c, "a")
    assert c.fork("base") == "base"
    exchange(c, "b")
    branches = c.branches()
    assert [b.name for b in branches] == ["base", ""]
    c.move(branches[0].head)
    exchange(c, "c")
    assert contents(c) == ["a", "re: a", "c", "re: c"]
    assert len(c.branches()) == 3  # base, ...b, ...c


def test_withdraw_takes_back_only_the_last_message():
    c = Conversation()
    exchange(c, "a")
    m = c.add(Message("user", "lost"))
    c.withdraw(m)
    assert contents(c) == ["a", "re: a"] and len(c.nodes) == 2


def test_clear_starts_a_new_root_and_keeps_the_old_tree():
    c = Conversation()
    exchange(c, "a")
    c.move(None)
    assert c.messages == []
    exchange(c, "b")
    assert contents(c) == ["b", "re: b"] and len(c.branches()) == 2


def test_messages_record_the_persona_in_force():
    c = Conversation()
    c.set_persona(PERSONAS["lawful_good"])
    exchange(c, "a")
    c.set_persona(PERSONAS["chaotic_evil"])
    exchange(c, "b")
    assert [m.persona for m in c.messages] == ["lawful_good"] * 2 + ["chaotic_evil"] * 2


def test_marks_label_the_last_reply_with_its_persona():
    c = Conversation()
    c.set_persona(PERSONAS["neutral_evil"])
    with pytest.raises(ValueError):
        c.mark("caved")
    reply = exchange(c, "a")
    mark = c.mark("caved", "folded at once")
    assert (mark.message, mark.persona, mark.note) == (reply.id, "neutral_evil", "folded at once")


def test_every_change_reaches_the_listener():
    events = []
    c = Conversation(listener=events.append)
    c.set_persona(PERSONAS["true_neutral"])
    exchange(c, "a")
    c.fork()
    c.move(0)
    assert [e.event for e in events] == ["persona", "message", "message", "fork", "head"]


def test_a_long_history_is_not_rebuilt_per_message():
    c = Conversation()
    for i in range(500):
        exchange(c, str(i))
    path = c.messages
    c.add(Message("user", "next"))
    assert c.messages is path and len(path) == 1001  # appended in place, not recomputed
