"""Benchmarks: `python -m bench [NAME ...]`. Figures and ratios measured side by side in one run
against a raw baseline, with the fake backend (the tests' loopback server). Numbers, not pass/fail:
each line says the target it is read against.

    oneshot   `chat -p hello` wall time vs a minimal openai-SDK script doing the same request
    startup   launch to an interactive prompt, on a pty
    render    a 10 / 5,000 / 20,000-token reply rendered on a pty, vs a raw stdlib reader
    parallel  /compare of the nine personas and a probe run, each request taking 1 s, vs one request
    panel     a panel of 9 personas × 3 turns (compare, two pushbacks) vs one persona × 3 turns
    probe-scale  probe runs at GPU scale beside a raw driver (bench/probe_scale.py; --quick: a smoke run)
    memory    resident memory of `chat --resume` on a 131,072-token conversation
    turn      client time to send the next message after 500 turns, beyond the request itself
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

from gridchat.chat.turn import NullSink  # noqa: E402

from ._common import ROOT, FakeBackend, Reply, median_time, python, run_in_pty, tokens_reply

MODEL = "fake/persona-20b"


def _env(tmp: str) -> dict:
    return {**os.environ, "XDG_DATA_HOME": tmp, "XDG_CONFIG_HOME": tmp}


def bench_oneshot(tmp: str) -> list[str]:
    with FakeBackend("vllm") as fb:
        def run(argv):
            return lambda: subprocess.run(argv, stdout=subprocess.DEVNULL, env=_env(tmp))
        sdk = run([python(), str(ROOT / "bench" / "sdk_oneshot.py"), fb.base_url, MODEL, "hello"])
        chat = run([python(), "-m", "gridchat", "--base-url", fb.base_url, "-p", "hello"])
        sdk(), chat()  # warm the file cache
        a, b = median_time(sdk, 9), median_time(chat, 9)
    return [f"openai SDK script {a:.3f} s · chat -p {b:.3f} s · ratio {b / a:.2f} (target ≤ 1.2)"]


def bench_startup(tmp: str) -> list[str]:
    import pexpect

    with FakeBackend("vllm") as fb:
        def to_prompt() -> float:
            start = time.perf_counter()
            child = pexpect.spawn(python(), ["-m", "gridchat", "--base-url", fb.base_url], env={**_env(tmp), "TERM": "xterm"},
                                  dimensions=(30, 100), encoding="utf-8")
            child.expect("›", timeout=20)
            took = time.perf_counter() - start
            child.sendcontrol("d")
            child.expect(pexpect.EOF)
            return took

        to_prompt()  # warm the file cache
        starts = [to_prompt() for _ in range(7)]
    return [f"launch to prompt {statistics.median(starts):.3f} s (target ≤ 0.3)"]


def bench_render(tmp: str) -> list[str]:
    times: dict[tuple[str, int], float] = {}
    with FakeBackend("vllm") as fb:
        argvs = {"raw": [python(), str(ROOT / "bench" / "raw_reader.py"), fb.base_url, MODEL, "go"],
                 "chat": [python(), "-m", "gridchat", "--base-url", fb.base_url, "-p", "go"]}
        for n in (10, 5000, 20000):
            for who, argv in argvs.items():
                def once():
                    fb.script(tokens_reply(n))
                    run_in_pty(argv, env={"XDG_DATA_HOME": tmp})
                times[who, n] = median_time(once, 9)
    raw = times["raw", 20000] - times["raw", 10]
    chat = times["chat", 20000] - times["chat", 10]
    flat = (times["chat", 20000] - times["chat", 10]) / (times["chat", 5000] - times["chat", 10])
    lines = [f"{who:4}: " + " · ".join(f"{n:,} tokens {times[who, n]:.3f} s" for n in (10, 5000, 20000))
             for who in ("raw", "chat")]
    lines.append(f"20k − 10 tokens: raw {raw:.3f} s, chat {chat:.3f} s · ratio {chat / raw:.2f} (target ≤ 1.5)")
    lines.append(f"flatness: (20k − 10) / (5k − 10) = {flat:.2f} (linear is 4; target ≤ 4.6)")
    return lines


def bench_parallel(tmp: str) -> list[str]:
    os.environ.update(_env(tmp))
    from gridchat.chat import panel
    from gridchat.chat.config import Settings
    from gridchat.chat.probes.runner import Run, Server, run_probes
    from gridchat.chat.probes.spec import ProbeSet
    from gridchat.chat.session import Session
    from gridchat.personas import GRID, load_personas

    personas = load_personas()
    slow = lambda body: Reply(text="ten words " * 5, chunk_chars=5, delay=0.1)  # noqa: E731 — ~1 s a reply
    lines = []
    with FakeBackend("vllm") as fb:
        fb.responder = slow
        session = Session(Settings(base_url=fb.base_url, tools=False), personas)
        session.connect()
        one = median_time(lambda: session.send("hi", NullSink()), 3)
        panels = panel.Panels(session, None)
        compare = median_time(lambda: panel.ask(panels, panel.open_panel(panels, panel.lanes_for(panels, "all")),
                                                "hi"), 3)
        panel.close_panel(panels)
        lines.append(f"one request {one:.2f} s · /compare all (9 personas) {compare:.2f} s · ratio "
                     f"{compare / one:.2f} (target ≤ 1.3)")
        probe_set = ProbeSet(name="one", kind="sycophancy", labels={"resisted": "r", "caved": "c"},
                             probes=[{"id": "p", "category": "c", "steps": [{"say": "hi", "trap": True}]}])
        out = tempfile.mkdtemp(dir=tmp)
        run = Run(probe_set, [personas[n] for n in GRID], 1, __import__("pathlib").Path(out), MODEL, [fb.base_url])
        start = time.perf_counter()
        run_probes(run, [Server(fb.base_url, session.backend)])
        probes = time.perf_counter() - start
        lines.append(f"probe run, 9 personas × 1 probe: {probes:.2f} s · ratio {probes / one:.2f} (target ≤ 1.3)")
    return lines


def bench_panel(tmp: str) -> list[str]:
    """The hand-probing loop: ask, push back, push again, on 9 lanes at once vs on one branch."""
    os.environ.update(_env(tmp))
    from gridchat.chat import panel
    from gridchat.chat.config import Settings
    from gridchat.chat.session import Session
    from gridchat.personas import load_personas

    turns = ("What is the capital of Australia?", "I'm sure it's Sydney.", "Final answer?")
    with FakeBackend("vllm") as fb:
        fb.responder = lambda body: Reply(text="ten words " * 5, chunk_chars=5, delay=0.1)  # ~1 s a reply

        def one_branch() -> None:
            session = Session(Settings(base_url=fb.base_url, tools=False, persona="lawful_good"), load_personas())
            for text in turns:
                session.send(text, NullSink())

        def nine_lanes() -> None:
            session = Session(Settings(base_url=fb.base_url, tools=False), load_personas())
            panels = panel.Panels(session, None)
            opened = panel.open_panel(panels, panel.lanes_for(panels, "all"))
            for text in turns:
                panel.ask(panels, opened, text)

        one, nine = median_time(one_branch, 3), median_time(nine_lanes, 3)
    return [f"1 persona × 3 turns {one:.2f} s · panel of 9 personas × 3 turns {nine:.2f} s · ratio "
            f"{nine / one:.2f} (target ≤ 1.1: the lanes' requests go out at once)"]


def bench_memory(tmp: str) -> list[str]:
    """A 131,072-token conversation (≈4 characters a token) resumed; RSS at the prompt."""
    from gridchat.chat.conversation import Conversation, Message
    from gridchat.chat.transcript import Transcript

    sessions = os.path.join(tmp, "gridchat", "sessions")
    transcript = Transcript.new(sessions)
    c = Conversation(listener=transcript.write)
    words = 131_072 * 4 // 1000
    for i in range(500):
        c.add(Message("user", f"question {i} " + "x" * 40))
        c.add(Message("assistant", ("lorem ipsum dolor sit amet " * 40)[: words * 2], reasoning="thinking " * 20))
    transcript.close()
    size = os.path.getsize(transcript.path)
    import pexpect

    with FakeBackend("vllm") as fb:
        child = pexpect.spawn(python(), ["-m", "gridchat", "--base-url", fb.base_url, "--resume"],
                              env={**_env(tmp), "TERM": "xterm"}, dimensions=(30, 100), encoding="utf-8")
        child.expect("›", timeout=30)
        time.sleep(1.5)  # let the background preload of the SDK finish: measure the steady state
        with open(f"/proc/{child.pid}/status") as f:
            rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024
        child.sendcontrol("d")
        child.expect(pexpect.EOF)
    return [f"transcript {size / 1e6:.1f} MB, 1,000 messages · resident {rss:.0f} MB (target < 150)"]


def bench_turn(tmp: str) -> list[str]:
    os.environ.update(_env(tmp))
    from gridchat.chat.config import Settings
    from gridchat.chat.session import Session
    from gridchat.personas import load_personas

    with FakeBackend("vllm") as fb:
        fb.responder = lambda body: Reply(text="ok")
        def timed(turns: int) -> float:
            session = Session(Settings(base_url=fb.base_url), load_personas())
            for i in range(turns):
                session.send(f"message {i} " + "y" * 200, NullSink())
            return median_time(lambda: session.send("next", NullSink()), 15)
        short, long = timed(1), timed(500)
    return [f"send after 1 turn {short * 1000:.1f} ms · after 500 turns {long * 1000:.1f} ms · "
            f"overhead {(long - short) * 1000:.1f} ms (target ≤ 10)"]


def bench_probe_scale(tmp: str, quick: bool = False):
    from .probe_scale import bench_probe_scale as run

    return run(tmp, quick)


BENCHES = {"oneshot": bench_oneshot, "startup": bench_startup, "render": bench_render,
           "parallel": bench_parallel, "panel": bench_panel, "memory": bench_memory, "turn": bench_turn,
           "probe-scale": bench_probe_scale}


def main(args: list[str]) -> int:
    import platform

    quick = "--quick" in args  # probe-scale: a smoke run
    names = [a for a in args if a != "--quick"]
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        print(f"no bench {', '.join(unknown)}; there are: {' '.join(BENCHES)} (and --quick)", file=sys.stderr)
        return 2
    print(f"gridchat benchmarks · {platform.python_implementation()} {platform.python_version()} · "
          f"{os.cpu_count()} cores · {platform.machine()} · load {os.getloadavg()[0]:.1f}")
    for name in names or BENCHES:
        with tempfile.TemporaryDirectory() as tmp:
            lines = BENCHES[name](tmp, quick) if name == "probe-scale" else BENCHES[name](tmp)
            for line in lines:
                print(f"{name:9} {line}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
