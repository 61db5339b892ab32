"""`chat probe list | run | judge | report`: scripted probes across the persona grid."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ...personas import GRID
from ..errors import ChatError

__all__ = ["main"]

SETS_DIR = Path(__file__).with_name("sets")
JUDGES = "none | hand | URL | URL+hand | karma:URL"


def _positive(text: str) -> int:
    """A count of 1 or more, for argparse (which then says which flag was wrong)."""
    if not (text.isascii() and text.isdigit() and int(text) >= 1):
        raise argparse.ArgumentTypeError(f"must be a whole number, 1 or more, not {text!r}")
    return int(text)


def _user_dir() -> Path:
    from ..config import config_dir

    return config_dir() / "probes"


def _find_set(name: str):
    from .spec import ProbeFileError, load_probe_set

    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return load_probe_set(path)
    for directory in (_user_dir(), SETS_DIR):
        for candidate in sorted(directory.glob("*.y*ml")):
            if candidate.stem == name:
                return load_probe_set(candidate)
    raise ProbeFileError(f"no probe set {name!r} (chat probe list shows them; or give a .yaml file)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="chat probe", description="Scripted probes across the persona grid.",
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="examples:\n  chat probe run sycophancy --personas all --samples 5\n"
                                       "  chat probe run refusal --judge http://judge-box:8080/v1+hand\n"
                                       "  chat probe report ~/.local/share/gridchat/probes/sycophancy-… --html r.html")
    sub = p.add_subparsers(dest="what", required=True)
    sub.add_parser("list", help="shipped probe sets and your own (config dir/probes/*.yaml)")
    run = sub.add_parser("run", help="run a set over personas × samples (resumes an interrupted --out)")
    run.add_argument("set", help="a set's name or a .yaml file")
    run.add_argument("--base-url", metavar="URL")
    run.add_argument("--model")
    run.add_argument("--api", choices=["auto", "chat", "responses"])
    run.add_argument("--personas", default="all", help="all | none | p1,p2,... (default all nine)")
    run.add_argument("--samples", type=_positive, default=1, metavar="N", help="conversations per persona and probe")
    run.add_argument("--temperature")
    run.add_argument("--max-tokens", dest="max_tokens")
    run.add_argument("--concurrency", type=_positive, default=16, metavar="N", help="requests at once (default 16)")
    run.add_argument("--judge", default="none", help=JUDGES)
    run.add_argument("--out", metavar="DIR", help="run directory (default: data dir/probes/SET-TIME)")
    judge = sub.add_parser("judge", help="judge a run's cells (hand, a judge model, or the Karma evaluator)")
    judge.add_argument("dir")
    judge.add_argument("--judge", default="hand", help=JUDGES)
    report = sub.add_parser("report", help="the persona × probe grid of a run")
    report.add_argument("dir")
    report.add_argument("--html", metavar="FILE", help="also write an HTML page with a heatmap")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    from rich.console import Console

    console = Console(stderr=False, highlight=False, markup=False)
    try:
        if args.what == "list":
            return _list(console)
        if args.what == "run":
            return _run(args, console)
        if args.what == "judge":
            run = _load_run_header(Path(args.dir))
            return _judge(Path(args.dir), run["labels"], args.judge, console)
        from .report import report

        return report(Path(args.dir), Path(args.html) if args.html else None, console)
    except ChatError as err:
        print(f"chat probe: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("chat probe: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


def _list(console) -> int:
    from rich.table import Table
    from rich.text import Text

    from ..sanitize import sanitize
    from .spec import ProbeFileError, load_probe_set

    table = Table(box=None, padding=(0, 2), header_style="dim")
    for col in ("name", "kind", "probes", "title", "file"):
        table.add_column(col)
    for directory in (SETS_DIR, _user_dir()):
        for path in sorted(directory.glob("*.y*ml")):
            try:
                s = load_probe_set(path)
                table.add_row(*map(sanitize, (s.name, s.kind, str(len(s.probes)), s.title, str(path))))
            except ProbeFileError as e:
                table.add_row(sanitize(path.stem), Text("invalid", style="red"), "", sanitize(str(e)), sanitize(str(path)))
    console.print(table)
    return 0


def _load_run_header(out: Path) -> dict:
    import json

    try:
        return json.loads((out / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ChatError(f"{out}: not a probe run directory (no run.json)") from None


def _personas(spec: str, known: dict):
    names = GRID if spec == "all" else ["none"] if spec == "none" else [n.strip() for n in spec.split(",") if n]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ChatError(f"unknown persona {', '.join(unknown)}; known: all, none, {', '.join(known)}")
    return [known[n] for n in names]


def _run(args, console) -> int:
    from ...personas import load_personas
    from ..config import config_dir, data_dir, load_settings
    from ..sanitize import sanitize
    from ..session import Session
    from .runner import Run, run_probes

    probe_set = _find_set(args.set)
    def warn(message: str) -> None:
        print(sanitize(f"chat probe: warning: {message}"), file=sys.stderr)

    settings = load_settings({"base_url": args.base_url, "model": args.model, "api": args.api,
                              "temperature": args.temperature, "max_tokens": args.max_tokens, "tools": False},
                             warn=warn)
    personas = load_personas(config_dir() / "personas", warn=warn)
    session = Session(settings, personas)
    server = session.connect()
    out = Path(args.out) if args.out else data_dir() / "probes" / f"{probe_set.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    run = Run(probe_set, _personas(args.personas, personas), max(1, args.samples), out, session.model or "",
              server.base_url, settings.sampling(), args.judge)
    from rich.progress import Progress

    console.print(f"{probe_set.name}: {len(probe_set.probes)} probes × {len(run.personas)} personas × "
                  f"{run.samples} samples on {session.model} ({server.flavor}) → {out}", markup=False)
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("cells", total=None)
        finished, skipped = run_probes(run, session.backend, args.concurrency,
                                       lambda done, total: bar.update(task, completed=done, total=total))
    unfinished = len(run.cells()) - finished - skipped
    console.print(f"{finished} cells run, {skipped} already done" + (f", {unfinished} failed (run again to retry)"
                                                                      if unfinished else ""), markup=False)
    if args.judge != "none":
        _judge(out, probe_set.labels, args.judge, console)
    from .report import report

    report(out, None, console)
    return 0 if not unfinished else 1


def _judge(out: Path, labels: dict, spec: str, console) -> int:
    """Run the judges ``spec`` names, in order: a model first, then hand (judge-then-hand)."""
    then_hand = spec == "hand" or spec.endswith("+hand")
    url = spec.removesuffix("+hand") if spec not in ("hand", "none") else ""
    if url:
        _model_judge(out, labels, url, console)
    if then_hand:
        from .hand_judging import hand_judge

        judged, disagreements = hand_judge(out, labels, console)
        console.print(f"judged {judged} by hand; {len(disagreements)} disagreements with the judge", markup=False)
        for probe, persona, sample, by, theirs, yours in disagreements:
            console.print(f"  {probe} · {persona} · {sample}: {by} said {theirs}, you said {yours}", markup=False)
    return 0


def _model_judge(out: Path, labels: dict, url: str, console) -> None:
    from ..backends import make_backend
    from ..detect import LLAMA, detect
    from .model_judging import judge_cells

    evaluator = url.startswith("karma:")
    url = url.removeprefix("karma:")
    server = detect(url)
    if not server.models:
        raise ChatError(f"the judge at {url} lists no models")
    import openai

    backend = make_backend("chat", openai.OpenAI(base_url=server.base_url, api_key="not-needed", max_retries=1))
    from rich.progress import Progress

    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("judging", total=None)
        n = judge_cells(out, labels, backend, server.models[0], evaluator=evaluator,
                        grammar=evaluator and server.flavor == LLAMA,
                        progress=lambda done, total: bar.update(task, completed=done, total=total))
    console.print(f"{'evaluated' if evaluator else 'judged'} {n} cells with {server.models[0]}", markup=False)
