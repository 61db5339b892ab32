"""Tool calls from the model: which tools are offered, who approves a call, and its result.

The approval policy is the one gate: nothing runs unless the user said y, or a(lways) for that
tool earlier in the session, or pre-approved it (--approve / config). A declined, malformed or
failed call still gets exactly one result, so the conversation stays well-formed on both APIs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ..tools import TOOLS, Preview, ToolError, Workspace, execute, prepare
from .backends.base import ToolSpec
from .cancel import CancelToken
from .events import ToolCall

__all__ = ["ApprovalPolicy", "Approver", "Decision", "Outcome", "Toolbox", "DeclineAll"]


@dataclass(frozen=True, slots=True)
class Decision:
    run: bool
    always: bool = False  # and stop asking for this tool for the rest of the session
    reason: str = ""  # the user's optional reason for declining, passed to the model
    stop: bool = False  # the user stopped the whole turn (Ctrl-C at the question)


class Approver(Protocol):
    def ask(self, call: ToolCall, preview: Preview) -> Decision:
        """Ask the user about one call."""


class DeclineAll:
    """The approver when nobody can be asked (one-shot mode, no terminal)."""

    def ask(self, call: ToolCall, preview: Preview) -> Decision:
        return Decision(False, reason="")


@dataclass
class ApprovalPolicy:
    preapproved: set[str] = field(default_factory=set)  # from --approve / config
    always: set[str] = field(default_factory=set)  # a(lways) answered this session

    def __post_init__(self) -> None:
        self.always |= self.preapproved

    def state(self, name: str) -> str:
        if name not in self.always:
            return "asks"
        return "pre-approved" if name in self.preapproved else "always (this session)"

    def reset(self) -> None:
        """Ask again for every tool, pre-approved ones included."""
        self.always.clear()
        self.preapproved.clear()


@dataclass(slots=True)
class Outcome:
    content: str  # what the model gets
    status: str  # ran | declined | error | interrupted
    exit_code: int | None = None  # a command's, where it reports one
    elapsed: float = 0.0  # seconds it ran


class Toolbox:
    def __init__(self, workspace: Workspace, policy: ApprovalPolicy, enabled: bool = True):
        self.workspace = workspace
        self.policy = policy
        self.enabled = enabled

    def specs(self) -> list[ToolSpec]:
        if not self.enabled:
            return []
        return [ToolSpec(t.name, t.description, t.schema()) for t in TOOLS.values()]

    def handle(self, call: ToolCall, approver: Approver, sink, stop: CancelToken | None = None,
               starting: Callable[[], None] = lambda: None) -> Outcome:
        """Show, approve and run one call. Whatever fails in the tool becomes the call's result. ``stop``
        (the turn's token) ends a running command; a call stopped, or refused with a stop at the
        question, is "interrupted", with what it had done so far. ``starting()`` comes just before an
        approved call runs (to record that it did)."""
        if not self.enabled:
            return Outcome("error: tools are turned off in this session", "error")
        try:
            tool, args, preview = prepare(call.name, call.arguments, self.workspace)
        except ToolError as e:  # malformed, or bound to fail: nothing to approve
            sink.tool_call(call, Preview(call.arguments[:200]))
            return Outcome(f"error: {e}", "error")
        sink.tool_call(call, preview)
        if call.name in self.policy.always:  # said once, where it shows: nothing runs unannounced
            why = "pre-approved" if call.name in self.policy.preapproved else "always, this session"
            sink.notice(f"{call.name} runs without asking ({why})")
        else:
            decision = approver.ask(call, preview)
            if decision.stop and stop is not None:
                stop.cancel("interrupted")
            if decision.stop or (stop is not None and stop.cancelled):
                why = stop.why if stop is not None else "the user interrupted the turn (Ctrl-C)"
                return Outcome(f"Not run: {why} at the approval question.", "interrupted")
            if not decision.run:
                reason = f" Their reason: {decision.reason}" if decision.reason else ""
                return Outcome(f"The user declined to run this {call.name} call.{reason}", "declined")
            if decision.always:
                self.policy.always.add(call.name)
        starting()
        started = time.monotonic()
        with sink.tool_running(call):
            content = execute(tool, args, self.workspace, preview, stop)
        code = tool.exit_code(content) if tool.exit_code else None
        elapsed = time.monotonic() - started
        if stop is not None and stop.cancelled:  # Ctrl-C, SIGTERM, a closed window: the model is told so
            return Outcome(content if tool.name == "bash" else f"{content}\n[{stop.why}]", "interrupted", code, elapsed)
        return Outcome(content, "error" if content.startswith("error: ") else "ran", code, elapsed)
