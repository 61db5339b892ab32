"""A chat session: settings, the server, the conversation, and sending a message. No terminal here."""

from __future__ import annotations

import os
from collections.abc import Callable

from ..personas import Persona, custom
from ..tools import TOOLS, Workspace
from .adapters import Lora, choose, lora_from
from .backends import Backend, Request, ToolSpec
from .backends.chat_completions import chat_tools, to_chat_messages
from .cancel import CancelToken, new_token
from .config import Settings, check
from .connection import Connection
from .conversation import PARAMS, Conversation, Message
from .detect import ServerInfo
from .errors import ConfigError, ServerUnreachable, ToolsNotEnabled, UsageError
from .limits import listed
from .records import ParamsRecord, PersonaRecord, ResetRecord, ServerRecord
from .toolbox import ApprovalPolicy, Approver, DeclineAll, Toolbox
from .transcript import Restored, Transcript, snapshot_events
from .turn import Sink, TurnResult, TurnStats, run_exchange

__all__ = ["Session", "choose_api", "with_lora"]

CONTEXT_WARNING = 0.8  # of the window: past this, say so after each reply
LOST_RESULT = ("Result unknown: this call was approved and started, but the session ended before its result "
               "came; it may have done its work.")


def choose_api(setting: str, server: ServerInfo | None, model: str | None) -> tuple[str, str]:
    """The API to use and why: ``auto`` is the flavor's choice for the model (chat/flavors.py: Responses
    for gpt-oss models on vLLM, Chat Completions everywhere else)."""
    if setting != "auto":
        return setting, f"--api {setting}"
    if server is None:
        return "chat", "auto: Chat Completions, which the server speaks for every model"
    return server.kind.api(model)


