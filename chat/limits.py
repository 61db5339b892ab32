"""The caps on what chat takes in from outside — a server's answers, the files it reads — and on how
much of a long list it shows. Past a cap, what comes is refused with one line (or an error body is
cut there), never read on without end; the README lists them all (Security: caps).

Everything that reads from a server or a file goes through one of these, so that no reader can
forget its cap: a response's body through chat/backends/transport.py's ``bounded_body`` (an httpx2
response hook on every client chat makes), the standard library's reads through ``read_capped``,
files through datafile.py's ``read_bytes`` (the one file reader, with its damage policy); server-sent
events are split in chat/backends/sse.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from .errors import StreamError

__all__ = ["MAX_ADAPTERS", "MAX_ERROR_BODY", "MAX_EVENT", "MAX_HISTORY", "MAX_IMPORT", "MAX_JSON", "MAX_LOG_FILE", "MAX_MODEL_ID",
           "MAX_ROWS", "MAX_SHOWN", "MAX_SMALL_FILE", "MAX_STREAM", "listed", "read_capped", "size"]

MiB = 1 << 20
MAX_STREAM = 256 * MiB  # decoded bytes of one response: a streamed reply (a whole 131,072-token one is ~40 MiB)
MAX_EVENT = 16 * MiB  # one server-sent event, or one line of it (vLLM's response.completed holds a whole reply)
MAX_ERROR_BODY = 64 << 10  # decoded bytes of an error body read: the first line is what is shown
MAX_JSON = 8 * MiB  # /v1/models, /props, /tokenize …: the server's side answers
MAX_MODEL_ID = 1024  # characters: a longer "model id" is left out of the server's list
MAX_ADAPTERS = 256  # a server's LoRA adapters read (llama-server's lora field names each): the rest counted, not offered
MAX_SHOWN = 8  # names of a list shown in one line (models): then how many more
MAX_ROWS = 20  # rows of a list shown one name a line (/model): then how many more
MAX_LOG_FILE = 1024 * MiB  # a transcript or probe cell (a 1,000,000-message session is ~120 MiB)
MAX_SMALL_FILE = 16 * MiB  # run.json, YAML (config, personas, probe sets), hand-judging records, $EDITOR's text
MAX_IMPORT = 256 * MiB  # a data set imported as a probe set (CSV, JSONL)
MAX_HISTORY = 4 * MiB  # of the input history read at start, from its end: the newest entries (the file only grows)


def size(n: int) -> str:
    """A cap as the user reads it: 64 KiB, 16 MiB."""
    return f"{n // MiB:,} MiB" if n >= MiB else f"{n >> 10:,} KiB"


def listed(names: Iterable[str], limit: int = MAX_SHOWN, unread: int = 0) -> str:
    """``a, b, c and 9,997 more``: a list of any length as one short line (``unread``: how many more
    there are that were never read, past a cap)."""
    names = list(names)
    shown = ", ".join(names[:limit])
    more = max(0, len(names) - limit) + unread
    return f"{shown} and {more:,} more" if more else shown


def read_capped(response, cap: int, what: str, timeout: float | None = None) -> bytes:
    """The whole body of a standard-library response (``read1``), in linear time; StreamError past
    ``cap`` bytes, TimeoutError when it has not all come within ``timeout`` seconds (a server
    dripping a byte at a time would otherwise never time out: the socket's timeout is per read)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    parts, total = [], 0
    while chunk := response.read1(65536):
        parts.append(chunk)
        total += len(chunk)
        if total > cap:
            raise StreamError(f"{what} sent more than {size(cap)}: not read on")
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not answer in time")
    return b"".join(parts)
