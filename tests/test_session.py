"""The session's choices: model detection, the API auto picks (and why), personas and parameters."""

import pytest
from gridchat.chat.config import Settings
from gridchat.chat.errors import ConfigError, ServerUnreachable, UsageError
from gridchat.chat.session import Session
from gridchat.chat.turn import NullSink
from gridchat.personas import load_personas


def session(fb=None, **settings):
    if fb is not None:
        settings.setdefault("base_url", fb.base_url)
    s = Session(Settings(**settings), load_personas())
    s.notes = []  # what the session says, kept to be looked at
    s.notify = s.notes.append
    return s


def test_model_detected_from_the_server_and_switchable(fake):
    fb = fake("vllm", models=["org/base-20b", "org/lora-a"])
    s = session(fb)
    s.connect()
    assert s.model == "org/base-20b" and s.server.flavor == "vllm" and s.window == 131072
    s.set_model("org/lora-a")
    s.send("hi", NullSink())
    assert fb.last_body("/chat/completions")["model"] == "org/lora-a"
    with pytest.raises(UsageError, match="org/base-20b, org/lora-a"):
        s.set_model("org/nope")


def test_model_flag_picks_and_warns_when_unlisted(fake):
    fb = fake("vllm", models=["a", "b"])
    s = session(fb, model="b")
    s.connect()
    assert s.model == "b" and not s.notes
    s = session(fb, model="c")
    s.connect()
    assert "not listed" in s.notes[0]


def test_llama_server_window_comes_from_props_not_training_context(fake):
    fb = fake("llamacpp", context_window=4096, n_ctx_train=131072)
    s = session(fb)
    s.connect()
    assert s.server.flavor == "llama-server" and s.window == 4096


@pytest.mark.parametrize("flavor,model,api", [
    ("vllm", "openai/gpt-oss-20b", "responses"),
    ("vllm", "org/persona-llama-8b", "chat"),
    ("llamacpp", "gpt-oss-20b.gguf", "chat"),
])
def test_auto_api_choice_and_its_reason(fake, flavor, model, api):
    s = session(fake(flavor, models=[model]))
    s.connect()
    chosen, why = s.api
    assert chosen == api and why.startswith("auto")
    assert session(fake(flavor, models=[model]), api="chat").api == ("chat", "--api chat")


def test_persona_switch_replaces_the_system_message(fake):
    fb = fake("vllm")
    s = session(fb, persona="lawful_good")
    s.send("one", NullSink())
    s.set_persona("chaotic_evil")
    s.send("two", NullSink())
    messages = fb.last_body("/chat/completions")["messages"]
    assert messages[0] == {"role": "system", "content": "Persona: chaotic_evil"}
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    s.set_system("You are terse.")
    s.send("three", NullSink())
    assert fb.last_body("/chat/completions")["messages"][0]["content"] == "You are terse."
    assert s.conversation.persona.name == "custom"
    with pytest.raises(UsageError, match="unknown persona"):
        s.set_persona("lawful_awesome")


@pytest.mark.parametrize("name,value,error,kind", [
    ("temperature", "hot", "finite number", ConfigError), ("top_z", "5", "unknown", UsageError),
    ("max_tokens", "0", "whole number", ConfigError), ("max_tokens", "1.5", "whole number", ConfigError)])
def test_bad_parameters_are_refused(name, value, error, kind):
    with pytest.raises(kind, match=error):
        session().set_param(name, value)


def test_parameters_reach_the_request_and_default_unsets(fake):
    fb = fake("vllm")
    s = session(fb)
    s.set_param("temperature", "0.4")
    s.set_param("max_tokens", "64")
    s.send("a", NullSink())
    body = fb.last_body("/chat/completions")
    assert body["temperature"] == 0.4 and body["max_tokens"] == 64
    s.set_param("temperature", "default")
    s.send("b", NullSink())
    assert "temperature" not in fb.last_body("/chat/completions")


def test_failed_send_leaves_the_conversation_as_it_was(fake):
    from fake_backend import Reply

    fb = fake("vllm")
    fb.script(Reply(status=500))
    s = session(fb)
    result = s.send("lost?", NullSink())
    assert result.withdrawn and s.conversation.messages == []


def test_unreachable_server_is_a_chat_error():
    with pytest.raises(ServerUnreachable):
        session(base_url="http://127.0.0.1:9/v1").connect()




def test_reproducibility_parameters_reach_the_request_and_are_recorded(fake):
    fb = fake("vllm")
    s = Session(Settings(base_url=fb.base_url, seed=7, top_k=40), load_personas())
    s.set_param("min_p", "0.05")
    s.set_param("presence_penalty", "0.5")
    s.set_param("frequency_penalty", "-0.5")
    result = s.send("hi", NullSink())
    body = fb.last_body("/chat/completions")
    assert (body["seed"], body["top_k"], body["min_p"]) == (7, 40, 0.05)
    assert (body["presence_penalty"], body["frequency_penalty"]) == (0.5, -0.5)
    assert result.message.params == {"seed": 7, "top_k": 40, "min_p": 0.05, "presence_penalty": 0.5,
                                     "frequency_penalty": -0.5}


def test_a_server_that_rejects_a_parameter_gets_a_notice_not_a_failed_turn(fake):
    fb = fake("vllm")
    fb.rejects = {"top_k"}
    s = Session(Settings(base_url=fb.base_url, top_k=40, seed=3), load_personas())
    notices = []

    class Sink(NullSink):
        def notice(self, text):
            notices.append(text)

    result = s.send("hi", Sink())
    assert result.error is None and result.message.content == "Echo: hi"
    assert notices == ["the server rejects top_k: sent without it from now on"]
    assert "top_k" not in fb.last_body("/chat/completions") and fb.last_body("/chat/completions")["seed"] == 3
    assert result.message.params == {"seed": 3}
    s.send("again", Sink())
    assert len(notices) == 1  # once