class Session:
    def __init__(self, settings: Settings, personas: dict[str, Persona], transcript: Transcript | None = None,
                 restored: Restored | None = None):
        self.settings = settings
        self.personas = personas
        self.transcript = transcript
        self.lora: Lora | None = None  # the LoRA adapter and scale its requests ask for (None: the server's own)
        if restored is not None:  # --resume: the conversation exactly as it was
            self.conversation = restored.conversation
            self.model = settings.model or restored.server.get("model")
            self.lora = lora_from(restored.server.get("lora")) if not settings.model else None
        else:
            if settings.persona not in personas:
                raise ConfigError(f"unknown persona {settings.persona!r}; known: {', '.join(personas)}")
            self.conversation = Conversation()
            self.model = settings.model
        self._record_to(transcript)
        self.pending_text = ""  # a message to offer at the prompt (one left unanswered by a killed run)
        if restored is not None:
            self._settle()
        if restored is None:
            self.conversation.set_persona(personas[settings.persona])
            self.conversation.set_params(settings.sampling())
        self.notify: Callable[[str], None] = lambda text: None  # what the user should hear (the UI says it)
        # its servers; the API key goes only to those named this run (chat/credentials.py)
        self.connection = Connection(settings.base_url, settings.api_key, [settings.judge_url],
                                     notify=lambda text: self.notify(text))
        self.last_stats: TurnStats | None = None
        self.toolbox = _toolbox(settings)

    def clear(self) -> None:
        """A fresh tree, keeping the persona and parameters; the transcript keeps the old one."""
        old = self.conversation
        self.conversation = Conversation(persona=old.persona, params=dict(old.params), systems=dict(old.systems),
                                         listener=old.listener)
        if self.transcript is not None:
            self.transcript.write(ResetRecord(source="/clear"))
            self.transcript.write(PersonaRecord(name=old.persona.name, system=old.persona.system))
            self.transcript.write(ParamsRecord(params=dict(old.params)))
        self.last_stats = None

    def load(self, restored: Restored, source: str) -> None:
        """Replace the conversation with a loaded one (/load); this session's transcript records the
        load and goes on being the truth."""
        restored.conversation.listener = self.conversation.listener
        self.conversation = restored.conversation
        if self.transcript is not None:
            self.transcript.write(ResetRecord(source=source))
            for event in snapshot_events(self.conversation, {}, self.transcript.id)[1:]:
                self.transcript.write(event)
        self._settle()

    def _settle(self) -> None:
        """A resumed conversation as a killed run left it, made ready to go on: a tool call that never
        got its result gets one (every request must carry a result for each call), and a message
        left unanswered is offered again at the prompt."""
        c = self.conversation
        self.answer_dangling_calls("the session ended before this call ran")
        last = c.messages[-1] if c.messages else None
        if last is not None and last.role == "user":
            self.pending_text = last.content
            c.move(last.parent)

    def answer_dangling_calls(self, why: str) -> None:
        """Every request must carry a result for each tool call on the branch: a call left without one
        (a killed run, a sample that was not picked) gets one saying it never ran — or, where it was
        recorded as started (a kill while it ran), that it ran and its result was lost."""
        c = self.conversation
        for call in c.unanswered_calls():
            said = LOST_RESULT if c.was_started(call) else f"Not run: {why}."
            c.add(Message("tool", said, tool_call_id=call.id, name=call.name))

    # -- connecting ----------------------------------------------------------------------------
    def connect(self) -> ServerInfo:
        """Find and describe the server, once (chat/connection.py), and settle the model on it.
        Raises ServerUnreachable (the session can retry)."""
        if self.connection.server is not None:
            return self.connection.server
        server = self.connection.home()
        if self.model is None:
            if not server.models:
                self.connection.server = None
                raise ServerUnreachable(f"{server.base_url} lists no models")
            self.model = server.models[0]
        elif server.models and self.model not in server.models:
            self.notify(f"model {self.model!r} is not listed by the server (it has: {listed(server.models)})")
        self._settle_lora(server)
        self._record_server()
        return server

    def _settle_lora(self, server: ServerInfo) -> None:
        """A resumed session's adapter that this server can't apply (it lacks it): asked for, it would
        be answered by the base model as if it weren't, so the session asks as the server has it, and says so."""
        if self.lora is None:
            return
        try:
            server.kind.apply_lora(self.lora, server.adapters, self.model or "")
        except UsageError as err:
            self.notify(f"adapter {self.lora}: {err}; asking as the server has it (/lora sets one)")
            self.lora = None

    @property
    def server(self) -> ServerInfo | None:
        return self.connection.server

    def _record_to(self, transcript: Transcript | None) -> None:
        self.transcript = transcript
        self.conversation.listener = transcript.write if transcript is not None else None

    def _record_server(self) -> None:
        if self.transcript is not None and self.server is not None:
            self.transcript.write(ServerRecord(**self.server_record()))

    def server_record(self) -> dict:
        server = self.server
        return {"base_url": server.base_url if server else self.connection.base_url,
                "flavor": server.flavor if server else None, "model": self.model, "api": self.api[0],
                **({"lora": self.lora.record()} if self.lora else {})}

    @property
    def api(self) -> tuple[str, str]:
        return choose_api(self.settings.api, self.server, self.model)

    @property
    def backend(self) -> Backend:
        """The backend to this session's server in its API."""
        self.connect()
        return self.connection.backend(self.api[0])

    def logprobs_missing(self) -> str | None:
        """Why this server, in this session's API, sends no token probabilities (None: it does, or may)."""
        if self.server is None:
            return None
        return self.server.kind.logprobs_missing(self.api[0], self.model, self.toolbox.enabled)

    @property
    def window(self) -> int | None:
        return self.server.window(self.model) if self.server else None

    # -- changing the session ------------------------------------------------------------------
    def set_persona(self, name: str) -> Persona:
        if name not in self.personas:
            raise UsageError(f"unknown persona {name!r}; known: {', '.join(self.personas)}")
        self.conversation.set_persona(self.personas[name])
        return self.conversation.persona

    def set_system(self, text: str) -> Persona:
        self.conversation.set_persona(custom(text))
        return self.conversation.persona

    def server_at(self, url: str, *, typed: bool = True) -> tuple[Backend, ServerInfo]:
        """The backend (in this session's API) and description of the server at ``url``
        (chat/connection.py's ``at``)."""
        self.connect()
        return self.connection.at(url, self.api[0], typed=typed)

    def use_server(self, url: str, model: str) -> None:
        """Go on against another server (a picked panel lane's), with ``model``."""
        self.connection.move_to(url)
        self.model = model
        self._record_server()

    def set_model(self, name: str) -> None:
        server = self.connect()
        if server.models and name not in server.models:
            raise UsageError(f"the server has no model {name!r}; it has: {listed(server.models)}")
        self.model = name
        self._record_server()

    def set_lora(self, text: str | None) -> Lora | None:
        """/lora: ask with an adapter at a scale (chat/adapters.py's ``choose``), or None: as the server has it."""
        server = self.connect()
        return self.use_lora(choose(text, server.adapters, server.adapters_unread) if text else None)

    def use_lora(self, lora: Lora | None) -> Lora | None:
        """Ask with ``lora`` from now on (a picked panel lane's); one the server can't apply is refused."""
        server = self.connect()
        if lora is not None:
            server.kind.apply_lora(lora, server.adapters, self.model or "")
        self.lora = lora
        self._record_server()
        return lora

    def set_param(self, name: str, value: str) -> float | int | None:
        """/set: the same rules as the flags (config.check); the old value stays when one is refused."""
        if name not in PARAMS:
            raise UsageError(f"unknown parameter {name!r}; settable: {', '.join(PARAMS)}")
        params = dict(self.conversation.params)
        if value.lower() in ("default", "none", "unset", "off"):
            params.pop(name, None)
            self.conversation.set_params(params)
            return None
        try:
            params[name] = check(name, value)
        except ValueError as e:
            raise ConfigError(f"{name} {value}: {e}") from None
        self.conversation.set_params(params)
        return params[name]

    # -- talking ---------------------------------------------------------------------------------
    def request(self, tools: list[ToolSpec] | None = None) -> Request:
        c = self.conversation
        params = dict(c.params)
        if tools and self.server is not None and not self.server.kind.logprobs_with_tools:
            params.pop("logprobs", None)  # the server would refuse the request (logprobs_missing says so)
        return with_lora(Request(model=self.model or "", system=c.system, messages=c.messages, params=params,
                                 tools=tools or []), self.lora, self.server)

    def send(self, text: str, sink: Sink, approver: Approver | None = None) -> TurnResult:
        """Send a user message; stream the reply into ``sink``, running the tool calls ``approver``
        allows, until the model answers without tools. Stopped by the action's cancel (Ctrl-C).

        A reply that never started (the server failed first, or a stop came before any token) leaves
        the conversation as it was, so the caller can offer the text again — unless the client is
        leaving, when the message stays for --resume to offer; a partial reply stays, marked interrupted.
        """
        self.connect()
        self.answer_dangling_calls("the conversation went on without it")
        message = self.conversation.add(Message("user", text))
        token = new_token()
        result = self.exchange(sink, approver, cancel=token)
        if isinstance(result.error, ToolsNotEnabled) and not result.kept and self.toolbox.enabled:
            self.toolbox.enabled = False  # the server can't take tools: go on without them, and say so
            sink.notice("tools are off for this session (the server was started without tool support); resending")
            result = self.exchange(sink, approver, cancel=token)
        if self.conversation.head == message.id and not token.leaving:
            self.conversation.withdraw(message)
            result.withdrawn = True
        return result

    def exchange(self, sink: Sink, approver: Approver | None = None, first: TurnResult | None = None,
                 cancel: CancelToken | None = None) -> TurnResult:
        """The model's side from the head on (after a user message): reply, tools, until done."""
        result = run_exchange(self.backend, self.conversation, self.request, sink, self.toolbox,
                              approver or DeclineAll(), self.settings.max_tool_rounds, first, cancel)
        if result.stats.prompt_tokens is not None:
            self.last_stats = result.stats
        return result

    def last_request(self) -> dict | None:
        """The last request as it went out (/raw): address, headers with the key blanked, JSON body."""
        backend = self.connection.made(self.api[0])
        if backend is None or backend.last_sent is None:
            return None
        path, body = backend.last_sent
        headers = {"Content-Type": "application/json",
                   **({"Authorization": "Bearer ***"} if self.connection.key_for(self.server.base_url) else {})}
        return {"method": "POST", "url": self.server.base_url + path, "headers": headers, "json": body}

    def rendered_prompt(self) -> tuple[str, str]:
        """The prompt as the server renders it from the last request sent — its system message,
        messages and tools exactly (where did the persona's system message land?) — and how it was
        found (the flavor's way: llama-server's /apply-template, vLLM's /tokenize then /detokenize, both
        rendering a chat request's messages and tools with the model's template, whichever API sent
        them). UsageError before any request, or where the server can't say."""
        server = self.connect()
        backend = self.connection.made(self.api[0])
        request = backend.last_request if backend is not None else None
        if request is None:
            raise UsageError("nothing sent yet: /prompt renders the last request")
        chat = {"messages": to_chat_messages(request.system, request.messages),
                **({"tools": chat_tools(request.tools)} if request.tools else {})}
        return server.kind.render_prompt(self.connection.post, request.model, chat)

    def context_filling(self) -> tuple[int, int] | None:
        """(tokens used, window) when the last reply took the conversation past CONTEXT_WARNING."""
        used = self.last_stats.context_used if self.last_stats else None
        window = self.window
        if used and window and used > CONTEXT_WARNING * window:
            return used, window
        return None




