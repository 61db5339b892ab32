"""The `chat` command: parse flags, build the session, hand over to the REPL or one-shot mode."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from .. import __version__
from .sanitize import valid_text

__all__ = ["main", "parser", "run"]

EPILOG = """\
examples:
  chat                                     find a local server (vLLM :8000, llama-server :8080, Ollama :11434)
  chat --base-url http://gpu-box:8000/v1 --persona lawful_evil
  chat --persona chaotic_good -p "Should I return the extra change?"
  git diff | chat -p "Review this patch"   stdin is appended to -p (or is the prompt alone)
  chat --approve read_file --workspace ~/proj   read_file runs without asking; the rest ask [y/n/a]
  chat --api responses --model openai/gpt-oss-20b
  chat --local                             no server, no GPU: a small bundled model on this machine

where settings come from (first wins): flags, environment, config file, defaults
  environment:  OPENAI_BASE_URL, OPENAI_API_KEY, GRIDCHAT_<SETTING> (e.g. GRIDCHAT_PERSONA=lawful_good),
                GRIDCHAT_CONFIG (another config file), NO_COLOR (no colours)
  config file:  {config}
                YAML with any of: base_url, api_key, model, persona, api, temperature, top_p,
                max_tokens, tool_choice, show_reasoning, tools, approve, workspace, max_tool_rounds
  personas:     the nine alignment-grid personas and "none"; add your own as
                {personas}/NAME.yaml (name, system, description)

tools: the model may call bash, read_file, write_file and edit_file; each call is shown and asks
[y/n/a(lways)] first. File tools are confined to the workspace. In one-shot mode a tool that is not
pre-approved (--approve) is declined, and stderr says so.

--api auto picks the Responses API for gpt-oss models on vLLM (as the persona models' card uses
them) and Chat Completions everywhere else; /status shows the choice and why.

Scripted probes across the persona grid: chat probe list | run | judge | report (chat probe --help).

