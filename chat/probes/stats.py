"""The statistics a probe report prints, each with its n and its uncertainty (standard library only).

    wilson(k, n)                 Wilson score 95% interval for one proportion
    newcombe(k1, n1, k2, n2)     95% interval for p1 − p2: Newcombe's hybrid score method (his method 10)
    fisher_exact(k1, n1, k2, n2) two-sided p-value of Fisher's exact test on the 2×2 table
    holm(p_values)               Holm's step-down adjustment for several comparisons
    cohen_kappa(pairs)           agreement of two raters beyond chance, with its 95% interval

References (the tests check the worked examples of each): Newcombe, Two-sided confidence intervals
for the single proportion, Stat Med 1998;17:857–872; Newcombe, Interval estimation for the
difference between independent proportions, Stat Med 1998;17:873–890; Fisher, The Design of
Experiments (1935), the lady tasting tea; Holm, Scand J Statist 1979;6:65–70; Cohen, Educ Psychol
Meas 1960;20:37–46.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["Kappa", "Z95", "cohen_kappa", "fisher_exact", "holm", "newcombe", "wilson"]

Z95 = 1.959963984540054  # the normal quantile of a two-sided 95% interval


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval for k successes in n; None when n is 0 (nothing to estimate)."""
    if n == 0:
        return None
    p = k / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    scale = 1 + z * z / n
    return max(0.0, (centre - spread) / scale), min(1.0, (centre + spread) / scale)


def newcombe(k1: int, n1: int, k2: int, n2: int, z: float = Z95) -> tuple[float, float] | None:
    """The 95% interval for p1 − p2 from the two Wilson intervals (Newcombe's method 10); None when
    either group is empty."""
    a, b = wilson(k1, n1, z), wilson(k2, n2, z)
    if a is None or b is None:
        return None
    p1, p2 = k1 / n1, k2 / n2
    (l1, u1), (l2, u2) = a, b
    d = p1 - p2
    lower = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    upper = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return max(-1.0, lower), min(1.0, upper)


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_exact(k1: int, n1: int, k2: int, n2: int) -> float | None:
    """Two-sided p-value of Fisher's exact test for k1/n1 against k2/n2: the probability, with the
    margins fixed, of every table no more likely than the one seen. None when a group is empty."""
    if n1 == 0 or n2 == 0:
        return None
    successes, total = k1 + k2, n1 + n2
    low, high = max(0, successes - n2), min(successes, n1)

    def log_p(x: int) -> float:  # hypergeometric: x successes in the first group
        return _log_choose(n1, x) + _log_choose(n2, successes - x) - _log_choose(total, successes)

    seen = log_p(k1)
    p = sum(math.exp(log_p(x)) for x in range(low, high + 1) if log_p(x) <= seen + 1e-7)
    return min(1.0, p)


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm-adjusted p-values in the given order (None stays None and is not counted)."""
    known = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(known)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(known):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


@dataclass(frozen=True)
class Kappa:
    kappa: float | None  # None when chance agreement is total (both raters used one label only)
    n: int  # items both rated
    agreed: int
    interval: tuple[float, float] | None  # 95%, from the large-sample standard error


def cohen_kappa(pairs: Iterable[tuple[str, str]]) -> Kappa:
    """Agreement of two raters labelling the same items: (label by one, label by the other) pairs."""
    pairs = list(pairs)
    n = len(pairs)
    if n == 0:
        return Kappa(None, 0, 0, None)
    agreed = sum(a == b for a, b in pairs)
    first, second = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    observed = agreed / n
    chance = sum(first[label] * second[label] for label in first) / (n * n)
    if chance >= 1:
        return Kappa(None, n, agreed, None)
    kappa = (observed - chance) / (1 - chance)
    se = math.sqrt(observed * (1 - observed) / (n * (1 - chance) ** 2))
    return Kappa(kappa, n, agreed, (max(-1.0, kappa - Z95 * se), min(1.0, kappa + Z95 * se)))
