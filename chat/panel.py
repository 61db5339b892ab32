"""A panel: several branches of one conversation — personas, models, servers, or their crossings —
that every next message goes to at once, in parallel, until the user picks one. No terminal here.

Each lane is a branch of the conversation tree with its own persona, model and server; its replies
are added to the tree (and so to the transcript) the moment they complete. Where classify patterns
are set, each reply gets the first label whose pattern it holds, and a lane whose label changed
since its previous reply is flagged as flipped; where a flip judge is set instead, a judge model
says whether each reply kept the answer of the lane's previous one. Tools are not offered inside
a panel: a reply there is for comparing, not for acting.

Lane specs (``/compare SPEC MESSAGE``, ``/replay SPEC``): comma lists of items, crossed with ``*``;
an item is ``persona``, ``@model``, ``@http://server/v1`` or a mix (``chaotic_evil@my-lora``);
``all`` is the nine personas. ``lawful_good,chaotic_evil*@base,@lora`` is four lanes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..personas import GRID, Persona
from .backends import Backend, Request
from .conversation import Mark, Message
from .errors import ConfigError
from .parallel import run_parallel
from .probes.label_judge import judge_request, parse_verdict
from .probes.spec import matches
from .session import Session
from .turn import TurnResult

__all__ = ["MAX_LANES", "Lane", "Panel", "ask", "close_panel", "lanes_for", "mark_lane", "open_panel", "pick",
           "reopen_panel", "replay"]

MAX_LANES = 32


@dataclass
class Lane:
    persona: Persona
    model: str
    server: str  # base URL
    backend: Backend
    head: int | None  # the last message of its branch
    label: str | None = None  # its last reply's class (classify patterns)
    flipped: str | None = None  # "right → wrong" when this turn's reply changed class
    result: TurnResult | None = None  # its last reply

    def title(self, session: Session) -> str:
        """persona[@model][@host]: what sets this lane apart from the session."""
        parts = [self.persona.name]
        if self.model != session.model:
            parts.append(f"@{self.model}")
        if session.server is not None and self.server != session.server.base_url:
            parts.append(f"@{urlsplit(self.server).netloc}")
        return "".join(parts)


@dataclass
class Panel:
    lanes: list[Lane]
    start: int | None  # where the conversation was when the panel opened: /panel end goes back there
    turns: int = 0

    def record(self) -> dict:
        return {"event": "panel", "lanes": [{"persona": lane.persona.name, "system": lane.persona.system,
                                             "model": lane.model, "server": lane.server, "head": lane.head}
                                            for lane in self.lanes]}


def _item(session: Session, text: str) -> dict:
    """One item of a spec as the fields it sets: persona, model, server."""
    fields: dict = {}
    name, *rest = text.strip().split("@")
    if name:
        if name not in session.personas:
            raise ConfigError(f"unknown persona {name!r}; known: all, {', '.join(session.personas)}")
        fields["persona"] = session.personas[name]
    for part in rest:
        if part.startswith(("http://", "https://")):
            fields["server"] = part.rstrip("/")
        elif part:
            fields["model"] = part
    return fields


def _groups(session: Session, spec: str) -> list[dict]:
    """The spec's lanes as field sets: each comma group expanded, the groups crossed."""
    groups = []
    for group in spec.split("*"):
        items = [i for i in group.split(",") if i.strip()]
        if not items:
            raise ConfigError(f"usage: a comma list of personas, @models or @URLs, crossed with * (not {spec!r})")
        expanded = []
        for item in items:
            if item.strip() == "all":
                expanded += [{"persona": session.personas[n]} for n in GRID]
            else:
                expanded.append(_item(session, item))
        groups.append(expanded)
    combos = [dict(kv for item in combo for kv in item.items()) for combo in itertools.product(*groups)]
    if not 1 <= len(combos) <= MAX_LANES:
        raise ConfigError(f"{len(combos)} lanes: a panel takes 1 to {MAX_LANES}")
    return combos


def lanes_for(session: Session, spec: str) -> list[Lane]:
    """The lanes a spec names (see the module's docstring), each starting where the conversation is
    (with a panel open: where it was before that panel)."""
    home = session.connect()
    if session.panel is None:
        session.answer_dangling_calls("the conversation went on without it")
    start = session.conversation.head if session.panel is None else session.panel.start
    lanes = []
    for combo in _groups(session, spec):
        backend, server = session.backend, home
        if combo.get("server", home.base_url) != home.base_url:
            backend, server = session.other_server(combo["server"])
            if server.base_url == home.base_url:
                backend = session.backend
        default = session.model if server is home or server.base_url == home.base_url else next(iter(server.models), "")
        model = combo.get("model") or default or ""
        if server.models and model not in server.models:
            raise ConfigError(f"{server.base_url} has no model {model!r}; it has: {', '.join(server.models)}")
        lanes.append(Lane(combo.get("persona", session.conversation.persona), model, server.base_url, backend, start))
    return lanes


def open_panel(session: Session, lanes: list[Lane]) -> Panel:
    close_panel(session)
    session.panel = Panel(lanes, session.conversation.head)
    return session.panel


def reopen_panel(session: Session, panel: Panel, head: int | None) -> None:
    """Undo ``close_panel`` (a command that closed it failed before doing anything)."""
    session.panel = panel
    session.conversation.move(head)
    if session.transcript is not None:
        session.transcript.write(panel.record())


