"""Tool calls from the model: which tools are offered, who approves a call, and its result.

The approval policy is the one gate: nothing runs unless the user said y, or a(lways) for that
tool earlier in the session, or pre-approved it (--approve / config). A declined, malformed or
failed call still gets exactly one result, so the conversation stays well-formed on both APIs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

from ..tools import TOOLS, Preview, ToolError, Workspace, execute, prepare
from .backends.base import ToolSpec
from .events import ToolCall

__all__ = ["ApprovalPolicy", "Approver", "Decision", "Outcome", "Toolbox", "DeclineAll"]


@dataclass(frozen=True, slots=True)
class Decision:
    run: bool
    always: bool = False  # and stop asking for this tool for the rest of the session
    reason: str = ""  # the user's optional reason for declining, passed to the model


class Approver(Protocol):
    def ask(self, call: ToolCall, preview: Preview) -> Decision:
        """Ask the user about one call. KeyboardInterrupt means: decline, and stop the turn."""


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

    def handle(self, call: ToolCall, approver: Approver, sink) -> Outcome:
        """Show, approve and run one call. Whatever fails in the tool becomes the call's result; only
        KeyboardInterrupt (while asking or running) propagates: the caller records the call as
        interrupted."""
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
            if not decision.run:
                reason = f" Their reason: {decision.reason}" if decision.reason else ""
                return Outcome(f"The user declined to run this {call.name} call.{reason}", "declined")
            if decision.always:
                self.policy.always.add(call.name)
        started = time.monotonic()
        with sink.tool_running(call):
            content = execute(tool, args, self.workspace, preview)
        code = tool.exit_code(content) if tool.exit_code else None
        return Outcome(content, "error" if content.startswith("error: ") else "ran", code, time.monotonic() - started)
