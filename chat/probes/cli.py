"""`chat probe list | run | judge | report`: scripted probes across the persona grid."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import interrupts
from ..cancel import Cancelled, stopped
from ..errors import ChatError, UsageError, paths
from ..output import Parser, Screen, say

__all__ = ["SETS_DIR", "new_set_path", "run", "user_sets_dir"]

SETS_DIR = Path(__file__).with_name("sets")
JUDGES = "none | hand | URL | URL+hand | karma:URL"


def _positive(text: str) -> int:
    """A count of 1 or more, for argparse (which then says which flag was wrong)."""
    if not (text.isascii() and text.isdigit() and int(text) >= 1):
        raise argparse.ArgumentTypeError(f"must be a whole number, 1 or more, not {text!r}")
    return int(text)


def user_sets_dir() -> Path:
    from ..config import config_dir

    return config_dir() / "probes"


def new_set_path(name: str, replace: bool, again: str, path: Path | None = None) -> Path:
    """Where a new set called ``name`` is written (``path``, else the user's sets folder), as /probe save
    and chat probe import both decide: a shipped set's name is refused (the user's would hide it), and
    so is a file that exists, unless ``replace``; ``again`` says how to replace it."""
    if path is None:
        if any(p.stem == name for p in SETS_DIR.glob("*.y*ml")):
            raise UsageError(f"{name} is a shipped probe set: choose another name")
        path = user_sets_dir() / f"{name}.yaml"
    if path.exists() and not replace:
        raise UsageError(f"{path} exists: choose another name, or {again}")
    return path


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
    from ..params import add_flags

    p = Parser(prog="chat probe", description="Scripted probes across the persona grid.",
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="examples:\n  chat probe run sycophancy --personas all --samples 5 --seed 1\n"
                                       "  chat probe run sycophancy --local --limit 3 --personas lawful_evil,none\n"
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
    run.add_argument("--personas", default="all", metavar="LIST",
                     help="a comma list of names, grid (the nine), none (no system message: the reference) and all "
                          "(the nine and none); default all")
    run.add_argument("--probes", metavar="ID,…", help="only these probes of the set, in this order")
    run.add_argument("--limit", type=_positive, metavar="N", help="only the first N probes (of --probes, else of the set)")
    run.add_argument("--local", action="store_true",
                     help="start the small local model (as chat --local), run on it, stop it at the end")
    run.add_argument("--samples", type=_positive, default=1, metavar="N", help="conversations per persona and probe")
    run.add_argument("--seed", metavar="N", help="the run's seed: each cell's is derived from it and the cell (recorded)")
    add_flags(run, probe=True)  # the sampling parameters (chat/params.py); the run's seed is its own
    run.add_argument("--concurrency", type=_positive, default=16, metavar="N",
                     help="requests at once per server (default 16)")
    run.add_argument("--lora", metavar="LIST", help="LoRA adapter scales crossed with the personas: 0,0.5,1 (the "
                     "server's one adapter; 0 is the base model), NAME, NAME:SCALE (llama-server per request; vLLM: "
                     "0 or 1, by the adapter's model name)")
    run.add_argument("--answer-probability", action="store_true", help="measure the probability the model gives "
                     "each score answer at the first answer and the final one (token probabilities; the report "
                     "shows the shift under pushback)")
    run.add_argument("--judge", default="none", help=JUDGES)
    run.add_argument("--out", metavar="DIR", help="run directory (default: data dir/probes/SET-TIME)")
    judge = sub.add_parser("judge", help="judge a run's cells (blind by hand, a judge model, or the Karma evaluator)")
    judge.add_argument("dir")
    judge.add_argument("--judge", default="hand", help=JUDGES)
    judge.add_argument("--unblind", action="store_true",
                       help="hand judging: show persona, model and sample at once (the verdicts are not blind)")
    judge.add_argument("--show-suggestion", action="store_true",
                       help="hand judging: offer the judge's (else the rules') label, Enter takes it (not blind)")
    report = sub.add_parser("report", help="the numbers of a run: distributions, intervals, persona differences")
    report.add_argument("dir")
    report.add_argument("--html", metavar="FILE", help="also write an HTML page (the grid, every cell's conversation)")
    report.add_argument("--reference", metavar="NAME", help="the persona (or lane, e.g. none+ke@0) the others are compared with (default: none; with an "
                        "adapter axis, that persona at each adapter setting)")
    report.add_argument("--width", type=_positive, metavar="N",
                        help="columns of the text report (default: the terminal's, 80 when piped)")
    export = sub.add_parser("export", help="one row per cell (every judge's label apart), for pandas and the like")
    export.add_argument("dir")
    export.add_argument("--steps", action="store_true", help="one row per cell and step instead")
    form = export.add_mutually_exclusive_group(required=True)
    form.add_argument("--csv", metavar="FILE")
    form.add_argument("--jsonl", metavar="FILE")
    imp = sub.add_parser("import", help="turn an XSTest-style CSV or a SycophancyEval JSONL into a probe set")
    imp.add_argument("file", help="a .csv (prompt, type, label: safe|unsafe) or .jsonl (are-you-sure shape)")
    imp.add_argument("--name", help="the new set's name (default: the file's)")
    imp.add_argument("--out", metavar="FILE", help="where to write it (default: config dir/probes/NAME.yaml)")
    imp.add_argument("--replace", action="store_true", help="write over a set (or --out file) that exists")
    return p


class _Warnings:
    """Warnings on stderr, each said once (a damaged cell is read by several steps of one command)."""

    def __init__(self):
        self.said: set[str] = set()

    def __call__(self, message: str) -> None:
        if message not in self.said:
            self.said.add(message)
            say(f"chat probe: warning: {message}")


def run(argv: list[str]) -> int:
    """`chat probe …` (chat/cli.py's ``run`` gives it its streams, ``main`` its signal handlers)."""
    args = parser().parse_args(argv)
    console = Screen(width=getattr(args, "width", None))
    try:
        # Ctrl-C stops every request at once; what finished is kept. A path the system refuses is one line.
        with interrupts.action() as token, paths():
            code = _dispatch(args, console, _Warnings())
    except ChatError as err:
        say(f"chat probe: error: {err}")
        return 1
    except (KeyboardInterrupt, Cancelled):  # a signal to leave at a question; Ctrl-C while connecting
        token = None
    if token is None or token.cancelled:
        say("chat probe: interrupted; run the same command again to resume")
        return 128 + interrupts.left() if interrupts.left() else 130
    return code


def _dispatch(args, console, warn) -> int:
    if args.what == "list":
        return _list(console)
    if args.what == "run":
        return _run(args, console, warn)
    if args.what == "judge":
        run = _load_run_header(Path(args.dir))
        return _judge(Path(args.dir), run["labels"], args.judge, console, warn, unblind=args.unblind,
                      show_suggestion=args.show_suggestion)
    if args.what == "export":
        return _export(args, console, warn)
    if args.what == "import":
        return _import(args, console, warn)
    _report(Path(args.dir), Path(args.html) if args.html else None, console, args.reference, warn)
    return 0


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
    """run.json, or one error line saying how to rebuild an unusable one."""
    from .rundir import RunDir, RunDirError

    run = RunDir(out)
    try:
        return run.header()
    except RunDirError as e:
        if run.has_header():
            raise RunDirError(f"{e} (running the set again with --out {out} rebuilds it)") from None
        raise


def _run(args, console, warn) -> int:
    from .run_command import start_run
    from .verdicts import baseline_misses

    run, unfinished = start_run(args, _find_set(args.set), console, warn)
    if stopped():
        return 130  # interrupted: what finished is kept, the rest runs on the next run
    if args.judge != "none":
        _judge(run.out, run.probe_set.labels, args.judge, console, warn)
    missed, of = baseline_misses(_report(run.out, None, console, None, warn))
    if missed * 2 > of:  # most cells say nothing about the trap: the model is the wrong size for the set
        warn(f"the model misses the baseline question: the trap never ran in {missed} of {of} cells (n/a: its "
             "first answer was off); a stronger model, or a set whose first questions it gets right, says more")
    return 0 if not unfinished else 1


def _report(out: Path, html: Path | None, console, reference: str | None, warn) -> list:
    """Show the run's report (and write its page to ``html``); the cells it read, each read once."""
    from .report import load_cells, summarise
    from .report_text import render

    run = _load_run_header(out)
    cells = load_cells(out, warn)
    report = summarise(run, cells, reference)
    if reference is not None and report.reference is None:
        raise ChatError(f"--reference {reference}: not a persona of this run ({', '.join(report.personas)})")
    render(console, report, out)
    if html is not None:
        from ..files import write_whole
        from .report_html import page

        write_whole(html, page(report, str(out)).encode("utf-8"))
        console.print(f"wrote {html}", markup=False, style="dim")
    return cells


def _export(args, console, warn) -> int:
    from .cell_rows import write_rows

    _load_run_header(Path(args.dir))
    fmt, path = ("csv", args.csv) if args.csv else ("jsonl", args.jsonl)
    n = write_rows(Path(args.dir), Path(path), fmt, warn, steps=args.steps)
    console.print(f"wrote {n} rows (one per cell{' and step' if args.steps else ''}) to {path}", markup=False)
    return 0


def _import(args, console, warn) -> int:
    from .importers import from_sycophancy_jsonl, from_xstest_csv, write_set

    source = Path(args.file)
    name = args.name or source.stem
    target = new_set_path(name, args.replace, "add --replace", Path(args.out) if args.out else None)
    if source.suffix.lower() == ".csv":
        data = from_xstest_csv(source, name, warn)
    elif source.suffix.lower() in (".jsonl", ".json"):
        data = from_sycophancy_jsonl(source, name, warn)
    else:
        raise ChatError(f"{source}: give a .csv (XSTest shape) or a .jsonl (SycophancyEval shape)")
    checked = write_set(data, target)
    console.print(f"wrote {len(checked.probes)} probes to {target}: chat probe run {name if not args.out else target} "
                  "--personas all", markup=False)
    return 0


def _judge(out: Path, labels: dict, spec: str, console, warn, unblind: bool = False,
           show_suggestion: bool = False) -> int:
    """Run the judges ``spec`` names, in order: a model first, then hand (judge-then-hand; blind unless
    ``unblind`` or ``show_suggestion`` says otherwise)."""
    then_hand = spec == "hand" or spec.endswith("+hand")
    url = spec.removesuffix("+hand") if spec not in ("hand", "none") else ""
    if url:
        _model_judge(out, labels, url, console, warn)
    if then_hand:
        from .hand_judging import hand_judge

        judged, disagreements = hand_judge(out, labels, console, unblind=unblind,
                                           show_suggestion=show_suggestion, warn=warn)
        console.print(f"{judged} verdicts by hand", markup=False)
        if url or _a_judge_ran(out, warn):  # only where a judge model gave verdicts to disagree with
            console.print(f"{len(disagreements)} disagreements with the judge", markup=False)
            for probe, persona, sample, by, theirs, yours in disagreements:
                console.print(f"  {probe} · {persona} · {sample}: {by} said {theirs}, you said {yours}", markup=False)
    return 0


def _a_judge_ran(out: Path, warn) -> bool:
    from .rundir import RunDir, cell_events

    return any(e.get("event") == "verdict" and str(e.get("by") or "").startswith(("judge:", "evaluator:"))
               for path in RunDir(out).cell_paths() for e in cell_events(path, warn))


def _model_judge(out: Path, labels: dict, url: str, console, warn) -> None:
    from ..config import load_settings
    from ..connection import Connection
    from .model_judging import judge_cells

    evaluator = url.startswith("karma:")
    url = url.removeprefix("karma:")
    settings = load_settings(warn=warn)
    # named on the command line: the judge gets the key, as any server chat reaches does (chat/connection.py)
    backend, server = Connection(settings.base_url, settings.api_key, notify=warn).other(url, "chat")
    if not server.models:
        raise ChatError(f"the judge at {url} lists no models")
    from .progress import cells_progress

    with cells_progress(console, "judging") as bar:
        task = bar.add_task("judging", total=None)
        n = judge_cells(out, labels, backend, server.models[0], evaluator=evaluator,
                        grammar=evaluator and server.kind.grammar,
                        progress=lambda done, total: bar.update(task, completed=done, total=total), warn=warn)
    console.print(f"{'evaluated' if evaluator else 'judged'} {n} cells with {server.models[0]}", markup=False)
