"""The request parameters a conversation carries — sampling, and which tool the model must call —
declared once. Each entry makes the parameter's setting (the config file, GRIDCHAT_<NAME>), its flag
(``--top-k``, also on ``chat probe run`` where it belongs there), its ``/set`` name, the rule a
value must meet (and the line a refused one gets), and where it goes in a request: an argument of
the SDK's create(), or the body's extra fields; under which name in the Responses API; and whether
a server may not know it (then it is left out once rejected, with a notice).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["OPTIONAL", "PARAMS", "Param", "add_flags", "split"]


@dataclass(frozen=True)
class Param:
    name: str
    kind: type  # float | int | str: what a value is converted to
    limits: dict  # pydantic Field constraints: ge, gt, le, lt, allow_inf_nan
    rule: str  # what a value must be, as the user is told
    metavar: str
    help: str
    optional: bool = False  # a server may not know it: left out of later requests once it is rejected
    sdk: tuple[str, ...] = ()  # the APIs whose SDK create() takes it as an argument (else: extra_body)
    names: dict[str, str] = field(default_factory=dict)  # its name in an API where it differs
    probe_flag: bool = True  # `chat probe run` takes it too (the run's seed is the run's own)
    shapes: dict[str, Callable[[object], dict]] = field(default_factory=dict)  # API -> the body fields it becomes
    words: dict[str, object] = field(default_factory=dict)  # values given as words: "on" -> 5

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


_FINITE = {"allow_inf_nan": False}
PARAMS: dict[str, Param] = {p.name: p for p in (
    Param("temperature", float, {"ge": 0, **_FINITE}, "must be a finite number, 0 or more", "T",
          "sampling temperature (default: the server's)", sdk=("chat", "responses")),
    Param("top_p", float, {"gt": 0, "le": 1, **_FINITE}, "must be a number above 0, at most 1", "P",
          "nucleus sampling (default: the server's)", sdk=("chat", "responses")),
    Param("max_tokens", int, {"ge": 1}, "must be a whole number, 1 or more", "N", "cap on reply length",
          sdk=("chat", "responses"), names={"responses": "max_output_tokens"}),
    Param("seed", int, {"ge": 0, "lt": 2**63}, "must be a whole number, 0 or more", "N",
          "sampling seed, for replies that can be reproduced (where the server honours it)", optional=True,
          sdk=("chat",), probe_flag=False),
    # 0: off (llama-server); vLLM takes -1 for off too, so 0 or more here
    Param("top_k", int, {"ge": 0}, "must be a whole number, 0 (off) or more", "K",
          "sample from the K likeliest tokens (0: off)", optional=True),
    Param("min_p", float, {"ge": 0, "le": 1, **_FINITE}, "must be a number from 0 to 1", "P",
          "drop tokens below P × the likeliest one's probability", optional=True),
    Param("presence_penalty", float, {"ge": -2, "le": 2, **_FINITE}, "must be a number from -2 to 2", "X", "-2 to 2",
          optional=True, sdk=("chat",)),
    Param("frequency_penalty", float, {"ge": -2, "le": 2, **_FINITE}, "must be a number from -2 to 2", "X", "-2 to 2",
          optional=True, sdk=("chat",)),
    # sent only with the tools, in each API's shape (chat/backends/base.py's tool_choice)
    Param("tool_choice", str, {}, "must be auto, required, none or a tool's name (bash, read_file, write_file, "
          "edit_file)", "C", "auto, required (the model must call a tool), none, or a tool's name (it must call "
          "that one)", optional=True, probe_flag=False),
    # token probabilities: asked for only when set (/probs shows them); probe runs ask per step
    Param("logprobs", int, {"ge": 1, "le": 20}, "must be on, off or a whole number from 1 to 20 (the "
          "alternatives kept for each token)", "K", "send each reply's token probabilities with the K likeliest "
          "alternatives of every token (on: 5); /probs shows them", optional=True, probe_flag=False,
          shapes={"chat": lambda k: {"logprobs": True, "top_logprobs": k},
                  "responses": lambda k: {"top_logprobs": k, "include": ["message.output_text.logprobs"]}},
          words={"on": 5}),
)}
OPTIONAL = tuple(name for name, p in PARAMS.items() if p.optional)


def add_flags(parser, *, probe: bool = False) -> None:
    """Each parameter's flag (``probe``: those `chat probe run` takes)."""
    for p in PARAMS.values():
        if p.probe_flag or not probe:
            parser.add_argument(p.flag, dest=p.name, metavar=p.metavar, help=p.help)


def split(api: str, params: dict, skip: set[str] = frozenset()) -> tuple[dict, dict]:
    """A request's parameters (less ``skip``) as (the SDK's create() arguments, the body's extra fields),
    each under the API's own name for it. tool_choice goes neither way: it travels with the tools."""
    arguments, extra = {}, {}
    for name, value in params.items():
        p = PARAMS.get(name)
        if name in skip or name == "tool_choice":
            continue
        if p and api in p.shapes:
            extra.update(p.shapes[api](value))
            continue
        key = p.names.get(api, name) if p else name
        (arguments if p and api in p.sdk else extra)[key] = value
    return arguments, extra