In a session, /help lists the slash commands. Exit status: 0 ok, 1 error, 130 interrupted.
"""


def parser() -> argparse.ArgumentParser:
    from .config import config_dir, config_path
    from .output import Parser
    from .params import add_flags

    p = Parser(
        prog="chat",
        description="Streaming terminal chat with persona-conditioned models served by vLLM or llama-server.",
        epilog=EPILOG.format(config=config_path(), personas=config_dir() / "personas"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--base-url", metavar="URL", help="the server's OpenAI-compatible API, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--api-key", metavar="KEY", help="bearer token, if the server wants one (default: OPENAI_API_KEY)")
    p.add_argument("--model", metavar="NAME", help="model to use (default: the server's first)")
    p.add_argument("--persona", metavar="NAME", help="persona to start with: lawful_good … chaotic_evil, none, or your own")
    p.add_argument("--api", choices=["auto", "chat", "responses"], help="wire API (default: auto)")
    add_flags(p)  # --temperature, --top-p, --max-tokens, --seed … (chat/params.py)
    p.add_argument("--hide-reasoning", action="store_const", const=False, dest="show_reasoning",
                   help="don't show the model's reasoning (/think toggles it in a session)")
    p.add_argument("--approve", metavar="TOOLS", help="tools that run without asking: bash,read_file,write_file,edit_file or all")
    p.add_argument("--no-tools", action="store_const", const=False, dest="tools", help="offer the model no tools")
    p.add_argument("--workspace", metavar="DIR", help="the only directory file tools may touch, and where bash runs (default: .)")
    p.add_argument("--max-tool-rounds", metavar="N", dest="max_tool_rounds",
                   help="tool rounds in a row before the model is stopped (default 8)")
    p.add_argument("--local", action="store_true",
                   help="start a small local model (llama-server + SmolLM2-135M, CPU) for this session and chat with it")
    p.add_argument("--resume", nargs="?", const="latest", metavar="ID",
                   help="go on with a saved session exactly as it was (the latest without ID); see --list")
    p.add_argument("--list", action="store_true", help="list saved sessions and exit")
    p.add_argument("-p", "--prompt", metavar="TEXT", help="one-shot: send TEXT, stream the reply to stdout, exit")
    p.add_argument("--config", metavar="FILE", help="config file to read instead of the default")
    p.add_argument("--version", action="version", version=f"gridchat {__version__}")
    return p


def main(argv: list[str] | None = None) -> int:
    """The `chat` process: what only a process may do — its signal handlers, its guard against its
    tools, its standard output gone — around ``run``."""
    argv = sys.argv[1:] if argv is None else argv
    if sys.stdout is None:  # started with stdout closed (`>&-`): nowhere for a reply to go
        from .output import say

        say("chat: error: standard output is closed: nowhere to write the reply")
        return 1
    from . import interrupts

    if argv[:1] != ["serve"]:  # serve stops its server on Ctrl-C itself
        interrupts.install()  # SIGTERM and SIGHUP from now on; Ctrl-C once an action runs
    try:
        code = run(argv, sys.stdin, sys.stdout, sys.stderr, guard=_guard)
    except BrokenPipeError:  # `chat -p … | head`: the reader left; stop quietly like other tools
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return 128 + interrupts.left() if interrupts.left() else code


def _guard(secrets: list[str | None]) -> None:
    from ..supervise.processes import guard_client

    guard_client(secrets)  # tools' orphans come back to us; our /proc files stay ours


def run(argv: list[str], stdin: TextIO, stdout: TextIO, stderr: TextIO, *,
        guard: Callable[[list[str | None]], None] = lambda secrets: None) -> int:
    """The `chat` command (and `chat probe …`, `chat serve …`) with these standard streams (stdin is
    read as bytes, through its ``buffer``, as sys.stdin's); its exit status. It leaves the process
    as it found it, so tests run it in theirs: the streams are sys.stdin/stdout/stderr only while it
    runs (everything gridchat shows goes through chat/output.py, which looks them up at each
    write); settings come from the process's environment, as they would; signal handlers are
    ``main``'s, and so is ``guard`` — what the process does once the settings (the API key to hide)
    are known."""
    with _standard_streams(stdin, stdout, stderr):
        try:
            return _dispatch([valid_text(a) for a in argv], guard)  # undecodable bytes: U+FFFD
        except SystemExit as done:  # --help, --version, a bad flag: argparse has said so
            return done.code if isinstance(done.code, int) else 0 if done.code is None else 1


@contextmanager
def _standard_streams(stdin: TextIO, stdout: TextIO, stderr: TextIO) -> Iterator[None]:
    """The command's standard streams while it runs, and the process's again after (contextlib's
    redirect_stdout, for all three)."""
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = stdin, stdout, stderr
    try:
        yield
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved


def _dispatch(argv: list[str], guard) -> int:
    from .output import say, unless_a_bug
    from .redact import hold_given

    hold_given(argv, os.environ)  # before a parser echoes one given to the wrong flag

    if argv[:1] == ["probe"]:  # chat probe list|run|judge|report
        from .probes.cli import run as probe

        return unless_a_bug("chat probe", lambda: probe(argv[1:]))
    if argv[:1] == ["serve"]:  # chat serve … is serve …
        from ..serve.cli import main as serve

        return serve(argv[1:])
    from .errors import PathError, paths

    args = parser().parse_args(argv)

    def chat() -> int:
        try:
            with paths():  # a path the system refuses (a name too long) is one line, wherever it was looked at
                return _run(args, guard)
        except PathError as err:
            say(f"chat: error: {err}")
            return 1
        except KeyboardInterrupt:  # before the session began (loading a transcript, starting the local engine)
            say("")
            return 130

    return unless_a_bug("chat", chat, " Everything said so far is in the session's transcript (chat --resume goes on);")


def _run(args: argparse.Namespace, guard) -> int:
    from ..personas import load_personas
    from .advice import worded
    from .config import SAMPLING, config_dir, data_dir, load_settings, move_old_dirs
    from .errors import ChatError, ConfigError
    from .output import say
    from .session import Session
    from .transcript import Transcript

    def warn(message: str) -> None:
        say(f"chat: warning: {message}")

    flags = {k: getattr(args, k) for k in ("base_url", "api_key", "model", "persona", "api", *SAMPLING,
                                           "show_reasoning", "tools", "approve", "workspace", "max_tool_rounds")}
    move_old_dirs(lambda message: say(f"chat: {message}"))
    sessions = data_dir() / "sessions"
    if args.list:
        return _list_sessions(sessions)
    try:
        settings = load_settings(flags, path=Path(args.config) if args.config else None, warn=warn)
        personas = load_personas(config_dir() / "personas", warn=warn)
        if settings.persona not in personas:
            unknown = f"{settings.where('persona')}: unknown persona; known: {', '.join(personas)}"
            if not settings.from_file("persona"):
                raise ConfigError(unknown)
            warn(f"{unknown} (ignored)")
            settings.persona = "none"
        not_saved = lambda why: warn(f"this session is not being saved: {why}")  # noqa: E731
        left_open = None
        if args.resume:
            path, restored = _resumed(sessions, args.resume, personas)
            for problem in restored.problems:
                warn(problem)
            if path.resolve().parent == sessions.resolve():  # one of ours: it goes on in its own file
                transcript = Transcript(path, on_error=not_saved)
                _claim(transcript, path)
                session = Session(settings, personas, transcript, restored)
                left_open = restored.panel  # a panel it had open: opened again once connected
                what = f"resumed session {transcript.id}"
            else:  # a file from elsewhere (a probe cell, a /save): it stays as it is; a new session goes on from it
                settings.model = settings.model or restored.server.get("model")
                transcript = Transcript.new(sessions, on_error=not_saved)
                session = Session(settings, personas, transcript)
                session.load(restored, str(path))
                what = f"new session {transcript.id}, going on from {path}"
            recorded = restored.server.get("base_url")
            session.connection.recorded_url = recorded if isinstance(recorded, str) and not settings.base_url else None
            c = session.conversation
            say(f"chat: {what}: {len(c.messages)} messages on this branch, {len(c.branches())} branches, "
                f"persona {c.persona.name}")
        else:
            session = Session(settings, personas, Transcript.new(sessions, on_error=not_saved))
    except ChatError as err:
        say(f"chat: error: {worded(err, interactive=False)}")
        return 1
    guard([settings.api_key])

    try:
        if args.local:
            return _with_local_server(args, settings, session, left_open)
        return _chat(args, session, left_open)
    finally:
        session.transcript.close()  # frees the session for another chat (its lock file goes)


def _claim(transcript, path) -> None:
    """Hold the session while this chat has it open: a second chat on it is refused, never interleaved."""
    from .files import Locked
    from .transcript import TranscriptError

    try:
        transcript.claim()
    except Locked as err:
        raise TranscriptError(f"{err}: leave it there first, or start chat and /load {path} to go on from a "
                              "copy in a new session") from None


def _resumed(directory, wanted: str, personas):
    """The transcript to go on with (by id prefix, or a path) and what it holds."""
    from .transcript import TranscriptError, list_sessions, load_transcript

    saved = list_sessions(directory)
    if wanted == "latest":
        readable = [s for s in saved if s.readable]
        if not readable:
            raise TranscriptError(f"no saved sessions in {directory}")
        path = readable[0].path
    else:
        matches = [s.path for s in saved if s.id.startswith(wanted)] or \
            ([Path(wanted)] if Path(wanted).is_file() else [])
        if len(matches) != 1:
            raise TranscriptError(f"{'no' if not matches else 'more than one'} saved session matches {wanted!r} "
                                  "(chat --list shows them)")
        path = matches[0]
    return path, load_transcript(path, personas)


def _list_sessions(directory) -> int:
    import time

    from .output import say
    from .transcript import list_sessions

    saved = list_sessions(directory)
    if not saved:
        say(f"no saved sessions in {directory}", err=False)
        return 0
    say(f"{'session':22}  {'last change':16}  {'messages':>8}  {'personas':28}  first message", err=False)
    for s in saved:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(s.modified))
        personas = ", ".join(s.personas) or "-"
        if len(personas) > 28:  # whole names only: as many as fit, then how many more
            shown = []
            for i, name in enumerate(s.personas):
                more = f" +{len(s.personas) - i}"
                if len(", ".join([*shown, name])) + len(more) > 28:
                    break
                shown.append(name)
            personas = ", ".join(shown) + f" +{len(s.personas) - len(shown)}"
        first = " ".join(s.first.split())
        first = first if len(first) <= 50 else first[:49] + "…"
        note = f"  ({s.problem})" if s.problem else ""
        say(f"{s.id:22}  {when:16}  {s.messages:8}  {personas:28}  {first}{note}", err=False)
    return 0


def _with_local_server(args: argparse.Namespace, settings, session, left_open) -> int:
    """Run the session against a llama-server started for it, stopped on the way out whatever happens."""
    from ..serve import LaunchError, LocalServer
    from ..serve.process import ServerDied

    from .output import say

    try:
        with LocalServer(say=lambda message: say(f"chat: {message}")) as base_url:
            session.connection.name_home(base_url)
            return _chat(args, session, left_open)
    except (LaunchError, ServerDied) as err:
        say(f"chat: error: {err}")
        return 1


def _chat(args: argparse.Namespace, session, left_open: dict | None = None) -> int:
    piped = not sys.stdin.isatty()
    if args.prompt is not None or piped:
        text = args.prompt or ""
        if piped:  # bytes, decoded here: what isn't UTF-8 becomes U+FFFD, not an error
            stdin = sys.stdin.buffer.read().decode("utf-8", "replace")
            if stdin.strip():
                text = f"{text}\n\n{stdin}" if text else stdin
        from .interrupts import action
        from .oneshot import run_oneshot

        with action():  # Ctrl-C stops the reply (kept as far as it came); exit 130
            return run_oneshot(session, text)

    from .config import data_dir
    from .output import Screen
    from .repl import Repl

    return Repl(session, Screen(), history_path=data_dir() / "history", left_open=left_open).run()


if __name__ == "__main__":
    sys.exit(main())
