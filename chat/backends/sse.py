"""Server-sent events from an iterator of lines (the SDK hands us raw lines; parsing them ourselves
is ~15x cheaper than its typed stream, DESIGN.md)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from .. import limits
from ..errors import StreamError

__all__ = ["EventSplitter", "iter_lines", "iter_sse"]


def _too_long(what: str) -> StreamError:
    return StreamError(f"the server sent {what} over {limits.size(limits.MAX_EVENT)}: the stream was stopped there")


def iter_sse(lines: Iterable[str]) -> Iterator[tuple[str | None, str]]:
    """Yield ``(event type or None, data)`` per event; comment lines (``: ping``) are skipped. An event
    bigger than MAX_EVENT (many data lines) is a StreamError."""
    event: str | None = None
    data: list[str] = []
    held = 0
    for line in lines:
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data, held = None, [], 0
        elif line.startswith("data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(" ") else value)
            held += len(value)
            if held > limits.MAX_EVENT:
                raise _too_long("an event")
        elif line.startswith("event:"):
            event = line[6:].strip()
        # ":" comments, "id:" and "retry:" carry nothing we use
    if data:
        yield event, "\n".join(data)


def iter_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """Lines from a byte stream, split in bulk (cheaper than httpx2's per-character line decoder) and
    in linear time: each byte is looked at once, however small the chunks a long line comes in. A line
    longer than MAX_EVENT is a StreamError."""
    buffer = bytearray()
    for chunk in chunks:
        searched = len(buffer)  # the part already known to hold no newline
        buffer += chunk
        end = buffer.rfind(b"\n", searched)
        if end == -1:
            if len(buffer) > limits.MAX_EVENT:
                raise _too_long("a line")
            continue
        lines = bytes(buffer[:end]).split(b"\n")
        del buffer[:end + 1]
        for line in lines:
            if len(line) > limits.MAX_EVENT:
                raise _too_long("a line")
            yield line.decode("utf-8", "replace").rstrip("\r")
    if len(buffer) > limits.MAX_EVENT:
        raise _too_long("a line")
    if buffer:
        yield buffer.decode("utf-8", "replace").rstrip("\r")


class EventSplitter:
    """Server-sent events from blocks of bytes, a block (what one read brought) at a time: the events
    it completes, as ``(event type or None, data as bytes)``, with ``iter_sse``'s rules and caps. One
    bytes split a block and a loop over its lines: nothing per byte in Python."""

    def __init__(self) -> None:
        self._rest = b""  # an unfinished last line
        self._event: str | None = None
        self._data: list[bytes] = []
        self._held = 0

    def feed(self, block: bytes) -> list[tuple[str | None, bytes]]:
        text = self._rest + block if self._rest else block
        cut = text.rfind(b"\n")
        self._rest = text[cut + 1:]
        if len(self._rest) > limits.MAX_EVENT:
            raise _too_long("a line")
        if cut == -1:
            return []
        out = []
        for line in text[:cut].split(b"\n"):
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if self._data:
                    out.append((self._event, self._data[0] if len(self._data) == 1 else b"\n".join(self._data)))
                self._event, self._data, self._held = None, [], 0
            elif line.startswith(b"data:"):
                value = line[6:] if line.startswith(b"data: ") else line[5:]
                self._data.append(value)
                self._held += len(value)
                if self._held > limits.MAX_EVENT:
                    raise _too_long("an event")
            elif line.startswith(b"event:"):
                self._event = line[6:].strip().decode("utf-8", "replace")
        return out

    def datas(self, block: bytes) -> list[bytes]:
        """The data of the events ``block`` completes (their types unused: Chat Completions). A block
        of nothing but whole ``data: …`` events, one line each, as vLLM and llama-server send them, is
        split by a few counts and one split in C; anything else goes through ``feed``."""
        if not self._rest and not self._data and block.startswith(b"data: ") and block.endswith(b"\n\n") \
                and len(block) <= limits.MAX_EVENT and b"\r" not in block:
            events = block.count(b"\n\n")
            if block.count(b"\n") == 2 * events and block.count(b"\n\ndata: ") == events - 1:
                return block[6:-2].split(b"\n\ndata: ")  # no newline inside an event: each split is one's data
        return [data for _, data in self.feed(block)]

    def close(self) -> list[tuple[str | None, bytes]]:
        """What is left when the stream ends (an event without its blank line)."""
        out = self.feed(b"\n") if self._rest else []
        if self._data:
            out.append((self._event, b"\n".join(self._data)))
            self._event, self._data, self._held = None, [], 0
        return out
