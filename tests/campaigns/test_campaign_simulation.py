"""Statistical honesty by simulation (fixed seeds, seconds): A/A false positives, CI coverage
with and without CUPED, SRM power. Larger runs: benchmarks/campaigns_simulation.py."""

from __future__ import annotations

import pytest
from scipy import stats

from campaigns.validation import (
    TRUE_MEANS,
    simulate_arm,
    simulate_tests,
    srm_detection_rate,
    summarise_tests,
)

N_SIMS = 1000
N_PER_ARM = 1000


@pytest.mark.parametrize("metric", ["revenue", "conversion"])
def test_aa_false_positive_rate_is_five_percent(metric):
    s = summarise_tests(simulate_tests(N_SIMS, N_PER_ARM, metric, lift=0.0, seed=101), metric, 0.0)
    for adj in ("none", "cuped"):
        assert s.loc[adj, "rejection_rate"] == pytest.approx(0.05, abs=0.015), (metric, adj)


@pytest.mark.parametrize("metric", ["revenue", "conversion"])
def test_ci_covers_known_effect_95_percent(metric):
    lift = 0.05
    s = summarise_tests(
        simulate_tests(N_SIMS, N_PER_ARM, metric, lift=lift, seed=202), metric, lift
    )
    for adj in ("none", "cuped"):
        assert s.loc[adj, "coverage_abs"] == pytest.approx(0.95, abs=0.015), (metric, adj)
        assert s.loc[adj, "coverage_rel"] == pytest.approx(0.95, abs=0.015), (metric, adj)
    # CUPED narrows the interval by about corr(x, y)^2 and power goes up accordingly
    expected = {"revenue": 0.27, "conversion": 0.06}[metric]
    assert s.loc["cuped", "variance_reduction"] == pytest.approx(expected, abs=0.03)


def test_simulated_means_are_the_documented_truth():
    import numpy as np

    rng = np.random.default_rng(0)
    for metric, mean in TRUE_MEANS.items():
        y, _ = simulate_arm(400_000, metric, 0.1, rng)
        assert y.mean() == pytest.approx(mean * 1.1, rel=0.01)


def test_srm_detects_five_percent_loss_at_20000():
    res = srm_detection_rate(n_total=20_000, loss=0.05, n_sims=2000, seed=3)
    assert res["expected_counts_flagged"] and res["expected_counts_p_value"] < 0.001
    # power of the chi-square test against a 5% loss: non-central chi2 with the expected statistic
    half = 10_000
    kept = half * 0.95
    m = (half + kept) / 2
    lam = ((half - m) ** 2 + (kept - m) ** 2) / m
    power = stats.ncx2.sf(stats.chi2.isf(0.001, 1), 1, lam)
    assert res["detection_rate"] == pytest.approx(power, abs=0.04)
    healthy = srm_detection_rate(n_total=20_000, loss=0.0, n_sims=2000, seed=4)
    assert healthy["detection_rate"] < 0.005
    assert (
        srm_detection_rate(n_total=40_000, loss=0.05, n_sims=1000, seed=5)["detection_rate"] > 0.9
    )
