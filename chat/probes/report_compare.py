"""How the comparisons of a probe report read, shared by the terminal and the page: the tables'
groups and their headings, and the columns before the figures. Without an adapter axis (or with a
reference lane) the comparisons with the reference are one table, each row a lane; with one, a group
per adapter setting, headed by it and the reference's lane there, each row a persona. The adapter's
own comparisons (each persona's fine-tune against its base) are grouped by setting too."""

from __future__ import annotations

from collections.abc import Callable

from .report import Comparison, Dist, Report, Section, adapter_text, headline

__all__ = ["comparison_title", "groups", "lead_columns"]


def _rate(dist: Dist) -> str:
    return f"{dist.rate:.0%}" if dist.rate is not None else "–"


def comparison_title(report: Report, section: Section, adapter: bool = False) -> str:
    if adapter:
        return f"{section.measure}: the adapter against the base ({report.base}), persona by persona"
    reference = report.reference
    if reference in section.totals:
        return f"{section.measure}: each persona against {reference} ({headline(section.totals[reference])})"
    return f"{section.measure}: each persona against {reference} at the same adapter setting"


def groups(report: Report, section: Section, adapter: bool = False) -> list[tuple[str | None, list[Comparison]]]:
    """(heading, comparisons) as a table shows them: one group without a heading, or one per adapter
    setting (see the module's docstring)."""
    comparisons = section.adapter_comparisons if adapter else section.comparisons
    if not adapter and report.reference in section.totals:
        return [(None, comparisons)]
    by_setting: dict = {}
    for c in comparisons:
        by_setting.setdefault(report.lanes[c.persona].adapter, []).append(c)
    out = []
    for setting, group in by_setting.items():
        against = group[0].against  # one per setting: the reference's lane there
        heading = f"{adapter_text(setting, report.base)} against " + (
            adapter_text(report.base) if adapter else f"{against} ({headline(section.totals[against])})")
        out.append((heading, group))
    return out


def lead_columns(report: Report, section: Section, adapter: bool = False) -> list[tuple[str, Callable]]:
    """The columns before the figures, (header, comparison -> text): the lane (the persona alone where
    its group is headed by the setting) and its rate; for the adapter's, the base's rate before it."""
    if adapter:
        return [("persona", lambda c: report.lanes[c.persona].persona),
                ("base", lambda c: _rate(section.totals[c.against])), ("rate", lambda c: _rate(c.dist))]
    if report.reference in section.totals:
        return [("persona", lambda c: c.persona), ("rate", lambda c: _rate(c.dist))]
    return [("persona", lambda c: report.lanes[c.persona].persona), ("rate", lambda c: _rate(c.dist))]
