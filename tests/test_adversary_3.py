"""Adversary pass 3: attacks on the day's fixes (probe-run retries, token probabilities, adapters'
scales and caps, the report page's sanitizing, addresses and keys). Each test is a defect found:
failing until fixed. Docstrings: the promise, and what happened."""

from __future__ import annotations

import pytest
from fake_backend import Reply
from gridchat.chat.probes.runner import cell_events, run_probes
from gridchat.chat.probes.spec import load_probe_set
from test_probe_runner import SET, make_run, persona_model


@pytest.fixture
def probe_set(tmp_path):
    path = tmp_path / "arithmetic.yaml"
    path.write_text(SET)
    return load_probe_set(path)


def _bulk(servers):
    from gridchat.chat.backends.bulk import bulk_backend
    from gridchat.chat.probes.runner import Server

    return [Server(s.url, bulk_backend("chat", s.url, "x")) for s in servers]


@pytest.mark.parametrize("read", ["sdk", "bulk"])
def test_adv3_1_a_retried_cell_goes_to_the_healthy_server(fake, probe_set, tmp_path, read):
    """README: a cell a server failed 'is tried again, on any server, three times at most'. With a
    server that cuts every connection (slowly) and a healthy one, the healthy one finished its own
    cell, found the queue empty and stopped taking cells; the cut cell was tried three times on the
    broken server alone (which, failing only retries, was never given up) and left 'for the next
    run' as if the cell were to blame, while the healthy server sat idle: 1 of 2 cells finished."""
    bad, good = fake("vllm"), fake("vllm")
    good.responder = persona_model
    bad.responder = lambda body: Reply(text="It is 42.", delay=0.3, cut_after=1)  # drops the line, slowly
    out = tmp_path / "out"
    run, servers = make_run(bad, probe_set, out, samples=1, names=("lawful_good",), extra=[good])
    notices = []
    finished, _ = run_probes(run, servers if read == "sdk" else _bulk(servers), concurrency=1,
                             notice=notices.append)
    assert not [n for n in notices if "left for the next run" in n], notices
    assert finished == len(run.cells()) == 2
    for path in sorted((out / "cells").glob("*/*.jsonl")):
        assert next(e for e in cell_events(path) if e["event"] == "cell")["server"] == good.base_url
