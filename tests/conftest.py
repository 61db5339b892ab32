"""Shared fixtures: an isolated environment per test and the fake backend (a real loopback server)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_backend import FakeBackend  # noqa: E402


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """No test reads the developer's config, history or server settings."""
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "PERSONA_CHAT_CONFIG", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return tmp_path


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
def term(tmp_path):
    """A factory of terminals running chat against a fake backend; all closed at the end."""
    from terminal import Term

    terms = []

    def make(fb, *args: str):
        t = Term(tmp_path).start(fb, *args)
        terms.append(t)
        return t

    yield make
    for t in terms:
        t.close()
