"""The terminal's line discipline while a reply streams."""

from __future__ import annotations

import sys
from contextlib import contextmanager

__all__ = ["discard_type_ahead", "streaming_mode"]


@contextmanager
def streaming_mode(stream=None):
    """No echo and no output flush on Ctrl-C while a reply is drawn: keys typed meanwhile (and the
    ``^C`` echo) would land inside the live view and throw off its redraw, and the kernel's flush
    on Ctrl-C would drop half-written cursor movements. Typed keys wait for the next prompt."""
    try:
        import termios
    except ImportError:  # not POSIX
        yield
        return
    try:
        fd = (stream or sys.stdin).fileno()
        saved = termios.tcgetattr(fd)
        quiet = termios.tcgetattr(fd)
        # ISIG on whatever state the terminal was left in: Ctrl-C must stop the reply (a raw mode some
        # earlier prompt left behind would make it a plain character, seen against a real vLLM)
        quiet[3] = (quiet[3] & ~termios.ECHO) | termios.NOFLSH | termios.ISIG
        termios.tcsetattr(fd, termios.TCSANOW, quiet)
    except (termios.error, OSError, ValueError, AttributeError):  # not a terminal (termios.error is no OSError)
        yield
        return
    try:
        yield
    finally:
        try:
            termios.tcsetattr(fd, termios.TCSANOW, saved)
        except (termios.error, OSError):  # the terminal went away meanwhile (a closed window)
            pass


def discard_type_ahead() -> None:
    """Throw away keys typed before a question is on screen (run as a prompt's ``pre_run``): only a
    key pressed once the question is seen may answer it — an approval, a verdict."""
    from prompt_toolkit.application import get_app
    from prompt_toolkit.input.typeahead import clear_typeahead

    try:
        import termios

        termios.tcflush(sys.stdin.fileno(), termios.TCIFLUSH)  # keys the kernel still holds
    except ImportError:  # not POSIX
        pass
    except (termios.error, OSError, ValueError):  # not a terminal: nothing typed ahead there
        pass
    clear_typeahead(get_app().input)  # keys an earlier prompt read but did not use
