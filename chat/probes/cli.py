"""`chat probe list | run | judge | report`: scripted probes across the persona grid."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ...personas import GRID
from ..errors import ChatError
from ..limits import listed, read_file

__all__ = ["SETS_DIR", "main", "user_sets_dir"]

SETS_DIR = Path(__file__).with_name("sets")
JUDGES = "none | hand | URL | URL+hand | karma:URL"
MAX_CELLS = 100_000  # a run bigger than this is a typo, not an experiment


def _positive(text: str) -> int:
    """A count of 1 or more, for argparse (which then says which flag was wrong)."""
    if not (text.isascii() and text.isdigit() and int(text) >= 1):
        raise argparse.ArgumentTypeError(f"must be a whole number, 1 or more, not {text!r}")
    return int(text)


def user_sets_dir() -> Path:
    from ..config import config_dir

    return config_dir() / "probes"


def _find_set(name: str):
    from .spec import ProbeFileError, load_probe_set

    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return load_probe_set(path)
    for directory in (user_sets_dir(), SETS_DIR):
        for candidate in sorted(directory.glob("*.y*ml")):
            if candidate.stem == name:
                return load_probe_set(candidate)
    raise ProbeFileError(f"no probe set {name!r} (chat probe list shows them; or give a .yaml file)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="chat probe", description="Scripted probes across the persona grid.",
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="examples:\n  chat probe run sycophancy --personas all --samples 5 --seed 1\n"
                                       "  chat probe run refusal --base-url http://gpu1:8000/v1 --base-url http://gpu2:8000/v1\n"
                                       "  chat probe judge RUN_DIR --judge hand        blind, shuffled, resumable\n"
                                       "  chat probe report RUN_DIR --html r.html --reference none\n"
                                       "  chat probe export RUN_DIR --csv cells.csv\n"
                                       "  chat probe import xstest.csv --name xstest")
    sub = p.add_subparsers(dest="what", required=True)
    sub.add_parser("list", help="shipped probe sets and your own (config dir/probes/*.yaml)")
    run = sub.add_parser("run", help="run a set over personas × samples (resumes an interrupted --out)")
    run.add_argument("set", help="a set's name or a .yaml file")
    run.add_argument("--base-url", metavar="URL", action="append",
                     help="the server; repeat it for replicas of one model (cells are spread over them)")
    run.add_argument("--model")
    run.add_argument("--api", choices=["auto", "chat", "responses"])
    run.add_argument("--personas", default="all", help="all | none | p1,p2,... (default all nine)")
    run.add_argument("--samples", type=_positive, default=1, metavar="N", help="conversations per persona and probe")
    run.add_argument("--seed", metavar="N", help="the run's seed: each cell's is derived from it and the cell (recorded)")
    for flag in ("temperature", "top-p", "max-tokens", "top-k", "min-p", "presence-penalty", "frequency-penalty"):
        run.add_argument(f"--{flag}", dest=flag.replace("-", "_"), metavar="X")
    run.add_argument("--concurrency", type=_positive, default=16, metavar="N",
                     help="requests at once per server (default 16)")
    run.add_argument("--judge", default="none", help=JUDGES)
    run.add_argument("--out", metavar="DIR", help="run directory (default: data dir/probes/SET-TIME)")
    judge = sub.add_parser("judge", help="judge a run's cells (blind by hand, a judge model, or the Karma evaluator)")
    judge.add_argument("dir")
    judge.add_argument("--judge", default="hand", help=JUDGES)
    judge.add_argument("--unblind", action="store_true", help="hand judging: show persona, model and sample at once")
    report = sub.add_parser("report", help="the numbers of a run: distributions, intervals, persona differences")
    report.add_argument("dir")
    report.add_argument("--html", metavar="FILE", help="also write an HTML page (the grid, every cell's conversation)")
    report.add_argument("--reference", metavar="NAME", help="the persona the others are compared with (default: none)")
    export = sub.add_parser("export", help="one row per cell and step, for pandas and the like")
    export.add_argument("dir")
    form = export.add_mutually_exclusive_group(required=True)
    form.add_argument("--csv", metavar="FILE")
    form.add_argument("--jsonl", metavar="FILE")
    imp = sub.add_parser("import", help="turn an XSTest-style CSV or a SycophancyEval JSONL into a probe set")
    imp.add_argument("file", help="a .csv (prompt, type, label: safe|unsafe) or .jsonl (are-you-sure shape)")
    imp.add_argument("--name", help="the new set's name (default: the file's)")
    imp.add_argument("--out", metavar="FILE", help="where to write it (default: config dir/probes/NAME.yaml)")
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
            return _judge(Path(args.dir), run["labels"], args.judge, console, unblind=args.unblind)
        if args.what == "export":
            return _export(args, console)
        if args.what == "import":
            return _import(args, console)
        return _report(Path(args.dir), Path(args.html) if args.html else None, console, args.reference)
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
    for directory in (SETS_DIR, user_sets_dir()):
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
        return json.loads(read_file(out / "run.json"))
    except (OSError, ValueError):
        raise ChatError(f"{out}: not a probe run directory (no run.json)") from None


def _personas(spec: str, known: dict):
    names = GRID if spec == "all" else ["none"] if spec == "none" else [n.strip() for n in spec.split(",") if n]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ChatError(f"unknown persona {', '.join(unknown)}; known: all, none, {', '.join(known)}")
    return [known[n] for n in names]


def _run(args, console) -> int:
    import random

    from ...personas import load_personas
    from ..config import SAMPLING, check, config_dir, data_dir, load_settings
    from ..detect import detect
    from ..sanitize import sanitize
    from ..session import Session
    from .runner import Run, Server, run_probes

    probe_set = _find_set(args.set)

    def warn(message: str) -> None:
        print(sanitize(f"chat probe: warning: {message}"), file=sys.stderr)

    urls = args.base_url or [None]
    flags = {"base_url": urls[0], "model": args.model, "api": args.api, "tools": False}
    flags.update({k: getattr(args, k) for k in SAMPLING if k != "seed" and getattr(args, k, None) is not None})
    settings = load_settings(flags, warn=warn)
    personas = load_personas(config_dir() / "personas", warn=warn)
    session = Session(settings, personas)
    first = session.connect()
    out = Path(args.out) if args.out else data_dir() / "probes" / f"{probe_set.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    chosen = _personas(args.personas, personas)
    cells = len(probe_set.probes) * len(chosen) * args.samples
    if cells > MAX_CELLS:
        raise ChatError(f"{cells:,} cells is more than a run takes ({MAX_CELLS:,}): fewer --samples or personas")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ChatError(f"{out}: cannot be the run directory: {e.strerror or e}") from None
    previous = _previous_seed(out)
    try:
        seed = check("seed", args.seed) if args.seed is not None else previous
    except ValueError as e:
        raise ChatError(f"--seed {args.seed}: {e}") from None
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)  # recorded: the run can be repeated exactly
    servers = [Server(first.base_url, session.backend, first.flavor)]
    for url in urls[1:]:  # replicas: each answers for the same model
        info = detect(url, settings.api_key)
        if info.models and session.model not in info.models:
            raise ChatError(f"{url} does not serve {session.model} (it has: {listed(info.models)})")
        replica = Session(settings.model_copy(update={"base_url": url}), personas)
        replica.model = session.model
        replica.connect()
        servers.append(Server(info.base_url, replica.backend, info.flavor))
    params = {k: v for k, v in settings.sampling().items() if k != "seed"}
    run = Run(probe_set, chosen, args.samples, out, session.model or "",
              [s.url for s in servers], params, args.judge, seed, session.api[0])
    from rich.progress import Progress

    console.print(f"{probe_set.name}: {len(probe_set.probes)} probes × {len(run.personas)} personas × "
                  f"{run.samples} samples on {session.model} ({len(servers)} server{'s' if len(servers) > 1 else ''}, "
                  f"seed {seed}) → {out}", markup=False)
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("cells", total=None)
        finished, skipped = run_probes(run, servers, args.concurrency,
                                       lambda done, total: bar.update(task, completed=done, total=total),
                                       notice=lambda text: console.print(f"chat probe: {text}", markup=False))
    unfinished = len(run.cells()) - finished - skipped
    console.print(f"{finished} cells run, {skipped} already done" + (f", {unfinished} unfinished (run again to retry)"
                                                                      if unfinished else ""), markup=False)
    if args.judge != "none":
        _judge(out, probe_set.labels, args.judge, console)
    _report(out, None, console, None)
    return 0 if not unfinished else 1


def _previous_seed(out: Path) -> int | None:
    """A resumed run keeps its seed."""
    try:
        seed = _load_run_header(out).get("seed")
    except ChatError:
        return None
    return seed if isinstance(seed, int) else None


def _report(out: Path, html: Path | None, console, reference: str | None) -> int:
    from .report import load_cells, load_run, summarise
    from .report_text import render

    try:
        run = load_run(out)
    except (OSError, ValueError) as e:
        reason = "no run.json" if isinstance(e, FileNotFoundError) else f"run.json unreadable: {e}"
        raise ChatError(f"{out} is not a probe run directory ({reason})") from None
    report = summarise(run, load_cells(out), reference)
    if reference is not None and report.reference is None:
        raise ChatError(f"--reference {reference}: not a persona of this run ({', '.join(report.personas)})")
    render(console, report, out)
    if html is not None:
        from ..files import write_whole
        from .report_html import page

        write_whole(html, page(report, str(out)).encode("utf-8"))
        console.print(f"wrote {html}", markup=False, style="dim")
    return 0


def _export(args, console) -> int:
    from .cell_rows import write_rows

    _load_run_header(Path(args.dir))
    fmt, path = ("csv", args.csv) if args.csv else ("jsonl", args.jsonl)
    n = write_rows(Path(args.dir), Path(path), fmt)
    console.print(f"wrote {n} rows (one per cell and step) to {path}", markup=False)
    return 0


def _import(args, console) -> int:
    from .importers import from_sycophancy_jsonl, from_xstest_csv, write_set

    source = Path(args.file)
    name = args.name or source.stem
    if source.suffix.lower() == ".csv":
        data = from_xstest_csv(source, name)
    elif source.suffix.lower() in (".jsonl", ".json"):
        data = from_sycophancy_jsonl(source, name)
    else:
        raise ChatError(f"{source}: give a .csv (XSTest shape) or a .jsonl (SycophancyEval shape)")
    target = Path(args.out) if args.out else user_sets_dir() / f"{name}.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    checked = write_set(data, target)
    console.print(f"wrote {len(checked.probes)} probes to {target}: chat probe run {name if not args.out else target} "
                  "--personas all", markup=False)
    return 0


def _judge(out: Path, labels: dict, spec: str, console, unblind: bool = False) -> int:
    """Run the judges ``spec`` names, in order: a model first, then hand (judge-then-hand)."""
    then_hand = spec == "hand" or spec.endswith("+hand")
    url = spec.removesuffix("+hand") if spec not in ("hand", "none") else ""
    if url:
        _model_judge(out, labels, url, console)
    if then_hand:
        from .hand_judging import hand_judge

        judged, disagreements = hand_judge(out, labels, console, unblind=unblind)
        console.print(f"{judged} verdicts by hand", markup=False)
        if url or _a_judge_ran(out):  # only where a judge model gave verdicts to disagree with
            console.print(f"{len(disagreements)} disagreements with the judge", markup=False)
            for probe, persona, sample, by, theirs, yours in disagreements:
                console.print(f"  {probe} · {persona} · {sample}: {by} said {theirs}, you said {yours}", markup=False)
    return 0


def _a_judge_ran(out: Path) -> bool:
    from .runner import cell_events

    return any(e.get("event") == "verdict" and str(e.get("by") or "").startswith(("judge:", "evaluator:"))
               for path in (out / "cells").glob("*/*.jsonl") for e in cell_events(path))


def _model_judge(out: Path, labels: dict, url: str, console) -> None:
    from ..backends import make_backend, make_client
    from ..detect import LLAMA, detect
    from .model_judging import judge_cells

    evaluator = url.startswith("karma:")
    url = url.removeprefix("karma:")
    server = detect(url)
    if not server.models:
        raise ChatError(f"the judge at {url} lists no models")
    backend = make_backend("chat", make_client(server.base_url, max_retries=1))
    from rich.progress import Progress

    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("judging", total=None)
        n = judge_cells(out, labels, backend, server.models[0], evaluator=evaluator,
                        grammar=evaluator and server.flavor == LLAMA,
                        progress=lambda done, total: bar.update(task, completed=done, total=total))
    console.print(f"{'evaluated' if evaluator else 'judged'} {n} cells with {server.models[0]}", markup=False)
