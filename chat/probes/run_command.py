"""`chat probe run`: what to run (the personas, some of the probes), where (the servers given, or the
local model started for the run), and running it with a progress line. Judging and the report that
follow are the CLI's (chat/probes/cli.py)."""

from __future__ import annotations

import random
import time
from pathlib import Path

from ...personas import GRID
from ..errors import ChatError, UsageError
from ..limits import listed
from ..output import say

__all__ = ["MAX_CELLS", "PERSONA_GROUPS", "choose_personas", "choose_probes", "start_run"]

MAX_CELLS = 100_000  # a run bigger than this is a typo, not an experiment
PERSONA_GROUPS = {"all": [*GRID, "none"], "grid": GRID}  # --personas words: all includes the reference


def choose_personas(spec: str, known: dict) -> list:
    """The personas a --personas LIST names: groups expanded, duplicates dropped, the order kept."""
    names = list(dict.fromkeys(name for item in spec.split(",") if item.strip()
                               for name in PERSONA_GROUPS.get(item.strip(), [item.strip()])))
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        listed = ", ".join(dict.fromkeys([*PERSONA_GROUPS, *known]))
        raise ChatError(f"unknown persona {', '.join(unknown)}; known: {listed}" if unknown
                        else f"--personas {spec!r} names no persona; known: {listed}")
    return [known[n] for n in names]


def choose_probes(probe_set, ids: str | None, limit: int | None):
    """The set with only the probes --probes names (in that order), the first --limit of them."""
    by_id = {p.id: p for p in probe_set.probes}
    chosen = list(by_id.values())
    if ids is not None:
        wanted = list(dict.fromkeys(i.strip() for i in ids.split(",") if i.strip()))
        unknown = [i for i in wanted if i not in by_id]
        if unknown or not wanted:
            raise ChatError(f"--probes: no probe {listed(unknown) or repr(ids)} in {probe_set.name} "
                            f"(its probes: {listed(by_id)})")
        chosen = [by_id[i] for i in wanted]
    return probe_set.model_copy(update={"probes": chosen[:limit]})


def start_run(args, probe_set, console, warn):
    """Check what is asked for, then run it on the servers given, or on the local model started for
    it (and stopped after). Returns (the run, cells left unfinished)."""
    from ...personas import load_personas
    from ..config import config_dir

    probe_set = choose_probes(probe_set, args.probes, args.limit)
    personas = load_personas(config_dir() / "personas", warn=warn)
    chosen = choose_personas(args.personas, personas)
    cells = len(probe_set.probes) * len(chosen) * args.samples * len((args.lora or "").split(","))
    if cells > MAX_CELLS:
        raise ChatError(f"{cells:,} cells is more than a run takes ({MAX_CELLS:,}): fewer --samples or personas")
    if not args.local:
        return _run_on(args.base_url or [None], args, probe_set, personas, chosen, console, warn)
    if args.base_url:
        raise ChatError("--local starts its own server: give --local or --base-url, not both")
    from ...serve import LaunchError, LocalServer
    from ...serve.process import ServerDied

    try:
        with LocalServer(say=lambda message: say(f"chat probe: {message}")) as url:
            return _run_on([url], args, probe_set, personas, chosen, console, warn)
    except (LaunchError, ServerDied) as err:
        raise ChatError(str(err)) from None


