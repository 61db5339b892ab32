"""bash: run a shell command in the workspace, without stdin, under a timeout."""

from __future__ import annotations

import threading

from pydantic import Field

from ..supervise.processes import CannotStart, Ended, Exit, start
from .base import Args, Preview, Tool, ToolError, Workspace
from .environment import environment

__all__ = ["BashArgs", "TOOL", "capped"]

DEFAULT_TIMEOUT = 120
MAX_TIMEOUT = 1800
HEAD_BYTES = TAIL_BYTES = 16 * 1024  # output kept for the model: its start and its end


class BashArgs(Args):
    command: str = Field(description="The command, run by bash -c in the workspace directory")
    timeout: float | None = Field(None, gt=0, le=MAX_TIMEOUT,
                                  description=f"Seconds before it is killed; default {DEFAULT_TIMEOUT}")


def preview(args: BashArgs, ws: Workspace) -> Preview:
    timeout = f" (timeout {args.timeout:g} s)" if args.timeout else ""
    return Preview(f"in {ws.root}{timeout}", args.command, "bash")


class _Capture:
    """Keeps the first and last bytes of a stream and counts what lies between."""

    def __init__(self, stream) -> None:
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        while chunk := stream.read1(65536):
            self.total += len(chunk)
            room = HEAD_BYTES - len(self.head)
            if room > 0:
                self.head += chunk[:room]
                chunk = chunk[room:]
            self.tail += chunk
            if len(self.tail) > 2 * TAIL_BYTES:
                del self.tail[:-TAIL_BYTES]

    def text(self) -> str:
        self._thread.join(timeout=2)  # a process left in the background may hold the pipe: don't wait on it
        return capped(bytes(self.head), bytes(self.tail), self.total)


def capped(head: bytes, tail: bytes, total: int) -> str:
    tail = tail[-TAIL_BYTES:]
    cut = total - len(head) - len(tail)
    text = head.decode("utf-8", "replace")
    if cut > 0:
        text += f"\n[… {cut:,} bytes of output cut …]\n"
    return text + tail.decode("utf-8", "replace")


def _ended(ended: Ended) -> str:
    """The truth about what a kill did, for the model."""
    if ended.group_only:
        return "the command and its process group were killed"
    head = f"the command's supervisor {ended.lost or 'did not report'}"
    if ended.others is None:
        return f"{head}; processes it started may still be running"
    if ended.lost:  # what it left came to the client, which killed it (not knowing which was bash)
        text = f"{head}; " + (f"killed {_processes(ended.others)} it left behind" if ended.others
                              else "nothing it started was left running")
    else:
        killed = ["bash"] if ended.command else []
        if ended.others:
            killed.append(f"{_processes(ended.others)} it started")
        text = f"killed {' and '.join(killed)}" if killed else "nothing was left to kill"
    return text + (f"; {_processes(ended.left)} could not be killed" if ended.left else "")


def _processes(n: int) -> str:
    return f"{n} process{'es' if n != 1 else ''}"


def _status(result: Exit | Ended) -> str:
    if isinstance(result, Ended):  # its supervisor was told to end by someone else
        return f"[ended from outside before it finished; {_ended(result)}]"
    status = f"[exit code {result.code}]" if result.code >= 0 else f"[killed by signal {-result.code}]"
    if result.background:
        many = result.background != 1
        status += (f"\n[{result.background} background process{'es' if many else ''} still running; "
                   f"{'they are' if many else 'it is'} ended when this chat session ends]")
    return status


def run(args: BashArgs, ws: Workspace, approved: Preview | None = None, stop=None) -> str:
    """The command approved is the command run (its preview is its arguments). Cancelling ``stop``
    (Ctrl-C, SIGTERM, a closed window) ends the command and everything it started at once; the result
    says so, with the output it gave until then."""
    timeout = args.timeout or DEFAULT_TIMEOUT
    job = start(args.command, ws.root, environment(ws.secrets))
    capture = _Capture(job.output)
    release = stop.on_cancel(job.signal_end) if stop is not None else (lambda: None)  # safe from any thread
    try:
        result = job.wait(timeout)
    except CannotStart as e:
        raise ToolError(f"the command could not be started: {e}") from None
    except BaseException:
        job.end()
        raise
    finally:
        release()
    if result is None:
        status = f"[timed out after {timeout:g} s; {_ended(job.end())}]"
    elif stop is not None and stop.cancelled:
        status = f"[stopped before it finished: {stop.why}; {_ended(result if isinstance(result, Ended) else job.end())}]"
    else:
        status = _status(result)
    output = capture.text()
    return f"{output}{'' if not output or output.endswith(chr(10)) else chr(10)}{status}"


def check(args: BashArgs, ws: Workspace) -> None:
    if "\0" in args.command:
        raise ToolError("command contains a NUL byte, which no command line can hold")


def exit_code(result: str) -> int | None:
    """The exit code ``run``'s result ends with; None where it ended otherwise (killed, timed out)."""
    tail = result.rstrip().rsplit("\n", 1)[-1]
    if tail.startswith("[exit code ") and tail.endswith("]"):
        number = tail[len("[exit code "):-1]
        return int(number) if number.isdigit() else None
    return None


TOOL = Tool(
    name="bash",
    description="Run a bash command in the workspace directory (no stdin). Output is capped, keeping "
                "its start and end; the exit code is reported.",
    args=BashArgs,
    preview=preview,
    run=run,
    check=check,
    exit_code=exit_code,
)
