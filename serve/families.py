"""Model families and the vLLM flags each needs for tool calls and reasoning (WIRE.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from ..chat.datafile import DataFileError, load_json, read_bytes

__all__ = ["FAMILIES", "Family", "ModelConfig", "detect_family", "read_chat_template", "read_config"]


@dataclass(frozen=True)
class Family:
    name: str
    tool_parser: str | None
    reasoning_parser: str | None = None
    needs_template: str | None = None  # a vLLM example chat template the family's tools need
    template: str | None = None  # a chat template shipped with serve (serve/templates/) the family's tools need
    note: str = ""


FAMILIES = {
    "gpt-oss": Family("gpt-oss", "openai", "openai_gptoss", note="the persona series and other gpt-oss fine-tunes"),
    "llama3.1": Family("llama3.1", "llama3_json", needs_template="tool_chat_template_llama3.1_json.jinja"),
    "hermes": Family("hermes", "hermes", note="Qwen 2/2.5 and Hermes-style models"),
    "qwen3": Family("qwen3", "hermes", "qwen3"),
    "deepseek-r1": Family("deepseek-r1", None, "deepseek_r1", note="reasoning only; no tool parser"),
    "apertus": Family("apertus", "apertus"),
    "chatml": Family("chatml", "hermes", template="chatml_tools.jinja",
                     note="ChatML models whose own chat template leaves tools out (SmolLM2 …)"),
    "unknown": Family("unknown", None),
}


def _model_files(model: str, name: str) -> list[Path]:
    """A file of a model directory, or of a hub id's snapshots in the local Hugging Face cache."""
    candidates = [Path(model) / name]
    if "/" in model and not Path(model).exists():
        hub = Path(os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", Path.home() / ".cache/huggingface")) / "hub")
        candidates += sorted((hub / f"models--{model.replace('/', '--')}" / "snapshots").glob(f"*/{name}"))
    return candidates


class ModelConfig(BaseModel):
    """What serve reads of a model's config.json (the rest is vLLM's business)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    model_type: str = ""
    architectures: list[str] = []
    rope_scaling: dict | None = None
    max_position_embeddings: int = 0
    name_or_path: str = Field("", alias="_name_or_path")


def read_config(model: str) -> ModelConfig | None:
    """config.json of a model directory, or of a hub id already in the local Hugging Face cache; None
    if there is none. A damaged one is a DataFileError (one line, naming the file), through the one
    reader of data files (chat/datafile.py)."""
    for path in _model_files(model, "config.json"):
        if path.is_file():
            return load_json(path, ModelConfig)
    return None


class _TokenizerConfig(BaseModel):
    model_config = ConfigDict(extra="ignore")
    chat_template: object = None  # a string, or a list of named templates (not used)


def read_chat_template(model: str) -> str | None:
    """The model's own chat template: chat_template.jinja, else tokenizer_config.json's (a damaged
    file counts as none)."""
    for path in _model_files(model, "chat_template.jinja"):
        if path.is_file():
            try:
                return read_bytes(path).decode("utf-8", "replace")
            except DataFileError:
                continue
    for path in _model_files(model, "tokenizer_config.json"):
        if path.is_file():
            try:
                template = load_json(path, _TokenizerConfig).chat_template
            except DataFileError:
                continue
            if isinstance(template, str):
                return template
    return None


def _from_template(template: str) -> str | None:
    """A ChatML template that never mentions tools: vLLM would render requests without them."""
    if "<|im_start|>" in template and "tools" not in template:
        return "chatml"
    return None


def _from_config(config: ModelConfig) -> str | None:
    model_type = config.model_type.lower()
    archs = " ".join(config.architectures).lower()
    if model_type == "gpt_oss" or "gptoss" in archs:
        return "gpt-oss"
    if model_type == "apertus" or "apertus" in archs:
        return "apertus"
    if model_type in ("qwen3", "qwen3_moe"):
        return "qwen3"
    if model_type in ("qwen2", "qwen2_moe"):
        return "hermes"
    if model_type == "llama":
        rope = config.rope_scaling or {}
        if rope.get("rope_type") == "llama3" or config.max_position_embeddings >= 131072:
            return "llama3.1"
    if model_type in ("deepseek_v3",) and "r1" in config.name_or_path.lower():
        return "deepseek-r1"
    return None


def _from_name(model: str) -> str | None:
    name = model.lower()
    for needle, family in (("gpt-oss", "gpt-oss"), ("apertus", "apertus"), ("qwen3", "qwen3"), ("qwen2", "hermes"),
                           ("hermes", "hermes"), ("llama-3.1", "llama3.1"), ("llama3.1", "llama3.1"),
                           ("deepseek-r1", "deepseek-r1")):
        if needle in name:
            return family
    return None


def detect_family(model: str, forced: str | None = None) -> tuple[Family, str]:
    """The family and how it was found: --family, the model's config.json, its chat template, or
    its name."""
    if forced:
        return FAMILIES[forced], "--family"
    try:
        config = read_config(model)
    except DataFileError as e:  # vLLM will say so too; the family is found another way meanwhile
        config, damaged = None, f"; {e}: not used"
    else:
        damaged = ""
    if config is not None:
        found = _from_config(config)
        if found:
            return FAMILIES[found], "config.json"
    template = read_chat_template(model)
    if template is not None:
        found = _from_template(template)
        if found:
            return FAMILIES[found], "its chat template: ChatML without tools" + damaged
    found = _from_name(model)
    if found:
        return FAMILIES[found], "the model's name" + damaged
    return FAMILIES["unknown"], "nothing matched" + damaged
