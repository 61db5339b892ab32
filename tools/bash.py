"""bash: run a shell command in the workspace, without stdin, under a timeout."""

from __future__ import annotations

import os
import signal
import subprocess
import threading

from pydantic import Field

from .base import Args, Preview, Tool, Workspace

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
        self._thread.join(timeout=2)  # a daemon that escaped the group may hold the pipe: don't wait on it
        return capped(bytes(self.head), bytes(self.tail), self.total)


def capped(head: bytes, tail: bytes, total: int) -> str:
    tail = tail[-TAIL_BYTES:]
    cut = total - len(head) - len(tail)
    text = head.decode("utf-8", "replace")
    if cut > 0:
        text += f"\n[… {cut:,} bytes of output cut …]\n"
    return text + tail.decode("utf-8", "replace")


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the whole group, a moment to exit, then SIGKILL to whatever is left in it."""
    for sig, grace in ((signal.SIGTERM, 2), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass


def run(args: BashArgs, ws: Workspace) -> str:
    """Ctrl-C (KeyboardInterrupt) kills the command's whole process group and propagates."""
    timeout = args.timeout or DEFAULT_TIMEOUT
    proc = subprocess.Popen(
        ["bash", "-c", args.command], cwd=ws.root, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, start_new_session=True,  # its own group: killed as one, deaf to our Ctrl-C
    )
    capture = _Capture(proc.stdout)
    try:
        code = proc.wait(timeout=timeout)
        status = f"[exit code {code}]" if code >= 0 else f"[killed by signal {-code}]"
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        status = f"[timed out after {timeout:g} s; the command and its children were killed]"
    except BaseException:
        _kill_group(proc)
        raise
    output = capture.text()
    return f"{output}{'' if not output or output.endswith(chr(10)) else chr(10)}{status}"


TOOL = Tool(
    name="bash",
    description="Run a bash command in the workspace directory (no stdin). Output is capped, keeping "
                "its start and end; the exit code is reported.",
    args=BashArgs,
    preview=preview,
    run=run,
)
