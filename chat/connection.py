"""The servers a session talks to: its own — found once, at the address the user named or, with
none, at the usual local ports — and any other (a panel lane's server, a judge), each found and
described once, with a client whose API key goes only where chat/credentials.py allows. The REPL,
panels, /judge, `chat probe run` and `chat probe judge` all reach servers through one of these.
No terminal here: what is worth telling the user goes to ``notify``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from .backends import Backend, make_backend, make_client
from .cancel import stoppable
from .credentials import Credentials
from .detect import LOCAL_CANDIDATES, ServerInfo, detect, find_local, post_json, root_url
from .errors import network
from .wire import obj

__all__ = ["Connection"]


class Connection:
    def __init__(self, base_url: str | None, api_key: str | None, named: Iterable[str | None] = (),
                 notify: Callable[[str], None] = lambda text: None):
        self.base_url = base_url  # the address named (flag, environment, config); None: look locally
        self.recorded_url: str | None = None  # a resumed file's server: used when none is named, asked first
        self.notify = notify
        self.credentials = Credentials(api_key, [base_url, *named])
        self.credentials.tell = lambda text: self.notify(text)
        self.server: ServerInfo | None = None  # its own, once found
        self._servers: dict[str, ServerInfo] = {}  # address as given -> the server found there
        self._clients: dict[str, object] = {}  # base URL -> an openai.OpenAI
        self._backends: dict[tuple[str, str], Backend] = {}  # (base URL, api) -> backend

    # -- its own server --------------------------------------------------------------------------
    def home(self) -> ServerInfo:
        """The session's server, found and described once (ServerUnreachable, HTTPError … if not;
        Cancelled when the action is stopped meanwhile)."""
        if self.server is not None:
            return self.server
        url = self.base_url or self.recorded_url
        if url:
            key = self.credentials.key_for(url)
            self.server = stoppable(lambda: detect(url, key))
        else:
            self.server = stoppable(find_local)  # whatever listens on the usual ports is not named: no key goes there
            why = dict(LOCAL_CANDIDATES).get(self.server.base_url, "")
            self.notify(f"found {self.server.flavor} at {self.server.base_url} ({why})")
        return self.server

    def name_home(self, url: str) -> None:
        """This run's server is ``url`` (``chat --local``'s, started for it): named, to be found."""
        self.base_url, self.server = url, None
        self.credentials.name(url)

    def move_to(self, url: str) -> ServerInfo:
        """Go on against another server (a picked panel lane's): it becomes the home."""
        _, server = self.other(url, "chat", typed=False)
        self.base_url, self.server = server.base_url, server
        return server

    def backend(self, api: str) -> Backend:
        """A backend to the home server for ``api``."""
        return self._backend(self.home(), api, found=not self.base_url and not self.recorded_url)

    def made(self, api: str) -> Backend | None:
        """The home server's backend for ``api`` if one was made (it knows what was last sent), else None."""
        return self._backends.get((self.server.base_url, api)) if self.server is not None else None

    # -- other servers -----------------------------------------------------------------------------
    def other(self, url: str, api: str, *, typed: bool = True) -> tuple[Backend, ServerInfo]:
        """Another server (a panel's lane, a judge), found and described once. ``typed``: the user named
        it this run (it gets the key); else it was read from a file (chat/credentials.py decides)."""
        if typed:
            self.credentials.name(url)
        if url not in self._servers:
            key = self.credentials.key_for(url)
            self._servers[url] = stoppable(lambda: detect(url, key))
        server = self._servers[url]
        return self._backend(server, api), server

    def at(self, url: str, api: str, *, typed: bool = True) -> tuple[Backend, ServerInfo]:
        """The backend and description of the server at ``url``: the home one (however the address is
        spelled), or another, found once (``typed``: see ``other``)."""
        home = self.home()
        if url != home.base_url:
            backend, server = self.other(url, api, typed=typed)
            if server.base_url != home.base_url:
                return backend, server
        return self.backend(api), home

    def _backend(self, server: ServerInfo, api: str, found: bool = False) -> Backend:
        url = server.base_url
        if (url, api) not in self._backends:
            if url not in self._clients:
                self._clients[url] = make_client(url, self.credentials.key_for(url, found=found))
            self._backends[(url, api)] = make_backend(api, self._clients[url])
        return self._backends[(url, api)]

    def key_for(self, url: str) -> str | None:
        return self.credentials.key_for(url)

    # -- the server's own endpoints ---------------------------------------------------------------
    def post(self, path: str, body: dict) -> dict:
        """POST to one of the home server's own endpoints (/tokenize, /apply-template …): its JSON object."""
        server = self.home()
        key = self.credentials.key_for(server.base_url)
        with network():
            return obj(stoppable(lambda: post_json(f"{root_url(server.base_url)}{path}", body, key)), path)
