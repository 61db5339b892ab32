"""Adversary pass 4: attacks on the last fixes (probe-run retries across servers, the supervisor's
stop-then-signal, joiner runs, abbreviated --api-key). Each test is a defect found: failing until
fixed. Docstrings: the promise, and what happened."""

from __future__ import annotations

import threading

import pytest
from command import gridchat
from fake_backend import Reply
from gridchat.chat.probes.runner import run_probes
from test_probe_features import _bulk, probe_set  # noqa: F401 - a fixture, and the bulk servers
from test_probe_runner import make_run, persona_model


def _cuts_the_first_times(fb):
    """A replica that cuts its first attempt at the `times` probe (a restart) and answers well after."""
    seen = []
    lock = threading.Lock()

    def respond(body):
        with lock:
            first = body["messages"][-1]["content"] == "What is 6 times 7?" and not seen
            if first:
                seen.append(1)
        return Reply(text="It is 42.", cut_after=1) if first else persona_model(body)

    fb.responder = respond


@pytest.mark.parametrize("read", ["sdk", "bulk"])
def test_adv4_1_a_cell_both_replicas_failed_once_is_tried_again(fake, probe_set, tmp_path, read):
    """README/run_probes: a cell a server failed 'is tried again (three times at most)', then 'left
    for the next run' with a line naming it. Two replicas that each cut one stream (a rolling
    restart) cut the same cell: it failed once on each, both servers stayed up, and then neither
    would take it (take() skips a cell a server failed while another is up — and the other failed it
    too). The cell was dropped after two tries, with no line naming it, progress stopping at 1 of 2."""
    a, b = fake("vllm"), fake("vllm")
    _cuts_the_first_times(a)
    _cuts_the_first_times(b)
    out = tmp_path / "out"
    run, servers = make_run(a, probe_set, out, samples=1, names=("lawful_good",), extra=[b])
    notices, progress = [], []
    finished, _ = run_probes(run, servers if read == "sdk" else _bulk(servers), concurrency=1,
                             notice=notices.append, progress=lambda done, total, _t: progress.append((done, total)))
    assert finished == len(run.cells()) == 2, (finished, notices, progress)
    assert progress[-1] == (2, 2)


def test_adv4_2_a_cell_that_cannot_be_written_ends_the_run(fake, probe_set, tmp_path):
    """run_probes: a cell file that cannot be written is a FileError (one line) and the run ends — on
    the loop path it cancels the run and raises. On the SDK path the thread whose cell could not be
    written left the queue's count of cells out at 1 for good, so the other thread of the server,
    its own cell done, waited (polling) for that cell to come back forever: the run never ended."""
    from gridchat.chat.files import FileError

    fb = fake("vllm")
    out = tmp_path / "out"
    run, servers = make_run(fb, probe_set, out, samples=1, names=("lawful_good",))
    blocked = run.cell_path(next(c for c in run.cells() if c.probe.id == "times"))

    def respond(body):
        if body["messages"][-1]["content"] == "What is 6 times 7?":
            blocked.mkdir(parents=True, exist_ok=True)  # its file cannot be written when the cell ends
        return persona_model(body)

    fb.responder = respond
    raised = []

    def go():
        try:
            run_probes(run, servers, concurrency=2)
        except FileError as e:
            raised.append(e)

    runner = threading.Thread(target=go, daemon=True)
    runner.start()
    runner.join(20)
    assert not runner.is_alive(), "the run never ended"
    assert raised


@pytest.mark.parametrize("args", [("probe", "run", "arith", "--api-k", "sk-typed-4f9a8b7c", "--bogus"),
                                  ("probe", "run", "arith", "--api-ke", "sk-typed-4f9a8b7c")])
def test_adv4_3_an_abbreviated_api_key_flag_before_its_value_is_held(args):
    """redact.hold_given: 'a key given to an abbreviated or ambiguous --api-key is held before parsing
    too'. Only `--api-k=KEY` is: `--api-k KEY` (a space, as `--api-key KEY` is held) was not, and
    `chat probe run` (no --api-key of its own) echoed it whole: 'unrecognized arguments: --api-k
    sk-typed-4f9a8b7c --bogus'."""
    r = gridchat(*args)
    assert r.returncode == 2
    assert "4f9a8b7c" not in r.stderr + r.stdout, r.stderr