def _run_on(urls: list, args, probe_set, personas: dict, chosen: list, console, warn):
    from ..config import SAMPLING, data_dir, load_settings
    from ..files import make_dir
    from ..session import Session
    from .progress import cells_progress
    from .runner import Run, run_probes

    flags = {"base_url": urls[0], "model": args.model, "api": args.api, "tools": False}
    flags.update({k: getattr(args, k) for k in SAMPLING if k != "seed" and getattr(args, k, None) is not None})
    settings = load_settings(flags, warn=warn)
    session = Session(settings, personas)
    servers = _servers(session, settings, personas, urls)
    out = Path(args.out) if args.out else data_dir() / "probes" / f"{probe_set.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    make_dir(out)
    seed = _seed(args.seed, out)
    params = {k: v for k, v in settings.sampling().items() if k != "seed"}
    run = Run(probe_set, chosen, args.samples, out, session.model or "",
              [s.url for s in servers], params, args.judge, seed, session.api[0], args.answer_probability,
              _loras(args.lora, servers, session.model or ""))
    missing = session.logprobs_missing() if args.answer_probability else None
    if missing:
        console.print(f"chat probe: {missing}: the answer probability will be n/a", markup=False)
    axis = f" × {len(run.loras)} adapter scales" if run.loras != [None] else ""
    console.print(f"{probe_set.name}: {len(probe_set.probes)} probes × {len(run.personas)} personas{axis} × "
                  f"{run.samples} samples on {session.model} ({len(servers)} server{'s' if len(servers) > 1 else ''}, "
                  f"seed {seed}) → {out}", markup=False)
    with cells_progress(console) as bar:
        task = bar.add_task("cells", total=None)
        finished, skipped = run_probes(run, servers, args.concurrency,
                                       lambda done, total, tokens: bar.update(task, completed=done, total=total,
                                                                              tokens=tokens),
                                       notice=lambda text: console.print(f"chat probe: {text}", markup=False),
                                       warn=warn)
    unfinished = len(run.cells()) - finished - skipped
    console.print(f"{finished} cells run, {skipped} already done" + (f", {unfinished} unfinished (run again to retry)"
                                                                      if unfinished else ""), markup=False)
    return run, unfinished


def _servers(session, settings, personas: dict, urls: list) -> list:
    """The first server (connected through ``session``) and its replicas, each checked to serve the model,
    each read in bulk (chat/backends/bulk.py: a probe run watches no reply arrive)."""
    from ..backends.bulk import bulk_backend
    from ..detect import detect
    from ..redact import hold_url
    from ..session import Session
    from .runner import Server

    first = session.connect()
    key = session.connection.key_for(first.base_url) if urls[0] else None  # none to a server found, not named
    servers = [Server(first.base_url, bulk_backend(session.api[0], first.base_url, key) or session.backend,
                      first.flavor, info=first)]
    for url in urls[1:]:  # replicas: each answers for the same model
        hold_url(url)  # named by a flag: its credentials are secrets
        info = detect(url, settings.api_key)
        if info.models and session.model not in info.models:
            raise ChatError(f"{url} does not serve {session.model} (it has: {listed(info.models)})")
        replica = Session(settings.model_copy(update={"base_url": url}), personas)
        replica.model = session.model
        replica.connect()
        backend = bulk_backend(session.api[0], info.base_url, replica.connection.key_for(info.base_url)) \
            or replica.backend
        servers.append(Server(info.base_url, backend, info.flavor, info=info))
    return servers


def _loras(given: str | None, servers: list, model: str) -> list:
    """The adapter axis (``--lora 0,0.5,1``, ``NAME``, ``NAME:S``) as the first server names its adapters,
    each one every server can apply (a replica without it would answer as the base model; vLLM can't
    at 0.5): one that can't is refused now, naming the server. [None]: no axis."""
    from ..adapters import choose

    if not given:
        return [None]
    first = servers[0].info
    loras = list(dict.fromkeys(choose(item, first.adapters, first.adapters_unread) for item in given.split(",")
                               if item.strip()))
    for server in servers:
        for lora in loras:
            try:
                server.info.kind.apply_lora(lora, server.info.adapters, model)
            except UsageError as err:
                raise UsageError(f"--lora {lora} on {server.url}: {err}") from None
    return loras


def _seed(given: str | None, out: Path) -> int:
    """The run's seed: the one given, else a resumed run's, else a new random one (recorded)."""
    from ..config import check

    try:
        seed = check("seed", given) if given is not None else _previous_seed(out)
    except ValueError as e:
        raise ChatError(f"--seed {given}: {e}") from None
    return seed if seed is not None else random.SystemRandom().randrange(2**31)


def _previous_seed(out: Path) -> int | None:
    """A resumed run keeps its seed."""
    from .rundir import RunDir

    try:
        seed = RunDir(out).header().get("seed")
    except ChatError:
        return None
    return seed if isinstance(seed, int) else None
