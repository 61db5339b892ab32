"""Inline reasoning tags split out of content however the deltas cut them."""

from gridchat.chat.backends.think import ThinkSplitter
from hypothesis import given
from hypothesis import strategies as st

PARTS = st.lists(st.sampled_from(["plain ", "a < b ", "<", "think", ">", "</", "<think>", "</think>",
                                  "<|inner_prefix|>", "<|inner_suffix|>", "<thin", "\n"]), max_size=30)


def reference(text: str) -> tuple[str, str]:
    """Split the whole text at once: what any cutting into deltas must reproduce."""
    reasoning, answer, close = [], [], None
    tags = {"<think>": "</think>", "<|inner_prefix|>": "<|inner_suffix|>"}
    while text:
        if close:
            i = text.find(close)
            if i == -1:
                reasoning.append(text)
                break
            reasoning.append(text[:i])
            text, close = text[i + len(close):], None
        else:
            hits = [(text.find(t), t) for t in tags if t in text]
            if not hits:
                answer.append(text)
                break
            i, tag = min(hits)
            answer.append(text[:i])
            text, close = text[i + len(tag):], tags[tag]
    return "".join(reasoning), "".join(answer)


@given(PARTS, st.lists(st.integers(1, 7), min_size=1, max_size=50))
def test_any_cut_gives_the_same_split(parts, cuts):
    text = "".join(parts)
    splitter, out, i, k = ThinkSplitter(), [], 0, 0
    while i < len(text):
        n = cuts[k % len(cuts)]
        out += splitter.feed(text[i:i + n])
        i, k = i + n, k + 1
    out += splitter.flush()
    got = ("".join(p for r, p in out if r), "".join(p for r, p in out if not r))
    assert got == reference(text)


def test_plain_text_passes_straight_through():
    splitter = ThinkSplitter()
    assert splitter.feed("no tags at all") == [(False, "no tags at all")]
    assert splitter.flush() == []


def test_a_lone_angle_bracket_is_released_when_it_is_not_a_tag():
    splitter = ThinkSplitter()
    assert splitter.feed("x <") == [(False, "x ")]
    assert splitter.feed(" 3") == [(False, "< 3")]
