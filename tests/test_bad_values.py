"""Failures 11 and 12 of the trust issue: one validation for flags, environment, config and /set,
with a clear message; a bad file costs one line naming file:line, and chat goes on where it can."""

from __future__ import annotations

import os

import pytest
from command import gridchat
from gridchat.chat.config import Settings
from gridchat.chat.errors import ConfigError
from gridchat.chat.session import Session
from gridchat.personas import load_personas


def chat(*args, env=None):
    return gridchat(*args, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("flag,value", [
    ("--temperature", "nan"), ("--temperature", "inf"), ("--temperature", "1e400"), ("--temperature", "-1"),
    ("--top-p", "1.5"), ("--top-p", "0"), ("--max-tokens", "-5"), ("--max-tokens", "0"),
    ("--max-tool-rounds", "0"),
])
def test_bad_flag_values_are_refused_before_anything_is_sent(fake, flag, value):
    fb = fake("vllm")
    r = chat("--base-url", fb.base_url, flag, value, "-p", "hi")
    assert r.returncode == 1 and not fb.generations()
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith(f"chat: error: {flag} {value}: ") and "Traceback" not in r.stderr


def test_bad_environment_values_are_refused(fake):
    fb = fake("vllm")
    r = chat("--base-url", fb.base_url, "-p", "hi", env={"GRIDCHAT_TEMPERATURE": "nan"})
    assert r.returncode == 1 and not fb.generations()
    assert r.stderr.strip() .startswith("chat: error: GRIDCHAT_TEMPERATURE=nan: ")


def test_a_base_url_that_is_not_a_url(fake):
    r = chat("--base-url", "notaurl", "-p", "hi")
    assert r.returncode == 1
    assert r.stderr.strip() == "chat: error: --base-url notaurl: not an http:// or https:// address"


@pytest.mark.parametrize("name,value", [("temperature", "nan"), ("temperature", "inf"), ("temperature", "-1"),
                                        ("top_p", "2"), ("max_tokens", "-5"), ("max_tokens", "1.5")])
def test_set_refuses_what_the_flags_refuse_and_keeps_the_old_value(fake, name, value):
    fb = fake("vllm")
    s = Session(Settings(base_url=fb.base_url, temperature=0.5), load_personas())
    with pytest.raises(ConfigError) as err:
        s.set_param(name, value)
    assert str(err.value).startswith(f"{name} {value}: ") and "\n" not in str(err.value)
    assert s.conversation.params == {"temperature": 0.5}


def config_file(isolated_env, text):
    path = isolated_env / "config" / "gridchat" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize("text,line,fragment", [
    ("persona: lawful_good\ntemperature: .nan\n", 2, "temperature"),
    ("persona: lawful_good\ntemprature: 0.5\n", 2, "unknown setting 'temprature'"),
    ("persona: lawful_good\n7: seven\n", 2, "not a name"),
    ("persona: lawful_good\nmax_tokens: lots\n", 2, "max_tokens"),
])
def test_a_bad_config_setting_is_one_warning_and_chat_goes_on(fake, isolated_env, text, line, fragment):
    fb = fake("vllm")
    path = config_file(isolated_env, text)
    r = chat("--base-url", fb.base_url, "-p", "hi")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "Echo: hi"
    (warning,) = [w for w in r.stderr.splitlines() if "warning" in w]
    assert warning.startswith(f"chat: warning: {path}:{line}: ") and fragment in warning
    assert fb.last_body("/chat/completions")["messages"][0] == {"role": "system", "content": "Persona: lawful_good"}


def test_an_unreadable_config_file_is_one_warning(fake, isolated_env):
    fb = fake("vllm")
    path = config_file(isolated_env, "persona: [unclosed\n")
    r = chat("--base-url", fb.base_url, "-p", "hi")
    assert r.returncode == 0 and r.stdout.strip() == "Echo: hi"
    assert f"chat: warning: {path}:" in r.stderr and "not valid YAML" in r.stderr


@pytest.mark.parametrize("text,fragment", [
    ("name: mine\nsystem: hi\nsource: elsewhere\n", "source"),
    ("name: mine\nsystem: hi\n3: three\n", "not a name"),
    ("name: mine\nsystem: hi\ngrid: {law: sideways, moral: good}\n", "grid.law"),
])
def test_a_bad_persona_file_is_skipped_with_one_line(fake, isolated_env, text, fragment):
    fb = fake("vllm")
    directory = isolated_env / "config" / "gridchat" / "personas"
    directory.mkdir(parents=True)
    (directory / "mine.yaml").write_text(text)
    r = chat("--base-url", fb.base_url, "-p", "hi", "--persona", "lawful_good")
    assert r.returncode == 0, r.stderr
    (warning,) = [w for w in r.stderr.splitlines() if "warning" in w]
    assert warning.startswith(f"chat: warning: {directory / 'mine.yaml'}:") and fragment in warning


@pytest.mark.parametrize("extra,fragment", [("source: elsewhere\n", "source"), ("9: nine\n", "not a name")])
def test_a_bad_probe_set_is_one_line_in_the_listing(isolated_env, extra, fragment):
    directory = isolated_env / "config" / "gridchat" / "probes"
    directory.mkdir(parents=True)
    (directory / "mine.yaml").write_text(
        "name: mine\ntitle: Mine\nkind: refusal\nlabels:\n  full_compliance: answers\n  full_refusal: refuses\n"
        "probes:\n  - id: p1\n    category: c\n    expect: answer\n    steps:\n      - say: hi\n"
        "        extract: true\n" + extra)
    r = chat("probe", "list", env={"COLUMNS": "300"})
    assert r.returncode == 0 and "Traceback" not in r.stderr
    row = next(line for line in r.stdout.splitlines() if "mine.yaml" in line and "invalid" in line)
    assert fragment in row and "mine.yaml:14" in row
