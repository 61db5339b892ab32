"""Settings from flags > environment > config file > defaults, and the XDG places things live."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ConfigError

__all__ = ["APP", "Settings", "config_dir", "config_path", "data_dir", "load_settings", "move_old_dirs"]

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


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    base_url: str | None = None
    api_key: str | None = None
    model: str | None = None
    persona: str = "none"
    api: Literal["auto", "chat", "responses"] = "auto"
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    show_reasoning: bool = True
    tools: bool = True  # offer the model its tools
    approve: list[str] = []  # tools that run without asking ("all" for every one)
    workspace: str | None = None  # the tools' root directory (default: the working directory)
    max_tool_rounds: int = Field(8, ge=1)  # tool rounds in a row before the model is stopped
    judge_url: str | None = None  # /judge's Karma Electric evaluator (default: the chat server)

    @field_validator("approve", mode="before")
    @classmethod
    def _split(cls, value):
        if isinstance(value, str):  # from a flag or the environment: "bash,read_file"
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    def sampling(self) -> dict[str, float | int]:
        """The sampling parameters that are set; unset ones are left to the server."""
        return {k: v for k in ("temperature", "top_p", "max_tokens") if (v := getattr(self, k)) is not None}


# Environment variables: the openai SDK's conventional two, and GRIDCHAT_<FIELD> for the rest.
_ENV = {"base_url": "OPENAI_BASE_URL", "api_key": "OPENAI_API_KEY"}


def _from_env(env) -> dict:
    values = {}
    for name in Settings.model_fields:
        value = env.get(_ENV.get(name, f"GRIDCHAT_{name.upper()}"))
        if value:
            values[name] = value
    return values


def _from_file(path: Path) -> dict:
    if not path.is_file():
        return {}
    import yaml  # only when there is a file to read

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: {str(e).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of setting: value")
    return data


def load_settings(flags: dict | None = None, env=None, path: Path | None = None) -> Settings:
    """Merge the layers; a bad value anywhere is a ConfigError that names where it came from."""
    env = os.environ if env is None else env
    path = path or config_path()
    layers = [
        (str(path), _from_file(path)),
        ("environment", _from_env(env)),
        ("flags", {k: v for k, v in (flags or {}).items() if v is not None}),
    ]
    merged: dict = {}
    for source, values in layers:
        for key, value in values.items():
            if key not in Settings.model_fields:
                raise ConfigError(f"{source}: unknown setting {key!r} (known: {', '.join(Settings.model_fields)})")
            merged[key] = value
            try:
                Settings(**{key: value})
            except ValidationError as e:
                raise ConfigError(f"{source}: {key}: {e.errors()[0]['msg']}") from None
    return Settings(**merged)
