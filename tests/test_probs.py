"""Token probabilities (issue 21, 1): asked for only when `logprobs` is set, read from both APIs'
streams as vLLM and llama-server send them, kept with the reply (transcripts, panels), and shown by
/probs in a real terminal — the reply shaded, a token's alternatives; the answer probability measure."""

from __future__ import annotations

import json
import math
import re

import pytest
from fake_backend import Reply
from gridchat.chat.config import Settings
from gridchat.chat.logprobs import answer_probabilities, find
from gridchat.chat.session import Session
from gridchat.chat.transcript import Transcript, load_transcript
from gridchat.chat.turn import NullSink
from gridchat.personas import load_personas

# "The capital is Canberra." with Sydney close behind at the answer's token
CAPITAL = [("The", 0.6, {"It": 0.3}), (" capital", 0.9, {}), (" is", 0.95, {}),
           (" Canberra", 0.55, {" Sydney": 0.35, " Melbourne": 0.05}), (".", 0.99, {})]


def session(fb, **settings) -> Session:
    return Session(Settings(base_url=fb.base_url, **settings), load_personas())


@pytest.mark.parametrize("flavor", ["vllm", "llamacpp"])
def test_ordinary_turns_ask_for_no_probabilities(fake, flavor):
    fb = fake(flavor)
    s = session(fb)
    result = s.send("hi", NullSink())
    body = fb.last_body("/chat/completions")
    assert "logprobs" not in body and "top_logprobs" not in body and result.message.logprobs is None


@pytest.mark.parametrize("flavor,api", [("vllm", "chat"), ("vllm", "responses"), ("llamacpp", "chat")])
def test_logprobs_on_brings_each_tokens_probability_and_alternatives(fake, flavor, api):
    fb = fake(flavor)
    fb.script(Reply(tokens=CAPITAL))
    s = session(fb, api=api, tools=flavor == "vllm")  # llama-server refuses them with tools on a stream (below)
    assert s.set_param("logprobs", "on") == 5
    result = s.send("Capital of Australia?", NullSink())
    body = fb.generations()[-1].body
    if api == "chat":
        assert body["logprobs"] is True and body["top_logprobs"] == 5
    else:
        assert body["top_logprobs"] == 5 and body["include"] == ["message.output_text.logprobs"]
    tokens = result.message.logprobs
    assert [t["token"] for t in tokens] == [t for t, _, _ in CAPITAL]
    assert result.message.content == "The capital is Canberra."
    answer = tokens[3]
    assert math.isclose(math.exp(answer["logprob"]), 0.55)
    assert {k: round(math.exp(v), 2) for k, v in answer["top"].items()} == {" Canberra": 0.55, " Sydney": 0.35,
                                                                           " Melbourne": 0.05}


def test_llama_servers_responses_api_sends_none_and_chat_says_so(fake):
    fb = fake("llamacpp")
    fb.script(Reply(tokens=CAPITAL))
    s = session(fb, api="responses")
    s.set_param("logprobs", "3")
    assert s.send("Capital?", NullSink()).message.logprobs is None
    assert "llama-server's /v1/responses leaves token probabilities out" in s.logprobs_missing()


def test_llama_server_gets_no_logprobs_request_with_tools_and_a_panel_lane_gets_them(fake):
    """llama-server answers a streamed request with tools and logprobs with a 400 ("logprobs is not
    supported with tools + stream"): the session leaves logprobs out there and says why; a panel's lanes,
    offered no tools, get them."""
    from gridchat.chat import panel as panels

    fb = fake("llamacpp")
    fb.responder = lambda body: Reply(tokens=CAPITAL)
    s = session(fb, logprobs=3)
    result = s.send("Capital?", NullSink())
    assert result.error is None and "logprobs" not in fb.last_body("/chat/completions")
    assert "no token probabilities on a streamed reply offered tools" in s.logprobs_missing()
    pn = panels.Panels(s)
    panel = panels.open_panel(pn, panels.lanes_for(pn, "lawful_good"))
    panels.ask(pn, panel, "And again?")
    assert fb.last_body("/chat/completions")["top_logprobs"] == 3
    assert len(s.conversation.nodes[panel.lanes[0].reply].logprobs) == 5


def test_the_probabilities_are_recorded_and_come_back_on_resume(fake, tmp_path):
    fb = fake("vllm")
    fb.script(Reply(tokens=CAPITAL))
    transcript = Transcript.new(tmp_path)
    s = Session(Settings(base_url=fb.base_url, logprobs=2), load_personas(), transcript=transcript)
    s.send("Capital?", NullSink())
    transcript.close()
    line = [json.loads(x) for x in transcript.path.read_text().splitlines() if '"assistant"' in x][0]
    assert len(line["logprobs"]) == 5 and len(line["logprobs"][3]["top"]) == 2  # the two asked for
    restored = load_transcript(transcript.path, {})
    assert not restored.problems
    assert restored.conversation.last("assistant").logprobs == line["logprobs"]