def with_lora(request: Request, lora: Lora | None, server: ServerInfo | None) -> Request:
    """``request`` asking for ``lora`` the way the server applies one (its flavor's: a field, or a model name)."""
    if lora is None or server is None:
        return request
    request.model, extra = server.kind.apply_lora(lora, server.adapters, request.model)
    request.extra_body = {**request.extra_body, **extra}
    request.lora = lora.record()
    return request


def _toolbox(settings: Settings) -> Toolbox:
    approve = set(settings.approve)
    if "all" in approve:
        approve = set(TOOLS)
    unknown = approve - set(TOOLS)
    if unknown:
        raise ConfigError(f"--approve: unknown tool {', '.join(sorted(unknown))}; the tools are {', '.join(TOOLS)}")
    try:
        root = os.path.expanduser(settings.workspace) if settings.workspace else os.getcwd()
    except FileNotFoundError:  # started in a directory removed since (another terminal, a checkout)
        raise ConfigError("the working directory (the tools' workspace) no longer exists: cd to one that "
                          "does") from None
    if not os.path.isdir(root):
        raise ConfigError(f"workspace {root}: not a directory")
    secrets = [settings.api_key] if settings.api_key else []  # tools run without the client's credentials
    return Toolbox(Workspace(root, secrets), ApprovalPolicy(approve), enabled=settings.tools)
