"""The terminal's line discipline while a reply streams."""

from __future__ import annotations

import sys
from contextlib import contextmanager

__all__ = ["streaming_mode"]


@contextmanager
def streaming_mode(stream=None):
    """No echo and no output flush on Ctrl-C while a reply is drawn: keys typed meanwhile (and the
    ``^C`` echo) would land inside the live view and throw off its redraw, and the kernel's flush
    on Ctrl-C would drop half-written cursor movements. Typed keys wait for the next prompt."""
    try:
        import termios

        fd = (stream or sys.stdin).fileno()
        saved = termios.tcgetattr(fd)
    except (ImportError, OSError, ValueError, AttributeError):  # not a terminal, or not POSIX
        yield
        return
    quiet = termios.tcgetattr(fd)
    quiet[3] = (quiet[3] & ~termios.ECHO) | termios.NOFLSH
    termios.tcsetattr(fd, termios.TCSANOW, quiet)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, saved)
