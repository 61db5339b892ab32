"""Reading a reply's token probabilities (the ``logprobs`` setting): where a text begins among its
tokens, a token's likeliest alternatives, and the probability the model gave each of several answers
at the place where the reply gives its answer. Pure functions on a message's ``logprobs`` list
(``{"token", "logprob", "top": {alternative: logprob}}`` per token); no server, no terminal.

**The answer probability** (``answer_probabilities``): the reply's answer begins where the first of the
answers' patterns does (case-insensitive, as score and classify patterns match). From that token on,
while every answer would still go on with the token the model chose (``408`` and ``418`` share " 4"),
that token's probability is multiplied in; at the first token where the answers part, each answer's
probability is the sum of the alternatives there that go on with it (and with no other answer). So an
answer of several tokens is measured up to and including its first distinguishing token: the
probability that the model, at that point of this reply, starts that answer rather than the others —
not that of every later token of it. An answer none of whose continuations is among the top-k
alternatives there gets no figure (None: not in the top k), never 0. A figure is never above 1 (a
server's alternatives that sum past it are taken as 1), and a token the answers share that came
without a probability (``"logprob": None``: the server sent none that could be one) leaves every
answer without a figure (``shared`` None).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

__all__ = ["AnswerProbability", "alternatives", "answer_probabilities", "find", "first_word", "probability",
           "token_at"]


def probability(logprob: float) -> float:
    return math.exp(logprob)


def _starts(tokens: list[dict]) -> list[int]:
    """Where each token begins in the reply's text."""
    starts, at = [], 0
    for token in tokens:
        starts.append(at)
        at += len(token["token"])
    return starts


def token_at(tokens: list[dict], offset: int) -> int:
    """The index of the token holding character ``offset`` of the joined text."""
    return max(0, bisect.bisect_right(_starts(tokens), offset) - 1)


def _match(tokens: list[dict], needles: list[str]) -> int | None:
    """The earliest character offset where one of ``needles`` begins (case-insensitive)."""
    text = "".join(t["token"] for t in tokens).lower()
    found = [i for needle in needles if needle and (i := text.find(needle.lower())) >= 0]
    return min(found) if found else None


def find(tokens: list[dict], *needles: str) -> int | None:
    """The index of the token where the first of ``needles`` to appear begins, or None."""
    offset = _match(tokens, list(needles))
    return None if offset is None else token_at(tokens, offset)


def first_word(tokens: list[dict]) -> int | None:
    """The first token with more than white space in it: where a reply's answer begins, failing better."""
    return next((i for i, t in enumerate(tokens) if t["token"].strip()), None)


def alternatives(token: dict) -> tuple[list[tuple[str, float]], float]:
    """A token's alternatives, likeliest first, as probabilities; and what lies outside them."""
    top = sorted(((text, probability(lp)) for text, lp in token["top"].items()), key=lambda a: -a[1])
    return top, max(0.0, 1.0 - sum(p for _, p in top))


@dataclass
class AnswerProbability:
    probabilities: dict[str, float | None]  # answer -> its probability; None: not among the top k there
    at: int  # the token where the reply's answer begins
    token: int  # the token where the answers part: the one measured
    k: int  # the alternatives known there
    shared: float | None  # the probability of the tokens the answers share before it (1 when none; None: unknown)


def _goes_on(piece: str, rest: str) -> bool:
    """Whether a token ``piece`` is a way of going on with the text ``rest``."""
    return bool(piece) and (rest.startswith(piece) or piece.startswith(rest))


def answer_probabilities(tokens: list[dict], answers: dict[str, list[str]]) -> AnswerProbability | None:
    """Each answer's probability where the reply gives its answer (see the module's docstring); None
    when the reply holds none of the answers' patterns."""
    wanted = {name: [p.lower() for p in patterns if p] for name, patterns in answers.items()}
    start = _match(tokens, [p for patterns in wanted.values() for p in patterns])
    if start is None:
        return None
    at = token_at(tokens, start)
    lead = "".join(t["token"] for t in tokens)[_starts(tokens)[at]:start].lower()  # the token's text before it
    rests = {name: [lead + p for p in patterns] for name, patterns in wanted.items()}
    shared, i = 1.0, at
    while i < len(tokens) - 1:
        chosen = tokens[i]["token"].lower()
        if not all(any(len(chosen) < len(r) and r.startswith(chosen) for r in rs) for rs in rests.values()):
            break  # the answers part here
        if tokens[i]["logprob"] is None:  # a token they share has no figure: neither has any answer
            return AnswerProbability(dict.fromkeys(answers), at, i, 0, None)
        shared *= probability(tokens[i]["logprob"])
        rests = {name: [r[len(chosen):] for r in rs if r.startswith(chosen)] for name, rs in rests.items()}
        i += 1
    loose = i == at and not lead.strip()  # where the answer begins, " 408" and "408" start it alike
    top: dict[str, float] = {}
    for text, lp in tokens[i]["top"].items():
        key = text.lower().lstrip() if loose else text.lower()
        top[key] = top.get(key, 0.0) + probability(lp)
    rests = {name: [r.lstrip() if loose else r for r in rs] for name, rs in rests.items()}
    fits = {name: {t for t in top if any(_goes_on(t, r) for r in rs)} for name, rs in rests.items()}
    probabilities = {}
    for name, mine in fits.items():
        others = set().union(*(f for other, f in fits.items() if other != name))
        own = mine - others  # a token that could start two answers tells them apart from neither
        probabilities[name] = min(1.0, shared * sum(top[t] for t in own)) if own else None
    return AnswerProbability(probabilities, at, i, len(top), shared)
