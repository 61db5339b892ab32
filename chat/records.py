"""The records gridchat writes to its event logs: one model per event kind, used by every writer (to
build the line it appends) and by every reader (to check a line before using it). A session
transcript holds the first group; a probe cell is a transcript too, plus the cell's own. Each line is
a JSON object with "event" (the kind) and the model's fields; transcripts add "time".

    session     id, version                     the first line
    server      base_url, flavor, model, api    on connecting and on /model
    persona     name, system                    where a switch happened
    params      params                          sampling parameters, whenever they change
    message     role, content, ..., id, parent  a message added to the tree (with reasoning, tool calls, stats)
    withdraw    id                              a message taken back (its send failed before any reply)
    started     message, call                   an approved tool call of that reply began to run
    head        id                              the head moved (/switch, /undo, /retry, /edit, /clear)
    reset       from                            /load or /clear replaced the conversation (its state follows)
    fork        id, name                        a bookmarked branch point
    mark        message, label, note, persona   /mark on a reply
    panel       start, origin, turns, lanes     a panel's lanes after each of its turns; no lanes: it closed
    evaluation  message, model, scores, ...     /judge's scores for a reply

    cell        what was run where, its seed    a probe cell's first event after its session line
    message     ... and step                    the probe step the message belongs to
    scored      step, trap, label, held         what the score rules found in a trap reply
    branch      step, branch                    what a classify step found
    probability step, probabilities, token, k   each score label's answer probability at a step that asked
    done        branch, extraction, trap_ran    the cell finished
    error       step, message                   the cell stopped
    verdict     label, by, parsed, ...          a label given later, by rules, a judge or a person

Reading is strict about types and lenient about extra fields (newer versions' additions, "time");
a line that does not fit is skipped by the one damage policy (chat/eventlog.py). A writer builds the
model and writes ``line()``: only the fields it gave, so a line holds what it always held.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from .wire import web_address

__all__ = ["CELL_RECORDS", "TRANSCRIPT_RECORDS", "VERSION", "BranchRecord", "CellMessageRecord", "CellRecord",
           "DoneRecord", "ErrorRecord", "EvaluationRecord", "ForkRecord", "HeadRecord", "LaneRecord", "LogProbability",
           "LoraRecord", "MarkRecord", "MessageRecord", "Number", "PanelRecord", "ParamsRecord", "PersonaRecord",
           "Probability", "ProbabilityRecord", "Record", "ResetRecord", "ScoredRecord", "ServerRecord", "SessionRecord",
           "StartedRecord", "TokenRecord", "ToolCallRecord", "VerdictRecord", "WithdrawRecord"]

VERSION = 1  # of the transcript format
# A number read back as a float is one: an integer past 2**53 (a 400-digit one a hostile file holds)
# would overflow where it is used (math.exp, a format), so it is a line that doesn't fit.
Number = Annotated[int, Field(ge=-(2**53), le=2**53)] | Annotated[float, Field(allow_inf_nan=False)]


def _log_probability(value: int | float) -> int | float:
    if value > 0:
        raise ValueError(f"a log-probability is at most 0, not {value:.6g}")
    return value


def _probability(value: int | float) -> int | float:
    if not 0 <= value <= 1:
        raise ValueError(f"a probability is from 0 to 1, not {value:.6g}")
    return value


LogProbability = Annotated[Number, AfterValidator(_log_probability)]
Probability = Annotated[Number, AfterValidator(_probability)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")  # extra: newer versions' additions


class Record(_Strict):
    """One event of a log; ``event`` names its kind."""

    event: ClassVar[str]

    def line(self) -> dict:
        """The event as its line holds it: its kind, then the fields given (in the order declared),
        then any extra ones; defaults never given are left out, as the files always did."""
        return {"event": self.event, **self.model_dump(exclude_unset=True, by_alias=True)}


# -- a session transcript's events ------------------------------------------------------------------------

class SessionRecord(Record):
    event: ClassVar[str] = "session"
    id: str
    version: int = VERSION  # a probe cell's also says "kind": "probe cell"


class LoraRecord(BaseModel):
    """The LoRA adapter a reply was asked with, and its scale."""

    model_config = ConfigDict(strict=True, extra="ignore")
    name: str
    scale: Number


class ServerRecord(Record):
    event: ClassVar[str] = "server"
    base_url: str | None = None
    flavor: str | None = None
    model: str | None = None
    api: str | None = None
    lora: LoraRecord | None = None  # the adapter and scale the session asks with (/lora)

    @field_validator("base_url")
    @classmethod
    def _address(cls, value):
        return web_address(value)  # http(s) only, as a flag must be: a resumed session connects to it


class PersonaRecord(Record):
    event: ClassVar[str] = "persona"
    name: str
    system: str | None = None


class ParamsRecord(Record):
    event: ClassVar[str] = "params"
    params: dict[str, int | float | str]  # str: tool_choice


class ToolCallRecord(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")
    id: str
    name: str
    arguments: str


class TokenRecord(BaseModel):
    """A token of a reply with its log-probability and the likeliest alternatives (the logprobs setting)."""

    model_config = ConfigDict(strict=True, extra="ignore")
    token: str
    logprob: LogProbability | None  # None: the server sent none a probability can be (chat/backends/base.py)
    top: dict[str, LogProbability] = {}


class MessageRecord(Record):
    event: ClassVar[str] = "message"
    role: Literal["user", "assistant", "tool"]
    content: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCallRecord] = []
    tool_call_id: str | None = None
    name: str | None = None
    interrupted: bool = False
    id: int = Field(ge=0)
    parent: int | None = Field(default=None, ge=0)
    persona: str | None = None
    stats: dict | None = None
    params: dict | None = None
    model: str | None = None
    lora: LoraRecord | None = None
    logprobs: list[TokenRecord] | None = None


class WithdrawRecord(Record):
    event: ClassVar[str] = "withdraw"
    id: int = Field(ge=0)


class StartedRecord(Record):
    """Written before an approved call runs: a kill before its result still leaves known that it ran."""

    event: ClassVar[str] = "started"
    message: int = Field(ge=0)  # the reply that made the call
    call: str  # the call's id


class HeadRecord(Record):
    event: ClassVar[str] = "head"
    id: int | None = Field(ge=0)


class ResetRecord(Record):
    model_config = ConfigDict(validate_by_name=True)  # written as source=, read as "from"
    event: ClassVar[str] = "reset"
    source: str = Field("", alias="from")  # "/clear", or the file /load read


class ForkRecord(Record):
    event: ClassVar[str] = "fork"
    id: int = Field(ge=0)
    name: str


class MarkRecord(Record):
    event: ClassVar[str] = "mark"
    message: int = Field(ge=0)
    label: str
    note: str = ""
    persona: str = ""


class LaneRecord(_Strict):
    persona: str
    system: str | None = None
    model: str = ""
    server: str = ""
    head: int | None = Field(default=None, ge=0)
    reply: int | None = Field(default=None, ge=0)
    missed: int | None = Field(default=None, ge=0)
    answer: str | None = None
    lora: LoraRecord | None = None


class PanelRecord(Record):
    """Its lanes (persona, system, model, server, head) after each of its turns, where it opened and
    where its lanes branch from (origin: its start, or the root for /replay; older files lack it: their
    start); no lanes: it closed."""

    event: ClassVar[str] = "panel"
    start: int | None = Field(default=None, ge=0)
    origin: int | None = Field(default=None, ge=0)
    turns: int = Field(default=0, ge=0)
    lanes: list[LaneRecord]


class EvaluationRecord(Record):
    event: ClassVar[str] = "evaluation"
    message: int = Field(ge=0)  # the reply scored
    model: str = ""  # the evaluator's
    scores: dict[str, int] = {}  # dimension -> 1..10, those found
    overall: int | None = None
    complete: bool = False  # every dimension and the overall score were found


# -- a probe cell's own events (chat/probes/runner.py) -------------------------------------------------------

class CellMessageRecord(MessageRecord):
    step: int | None = Field(default=None, ge=0)  # the probe step it belongs to


class CellRecord(Record):
    event: ClassVar[str] = "cell"
    set: str = ""
    kind: str = ""
    probe: str
    category: str = ""
    control: bool = False
    expect: str | None = None
    persona: str
    system: str | None = None
    sample: int = Field(ge=0)
    model: str = ""
    server: str = ""
    params: dict[str, Number | str] = {}  # str: tool_choice
    seed: int | None = None
    traps: list[int] = []
    lora: LoraRecord | None = None  # the adapter and scale it was asked with (chat probe run --lora)


class ScoredRecord(Record):
    event: ClassVar[str] = "scored"
    step: int = Field(ge=0)
    trap: bool = False
    label: str | None = None  # the score rules' label (chat/probes/spec.py)
    held: list[str] = []  # the labels whose patterns the reply held: two or more is a hedge


class ProbabilityRecord(Record):
    """The probability the model gave each score label's answer where the reply gives its answer
    (chat/logprobs.py's answer_probabilities), at a step that asked for it."""

    event: ClassVar[str] = "probability"
    step: int = Field(ge=0)
    probabilities: dict[str, Probability | None] = {}  # label -> its answer's probability; None: not in the top k there
    token: int | None = Field(default=None, ge=0)  # the token measured: where the answers part
    k: int = Field(default=0, ge=0)  # the alternatives known there
    note: str = ""  # why there is no figure (no answer in the reply, no probabilities sent)


class BranchRecord(Record):
    event: ClassVar[str] = "branch"
    step: int = Field(ge=0)
    branch: str | None = None


class DoneRecord(Record):
    event: ClassVar[str] = "done"
    branch: str | None = None
    extraction: str = ""
    trap_ran: bool = False


class ErrorRecord(Record):
    event: ClassVar[str] = "error"
    step: int | None = None
    message: str = ""


class VerdictRecord(Record):
    event: ClassVar[str] = "verdict"
    label: str | None = None
    by: str
    parsed: bool = True
    raw: str = ""
    note: str = ""
    blind: bool | None = None  # hand verdicts: given before any machine label or the cell's identity was shown


def _table(*kinds: type[Record]) -> dict[str, type[Record]]:
    return {kind.event: kind for kind in kinds}


TRANSCRIPT_RECORDS = _table(SessionRecord, ServerRecord, PersonaRecord, ParamsRecord, MessageRecord, WithdrawRecord,
                            StartedRecord, HeadRecord, ResetRecord, ForkRecord, MarkRecord, PanelRecord,
                            EvaluationRecord)
CELL_RECORDS = {**TRANSCRIPT_RECORDS, **_table(CellMessageRecord, CellRecord, ScoredRecord, BranchRecord, DoneRecord,
                                               ErrorRecord, VerdictRecord, ProbabilityRecord)}
