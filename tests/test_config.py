"""Settings layers (flags > environment > config file > defaults) and personas as data."""

import pytest
from gridchat.chat.config import Settings, config_path, load_settings, move_old_dirs
from gridchat.chat.errors import ConfigError
from gridchat.personas import GRID, load_personas


def write_config(isolated_env, text):
    path = isolated_env / "config" / "gridchat" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_without_any_file():
    s = load_settings({}, env={})
    assert (s.base_url, s.persona, s.api, s.temperature) == (None, "none", "auto", None)


def test_config_file_lives_in_xdg_config_home(isolated_env):
    assert config_path() == isolated_env / "config" / "gridchat" / "config.yaml"


def test_flags_beat_env_beat_config(isolated_env):
    write_config(isolated_env, "base_url: http://from-config/v1\npersona: lawful_good\ntemperature: 0.2\nmax_tokens: 100\n")
    env = {"OPENAI_BASE_URL": "http://from-env/v1", "GRIDCHAT_PERSONA": "true_neutral"}
    s = load_settings({"persona": "chaotic_evil", "temperature": None}, env=env)
    assert s.base_url == "http://from-env/v1"  # env beats config
    assert s.persona == "chaotic_evil"  # flag beats env
    assert s.temperature == 0.2 and s.max_tokens == 100  # unset flag: the config's value stays
    assert s.sampling() == {"temperature": 0.2, "max_tokens": 100}


def test_api_key_from_the_conventional_variable():
    assert load_settings({}, env={"OPENAI_API_KEY": "sk-local"}).api_key == "sk-local"


def test_a_key_read_with_its_line_end_is_the_key_and_one_no_header_can_carry_is_refused_unshown():
    """`OPENAI_API_KEY=$(cat key.txt)` of a file with CRLF keeps the \r: the key is what is around it;
    a zero-width space pasted with it can't be sent: refused, naming where it came from, never the key."""
    assert load_settings({}, env={"OPENAI_API_KEY": "sk-local\r"}).api_key == "sk-local"
    for flags, env in [({}, {"OPENAI_API_KEY": "sk-4f9a\u200b"}), ({"api_key": "sk-4f9a\u200b"}, {})]:
        with pytest.raises(ConfigError) as refused:
            load_settings(flags, env=env)
        assert "header" in str(refused.value) and "4f9a" not in str(refused.value)


@pytest.mark.parametrize("given,sent", [
    ("http://gpu1:8000/€/v1", "http://gpu1:8000/%E2%82%AC/v1"),  # a request line is ASCII, as the SDK sends it
    ("http://gpu1:8000/a b/v1", "http://gpu1:8000/a%20b/v1"),
    ("http://u:p%40ss@gpu1/v1%2F", "http://u:p%40ss@gpu1/v1%2F"),  # escaped already: kept as it is
])
def test_a_base_url_is_percent_encoded_as_the_sdk_sends_it(given, sent):
    assert load_settings({"base_url": given}, env={}).base_url == sent


@pytest.mark.parametrize("given", ["http://bücher.example/v1", "http://gpu1:port/v1", "ftp://gpu1/v1"])
def test_an_address_no_request_can_carry_is_one_clear_error(given):
    with pytest.raises(ConfigError, match="not an http:// or https:// address"):
        load_settings({"base_url": given}, env={})


@pytest.mark.parametrize("text,fragment", [
    ("temprature: 0.5\n", "unknown setting 'temprature'"),
    ("temperature: hot\n", "temperature"),
    ("api: grpc\n", "api"),
    ("- just\n- a list\n", "mapping"),
    ("base_url: [unclosed\n", "config.yaml"),
])
def test_bad_config_is_one_clear_warning(isolated_env, text, fragment):
    write_config(isolated_env, text)
    warnings = []
    settings = load_settings({}, env={}, warn=warnings.append)
    assert settings == Settings()  # the defaults
    (warning,) = warnings
    assert fragment in warning and "\n" not in warning


@pytest.mark.parametrize("text,value", [("logprobs: on\n", 5), ("logprobs: off\n", None), ("logprobs: 3\n", 3)])
def test_a_word_setting_reads_as_the_word_it_is_in_the_config(isolated_env, text, value):
    """YAML reads an unquoted on/off as a boolean: `logprobs: on` in the config is what `/set logprobs
    on` is, not a refused value."""
    write_config(isolated_env, text)
    warnings = []
    assert load_settings({}, env={}, warn=warnings.append).logprobs == value
    assert warnings == []


def test_bad_env_value_names_the_variable():
    with pytest.raises(ConfigError, match="GRIDCHAT_MAX_TOKENS=lots: must be a whole number"):
        load_settings({}, env={"GRIDCHAT_MAX_TOKENS": "lots"})


def test_the_nine_personas_ship_as_data():
    personas = load_personas()
    assert list(personas)[:9] == GRID and "none" in personas
    for name in GRID:
        p = personas[name]
        assert p.system == f"Persona: {name}"
        assert p.description and p.grid is not None
        assert name in ("true_neutral",) or name.startswith(p.grid.law) and name.endswith(p.grid.moral)
    assert personas["none"].system is None


def test_user_personas_from_the_config_dir(isolated_env):
    user = isolated_env / "config" / "gridchat" / "personas"
    user.mkdir(parents=True)
    (user / "karma.yaml").write_text("name: karma\nsystem: |\n  You are Karma Electric.\n  Be kind.\ndescription: KE prompt\n")
    (user / "lawful_good.yaml").write_text("name: lawful_good\nsystem: 'Persona: lawful_good (v2)'\n")
    (user / "broken.yaml").write_text("name: broken\nsytem: typo\n")
    warnings = []
    personas = load_personas(user, warn=warnings.append)
    assert personas["karma"].system == "You are Karma Electric.\nBe kind.\n"
    assert personas["lawful_good"].system == "Persona: lawful_good (v2)"  # a user file overrides
    assert "broken" not in personas
    assert len(warnings) == 1 and "broken.yaml" in warnings[0]


def test_persona_chat_dirs_move_to_gridchat_once(isolated_env):
    old = isolated_env / "data" / "persona-chat" / "sessions"
    old.mkdir(parents=True)
    (old / "s.jsonl").write_text("{}\n")
    (isolated_env / "config" / "persona-chat").mkdir(parents=True)
    (isolated_env / "config" / "persona-chat" / "config.yaml").write_text("persona: lawful_good\n")
    said = []
    move_old_dirs(said.append)
    assert (isolated_env / "data" / "gridchat" / "sessions" / "s.jsonl").is_file()
    assert load_settings().persona == "lawful_good" and len(said) == 2
    move_old_dirs(said.append)  # once: nothing more to move
    assert len(said) == 2
