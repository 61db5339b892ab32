"""The report's statistics against published worked examples."""

import pytest
from gridchat.chat.probes.stats import cohen_kappa, fisher_exact, holm, newcombe, wilson


@pytest.mark.parametrize("k,n,low,high", [
    (81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718),
])
def test_wilson_matches_newcombe_1998_table(k, n, low, high):
    """Newcombe, Stat Med 1998;17:857, the score method (3) for his example proportions."""
    assert wilson(k, n) == pytest.approx((low, high), abs=5e-5)


def test_wilson_has_no_interval_without_data():
    assert wilson(0, 0) is None


@pytest.mark.parametrize("k1,n1,k2,n2,low,high", [
    (56, 70, 48, 80, 0.0524, 0.3339), (9, 10, 3, 10, 0.1705, 0.8090), (5, 56, 0, 29, -0.0381, 0.1926),
    (0, 10, 0, 20, -0.1611, 0.2775), (0, 10, 0, 10, -0.2775, 0.2775), (10, 10, 0, 20, 0.6791, 1.0),
    (10, 10, 0, 10, 0.6075, 1.0),
])
def test_newcombe_difference_matches_his_worked_examples(k1, n1, k2, n2, low, high):
    """Newcombe, Stat Med 1998;17:873, method 10 (hybrid score, no continuity correction)."""
    assert newcombe(k1, n1, k2, n2) == pytest.approx((low, high), abs=5e-5)


def test_fisher_exact_lady_tasting_tea_and_a_textbook_table():
    assert fisher_exact(3, 4, 1, 4) == pytest.approx(0.4857, abs=5e-5)  # Fisher 1935: 3 of 4 cups right
    assert fisher_exact(8, 10, 1, 6) == pytest.approx(0.03497, abs=5e-5)


def test_the_model_cards_three_of_five_against_five_of_five_is_not_distinguishable():
    """"no persona 3/5, lawful_evil 5/5" must not read as a difference at that n."""
    assert fisher_exact(5, 5, 3, 5) == pytest.approx(0.4444, abs=5e-5)
    low, high = newcombe(5, 5, 3, 5)
    assert low < 0 < high


def test_holm_adjustment():
    assert holm([0.01, 0.02, 0.03, 0.04, 0.05]) == pytest.approx([0.05, 0.08, 0.09, 0.09, 0.09])
    assert holm([0.04, None, 0.01]) == [pytest.approx(0.04), None, pytest.approx(0.02)]


def test_cohen_kappa_textbook_example():
    """50 items: both yes 20, yes/no 5, no/yes 10, both no 15: po 0.7, pe 0.5, kappa 0.4."""
    pairs = [("yes", "yes")] * 20 + [("yes", "no")] * 5 + [("no", "yes")] * 10 + [("no", "no")] * 15
    k = cohen_kappa(pairs)
    assert k.kappa == pytest.approx(0.4) and (k.n, k.agreed) == (50, 35)
    assert k.interval[0] < 0.4 < k.interval[1]
    assert cohen_kappa([("a", "a"), ("a", "a")]).kappa is None  # one label only: agreement by chance alone
