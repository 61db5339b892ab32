"""Adapter lanes (issue 21, 3) against fake servers: one llama-server answers as the base model, the
fine-tune or anything between through its per-request `lora` field; vLLM through the adapter's model
name. Panels cross adapter scales with personas; /lora, /status, lane headers, transcripts, exports and
/pick carry the adapter and its scale."""

from __future__ import annotations

import pytest
from fake_backend import Reply
from gridchat.chat import panel as panels
from gridchat.chat.adapters import Adapter, Lora, choose
from gridchat.chat.config import Settings
from gridchat.chat.errors import UsageError
from gridchat.chat.export import EXPORTERS
from gridchat.chat.session import Session
from gridchat.chat.transcript import Transcript, load_transcript
from gridchat.chat.turn import NullSink
from gridchat.personas import load_personas


def session(fb, **settings) -> Session:
    return Session(Settings(base_url=fb.base_url, **settings), load_personas())


def adapted(body):
    """A model whose answer says which adapter scale it was asked with."""
    scales = {entry["id"]: entry["scale"] for entry in body.get("lora") or ()}
    return Reply(text=f"model={body.get('model')} lora={scales}")


def test_choosing_an_adapter_and_its_scale():
    one, two = [Adapter("ke", 0)], [Adapter("ke", 0), Adapter("other", 1)]
    assert choose("0.5", one) == Lora("ke", 0.5) and choose("ke", two) == Lora("ke", 1.0)
    assert choose("other:0", two) == Lora("other", 0.0)
    for text, adapters, said in (("0.5", two, "has 2 adapters (ke, other): name one"), ("nope", one, "no adapter 'nope'"),
                                 ("ke:lots", one, "a scale (0: the base model"), ("ke:9", one, "scales from 0 to 4"),
                                 ("1", [], "the server has no LoRA adapters")):
        with pytest.raises(UsageError, match=said.replace("(", r"\(").replace(")", r"\)")):
            choose(text, adapters)


def test_llama_server_lanes_cross_personas_with_adapter_scales(fake, tmp_path):
    fb = fake("llamacpp")
    fb.adapters = ["ke-qlora", "other"]
    fb.responder = adapted
    s = session(fb)
    s._record_to(Transcript.new(tmp_path))
    s.connect()
    assert [(a.name, a.id) for a in s.server.adapters] == [("ke-qlora", 0), ("other", 1)]
    pn = panels.Panels(s)
    panel = panels.open_panel(pn, panels.lanes_for(pn, "lawful_good,chaotic_evil*lora=ke-qlora:0,ke-qlora:0.5,ke-qlora"))
    assert [lane.title(s) for lane in panel.lanes][:3] == ["lawful_good lora ke-qlora×0", "lawful_good lora ke-qlora×0.5",
                                                          "lawful_good lora ke-qlora×1"]
    panels.ask(pn, panel, "Is a promise binding?")
    sent = sorted((r.body["messages"][0]["content"], tuple((e["id"], e["scale"]) for e in r.body["lora"]))
                  for r in fb.generations())
    assert sent == sorted((f"Persona: {p}", ((0, scale), (1, 0.0))) for p in ("lawful_good", "chaotic_evil")
                          for scale in (0.0, 0.5, 1.0))  # every adapter named: the others at 0
    replies = [s.conversation.nodes[lane.reply] for lane in panel.lanes]
    assert [r.lora for r in replies][:3] == [{"name": "ke-qlora", "scale": s} for s in (0.0, 0.5, 1.0)]
    # recorded: each reply with its adapter, the lanes with theirs; an export says it per reply
    restored = load_transcript(s.transcript.path, {})
    assert not restored.problems
    assert restored.conversation.nodes[panel.lanes[1].reply].lora == {"name": "ke-qlora", "scale": 0.5}
    assert [lane["lora"] for lane in restored.panel["lanes"]][:2] == [{"name": "ke-qlora", "scale": 0.0},
                                                                       {"name": "ke-qlora", "scale": 0.5}]
    s.conversation.move(panel.lanes[1].head)
    assert "adapter ke-qlora×0.5" in EXPORTERS["md"][1](s.conversation, {})
    # /pick: the lane's adapter becomes the session's, for the next message and /status
    panels.pick(pn, 2)
    assert s.lora == Lora("ke-qlora", 0.5)
    s.send("And later?", NullSink())
    assert fb.last_body("/chat/completions")["lora"] == [{"id": 0, "scale": 0.5}, {"id": 1, "scale": 0.0}]
    assert load_transcript(s.transcript.path, {}).server["lora"] == {"name": "ke-qlora", "scale": 0.5}


def test_vllm_lanes_ask_the_adapters_model_name_and_refuse_a_half_scale(fake):
    fb = fake("vllm", models=["base-8b"])
    fb.adapters = ["ke"]
    fb.responder = adapted
    s = session(fb)
    pn = panels.Panels(s)
    panel = panels.open_panel(pn, panels.lanes_for(pn, "lora=0,1"))
    panels.ask(pn, panel, "hello")
    assert sorted(r.body["model"] for r in fb.generations()) == ["base-8b", "ke"]
    assert all("lora" not in r.body for r in fb.generations())
    with pytest.raises(UsageError, match="vLLM serves an adapter at full strength only"):
        panels.lanes_for(pn, "lora=0.5")


def test_a_server_without_adapters_says_how_to_start_one(fake):
    fb = fake("llamacpp")
    s = session(fb)
    pn = panels.Panels(s)
    with pytest.raises(UsageError, match="serve llama MODEL.gguf --lora FILE"):
        panels.lanes_for(pn, "lora=1")


def test_lora_status_and_lane_headers_in_a_real_terminal(fake, term):
    fb = fake("llamacpp")
    fb.adapters = ["ke-qlora"]
    fb.responder = adapted
    t = term(fb, "--persona", "lawful_good")
    t.wait_prompt("lawful_good")
    t.line("/lora")
    t.wait_for("now: none asked for: as the server has it (ke-qlora×1; /lora changes it)")
    t.line("/compare lawful_good*lora=0,1 Hello?")
    t.wait_for("2 of 2 replies in")
    t.wait_prompt("panel of 2")
    screen = t.screen()
    assert "1 · lawful_good lora ke-qlora×0" in screen and "2 · lawful_good lora ke-qlora×1" in screen
    t.line("/pick 1")
    t.wait_for("going on with lane")
    t.line("/status")
    t.wait_for("per request (llama-server's lora field)")
    assert "ke-qlora×0" in t.screen()
    t.line("/lora 7")
    t.wait_for("scales from 0 to 4")
    t.line("/lora default")
    t.wait_for("adapter as the server has it")
    assert "Traceback" not in t.screen()
