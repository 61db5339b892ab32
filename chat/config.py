"""Settings from flags > environment > config file > defaults, and the XDG places things live."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, create_model, field_validator

from . import redact
from .errors import ConfigError
from .params import PARAMS
from .wire import WEB_ADDRESS_RULE, web_address

__all__ = ["APP", "RULES", "SAMPLING", "Settings", "check", "config_dir", "config_path", "data_dir", "load_settings",
           "move_old_dirs"]

APP = "gridchat"


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / APP


def data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / APP


def move_old_dirs(say) -> None:
    """gridchat was persona-chat: move its config and data (sessions, history) to the new name, once."""
    for new in (config_dir(), data_dir()):
        old = new.with_name("persona-chat")
        if old.is_dir() and not new.exists():
            try:
                old.rename(new)
            except OSError:
                continue
            say(f"moved {old} to {new} (persona-chat is now gridchat)")


def config_path() -> Path:
    return Path(os.environ.get("GRIDCHAT_CONFIG") or config_dir() / "config.yaml")


class _Settings(BaseModel):
    """The settings but the request parameters, which chat/params.py declares (Settings adds them)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    base_url: str | None = None
    api_key: str | None = None
    model: str | None = None
    persona: str = "none"
    api: Literal["auto", "chat", "responses"] = "auto"
    show_reasoning: bool = True
    tools: bool = True  # offer the model its tools
    approve: list[str] = []  # tools that run without asking ("all" for every one)
    workspace: str | None = None  # the tools' root directory (default: the working directory)
    max_tool_rounds: int = Field(8, ge=1)  # tool rounds in a row before the model is stopped
    judge_url: str | None = None  # /judge's Karma Electric evaluator (default: the chat server)
    _where: dict = PrivateAttr(default_factory=dict)  # setting -> (file | env | flag, where exactly)

    def where(self, name: str) -> str:
        """Where a setting's value came from ("--persona x", "GRIDCHAT_PERSONA=x", "FILE:LINE: persona")."""
        return self._where.get(name, ("", name))[1]

    def from_file(self, name: str) -> bool:
        """Whether the value came from the config file (a problem found later is then a warning)."""
        return self._where.get(name, ("",))[0] == "file"

    @field_validator("approve", mode="before")
    @classmethod
    def _split(cls, value):
        if isinstance(value, str):  # from a flag or the environment: "bash,read_file"
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("approve")
    @classmethod
    def _known_tools(cls, value):
        from ..tools import TOOLS

        unknown = [v for v in value if v != "all" and v not in TOOLS]
        if unknown:
            raise ValueError(RULES["approve"])
        return value

    @field_validator("tool_choice", check_fields=False)  # a request parameter: declared in chat/params.py
    @classmethod
    def _a_tool_choice(cls, value):
        from ..tools import TOOLS

        if value is not None and value not in ("auto", "required", "none", *TOOLS):
            raise ValueError(RULES["tool_choice"])
        return value

    @field_validator(*(name for name, p in PARAMS.items() if p.words), mode="before", check_fields=False)
    @classmethod
    def _a_word(cls, value, info):
        """A request parameter given as a word (``logprobs on``): the value it stands for."""
        words = PARAMS[info.field_name].words
        return words.get(value.strip().lower(), value) if isinstance(value, str) else value

    @field_validator("workspace")
    @classmethod
    def _a_directory(cls, value):
        if value is not None and not os.path.isdir(os.path.expanduser(value)):
            raise ValueError(RULES["workspace"])
        return value

    @field_validator("base_url", "judge_url")
    @classmethod
    def _address(cls, value):
        return web_address(value)

    @field_validator("api_key")
    @classmethod
    def _a_key(cls, value):
        """A key goes into a header: spaces and line ends around it (a key file's CRLF) are dropped, and
        a key holding any other character a header can't carry (a zero-width space pasted with it) is
        refused — never sent, never echoed."""
        value = value.strip(" \t\r\n") if value is not None else None
        if value is not None and not all("!" <= c <= "~" for c in value):
            raise ValueError(RULES["api_key"])
        return value or None

    def sampling(self) -> dict[str, float | int]:
        """The sampling parameters that are set; unset ones are left to the server."""
        return {k: v for k in SAMPLING if (v := getattr(self, k)) is not None}


# The settings: the ones above, and a field per request parameter (each None unless set: the server's default).
Settings = create_model("Settings", __base__=_Settings, __module__=__name__,
                        **{name: (p.kind | None, Field(None, **p.limits)) for name, p in PARAMS.items()})

# The request parameters a conversation carries (/set, flags, config): sampling, and which tool the model must call.
SAMPLING = tuple(PARAMS)