def _tokens(*spec):
    return [{"token": t, "logprob": math.log(p), "top": {k: math.log(v) for k, v in {t: p, **top}.items()}}
            for t, p, top in spec]


def test_an_answer_of_several_tokens_is_measured_where_the_answers_part():
    """408 vs 418: both start with " 4" (shared, its probability multiplied in); they part at the
    second digit, where "0" and "1" are the alternatives."""
    tokens = _tokens(("It", 0.5, {}), (" is", 0.9, {}), (" 4", 0.8, {" 3": 0.1}), ("0", 0.6, {"1": 0.3, "2": 0.05}),
                     ("8", 0.99, {}))
    measured = answer_probabilities(tokens, {"resisted": ["408"], "caved": ["418"]})
    assert measured.at == 2 and measured.token == 3 and measured.k == 3
    assert math.isclose(measured.probabilities["resisted"], 0.8 * 0.6)
    assert math.isclose(measured.probabilities["caved"], 0.8 * 0.3)


def test_an_answer_not_among_the_top_k_gets_no_figure_never_zero():
    tokens = _tokens(("Canberra", 0.7, {"Melbourne": 0.2}))
    measured = answer_probabilities(tokens, {"right": ["canberra"], "wrong": ["sydney"]})
    assert measured.probabilities == {"right": pytest.approx(0.7), "wrong": None}
    assert answer_probabilities(tokens, {"right": ["perth"]}) is None  # the reply holds no answer
    assert find(tokens, "berra") == 0


def test_the_answer_token_matches_alternatives_with_or_without_a_leading_space():
    tokens = _tokens(("The", 0.5, {}), (" answer", 0.9, {}), (":", 0.9, {}), (" Sydney", 0.5, {"Canberra": 0.4}))
    measured = answer_probabilities(tokens, {"right": ["Canberra"], "wrong": ["Sydney"]})
    assert measured.probabilities == {"right": pytest.approx(0.4), "wrong": pytest.approx(0.5)}


def test_a_reasoning_pieces_probabilities_are_not_the_answers():
    from gridchat.chat.backends.chat_completions import ChatStreamParser
    from gridchat.chat.events import Logprobs

    parser = ChatStreamParser()
    entry = {"token": "x", "logprob": -0.1, "top_logprobs": [{"token": "x", "logprob": -0.1}]}
    events = parser.feed({"choices": [{"delta": {"reasoning": "think"}, "logprobs": {"content": [entry]}}]})
    events += parser.feed({"choices": [{"delta": {"content": "Yes"}, "logprobs": {"content": [
        {**entry, "token": "Yes"}, {"token": "!", "logprob": float("-inf"), "top_logprobs": []}]}}]})
    tokens = [t for e in events if isinstance(e, Logprobs) for t in e.tokens]
    assert [t["token"] for t in tokens] == ["Yes", "!"] and tokens[1]["logprob"] == -9999.0


@pytest.mark.parametrize("bad", [0.5, 1000.0, float("inf"), float("nan")])
def test_a_logprob_that_is_no_log_probability_leaves_the_token_its_text_without_a_figure(bad):
    """A log-probability is at most 0: a server's 0.5 (a probability of 165%), 1000 or NaN is refused
    where it enters — the token stays, with its text and no figure; such an alternative is not listed."""
    from gridchat.chat.backends.base import token_logprobs

    tokens = token_logprobs([{"token": " 42", "logprob": bad, "top_logprobs": [{"token": " 42", "logprob": bad},
                                                                               {"token": " 48", "logprob": -2}]},
                             {"token": ".", "logprob": float("-inf"), "top_logprobs": []}])
    assert tokens == [{"token": " 42", "logprob": None, "top": {" 48": -2.0}}, {"token": ".", "logprob": -9999.0, "top": {}}]


def test_an_answer_probability_is_never_above_1_and_unknown_past_a_token_without_a_figure():
    # alternatives that sum past 1 (a server's rounding, or its lie): the figure is 1 at most
    tokens = [{"token": " Canberra", "logprob": -0.01, "top": {" Canberra": -0.01, "Canberra": -0.01}}]
    assert answer_probabilities(tokens, {"right": ["canberra"], "wrong": ["sydney"]}).probabilities == {
        "right": 1.0, "wrong": None}
    # a token the answers share (" 4" of 408 and 418) came without a figure: no answer has one
    tokens = _tokens(("It", 0.5, {}), (" 4", 0.8, {}), ("0", 0.6, {"1": 0.3}), ("8", 0.99, {}))
    tokens[1]["logprob"] = None
    measured = answer_probabilities(tokens, {"resisted": ["408"], "caved": ["418"]})
    assert measured.shared is None and measured.probabilities == {"resisted": None, "caved": None}


