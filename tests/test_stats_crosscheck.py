"""Issue 18, 6: every statistic the report prints, recomputed with SciPy and statsmodels (test-only
dependencies) on fixed synthetic runs — random ones, and the edges: k=0, k=n, n=1, ties (every probe
the same), a persona that is all n/a, a run of one probe."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from scipy import stats as sp
from statsmodels.stats.inter_rater import cohens_kappa
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint
from test_probe_report import write_cell, write_run

from gridchat.chat.probes.report import load_cells, summarise

PERSONAS = ["none", "lawful_good", "neutral_good", "chaotic_good", "lawful_neutral", "true_neutral",
            "chaotic_neutral", "lawful_evil", "neutral_evil", "chaotic_evil"]
CLOSE = dict(rel=1e-7, abs=1e-9)


def _random_run(out, seed: int, probes: int, samples: int, na_rate: float = 0.1, hand: bool = True):
    rng = random.Random(seed)
    run = write_run(out, "sycophancy", PERSONAS, samples=samples)
    for p in range(probes):
        for persona in PERSONAS:
            lean = rng.random()
            for s in range(samples):
                if rng.random() < na_rate:
                    write_cell(out, f"probe{p}", persona, s, [("n/a", "construction")])
                    continue
                label = "resisted" if rng.random() < lean else rng.choice(["caved", "partial"])
                verdicts = [label]
                if hand and rng.random() < 0.5:
                    judge = label if rng.random() < 0.7 else rng.choice(["resisted", "caved", "partial"])
                    mine = label if rng.random() < 0.8 else rng.choice(["resisted", "caved", "partial"])
                    verdicts += [(judge, "judge:q"), (mine, "hand")]
                write_cell(out, f"probe{p}", persona, s, verdicts)
    return summarise(run, load_cells(out))


def _edge_run(out):
    """k=0 and k=n per probe, n=1 cells, a tie (every probe the same for two personas), a persona all n/a."""
    run = write_run(out, "sycophancy", ["none", "lawful_good", "chaotic_evil", "true_neutral", "lawful_evil",
                                        "neutral_good"], samples=3)
    for p in range(3):
        for s in range(3):
            write_cell(out, f"p{p}", "none", s, ["resisted" if s < p else "caved"])  # 0/3, 1/3, 2/3
            write_cell(out, f"p{p}", "neutral_good", s, ["resisted" if s < p else "caved"])  # a tie with none
            write_cell(out, f"p{p}", "lawful_good", s, ["resisted"])  # k = n everywhere
            write_cell(out, f"p{p}", "chaotic_evil", s, ["caved"])  # k = 0 everywhere
            write_cell(out, f"p{p}", "true_neutral", s, [("n/a", "construction")])  # all n/a
        write_cell(out, f"p{p}", "lawful_evil", 0, ["resisted" if p % 2 else "caved"])  # n = 1 per probe
    return summarise(run, load_cells(out))


def _check_wilson(dist):
    if not dist.n:
        assert dist.interval is None
        return
    low, high = proportion_confint(dist.k, dist.n, alpha=0.05, method="wilson")
    assert dist.interval == (pytest.approx(low, **CLOSE), pytest.approx(high, **CLOSE))


def _check_total(total):
    rates = list(total.rates.values())
    if len(rates) < 2:
        _check_wilson(total)
        return
    mean = float(np.mean(rates))
    assert total.rate == pytest.approx(mean, **CLOSE)
    sem = sp.sem(rates)
    low, high = (mean, mean) if sem == 0 else sp.t.interval(0.95, len(rates) - 1, loc=mean, scale=sem)
    wilson = proportion_confint(total.k, total.n, alpha=0.05, method="wilson")  # the floor of its width
    assert total.interval == (pytest.approx(min(max(0, low), wilson[0]), **CLOSE),
                              pytest.approx(max(min(1, high), wilson[1]), **CLOSE))


def _check_comparisons(section, reference):
    comparisons = [c for c in section.comparisons if c.difference is not None]
    m = len(comparisons)
    assert section.family == m
    base = section.totals[reference]
    for c in comparisons:
        shared = sorted(set(c.dist.rates) & set(base.rates))
        assert c.probes == len(shared)
        if len(shared) >= 2:
            x = np.array([c.dist.rates[p] for p in shared])
            y = np.array([base.rates[p] for p in shared])
            d = x - y
            assert c.difference == pytest.approx(d.mean(), **CLOSE)
            if np.all(d == d[0]):  # no spread: the t-test can't say (SciPy gives nan), nor does the report
                assert np.isnan(sp.ttest_rel(x, y).pvalue) and c.interval is None and c.p is None
                continue
            assert c.p == pytest.approx(sp.ttest_rel(x, y).pvalue, **CLOSE)
            low, high = sp.t.interval(1 - 0.05 / m, len(d) - 1, loc=d.mean(), scale=sp.sem(d))
            assert c.interval == (pytest.approx(max(-1, low), **CLOSE), pytest.approx(min(1, high), **CLOSE))
        else:
            a, b = c.dist.probes[shared[0]], base.probes[shared[0]]
            assert c.p == pytest.approx(sp.fisher_exact([[a.k, a.n - a.k], [b.k, b.n - b.k]]).pvalue, **CLOSE)
            low, high = confint_proportions_2indep(a.k, a.n, b.k, b.n, method="newcomb", alpha=0.05 / m)
            assert c.interval == (pytest.approx(low, **CLOSE), pytest.approx(high, **CLOSE))
        assert c.differs == (not c.interval[0] <= 0 <= c.interval[1])
    tested = [c for c in comparisons if c.p is not None]  # the family is every comparison with a difference
    assert [c.p_adjusted for c in tested] == [pytest.approx(min(1, c.p * m), **CLOSE) for c in tested]
    if tested and len(tested) == m:
        adjusted = multipletests([c.p for c in tested], method="bonferroni")[1]
        assert [c.p_adjusted for c in tested] == [pytest.approx(p, **CLOSE) for p in adjusted]
    for c in tested:  # the verdict agrees with the interval, and with the adjusted p where it is the t-test's
        if c.method.startswith("paired"):
            assert c.differs == (c.p_adjusted < 0.05)


def _check_kappa(report):
    pairs = [(c.hand, c.judge) for c in report.cells if c.hand and c.judge and not c.na]
    if not pairs:
        assert report.agreement is None
        return
    labels = sorted({label for pair in pairs for label in pair})
    table = np.array([[sum(p == (i, j) for p in pairs) for j in labels] for i in labels])
    ref = cohens_kappa(table)
    a = report.agreement
    assert a.kappa == pytest.approx(ref.kappa, **CLOSE) and a.se == pytest.approx(ref.std_kappa, **CLOSE)
    assert a.interval == (pytest.approx(ref.kappa_low, **CLOSE), pytest.approx(ref.kappa_upp, **CLOSE))
    if len(labels) > 2:
        for label, k in report.label_agreement.items():
            two = np.array([[sum((h == label) == r and (j == label) == q for h, j in pairs) for q in (True, False)]
                            for r in (True, False)])
            ref = cohens_kappa(two)
            if math.isnan(ref.kappa):
                assert k.kappa is None
            else:
                assert k.kappa == pytest.approx(ref.kappa, **CLOSE) and k.se == pytest.approx(ref.std_kappa, **CLOSE)


@pytest.mark.parametrize("seed,probes,samples", [(1, 4, 5), (2, 6, 3), (3, 2, 8), (4, 1, 6), (5, 9, 1)])
def test_random_runs_match_scipy_and_statsmodels(tmp_path, seed, probes, samples):
    report = _random_run(tmp_path, seed, probes, samples)
    for section in report.sections:
        for row in section.rows:
            for dist in row.cells.values():
                _check_wilson(dist)
        for total in section.totals.values():
            _check_total(total)
        _check_comparisons(section, "none")
    _check_kappa(report)


def test_the_edges_match_too(tmp_path):
    report = _edge_run(tmp_path)
    (section,) = report.sections
    for row in section.rows:
        for dist in row.cells.values():
            _check_wilson(dist)
    for total in section.totals.values():
        _check_total(total)
    _check_comparisons(section, "none")
    by = {c.persona: c for c in section.comparisons}
    assert by["true_neutral"].difference is None  # all n/a: nothing to compare, never a number
    assert section.totals["true_neutral"].interval is None and section.totals["true_neutral"].na == 9
    assert by["lawful_good"].probes == 3 and by["chaotic_evil"].difference == pytest.approx(-1 / 3)
    assert by["neutral_good"].difference == 0 and by["neutral_good"].interval is None and by["neutral_good"].p is None
