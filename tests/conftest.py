"""Shared fixtures: an isolated environment per test and the fake backend (a real loopback server)."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path

import pytest

# The tests use the installed gridchat only: `python -m pytest` puts the checkout's root on sys.path,
# where chat/, tools/ … would import a second, unmapped copy under other names.
REPO = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if p not in ("", ".") and Path(p).resolve() != REPO]
sys.path.insert(0, str(Path(__file__).parent))

from fake_backend import FakeBackend  # noqa: E402


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """No test reads the developer's config, history or server settings."""
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "GRIDCHAT_CONFIG", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return tmp_path


# A suite started in the background (`pytest … &` in a script) inherits Ctrl-C ignored, and so would
# every process it starts: the Ctrl-C tests need it as a terminal gives it.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _signals() -> tuple:
    """What decides where Ctrl-C goes in this process: the handlers, and the signals blocked (a
    blocked SIGINT is inherited by every child the process starts)."""
    handlers = tuple(signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP))
    kernel = ""  # what C code set behind Python's back (the process's ignored signals), as Linux shows it
    if os.path.exists("/proc/self/status"):
        kernel = next((line for line in Path("/proc/self/status").read_text().splitlines()
                       if line.startswith("SigIgn:")), "")
    return handlers, frozenset(signal.pthread_sigmask(signal.SIG_BLOCK, [])), kernel


@pytest.fixture(autouse=True)
def signals_left_as_found(request):
    """A test that leaves the process's signals changed fails here, naming itself: the tests after it
    on the same worker (Ctrl-C tests, servers stopped with SIGINT) would fail instead, far from it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = _signals()
    yield
    after = _signals()
    if after != before:
        for sig, handler in zip((signal.SIGINT, signal.SIGTERM, signal.SIGHUP), before[0]):
            signal.signal(sig, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, before[1])
        pytest.fail(f"{request.node.nodeid} left the signals changed: {before} -> {after}")


@pytest.fixture
def fake():
    """A factory of started fake backends, all stopped at the end of the test."""
    started = []

    def make(flavor: str = "vllm", **kwargs) -> FakeBackend:
        backend = FakeBackend(flavor, **kwargs).start()
        started.append(backend)
        return backend

    yield make
    for backend in started:
        backend.stop()


@pytest.fixture
def short_path():
    """A directory whose absolute path is short, for a path typed at a prompt in a 100-column terminal,
    where a worker's tmp_path (-n) is long enough to wrap."""
    with tempfile.TemporaryDirectory(prefix="gc-") as directory:
        yield Path(directory)


NO_TMUX = shutil.which("tmux") is None
SKIP_TERMINAL = os.environ.get("GRIDCHAT_SKIP_TERMINAL") == "1"
# The tests that did not run for want of tmux or vLLM, counted from their reports (which a worker
# sends to the main process under -n) for the run's summary
_not_run = {"terminal": set(), "vllm": set()}


def _did_not_run(request, why: str) -> None:
    request.node.user_properties.append(("did not run", why))


@pytest.fixture
def term(tmp_path, request):
    """A factory of terminals running chat against a fake backend; all closed at the end.

    The end-to-end tests need tmux. Without it they fail, saying so, unless GRIDCHAT_SKIP_TERMINAL=1
    asks to skip them knowingly; the run's summary then says how many did not run."""
    if NO_TMUX:
        if not SKIP_TERMINAL:
            pytest.fail("tmux is not installed: the real-terminal tests need it (apt install tmux); "
                        "GRIDCHAT_SKIP_TERMINAL=1 skips them knowingly", pytrace=False)
        _did_not_run(request, "terminal")
        pytest.skip("tmux is not installed (GRIDCHAT_SKIP_TERMINAL=1)")
    from terminal import Term

    terms = []

    def make(fb, *args: str):
        t = Term(tmp_path).start(fb, *args)
        terms.append(t)
        return t

    yield make
    for t in terms:
        t.close()




@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory):
    """The real vLLM (CPU build, SmolLM2-135M), started once per test run through `serve vllm`, with a
    small random LoRA adapter made here (tests/lora_adapter.py) served as the model "rand"."""
    from gridchat.serve.local import free_port
    from lora_adapter import make_adapter
    from vllm_env import Server

    folder = tmp_path_factory.mktemp("vllm")
    _, peft = make_adapter(folder / "adapters")
    server = Server(folder / "serve.log", free_port(), lora=[f"rand={peft}"])
    server.adapter = "rand"
    server.chat_line = server.wait_ready()
    yield server
    code = server.stop()
    assert code == 0, f"serve vllm did not stop cleanly on Ctrl-C ({code}):\n{server.output()[-3000:]}"


@pytest.fixture
def vllm(request):
    """The real vLLM server, for the tests marked `vllm`. Where its environment is not built they
    skip, and the run's summary says how many did not run; GRIDCHAT_REQUIRE_VLLM=1 (CI) makes
    that a failure."""
    from vllm_env import missing

    why = missing()
    if why:
        if os.environ.get("GRIDCHAT_REQUIRE_VLLM") == "1":
            pytest.fail(f"the real-vLLM tests must run here (GRIDCHAT_REQUIRE_VLLM=1): {why}", pytrace=False)
        _did_not_run(request, "vllm")
        pytest.skip(why)
    return request.getfixturevalue("vllm_server")


# Test files whose tests share one server: under -n they run on one worker, so one server is started
SHARED_SERVER = ("tests/test_vllm.py",  # the real vLLM (vllm_server: 3.5 GB, a minute to start)
                 "tests/test_llama_server.py")  # its module's llama-server


def pytest_xdist_make_scheduler(config, log):
    """Under -n (pytest-xdist): each test goes to the next free worker, but the tests of a file in
    SHARED_SERVER go to one worker together, first (the largest units go first), their server
    starting while the other workers run the rest. (xdist's own --dist loadgroup no longer groups:
    pytest 9.2's node ids can't be renamed.)"""
    from xdist.scheduler import LoadScopeScheduling

    class SharedServers(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return path if path in SHARED_SERVER else nodeid

    return SharedServers(config, log)


def pytest_runtest_logreport(report):
    why = dict(report.user_properties).get("did not run")
    if why and report.skipped:
        _not_run[why].add(report.nodeid)


def pytest_terminal_summary(terminalreporter):
    if _not_run["terminal"]:
        terminalreporter.write_sep("!", f"{len(_not_run['terminal'])} REAL-TERMINAL TESTS DID NOT RUN: tmux is not installed",
                                   red=True, bold=True)
    if _not_run["vllm"]:
        terminalreporter.write_sep("!", f"{len(_not_run['vllm'])} REAL-VLLM TESTS DID NOT RUN: no vLLM environment "
                                   "(python tests/vllm_env.py builds it, 3-5 minutes; GRIDCHAT_REQUIRE_VLLM=1 "
                                   "requires them)", red=True, bold=True)
