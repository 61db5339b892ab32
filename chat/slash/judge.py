"""/judge: score the last reply with the Karma Electric evaluator."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from ..advice import worded
from ..errors import UsageError
from ..records import EvaluationRecord
from ..sanitize import sanitize
from .registry import command, line, one_line

if TYPE_CHECKING:
    from .context import SlashContext

__all__: list[str] = []


@command("/judge", "/judge [URL]", "score the last reply with the Karma Electric evaluator (at URL, the judge_url setting, "
         "or this server)", "/judge http://127.0.0.1:8081/v1")
def _judge(ctx: "SlashContext", arg: str):
    from ..backends import make_backend
    from ..probes.karma_evaluator import (
        DIMENSIONS,
        evaluation_request,
        parse_evaluation,
    )
    from ..turn import NullSink, run_turn

    session = ctx.session
    reply, user = session.conversation.last("assistant"), session.conversation.last("user")
    if reply is None or user is None:
        raise UsageError("no reply to judge yet")
    url = arg or session.settings.judge_url
    if url:
        backend, server = session.connection.other(url, "chat")
        model = server.models[0] if server.models else ""
    else:
        server, model, backend = session.connect(), session.model or "", make_backend("chat", session._openai_client())
    request = evaluation_request(user.content, reply.content, model, grammar=server.kind.grammar)
    with ctx.console.status(f"evaluating with {model} …"):
        result = run_turn(backend, request, NullSink())
    if result.error is not None:  # a server's error keeps its kind and advice
        ctx.error(f"the evaluator failed: {worded(result.error, interactive=True)}")
        return
    evaluation = parse_evaluation(result.message.content)
    if not evaluation.scores:
        ctx.error("the evaluator's reply could not be parsed; nothing was guessed. It said: "
                   + one_line(result.message.content, 200))
        return
    table = Table(box=None, padding=(0, 2), show_header=False)
    for dim in DIMENSIONS:
        score = evaluation.scores.get(dim)
        table.add_row(dim, f"{score}/10" if score is not None else "—",
                      Text(sanitize(evaluation.reasons.get(dim, "")), style="dim"))
    if evaluation.overall is not None:
        table.add_row(Text("Overall", style="bold"), Text(f"{evaluation.overall}/10", style="bold"),
                      Text(sanitize(evaluation.overall_reason or ""), style="dim"))
    ctx.console.print(table)
    if evaluation.red_flags:
        ctx.console.print(line(("Red flags: ", "yellow"), evaluation.red_flags))
    if session.transcript is not None:
        session.transcript.write(EvaluationRecord(message=reply.id, model=model, scores=evaluation.scores,
                                                  overall=evaluation.overall, complete=evaluation.complete))