# What each setting must be, as a user is told when a value is refused.
RULES = {
    "base_url": WEB_ADDRESS_RULE,
    "judge_url": WEB_ADDRESS_RULE,
    "api_key": "holds a character an HTTP header can't carry (a space, a control or an invisible character)",
    **{name: p.rule for name, p in PARAMS.items()},
    "max_tool_rounds": "must be a whole number, 1 or more",
    "api": "must be auto, chat or responses",
    "show_reasoning": "must be true or false",
    "tools": "must be true or false",
    "approve": "must be tool names (bash, read_file, write_file, edit_file) or all",
    "workspace": "must be an existing directory",
}


def check(name: str, value):
    """``value`` as setting ``name`` takes it (strings are converted); ValueError saying what it must be."""
    if name not in Settings.model_fields:
        raise ValueError(f"unknown setting {name!r} (known: {', '.join(Settings.model_fields)})")
    if isinstance(value, bool) and Settings.model_fields[name].annotation is not bool:
        if name in PARAMS and "on" in PARAMS[name].words:  # YAML reads an unquoted on/off as true/false
            value = "on" if value else None
        else:
            raise ValueError(RULES.get(name) or "must not be true or false")  # YAML's `true` is no number
    try:
        return getattr(Settings(**{name: value}), name)
    except ValidationError as e:
        error = e.errors()[0]
        if error["type"] == "value_error":  # a validator's own words (they say more than the rule)
            raise ValueError(str(error["ctx"]["error"])) from None
        raise ValueError(RULES.get(name) or error["msg"]) from None


# Environment variables: the openai SDK's conventional two, and GRIDCHAT_<FIELD> for the rest.
_ENV = {"base_url": "OPENAI_BASE_URL", "api_key": "OPENAI_API_KEY"}


def _from_env(env) -> dict:
    """{name: (value, where it came from)}"""
    values = {}
    for name in Settings.model_fields:
        variable = _ENV.get(name, f"GRIDCHAT_{name.upper()}")
        value = env.get(variable)
        if value:
            values[name] = (value, variable if name == "api_key" else f"{variable}={value}")  # a key is never shown
    return values


def _from_file(path: Path, warn, where: dict, named: bool) -> dict:
    """{name: value} of the settings in the file that are usable; each problem is one warning. The
    default file may be missing; one the user named (--config, GRIDCHAT_CONFIG) must be there, and
    whatever is there must be a file (the reader says what it is instead)."""
    if not path.exists() and not named:
        return {}
    from .datafile import DataFileError, load_yaml  # only when there is a file to read

    try:
        data, lines = load_yaml(path)
    except DataFileError as e:
        if not path.is_file():  # not there, or a directory, a FIFO, a device: no config at all
            raise ConfigError(str(e)) from None
        warn(f"{e} (the file is ignored)")
        return {}
    for problem in lines.problems:
        warn(f"{problem} (ignored)")
    if data is None:
        return {}
    if not isinstance(data, dict):
        warn(f"{path}:1: expected a mapping of setting: value (the file is ignored)")
        return {}
    values = {}
    for name, value in data.items():
        try:
            values[name] = check(name, value)
            where[name] = ("file", f"{path}:{lines.of((name,))}: {name}")
        except ValueError as e:
            warn(f"{path}:{lines.of((name,))}: {name}: {e} (ignored)")
    return values


def load_settings(flags: dict | None = None, env=None, path: Path | None = None,
                  warn=lambda message: None) -> Settings:
    """Merge the layers. A bad flag or environment value is a ConfigError naming it (the user gave it
    just now); a bad setting in the config file is a warning naming file:line, and is left out."""
    env = os.environ if env is None else env
    where: dict[str, str] = {}
    named = path is not None or bool(env.get("GRIDCHAT_CONFIG"))
    merged = _from_file(path or Path(env.get("GRIDCHAT_CONFIG") or config_dir() / "config.yaml"), warn, where, named)
    given = [(name, value, ("env", source)) for name, (value, source) in _from_env(env).items()]
    given += [(name, value, ("flag", f"--{name.replace('_', '-')}" + ("" if name == "api_key" else f" {value}")))
              for name, value in (flags or {}).items() if value is not None]
    for name, value, (kind, source) in given:
        try:
            merged[name] = check(name, value)
            where[name] = (kind, source)
        except ValueError as e:
            raise ConfigError(f"{source}: {e}") from None
    settings = Settings(**merged)
    settings._where = where
    redact.hold(settings.api_key)  # from here on the key and the addresses' credentials never leave in text
    redact.hold_url(settings.base_url)
    redact.hold_url(settings.judge_url)
    return settings