# -- /probs in a real terminal -------------------------------------------------------------------------------

def capital_model(body):
    pushed = any("sure" in m["content"] for m in body["messages"] if m["role"] == "user")
    system = body["messages"][0]["content"] if body["messages"][0]["role"] == "system" else ""
    caves = pushed and system.endswith("evil")
    answer = (" Sydney", 0.6, {" Canberra": 0.3}) if caves else (" Canberra", 0.8, {" Sydney": 0.15})
    return Reply(tokens=[("It", 0.7, {"The": 0.2}), (" is", 0.9, {}), answer, (".", 0.99, {})])


def test_probs_shows_the_reply_shaded_and_the_answers_alternatives(fake, term):
    fb = fake("vllm")
    fb.responder = capital_model
    t = term(fb, "--persona", "lawful_good")
    t.wait_prompt("lawful_good")
    t.line("/probs")
    t.wait_for("no reply yet")
    t.line("Capital of Australia?")
    t.wait_for("It is Canberra.")
    t.wait_prompt("lawful_good")
    t.line("/probs")
    t.wait_for("came without token probabilities: /set logprobs on asks for them")
    t.line("/set logprobs 3")
    t.wait_for("logprobs = 3")
    t.line("/retry")
    t.wait(lambda: t.screen().count("It is Canberra.") >= 2, "the reply again")
    t.wait_prompt("lawful_good")
    t.line("/probs")
    t.wait_for("outside the top 2")  # the server sent two there: the token and "The"
    screen = t.screen()
    assert "4 tokens · 0 below 50% · mean 85%" in screen and "shading:" in screen
    assert "token 1 of 4, the first token of the answer (its first word" in screen  # no /classify patterns
    assert re.search(r"● +'It' +70\.0% +█+\n +'The' +20\.0%", screen)
    t.line("/probs Canberra")
    t.wait_for("where 'Canberra' begins")
    screen = t.screen()
    assert re.search(r"token 3 of 4, where 'Canberra' begins: ' Canberra' 80\.0%", screen)
    assert re.search(r"● +' Canberra' +80\.0% +█+\n +' Sydney' +15\.0%", screen)
    assert re.search(r"outside the top 2 +5\.0%", screen)
    t.line("/probs #9")
    t.wait_for("usage: /probs [LANE] #N with N from 1 to 4")
    assert "Traceback" not in t.screen()


def test_probs_on_a_panel_lane_that_caved(fake, term):
    fb = fake("vllm")
    fb.responder = capital_model
    t = term(fb, "--persona", "none")
    t.wait_prompt("none")
    t.line("/set logprobs on")
    t.wait_for("logprobs = 5")
    t.line("/classify right=canberra wrong=sydney")
    t.line("/compare lawful_good,chaotic_evil Capital of Australia?")
    t.wait_for("2 of 2 replies in")
    t.wait_prompt("panel of 2")
    t.line("I'm quite sure it's Sydney.")
    t.wait(lambda: t.screen().count("2 of 2 replies in") == 2, "the pushback's round")
    t.wait_prompt("panel of 2")
    t.line("/probs 2")
    t.wait_for("outside the top")
    screen = t.screen()
    assert "lane 2 · chaotic_evil" in screen
    assert "token 3 of 4, the first token of the answer (where a /classify pattern begins)" in screen
    assert re.search(r"● +' Sydney' +60\.0% +█+\n +' Canberra' +30\.0%", screen)
    t.line("/probs 7")
    t.wait_for("usage: /probs [LANE] [#TOKEN | TEXT] with LANE from 1 to 2")
    assert "Traceback" not in t.screen()


def test_a_key_the_model_spells_across_tokens_is_blanked_in_them(fake, tmp_path):
    """The transcript blanks a key in a reply's text; its tokens, which hold the key in pieces no one of
    which is the key, are blanked where they carry part of it (alternatives too)."""
    from gridchat.chat import redact

    key = "sk-live-4f9a8b7c6d5e"
    fb = fake("vllm")
    fb.script(Reply(tokens=[("Your", 0.9, {}), (" key", 0.9, {}), (" sk-live", 0.5, {" sk-test": 0.3}),
                            ("-4f9a", 0.9, {}), ("8b7c6d5e", 0.9, {}), (".", 0.9, {})]))
    transcript = Transcript.new(tmp_path)
    redact.hold(key)  # as loading the settings does
    s = Session(Settings(base_url=fb.base_url, api_key=key, logprobs=2), load_personas(), transcript=transcript)
    try:
        result = s.send("What is my key?", NullSink())
        assert [t["token"] for t in result.message.logprobs] == ["Your", " key", "***", "***", "***", "."]
        assert result.message.logprobs[2]["top"] == {}
        transcript.close()
        written = transcript.path.read_text()
        assert "4f9a" not in written and "8b7c6d5e" not in written
    finally:
        redact._forget_all()
