"""Probing moves at the session level against the fake backend: samples run in parallel (panels:
test_panel.py), every reply is kept as a branch, compaction never loses the full conversation."""

from fake_backend import Reply, overlapping
from gridchat.chat import branching
from gridchat.chat.config import Settings
from gridchat.chat.session import Session
from gridchat.chat.turn import NullSink
from gridchat.personas import load_personas

PERSONAS = load_personas()


class Quiet(NullSink):
    def __init__(self):
        self.notices = []

    def event(self, event): pass
    def end(self, result): pass
    def tool_call(self, call, preview): pass
    def tool_result(self, call, outcome): pass
    def notice(self, text): self.notices.append(text)


def session(fb, **settings):
    return Session(Settings(base_url=fb.base_url, **settings), PERSONAS)




def test_retry_n_samples_concurrently_and_keeps_every_sample(fake):
    fb = fake("vllm")
    s = session(fb, persona="lawful_evil")
    s.send("first", Quiet())
    fb.script(*[Reply(text=f"sample {i}", delay=0.05) for i in range(3)])
    before = s.conversation.head
    user = branching.retry_point(s)
    samples = branching.sample(s, 3, before)
    assert overlapping(fb.generations()[-3:])
    assert s.conversation.head == before  # until one is picked (files-16: a kill then resumes there)
    texts = sorted(x.result.message.content for x in samples)
    assert texts == ["sample 0", "sample 1", "sample 2"]
    chosen = next(i for i, x in enumerate(samples) if x.result.message.content == "sample 1")
    branching.choose(s, samples, chosen, Quiet(), stay_at=user.id)
    assert [m.content for m in s.conversation.messages] == ["first", "sample 1"]
    replies = [m.content for m in s.conversation.children(user.id)]
    assert sorted(replies) == ["Echo: first", "sample 0", "sample 1", "sample 2"]


def test_compact_drops_the_oldest_half_on_a_new_branch(fake):
    fb = fake("vllm")
    s = session(fb)
    for word in ("one", "two", "three", "four"):
        s.send(word, Quiet())
    full = [m.content for m in s.conversation.messages]
    dropped, kept = branching.compact(s)
    assert (dropped, kept) == (4, 4)
    assert [m.content for m in s.conversation.messages] == full[4:]
    assert any([m.content for m in b.messages] == full for b in s.conversation.branches())  # nothing lost


def test_compact_with_a_summary_prefixes_it(fake):
    fb = fake("vllm")
    s = session(fb)
    for word in ("one", "two"):
        s.send(word, Quiet())
    fb.script(Reply(text="We counted to two."))
    summary = branching.summarise(s, Quiet())
    assert fb.last_body("/chat/completions")["messages"][-1]["content"].startswith("Summarise our conversation")
    branching.compact(s, summary)
    assert s.conversation.messages[0].content.startswith("(Summary of our earlier conversation: We counted to two.)")


def test_context_warning_past_80_percent(fake):
    fb = fake("vllm", context_window=200)
    s = session(fb)
    sink = Quiet()
    s.send("short", sink)
    assert s.context_filling() is None
    s.send("word " * 120, sink)
    used, window = s.context_filling()
    assert window == 200 and used > 160  # the REPL words the warning (it points at /compact)


def test_undo_and_edit_points_keep_the_old_branch(fake):
    fb = fake("vllm")
    s = session(fb)
    s.send("keep me", Quiet())
    s.send("regret", Quiet())
    branching.undo(s)
    assert [m.content for m in s.conversation.messages] == ["keep me", "Echo: keep me"]
    old = branching.edit_point(s)
    assert old.content == "keep me" and s.conversation.messages == []
    s.send("edited", Quiet())
    assert len(s.conversation.branches()) == 2
