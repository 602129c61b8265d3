"""Sample size and MDE: hand formulas, statsmodels, and a simulated power check."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.power import NormalIndPower

from campaigns import stats as st
from campaigns.design import baseline_from_data, mde, sample_size

Z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)


def test_conversion_sample_size_hand_formula():
    # 5% -> 5.5%, 50/50: N = Z^2 (p1q1/0.5 + p2q2/0.5) / d^2
    d = sample_size(0.05, 0.10)
    n_total = Z**2 * (0.05 * 0.95 / 0.5 + 0.055 * 0.945 / 0.5) / 0.005**2
    assert d.n_per_treatment == math.ceil(n_total / 2)
    assert d.n_control == math.ceil(n_total / 2)
    assert d.n_total == 2 * math.ceil(n_total / 2)
    assert d.mde_abs == pytest.approx(0.005) and d.mde_rel == pytest.approx(0.10)
    # absolute spelling of the same effect gives the same design
    assert sample_size(0.05, 0.005, relative=False).n_total == d.n_total


def test_revenue_sample_size_matches_statsmodels_with_unequal_split():
    d = sample_size(10.0, 0.05, metric="revenue", sd=30.0, control_share=0.2)
    # ratio = n_treatment / n_control = 0.8 / 0.2
    n_control = NormalIndPower().solve_power(
        effect_size=0.5 / 30.0, alpha=0.05, power=0.8, ratio=4.0
    )
    assert d.n_control == pytest.approx(n_control, rel=1e-4)
    assert d.n_per_treatment == pytest.approx(4 * n_control, rel=1e-4)


def test_multiple_arms_use_bonferroni_and_split_the_rest():
    one = sample_size(0.1, 0.1)
    three = sample_size(0.1, 0.1, n_treatments=3, control_share=0.25)
    assert three.alpha_per_test == pytest.approx(0.05 / 3)
    assert three.n_total > one.n_total
    assert three.n_per_treatment == pytest.approx(three.n_control, rel=1e-3)  # 0.25 each


def test_mde_inverts_sample_size():
    for metric, base, sd in [("conversion", 0.02, None), ("revenue", 5.0, 20.0)]:
        d = sample_size(base, 0.15, metric=metric, sd=sd, control_share=0.3)
        back = mde(d.n_total, base, metric=metric, sd=sd, control_share=0.3)
        assert back.mde_rel == pytest.approx(0.15, rel=2e-3)


def test_mde_revenue_closed_form():
    d = mde(10_000, 2.0, metric="revenue", sd=10.0)
    assert d.mde_abs == pytest.approx(Z * 10.0 * math.sqrt(2 / 5000))


def test_design_delivers_its_power_in_simulation():
    d = sample_size(0.10, 0.20)  # 10% -> 12%
    rng = np.random.default_rng(7)
    sims = 600
    k_c = rng.binomial(d.n_control, 0.10, sims)
    k_t = rng.binomial(d.n_per_treatment, 0.12, sims)
    rejected = 0
    for kc, kt in zip(k_c, k_t, strict=True):
        pc, pt = kc / d.n_control, kt / d.n_per_treatment
        vc = pc * (1 - pc) * d.n_control / (d.n_control - 1)
        vt = pt * (1 - pt) * d.n_per_treatment / (d.n_per_treatment - 1)
        w = st.welch_from_moments(pt, vt, d.n_per_treatment, pc, vc, d.n_control)
        rejected += w["p_value"] < 0.05
    assert rejected / sims == pytest.approx(0.80, abs=0.05)


def test_baseline_from_data():
    assert baseline_from_data([0, 1, 0, 0]) == ("conversion", 0.25, pytest.approx(0.5))
    kind, mean, sd = baseline_from_data([0.0, 10.0, 2.0])
    assert kind == "revenue" and mean == 4.0 and sd == pytest.approx(np.std([0, 10, 2], ddof=1))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"baseline": 1.5, "mde": 0.1}, "baseline conversion rate must be in \\(0, 1\\)"),
        (
            {"baseline": 0.5, "mde": 0.1, "metric": "revenue"},
            "needs a positive per-customer standard deviation",
        ),
        ({"baseline": 0.5, "mde": -0.1}, "mde must be positive"),
        ({"baseline": 0.5, "mde": 0.1, "control_share": 1.0}, "control_share must be in"),
        ({"baseline": 0.9, "mde": 0.2}, "outside \\(0, 1\\)"),
        ({"baseline": 0.5, "mde": 0.1, "metric": "visits"}, "metric must be"),
        (
            {"baseline": 0.0, "mde": 0.1, "metric": "revenue", "sd": 1.0},
            "a relative mde needs a positive baseline, got baseline 0.0",
        ),
        (
            {"baseline": -2.0, "mde": 0.1, "metric": "revenue", "sd": 1.0},
            "a relative mde needs a positive baseline",
        ),
        # non-finite inputs: were an OverflowError traceback (sd) or a silent n = 0 design
        ({"baseline": 5.0, "mde": 0.1, "metric": "revenue", "sd": math.inf}, "standard deviation"),
        ({"baseline": math.inf, "mde": 0.1, "metric": "revenue", "sd": 3.0}, "finite"),
        (
            {"baseline": 5.0, "mde": math.inf, "metric": "revenue", "sd": 3.0, "relative": False},
            "mde must be positive and finite",
        ),
    ],
)
def test_design_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sample_size(**kwargs)


def test_revenue_zero_baseline_with_absolute_mde():
    # an absolute effect needs no baseline: n = 2 * 2 * (Z * sd / mde)^2 in total, 50/50
    d = sample_size(0.0, 0.1, metric="revenue", sd=1.0, relative=False)
    assert d.n_control == math.ceil(2 * (Z / 0.1) ** 2)
    assert math.isnan(d.mde_rel)


def test_baseline_from_a_text_column_names_it():
    import pandas as pd

    with pytest.raises(ValueError, match="column 'channel' is not numeric"):
        baseline_from_data(pd.Series(["Web", "Phone"], name="channel"))
