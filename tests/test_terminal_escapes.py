"""Issue 16, defect 2: escape sequences from a server, a model id, a judge or a probe set reached the
terminal through print sites added after the guard (finish reasons in /retry N and panels, model
ids in probe runs and judges, server errors in probe runs, label names in the report's legend and in
hand judging). Everything passes chat/output.py now: each is shown, never obeyed."""

from __future__ import annotations

import pytest
from command import gridchat
from fake_backend import Reply, ToolCall
from test_probe_runner import SET, make_run, persona_model

TITLE = "\x1b]0;PWNED\x07"  # retitles the window
CLIPBOARD = "\x1b]52;c;ZWNobyBwd25lZA==\x07"  # writes the clipboard
CLEAR = "\x1b[2J"  # clears the screen
REGION = "\x1b[5;10r"  # a scroll region: the screen goes blank below it
HOSTILE = TITLE + CLIPBOARD + CLEAR + REGION
OBEYED = [TITLE.encode(), b"\x1b]52;", CLEAR.encode(), REGION.encode()]


def assert_not_obeyed(raw: bytes | str) -> None:
    raw = raw.encode() if isinstance(raw, str) else raw
    for sequence in OBEYED:
        assert sequence not in raw, f"{sequence!r} reached the terminal"


def chat(*args):
    return gridchat(*args, text=False)


@pytest.mark.parametrize("command", ["/retry 2", "/compare lawful_good,chaotic_evil again"])
def test_finish_reasons_are_shown_not_obeyed(fake, term, command):
    fb = fake("vllm")
    fb.responder = lambda body: Reply(text="an answer", finish_reason=HOSTILE + "stop")
    t = term(fb, "--persona", "lawful_good")
    t.wait_prompt("lawful_good")
    t.line("hello")
    t.wait_for("an answer")
    t.line(command)
    t.wait_for("␛]0;PWNED")
    assert_not_obeyed(t.raw_output())


def test_a_scroll_region_in_a_finish_reason_leaves_the_approval_visible(fake, term, tmp_path):
    fb = fake("vllm")
    fb.script(*[Reply(text="sure", finish_reason=REGION + "stop") for _ in range(3)],
              Reply(tool_calls=[ToolCall("bash", '{"command": "echo hi"}')]))
    t = term(fb, "--persona", "lawful_good", "--workspace", str(tmp_path))
    t.wait_prompt("lawful_good")
    t.line("hello")
    t.wait_for("sure")
    t.line("/retry 2")
    t.wait_for("Continue with which? [1-2]")
    t.line("1")
    t.wait_prompt("lawful_good")
    t.line("run something")
    t.wait_for("Run bash?")
    assert_not_obeyed(t.raw_output())


def test_probe_runs_show_hostile_model_ids_and_server_errors_as_text(fake, tmp_path):
    fb = fake("vllm", models=[f"evil{HOSTILE}model"])
    fb.responder = lambda body: Reply(status=502, raw_body=f"<title>down {HOSTILE}</title>")
    (tmp_path / "set.yaml").write_text(SET)
    r = chat("probe", "run", str(tmp_path / "set.yaml"), "--base-url", fb.base_url, "--personas", "lawful_good",
             "--out", str(tmp_path / "out"))
    assert b"\x1b" not in r.stdout + r.stderr, (r.stdout + r.stderr)[:400]
    assert "␛]0;PWNED" in (r.stdout + r.stderr).decode()


def test_judges_with_hostile_model_ids_are_shown_as_text(fake, tmp_path):
    fb = fake("vllm")
    fb.responder = persona_model
    out = tmp_path / "out"
    from gridchat.chat.probes.runner import run_probes
    from gridchat.chat.probes.spec import load_probe_set

    (tmp_path / "set.yaml").write_text(SET)
    run, servers = make_run(fb, load_probe_set(tmp_path / "set.yaml"), out, samples=1, names=("lawful_good",))
    run_probes(run, servers)
    judge = fake("vllm", models=[f"judge{HOSTILE}"])
    judge.responder = lambda body: Reply(text="resisted")
    r = chat("probe", "judge", str(out), "--judge", judge.base_url)
    assert r.returncode == 0, r.stderr
    assert b"\x1b" not in r.stdout + r.stderr and "␛]0;PWNED" in r.stdout.decode()


HOSTILE_SET = SET.replace("  resisted: keeps 42", '  "resisted\\e]0;PWNED\\a": keeps 42').replace(
    "      resisted: [", '      "resisted\\e]0;PWNED\\a": [')


def test_label_names_from_a_probe_set_are_shown_as_text(fake, tmp_path, term):
    from gridchat.chat.probes.runner import run_probes
    from gridchat.chat.probes.spec import load_probe_set

    fb = fake("vllm")
    fb.responder = persona_model
    (tmp_path / "set.yaml").write_text(HOSTILE_SET)
    probe_set = load_probe_set(tmp_path / "set.yaml")
    assert any("\x1b" in label for label in probe_set.labels)
    out = tmp_path / "out"
    run, servers = make_run(fb, probe_set, out, samples=1, names=("lawful_good", "chaotic_evil"))
    run_probes(run, servers)
    r = chat("probe", "report", str(out))
    assert r.returncode == 0, r.stderr
    assert b"\x1b" not in r.stdout + r.stderr
    t = term(None, "probe", "judge", str(out), "--judge", "hand")
    t.wait_for("your verdict?")
    t.keys("?")
    t.wait_for("keeps 42")
    assert_not_obeyed(t.raw_output())
    assert "␛]0;PWNED" in t.screen()


def test_judge_command_shows_a_hostile_evaluator_id_as_text(fake, term):
    fb = fake("vllm")
    evaluator = fake("llamacpp", models=[f"karma{HOSTILE}"])
    evaluator.responder = lambda body: Reply(text="EVALUATION\nOverall: 7/10 - fine")
    t = term(fb, "--persona", "lawful_good")
    t.wait_prompt("lawful_good")
    t.line("hello")
    t.wait_for("Echo: hello")
    t.line(f"/judge {evaluator.base_url}")
    t.wait_for("Overall")
    assert_not_obeyed(t.raw_output())
