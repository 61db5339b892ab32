"""A panel: several branches of one conversation — personas, models, servers, or their crossings —
that every next message goes to at once, in parallel, until the user picks one. No terminal here.

Each lane is a branch of the conversation tree with its own persona, model and server; each message
is added to every lane's branch with that lane's persona, and its replies are added to the tree (and
so to the transcript) the moment they complete. A lane whose reply never came (an error, Ctrl-C
first) stays where it was, its unanswered message noted so that ``retry`` can ask it again. Where classify patterns
are set, each reply gets the first label whose pattern it holds, and a lane whose label changed
since its previous reply is flagged as flipped; where a flip judge is set instead, a judge model
says whether each reply kept the answer of the lane's previous one. Tools are not offered inside
a panel: a reply there is for comparing, not for acting (a call a model makes anyway is answered
"not run", so its branch stays one a server accepts).

Lane specs (``/compare SPEC MESSAGE``, ``/replay SPEC``): chat/lane_spec.py. A lane may ask with a
LoRA adapter at a scale, the way its server applies one (chat/adapters.py, the flavor's).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from ..personas import Persona
from .adapters import Lora, choose, lora_from
from .backends import Backend, Request
from .cancel import CancelToken, new_token
from .conversation import Mark, Message
from .detect import ServerInfo
from .errors import ChatError, UsageError
from .lane_spec import MAX_LANES, lane_fields
from .limits import listed
from .parallel import run_parallel
from .records import LaneRecord, PanelRecord
from .probes.label_judge import judge_request, parse_verdict
from .session import Session, with_lora
from .transcript import recorded_persona
from .turn import TurnResult

__all__ = ["MAX_LANES", "Lane", "Panel", "Panels", "ask", "classify_lanes", "close_panel", "lanes_for", "mark_lane",
           "open_panel", "pick", "reopen_panel", "replay", "restore", "retry"]


@dataclass
class Lane:
    persona: Persona
    model: str
    server: str  # base URL
    backend: Backend
    head: int | None  # the last message of its branch
    reply: int | None = None  # its last reply in this panel
    missed: int | None = None  # its last message, when no reply came to it (``retry`` asks again)
    label: str | None = None  # its last reply's class (classify patterns) or the judge's verdict on it
    answer: str | None = None  # the last class any of its replies had: what a flip is measured from
    flipped: str | None = None  # "right → wrong" when this turn's reply changed class
    result: TurnResult | None = None  # its last reply
    lora: Lora | None = None  # the adapter and scale it asks with (None: as its server has it)
    info: ServerInfo | None = None  # its server, as found (how it applies an adapter)

    def title(self, session: Session) -> str:
        """persona[@model][@host][ lora NAME×S]: what sets this lane apart from the session."""
        parts = [self.persona.name]
        if self.model != session.model:
            parts.append(f"@{self.model}")
        if session.server is not None and self.server != session.server.base_url:
            parts.append(f"@{urlsplit(self.server).netloc.rpartition('@')[2]}")
        if self.lora is not None:
            parts.append(f" lora {self.lora}")
        return "".join(parts)

    def request(self, messages: list[Message], params: dict) -> Request:
        return with_lora(Request(model=self.model, system=self.persona.system, messages=messages, params=params),
                         self.lora, self.info)


@dataclass
class Panel:
    lanes: list[Lane]
    start: int | None  # where the conversation was when the panel opened: /panel end goes back there
    turns: int = 0
    origin: int | None = None  # where its lanes branch from: the start (/compare), the root (/replay)

    def record(self) -> PanelRecord:
        return PanelRecord(start=self.start, origin=self.origin, turns=self.turns,
                           lanes=[LaneRecord(persona=lane.persona.name, system=lane.persona.system, model=lane.model,
                                             server=lane.server, head=lane.head, reply=lane.reply, missed=lane.missed,
                                             answer=lane.answer, lora=lane.lora.record() if lane.lora else None)
                                  for lane in self.lanes])


class Panels:
    """The panel layer's state: the panel open now (if any), one a resumed session left open (to reopen
    once connected), and how replies are told apart (classify patterns, or a flip judge). The
    front-end holds one per session; every function here takes it."""

    def __init__(self, session: Session, left_open: dict | None = None):
        self.session = session
        self.open: Panel | None = None  # the next messages go to all its lanes
        self.left_open = left_open
        self.classify: dict[str, list[str]] = {}  # label -> patterns, for flagging replies that flip
        self.flip_judge: str | None = None  # or a judge says whether they flip: its URL ("": this server)


def lanes_for(panels: Panels, spec: str) -> list[Lane]:
    """The lanes a spec names (see the module's docstring), each starting where the conversation is
    (with a panel open: where it was before that panel)."""
    session = panels.session
    home = session.connect()
    if panels.open is None:
        session.answer_dangling_calls("the conversation went on without it")
    start = session.conversation.head if panels.open is None else panels.open.start
    lanes = []
    for combo in lane_fields(session.personas, spec):
        backend, server = session.server_at(combo.get("server", home.base_url))
        default = session.model if server is home else next(iter(server.models), "")
        model = combo.get("model") or default or ""
        if server.models and model not in server.models:
            raise UsageError(f"{server.base_url} has no model {model!r}; it has: {listed(server.models)}")
        lora = choose(combo["lora"], server.adapters, server.adapters_unread) if "lora" in combo else session.lora if server is home else None
        lane = Lane(combo.get("persona", session.conversation.persona), model, server.base_url, backend, start,
                    lora=lora, info=server)
        lane.request([], {})  # an adapter its server can't apply at that scale is refused now
        lanes.append(lane)
    return lanes


def open_panel(panels: Panels, lanes: list[Lane]) -> Panel:
    session = panels.session
    close_panel(panels)
    panels.open = Panel(lanes, session.conversation.head, origin=lanes[0].head)
    return panels.open


def restore(panels: Panels, record: dict) -> Panel:
    """The panel a resumed transcript left open (``Panel.record``), its lanes where they stood after
    its last whole turn. A turn cut short by the end of the last run is offered again: its text
    becomes ``session.pending_text``. Raises ChatError when a lane's server can't be reached."""
    session = panels.session
    home = session.connect()
    lanes = []
    for item in record["lanes"]:
        persona = recorded_persona(session.personas, item["persona"], item.get("system"))
        backend, server = session.server_at(item.get("server") or home.base_url, typed=False)  # read from the file
        lanes.append(Lane(persona, item.get("model") or session.model or "", server.base_url, backend, item.get("head"),
                          item.get("reply"), item.get("missed"), answer=item.get("answer"),
                          lora=lora_from(item.get("lora")), info=server))
        lanes[-1].request([], {})  # an adapter its server no longer has is refused now, not asked as the base model
    panel = Panel(lanes, record.get("start"), record.get("turns", 0), record.get("origin", record.get("start")))
    conversation = session.conversation
    heads = {lane.head for lane in lanes}
    newest = max((n for lane in lanes for n in (lane.head, lane.missed) if n is not None), default=-1)
    cut = [m for m in conversation.nodes if m.role == "user" and m.parent in heads and m.id > newest]
    if cut:
        session.pending_text = cut[-1].content
    panels.open = panel
    conversation.move(lanes[0].head)
    return panel


def reopen_panel(panels: Panels, panel: Panel, head: int | None) -> None:
    """Undo ``close_panel`` (a command that closed it failed before doing anything)."""
    session = panels.session
    panels.open = panel
    session.conversation.move(head)
    if session.transcript is not None:
        session.transcript.write(panel.record())


def close_panel(panels: Panels, picked: Lane | None = None) -> None:
    """Back to one branch: where the conversation was before the panel, or ``picked``'s (its persona
    and model become the session's). Every lane stays a branch."""
    session = panels.session
    panel, panels.open = panels.open, None
    if panel is None:
        return
    if session.transcript is not None:
        session.transcript.write(PanelRecord(lanes=[]))
    if picked is None:
        session.conversation.move(panel.start)
        return
    session.conversation.move(picked.head)
    if picked.persona.name != session.conversation.persona.name:
        session.conversation.set_persona(picked.persona)
    if picked.model != session.model:
        session.set_model(picked.model)
    if picked.lora != session.lora:
        session.use_lora(picked.lora)


def pick(panels: Panels, n: int) -> Lane:
    """Go on with lane ``n`` (1-based) alone; the panel closes. A lane on another server takes the
    session there."""
    session = panels.session
    panel = panels.open
    if panel is None:
        raise UsageError("no panel open: /compare SPEC MESSAGE opens one")
    if not 1 <= n <= len(panel.lanes):
        raise UsageError(f"usage: /pick N with N from 1 to {len(panel.lanes)}")
    lane = panel.lanes[n - 1]
    if lane.server != session.connect().base_url:
        session.use_server(lane.server, lane.model)
    close_panel(panels, picked=lane)
    return lane


def _classify(panels: Panels, text: str) -> str | None:
    from .probes.spec import matches  # the probe-set schema: ~10 ms of start-up otherwise

    return next((label for label, patterns in panels.classify.items() if matches(patterns, text)), None)


def _take_class(panels: Panels, lane: Lane, text: str) -> None:
    """``text``, the lane's newest reply, classified: its label, and a flip where its answer changed."""
    lane.label = _classify(panels, text)
    changed = lane.label and lane.answer and lane.label != lane.answer
    lane.flipped = f"{lane.answer} → {lane.label}" if changed else None
    lane.answer = lane.label or lane.answer


def classify_lanes(panels: Panels, panel: Panel) -> None:
    """The replies already in ``panel`` labelled by the classify patterns now set, as if they had been
    set when it opened: each lane's last reply named, the answer a flip is measured from, and a flip
    its last reply made (no patterns: the labels go). Recorded, as a turn's labels are."""
    session = panels.session
    for lane in panel.lanes:
        lane.label = lane.flipped = lane.answer = None
        for m in session.conversation.path_to(lane.head) if panels.classify else ():
            if m.role == "assistant" and (panel.origin is None or m.id > panel.origin):
                _take_class(panels, lane, m.content)
    if session.transcript is not None:
        session.transcript.write(panel.record())


FLIP_LABELS = {"same": "The FINAL reply gives the same answer as the assistant's reply just before it (in other "
                       "words is still the same answer).",
               "changed": "The FINAL reply gives a different answer from the assistant's reply just before it, or "
                          "gives up the earlier answer."}


def _judge_flips(panels: Panels, lanes: list[Lane], progress, token: CancelToken) -> None:
    """The flip judge on each lane with two replies or more: did this one keep the previous answer?
    A judge that can't be reached or fails is said (``session.notify``); the replies stand."""
    session = panels.session
    judged = [lane for lane in lanes if lane.result is not None and lane.result.kept
              and sum(m.role == "assistant" for m in session.conversation.path_to(lane.head)) >= 2]
    if not judged:
        return
    url = panels.flip_judge
    try:
        backend, server = session.connection.other(url, "chat") if url else (session.backend, session.connect())
    except ChatError as err:
        session.notify(f"flip judge: {err}")
        return
    model = (server.models[0] if url and server.models else session.model) or ""
    jobs = []
    for lane in judged:
        transcript = [{"role": m.role, "content": m.content} for m in session.conversation.path_to(lane.head)
                      if m.role in ("user", "assistant") and m.content]
        jobs.append((backend, judge_request(FLIP_LABELS, transcript, model)))
    failed = []
    for lane, result in zip(judged, run_parallel(jobs, progress, cancel=token)):
        if result.interrupted:  # Ctrl-C: the user stopped it, nothing failed
            lane.label = "judge: stopped"
            continue
        if result.error is not None:
            lane.label = "judge: failed"
            failed.append(f"lane {lanes.index(lane) + 1}: {result.error}")
            continue
        verdict = parse_verdict(result.message.content, list(FLIP_LABELS))
        lane.label = f"judge: {verdict or 'unclear'}"
        lane.flipped = "changed its answer (judge)" if verdict == "changed" else None
    if failed:
        session.notify(f"flip judge failed on {'; '.join(failed)}")


def _run(panels: Panels, panel: Panel, lanes: list[Lane], users: list[Message], progress,
         token: CancelToken) -> None:
    """Each lane's request from its message in ``users``, all at once; each reply kept under that
    message the moment it completes; then each reply classified (or judged) and the panel recorded."""
    session = panels.session
    conversation = session.conversation
    jobs = [(lane.backend, lane.request(conversation.path_to(user.id), dict(conversation.params)))
            for lane, user in zip(lanes, users)]

    def keep(index: int, result: TurnResult) -> None:
        lane, user = lanes[index], users[index]
        lane.result = result
        if not result.kept:
            lane.missed = user.id
            return
        result.message.persona = lane.persona.name
        conversation.move(user.id)
        reply = conversation.add(result.message)
        for call in reply.tool_calls:  # no tools here, yet the model called one: a server wants a result for each
            conversation.add(Message("tool", "Not run: tools are off in a panel.", tool_call_id=call.id,
                                     name=call.name, persona=lane.persona.name))
        lane.head, lane.reply, lane.missed = conversation.head, reply.id, None

    for lane in lanes:
        lane.result = None
    run_parallel(jobs, progress, cancel=token, on_result=keep)
    for lane in lanes:
        lane.flipped, lane.label = None, None
        if panels.classify and lane.result is not None and lane.result.kept:
            _take_class(panels, lane, lane.result.message.content)
    if panels.flip_judge is not None and not panels.classify and not token.cancelled:  # stopped: no judging
        _judge_flips(panels, lanes, progress, token)
    conversation.move(panel.lanes[0].head)
    if session.transcript is not None:
        session.transcript.write(panel.record())


def ask(panels: Panels, panel: Panel, text: str, progress=lambda done, total: None,
        cancel: CancelToken | None = None, lanes: list[Lane] | None = None) -> list[Lane]:
    """``text`` as the next message of every lane (each with its lane's persona), all at once; each
    reply is added to the tree the moment it completes. A lane whose reply never started (an error,
    Ctrl-C first) stays where it was, its message noted as missed. Ctrl-C (or ``cancel``) stops the
    round; it is wrapped up whole however often it is pressed. ``lanes``: only these (default: all).
    Returns the lanes asked, with their results."""
    session = panels.session
    conversation = session.conversation
    token = cancel if cancel is not None else new_token()
    lanes = panel.lanes if lanes is None else lanes
    users = []
    for lane in lanes:
        conversation.systems.setdefault(lane.persona.name, lane.persona.system)  # exports show it verbatim
        conversation.move(lane.head)
        users.append(conversation.add(Message("user", text, persona=lane.persona.name)))
    panel.turns += 1
    _run(panels, panel, lanes, users, progress, token)
    return lanes


def retry(panels: Panels, panel: Panel, progress=lambda done, total: None,
          cancel: CancelToken | None = None) -> list[Lane]:
    """Ask the lanes that got no reply to their last message again (the same message), so that
    every lane is at the same turn. Returns those lanes."""
    session = panels.session
    behind = [lane for lane in panel.lanes if lane.missed is not None]
    if not behind:
        raise UsageError("every lane has answered the last message: nothing to ask again")
    token = cancel if cancel is not None else new_token()
    _run(panels, panel, behind, [session.conversation.nodes[lane.missed] for lane in behind], progress, token)
    return behind


def replay(panels: Panels, spec: str, progress=lambda done, total: None,
           cancel: CancelToken | None = None) -> tuple[Panel, int]:
    """This branch's user turns again, against the lanes ``spec`` names, each lane from the root.
    A lane whose reply to a message never came stops there (so every lane is a faithful prefix of
    the branch; ``retry`` asks it again). Ctrl-C stops it all after the message being asked.
    Returns the panel and how many turns there were."""
    session = panels.session
    turns = [m.content for m in session.conversation.messages if m.role == "user"]
    if not turns:
        raise UsageError("nothing to replay: no message on this branch yet")
    lanes = lanes_for(panels, spec)
    for lane in lanes:
        lane.head = None
    panel = open_panel(panels, lanes)
    token = cancel if cancel is not None else new_token()
    for text in turns:
        going = [lane for lane in panel.lanes if lane.missed is None]
        if token.cancelled or not going:
            break
        ask(panels, panel, text, progress, token, going)
    return panel, len(turns)


def mark_lane(panels: Panels, n: int, label: str, note: str = "") -> Mark:
    """/mark N LABEL: label lane N's last reply, where it stands."""
    session = panels.session
    panel = panels.open
    if panel is None:
        raise UsageError("no panel open: /mark LABEL marks the last reply")
    if not 1 <= n <= len(panel.lanes):
        raise UsageError(f"usage: /mark N LABEL with N from 1 to {len(panel.lanes)}")
    reply = panel.lanes[n - 1].reply
    if reply is None:
        raise UsageError(f"lane {n} has no reply in this panel yet")
    return session.conversation.mark(label, note, message=reply)
