"""Declared once (issue 19, 5): chat/params.py's table makes each request parameter's setting,
flag, /set name, rule and place in a request — a parameter added there is everywhere at once."""

from __future__ import annotations

import pytest

from gridchat.chat.backends.base import Request
from gridchat.chat.backends.chat_completions import ChatCompletionsBackend
from gridchat.chat.backends.responses import ResponsesBackend
from gridchat.chat.cli import parser
from gridchat.chat.config import RULES, SAMPLING, Settings, check, load_settings
from gridchat.chat.conversation import PARAMS as SET_NAMES
from gridchat.chat.params import OPTIONAL, PARAMS
from gridchat.chat.probes.cli import parser as probe_parser
from gridchat.chat.turn import OPTIONAL_PARAMS

EXAMPLE = {"temperature": "0.5", "top_p": "0.9", "max_tokens": "64", "seed": "7", "top_k": "40", "min_p": "0.05",
           "presence_penalty": "0.1", "frequency_penalty": "-0.1", "tool_choice": "bash", "logprobs": "3"}


def test_every_parameter_has_its_setting_flag_set_name_and_rule():
    assert set(EXAMPLE) == set(PARAMS), "give the new parameter an example value here"
    flags = {a.dest for a in parser()._actions}
    probe_flags = {a.dest for a in probe_parser()._subparsers._group_actions[0].choices["run"]._actions}
    for name, p in PARAMS.items():
        assert name in Settings.model_fields and name in SAMPLING and name in SET_NAMES and RULES[name] == p.rule
        assert name in flags and ((name in probe_flags) == p.probe_flag or name == "seed")  # the run has its own seed
        assert check(name, EXAMPLE[name]) == p.kind(EXAMPLE[name])
    assert OPTIONAL_PARAMS == OPTIONAL


@pytest.mark.parametrize("name", list(PARAMS))
def test_a_parameter_given_as_a_flag_reaches_the_request_in_each_api(name):
    settings = load_settings({name: EXAMPLE[name]}, env={})
    request = Request(model="m", system=None, messages=[], params=settings.sampling(), tools=[])
    for backend, api in ((ChatCompletionsBackend(None), "chat"), (ResponsesBackend(None), "responses")):
        body = backend.body(request)
        sent = {**body, **body.get("extra_body", {})}
        key = PARAMS[name].names.get(api, name)
        if name == "tool_choice":  # it travels with the tools only
            assert key not in sent
        elif api in PARAMS[name].shapes:  # in the API's own shape
            assert PARAMS[name].shapes[api](PARAMS[name].kind(EXAMPLE[name])).items() <= sent.items(), (api, sent)
        else:
            assert sent[key] == PARAMS[name].kind(EXAMPLE[name]), (api, sent)
            assert (key in body) == (api in PARAMS[name].sdk)  # an SDK argument, or the body's extra fields


def test_a_value_breaking_the_rule_is_refused_with_it():
    for name, bad in (("temperature", "-1"), ("top_p", "0"), ("max_tokens", "0"), ("min_p", "2"), ("tool_choice", "x")):
        with pytest.raises(ValueError, match=PARAMS[name].rule[:20]):
            check(name, bad)


def test_argument_completion_is_declared_on_each_command():
    """No second table: the completer reads each command's own declaration of its arguments."""
    import ast
    from pathlib import Path

    from gridchat.chat.slash import COMMANDS

    source = (Path(__file__).resolve().parent.parent / "chat" / "completion.py").read_text()
    named = {n.value for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Constant) and n.value in COMMANDS}
    assert not named, f"completion.py names commands: {sorted(named)}"
    for name in ("/persona", "/compare", "/set", "/mark", "/export", "/switch", "/pick", "/panel"):
        assert COMMANDS[name].args, name
