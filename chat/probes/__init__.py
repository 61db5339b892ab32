"""Scripted probes across the persona grid: probe files, runs, judging and reports."""

__all__: list[str] = []