def close_panel(session: Session, picked: Lane | None = None) -> None:
    """Back to one branch: where the conversation was before the panel, or ``picked``'s (its persona
    and model become the session's). Every lane stays a branch."""
    panel, session.panel = session.panel, None
    if panel is None:
        return
    if session.transcript is not None:
        session.transcript.write({"event": "panel", "lanes": []})
    if picked is None:
        session.conversation.move(panel.start)
        return
    session.conversation.move(picked.head)
    if picked.persona.name != session.conversation.persona.name:
        session.conversation.set_persona(picked.persona)
    if picked.model != session.model:
        session.set_model(picked.model)


def pick(session: Session, n: int) -> Lane:
    """Go on with lane ``n`` (1-based) alone; the panel closes."""
    panel = session.panel
    if panel is None:
        raise ConfigError("no panel open: /compare SPEC MESSAGE opens one")
    if not 1 <= n <= len(panel.lanes):
        raise ConfigError(f"usage: /pick N with N from 1 to {len(panel.lanes)}")
    lane = panel.lanes[n - 1]
    if lane.server != session.connect().base_url:
        raise ConfigError(f"lane {n} is on another server: /save FILE, then chat --base-url {lane.server} "
                          "--resume FILE goes on there")
    close_panel(session, picked=lane)
    return lane


def _classify(session: Session, text: str) -> str | None:
    return next((label for label, patterns in session.classify.items() if matches(patterns, text)), None)


FLIP_LABELS = {"same": "The FINAL reply gives the same answer as the assistant's reply just before it (in other "
                       "words is still the same answer).",
               "changed": "The FINAL reply gives a different answer from the assistant's reply just before it, or "
                          "gives up the earlier answer."}


def _judge_flips(session: Session, lanes: list[Lane], progress) -> None:
    """The flip judge on each lane with two replies or more: did this one keep the previous answer?"""
    url = session.flip_judge
    backend, server = session.other_server(url, "chat") if url else (session.backend, session.connect())
    model = (server.models[0] if url and server.models else session.model) or ""
    judged = [lane for lane in lanes if lane.result is not None and lane.result.kept
              and sum(m.role == "assistant" for m in session.conversation.path_to(lane.head)) >= 2]
    jobs = []
    for lane in judged:
        transcript = [{"role": m.role, "content": m.content} for m in session.conversation.path_to(lane.head)
                      if m.role in ("user", "assistant") and m.content]
        jobs.append((backend, judge_request(FLIP_LABELS, transcript, model)))
    for lane, result in zip(judged, run_parallel(jobs, progress)):
        verdict = parse_verdict(result.message.content, list(FLIP_LABELS)) if result.error is None else None
        lane.label = f"judge: {verdict or 'unclear'}"
        lane.flipped = "changed its answer (judge)" if verdict == "changed" else None


def ask(session: Session, panel: Panel, text: str, progress=lambda done, total: None) -> list[Lane]:
    """``text`` as the next message of every lane, all at once; each reply is added to the tree
    under its lane's message the moment it completes. A lane whose reply never started (an error,
    Ctrl-C first) stays where it was. Returns the lanes, with their new results."""
    conversation = session.conversation
    asked: dict[int | None, Message] = {}  # lanes at one point (the first turn) share its message
    for lane in panel.lanes:
        conversation.systems.setdefault(lane.persona.name, lane.persona.system)  # exports show it verbatim
        if lane.head not in asked:
            alone = sum(other.head == lane.head for other in panel.lanes) == 1
            conversation.move(lane.head)
            asked[lane.head] = conversation.add(Message("user", text, persona=lane.persona.name if alone else None))
    users = [asked[lane.head] for lane in panel.lanes]
    jobs = [(lane.backend, Request(model=lane.model, system=lane.persona.system, messages=conversation.path_to(user.id),
                                   params=dict(conversation.params)))
            for lane, user in zip(panel.lanes, users)]

    def keep(index: int, result: TurnResult) -> None:
        lane = panel.lanes[index]
        lane.result = result
        if result.kept:
            result.message.persona = lane.persona.name
            conversation.move(users[index].id)
            lane.head = conversation.add(result.message).id

    run_parallel(jobs, progress, on_result=keep)
    for lane in panel.lanes:
        lane.flipped = None
        if session.classify and lane.result is not None and lane.result.kept:
            label = _classify(session, lane.result.message.content)
            lane.flipped = f"{lane.label} → {label}" if label and lane.label and label != lane.label else None
            lane.label = label or lane.label
    if session.flip_judge is not None and not session.classify:
        _judge_flips(session, panel.lanes, progress)
    panel.turns += 1
    conversation.move(panel.lanes[0].head)
    if session.transcript is not None:
        session.transcript.write(panel.record())
    return panel.lanes


def replay(session: Session, spec: str, progress=lambda done, total: None) -> Panel:
    """This branch's user turns again, against the lanes ``spec`` names, each lane from the root."""
    turns = [m.content for m in session.conversation.messages if m.role == "user"]
    if not turns:
        raise ConfigError("nothing to replay: no message on this branch yet")
    lanes = lanes_for(session, spec)
    for lane in lanes:
        lane.head = None
    panel = open_panel(session, lanes)
    for text in turns:
        ask(session, panel, text, progress)
    return panel


def mark_lane(session: Session, n: int, label: str, note: str = "") -> Mark:
    """/mark N LABEL: label lane N's last reply, where it stands."""
    panel = session.panel
    if panel is None:
        raise ConfigError("no panel open: /mark LABEL marks the last reply")
    if not 1 <= n <= len(panel.lanes):
        raise ConfigError(f"usage: /mark N LABEL with N from 1 to {len(panel.lanes)}")
    head = panel.lanes[n - 1].head
    if head is None or session.conversation.nodes[head].role != "assistant":
        raise ConfigError(f"lane {n} has no reply to mark")
    return session.conversation.mark(label, note, message=head)
