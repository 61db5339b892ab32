"""The terminal client: command line, session, conversation tree, backends, rendering, slash
commands, scripted probes."""

__all__: list[str] = []
