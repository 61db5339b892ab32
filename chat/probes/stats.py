"""The statistics a probe report prints, each with its n and its uncertainty (standard library only).

    wilson(k, n)                 Wilson score interval for one proportion
    newcombe(k1, n1, k2, n2)     interval for p1 − p2: Newcombe's hybrid score method (his method 10)
    fisher_exact(k1, n1, k2, n2) two-sided p-value of Fisher's exact test on the 2×2 table
    holm(p_values)               Holm's step-down adjustment for several comparisons
    bonferroni(p_values)         Bonferroni's adjustment (its intervals: alpha / m)
    mean_interval(values)        a mean with its t-interval (Student's t, n − 1 degrees of freedom)
    paired(xs, ys)               the mean paired difference, its t-interval and the paired t-test's p
    cohen_kappa(pairs)           agreement of two raters beyond chance, with its interval from the
                                 large-sample standard error of Fleiss, Cohen and Everitt (1969)
    label_kappas(pairs)          per label: the kappa of "this label or not" (several labels)

Every interval function takes ``alpha`` (0.05: a 95% interval); a family of m comparisons is made
simultaneous by giving each alpha / m (Bonferroni). The t distribution is computed here (the
regularized incomplete beta function by its continued fraction), so the client needs no SciPy; the
tests compare every figure with SciPy's and statsmodels'.

References: Newcombe, Two-sided confidence intervals for the single proportion, Stat Med
1998;17:857–872; Newcombe, Interval estimation for the difference between independent proportions,
Stat Med 1998;17:873–890; Fisher, The Design of Experiments (1935); Holm, Scand J Statist
1979;6:65–70; Cohen, Educ Psychol Meas 1960;20:37–46; Fleiss, Cohen & Everitt, Psychol Bull
1969;72:323–327; Press et al., Numerical Recipes, 3rd ed., §6.4 (the incomplete beta function).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from statistics import NormalDist

__all__ = ["Kappa", "Paired", "Z95", "bonferroni", "cohen_kappa", "fisher_exact", "holm", "label_kappas",
           "mean_interval", "newcombe", "paired", "t_quantile", "t_two_sided", "wilson", "z_for"]

Z95 = 1.959963984540054  # the normal quantile of a two-sided 95% interval


def z_for(alpha: float) -> float:
    """The normal quantile of a two-sided (1 − alpha) interval."""
    return NormalDist().inv_cdf(1 - alpha / 2)


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


def bonferroni(p_values: Sequence[float | None], m: int | None = None) -> list[float | None]:
    """Bonferroni-adjusted p-values, min(1, m·p), for a family of ``m`` (default: the p-values given;
    None stays None)."""
    m = sum(p is not None for p in p_values) if m is None else m
    return [None if p is None else min(1.0, m * p) for p in p_values]


# -- Student's t ---------------------------------------------------------------------------------

def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1 + numerator * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1) < 1e-15:
            break
    return h


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1) / (a + b + 2):
        return front * _beta_fraction(a, b, x) / a
    return 1 - front * _beta_fraction(b, a, 1 - x) / b


def t_two_sided(t: float, df: int) -> float:
    """P(|T| ≥ |t|) for Student's t with ``df`` degrees of freedom."""
    if math.isinf(t):
        return 0.0
    return _incomplete_beta(df / 2, 0.5, df / (df + t * t))


def t_quantile(alpha: float, df: int) -> float:
    """The t with P(|T| ≥ t) = alpha (a two-sided 1 − alpha interval's half-width factor)."""
    low, high = 0.0, 1.0
    while t_two_sided(high, df) > alpha:
        high *= 2
    for _ in range(200):
        middle = (low + high) / 2
        low, high = (middle, high) if t_two_sided(middle, df) > alpha else (low, middle)
    return (low + high) / 2


def mean_interval(values: Sequence[float], alpha: float = 0.05) -> tuple[float, tuple[float, float] | None]:
    """The mean of ``values`` and its t-interval (None with fewer than two values)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, None
    spread = t_quantile(alpha, n - 1) * math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n)
    return mean, (mean - spread, mean + spread)


@dataclass(frozen=True)
class Paired:
    n: int  # pairs
    mean: float  # mean of the differences x − y
    interval: tuple[float, float] | None  # the t-interval at the alpha asked
    p: float | None  # the paired t-test's two-sided p


def paired(xs: Sequence[float], ys: Sequence[float], alpha: float = 0.05) -> Paired | None:
    """The paired comparison of xs with ys (the same units measured twice): the mean difference, its
    t-interval and the paired t-test's p; None with no pair; no interval or p with one, or when every
    difference is the same (no spread to measure the uncertainty by)."""
    diffs = [x - y for x, y in zip(xs, ys)]
    if not diffs:
        return None
    mean, interval = mean_interval(diffs, alpha)
    if interval is None:
        return Paired(1, mean, None, None)
    n = len(diffs)
    se = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1) / n)
    if se == 0:  # every difference the same: the t-test can't say how sure that is (SciPy: nan)
        return Paired(n, mean, None, None)
    return Paired(n, mean, interval, t_two_sided(mean / se, n - 1))


@dataclass(frozen=True)
class Kappa:
    kappa: float | None  # None when chance agreement is total (both raters used one label only)
    n: int  # items both rated
    agreed: int
    interval: tuple[float, float] | None  # from the Fleiss–Cohen–Everitt standard error, at the alpha asked
    se: float | None = None


def cohen_kappa(pairs: Iterable[tuple[str, str]], alpha: float = 0.05) -> Kappa:
    """Agreement of two raters labelling the same items: (label by one, label by the other) pairs.
    The interval is kappa ± z·SE with Fleiss, Cohen and Everitt's (1969) large-sample SE (as
    statsmodels' cohens_kappa), not clipped: a reader sees when it passes 1 or −1."""
    pairs = list(pairs)
    n = len(pairs)
    if n == 0:
        return Kappa(None, 0, 0, None)
    agreed = sum(a == b for a, b in pairs)
    rows, cols, cells = Counter(a for a, _ in pairs), Counter(b for _, b in pairs), Counter(pairs)
    labels = sorted(set(rows) | set(cols))
    row = {label: rows[label] / n for label in labels}
    col = {label: cols[label] / n for label in labels}
    chance = sum(row[label] * col[label] for label in labels)
    if chance >= 1:
        return Kappa(None, n, agreed, None)
    kappa = (agreed / n - chance) / (1 - chance)
    term_a = sum(cells[(i, i)] / n * (1 - (row[i] + col[i]) * (1 - kappa)) ** 2 for i in labels)
    term_b = (1 - kappa) ** 2 * sum(cells[(i, j)] / n * (col[i] + row[j]) ** 2
                                    for i in labels for j in labels if i != j)
    term_c = (kappa - chance * (1 - kappa)) ** 2
    se = math.sqrt(max(0.0, (term_a + term_b - term_c) / (1 - chance) ** 2 / n))
    z = z_for(alpha)
    return Kappa(kappa, n, agreed, (kappa - z * se, kappa + z * se), se)


def label_kappas(pairs: Iterable[tuple[str, str]], alpha: float = 0.05) -> dict[str, Kappa]:
    """For more than two labels: per label, the kappa of "this label or not" (how well the raters
    agree on that label alone)."""
    pairs = list(pairs)
    labels = sorted({label for pair in pairs for label in pair})
    return {label: cohen_kappa([(a == label, b == label) for a, b in pairs], alpha) for label in labels}
