"""Supervising the processes chat starts — a tool's commands, a model server — so that every one of them,
and whatever it starts however it detaches, ends when it should: at a timeout, on Ctrl-C, when chat
ends, even by SIGKILL. Used by tools/ (bash) and serve/ (the servers); knows nothing of either.

    processes   starting a command under its supervisor, ending jobs, the client's guard (subreaper)
    reaper      the supervisor itself: a small program of its own, run by path
"""

__all__: list[str] = []
