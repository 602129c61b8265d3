"""Hand-computed cases for every statistic, cross-checked against scipy / statsmodels."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from campaigns import stats as st

T = np.array([1.0, 2.0, 3.0, 4.0, 5.0])  # mean 3, var 2.5
C = np.array([2.0, 4.0, 6.0])  # mean 4, var 4


def test_welch_hand_computed_and_matches_scipy():
    r = st.compare_means(T, C)
    se2 = 2.5 / 5 + 4.0 / 3
    assert r["diff"] == pytest.approx(-1.0)
    assert r["se"] == pytest.approx(math.sqrt(se2))
    assert r["df"] == pytest.approx(se2**2 / ((2.5 / 5) ** 2 / 4 + (4.0 / 3) ** 2 / 2))
    ref = stats.ttest_ind(T, C, equal_var=False)
    assert r["t"] == pytest.approx(ref.statistic)
    assert r["p_value"] == pytest.approx(ref.pvalue)
    lo, hi = ref.confidence_interval(0.95)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((lo, hi))


def test_welch_alpha_changes_interval_not_p():
    r95 = st.compare_means(T, C, alpha=0.05)
    r90 = st.compare_means(T, C, alpha=0.10)
    assert r90["p_value"] == r95["p_value"]
    assert r90["ci_high"] - r90["ci_low"] < r95["ci_high"] - r95["ci_low"]
    lo, hi = stats.ttest_ind(T, C, equal_var=False).confidence_interval(0.90)
    assert (r90["ci_low"], r90["ci_high"]) == pytest.approx((lo, hi))


def test_welch_constant_arms():
    # 0/1 arms: exact test instead of a zero-width interval
    r = st.compare_means([1.0, 1.0, 1.0], [1.0, 1.0])
    assert r["p_value"] == 1.0 and r["se"] == 0.0 and r["method"] == "exact"
    assert r["ci_low"] < 0 < r["ci_high"]
    # amounts: no standard error, so no test and no interval (not p = 0, CI [1, 1])
    r = st.compare_means([2.0, 2.0], [1.0, 1.0])
    assert r["diff"] == 1.0 and r["method"] == "none"
    assert math.isnan(r["p_value"]) and math.isnan(r["ci_low"]) and math.isnan(r["ci_high"])
    assert math.isnan(r["rel_ci_low"]) and math.isnan(r["rel_ci_high"])


def test_binary_zero_variance_uses_fisher_and_newcombe():
    # 0/2 vs 2/2: Welch claimed p = 0 and CI [100%, 100%]; Fisher's exact p is 1/3
    r = st.compare_means([1.0, 1.0], [0.0, 0.0])
    assert r["method"] == "exact" and r["diff"] == 1.0
    assert r["p_value"] == pytest.approx(1 / 3)
    assert r["p_value"] == pytest.approx(stats.fisher_exact([[2, 0], [0, 2]]).pvalue)
    assert r["ci_low"] == pytest.approx(-0.1344, abs=1e-4) and r["ci_high"] == 1.0
    # all-zero arms: p = 1 and an interval of positive width around 0
    r = st.compare_means([0.0] * 10, [0.0] * 10)
    assert r["p_value"] == 1.0 and r["ci_low"] < 0 < r["ci_high"]
    assert r["ci_low"] == pytest.approx(-r["ci_high"])


def test_newcombe_interval_matches_published_table():
    # Newcombe (1998), Stat Med 17:873, Table II, method 11 (score, continuity corrected)
    assert st.newcombe_interval(56, 70, 48, 80) == pytest.approx((0.0428, 0.3422), abs=1e-4)
    assert st.newcombe_interval(9, 10, 3, 10) == pytest.approx((0.1013, 0.8387), abs=1e-4)
    assert st.wilson_cc_interval(1, 29) == pytest.approx((0.0018, 0.1963), abs=1e-4)


def test_tiny_binary_counts_use_exact_large_counts_unchanged():
    # 3/40 vs 0/40: too few successes for Welch
    y_t = np.r_[np.ones(3), np.zeros(37)]
    y_c = np.zeros(40)
    r = st.compare_means(y_t, y_c)
    assert r["method"] == "exact"
    assert r["p_value"] == pytest.approx(stats.fisher_exact([[3, 37], [0, 40]]).pvalue)
    # 30/100 vs 20/100: plain Welch, as scipy
    y_t = np.r_[np.ones(30), np.zeros(70)]
    y_c = np.r_[np.ones(20), np.zeros(80)]
    r = st.compare_means(y_t, y_c)
    assert r["method"] == "welch"
    assert r["p_value"] == pytest.approx(stats.ttest_ind(y_t, y_c, equal_var=False).pvalue)


def test_relative_lift_delta_hand_computed():
    r = st.compare_means(T, C)
    # rel = 3/4 - 1; Var = se_t^2/m_c^2 + m_t^2 se_c^2/m_c^4 = 0.5/16 + 9*(4/3)/256
    assert r["rel"] == pytest.approx(-0.25)
    se = math.sqrt(0.5 / 16 + 9 * (4 / 3) / 256)
    assert r["rel_se"] == pytest.approx(se)
    # the same Welch t quantile as the absolute interval
    q = stats.t.ppf(0.975, r["df"])
    assert (r["rel_ci_low"], r["rel_ci_high"]) == pytest.approx((-0.25 - q * se, -0.25 + q * se))


def test_relative_and_absolute_intervals_agree_at_small_n():
    # small arms: a normal quantile made the relative CI exclude 0 while the absolute one did not
    y_t = np.array([10.0, 20.0, 30.0, 25.0])
    y_c = np.array([40.0, 60.0, 10.0, 50.0])
    r = st.compare_means(y_t, y_c)
    assert r["ci_low"] < 0 < r["ci_high"] and r["p_value"] > 0.05
    assert r["rel_ci_low"] < 0 < r["rel_ci_high"]
    q_abs = (r["ci_high"] - r["diff"]) / r["se"]
    q_rel = (r["rel_ci_high"] - r["rel"]) / r["rel_se"]
    assert q_rel == pytest.approx(q_abs) and q_rel > stats.norm.ppf(0.975) + 0.5


def test_relative_lift_zero_control_is_nan():
    r = st.relative_lift_delta(1.0, 0.1, 0.0, 0.1)
    assert math.isnan(r["rel"])


def test_ratio_estimate_hand_computed():
    num, den = [1.0, 2.0, 3.0], [1.0, 1.0, 2.0]
    ratio, se = st.ratio_estimate(num, den)
    # a=2, b=4/3, v_a=1, v_b=1/3, cov=0.5: (v_a/b^2 - 2ac/b^3 + a^2 v_b/b^4)/n
    b = 4 / 3
    var = (1 / b**2 - 2 * 2 * 0.5 / b**3 + 4 * (1 / 3) / b**4) / 3
    assert ratio == pytest.approx(1.5)
    assert se == pytest.approx(math.sqrt(var))
    assert se == pytest.approx(math.sqrt(0.140625 / 3))


def test_ratio_se_agrees_with_bootstrap():
    rng = np.random.default_rng(3)
    visits = rng.poisson(2.0, 4000).astype(float)
    spend = visits * rng.gamma(2.0, 5.0, 4000)
    _, se = st.ratio_estimate(spend, visits)
    boot = []
    for _ in range(400):
        i = rng.integers(0, 4000, 4000)
        boot.append(spend[i].sum() / visits[i].sum())
    assert se == pytest.approx(np.std(boot, ddof=1), rel=0.12)


def test_compare_ratios_uses_delta_for_both_arms():
    num_t, den_t = np.array([1.0, 2.0, 3.0, 0.0]), np.array([1.0, 1.0, 2.0, 1.0])
    num_c, den_c = np.array([1.0, 0.0, 2.0]), np.array([1.0, 1.0, 1.0])
    r = st.compare_ratios(num_t, den_t, num_c, den_c)
    rt, set_ = st.ratio_estimate(num_t, den_t)
    rc, sec = st.ratio_estimate(num_c, den_c)
    assert r["diff"] == pytest.approx(rt - rc)
    assert r["se"] == pytest.approx(math.hypot(set_, sec))
    assert r["p_value"] == pytest.approx(2 * stats.norm.sf(abs(rt - rc) / math.hypot(set_, sec)))
    assert r["rel"] == pytest.approx(rt / rc - 1)


def test_cuped_theta_is_ols_slope_and_variance_drops_by_r2():
    rng = np.random.default_rng(0)
    x = rng.normal(10, 3, 500)
    y = 2.0 + 0.7 * x + rng.normal(0, 2, 500)
    theta = st.cuped_theta(y, x)
    assert theta == pytest.approx(np.polyfit(x, y, 1)[0])
    y_adj, th = st.cuped_adjust(y, x)
    assert th == theta
    assert y_adj.mean() == pytest.approx(y.mean())
    r2 = np.corrcoef(x, y)[0, 1] ** 2
    assert y_adj.var(ddof=1) == pytest.approx(y.var(ddof=1) * (1 - r2))


def test_cuped_constant_covariate_is_a_no_op():
    y = np.array([1.0, 2.0, 4.0])
    y_adj, theta = st.cuped_adjust(y, [5.0, 5.0, 5.0])
    assert theta == 0.0
    np.testing.assert_allclose(y_adj, y)


def test_wilson_matches_statsmodels():
    for k, n in [(0, 20), (3, 40), (122, 21306), (40, 40)]:
        lo, hi = st.wilson_interval(k, n, 0.05)
        ref = proportion_confint(k, n, alpha=0.05, method="wilson")
        assert (lo, hi) == pytest.approx(ref)


def test_mean_interval_t_for_amounts():
    lo, hi = st.mean_interval(T)
    ref = stats.t.interval(0.95, 4, loc=3.0, scale=math.sqrt(2.5 / 5))
    assert (lo, hi) == pytest.approx(ref)


def test_mean_interval_of_constant_amounts_is_undefined_not_certain():
    assert all(math.isnan(v) for v in st.mean_interval([5.0, 5.0, 5.0]))
    with pytest.raises(ValueError, match="at least 2"):
        st.mean_interval([7.5])
    # 0/1 data keep Wilson's interval, which has width even for a constant arm
    lo, hi = st.mean_interval([0.0, 0.0, 0.0])
    assert lo == pytest.approx(0.0, abs=1e-12) and hi > 0.3


def test_srm_flags_five_percent_loss_at_20000():
    res = st.srm_test({"control": 10_000, "treatment": 9_500})
    chi2 = 2 * 250**2 / 9_750
    assert res.chi2 == pytest.approx(chi2)
    assert res.p_value == pytest.approx(stats.chi2.sf(chi2, 1))
    assert res.p_value < 0.001 and res.flagged
    assert "SAMPLE RATIO MISMATCH" in res.message()


def test_srm_healthy_split_and_custom_allocation():
    ok = st.srm_test({"a": 10_000, "b": 10_050})
    assert not ok.flagged and ok.p_value > 0.5
    # 20/80 plan observed as 20/80: fine; checked against scipy.
    res = st.srm_test({"c": 2_000, "t": 8_100}, {"c": 0.2, "t": 0.8})
    ref = stats.chisquare([2_000, 8_100], [0.2 * 10_100, 0.8 * 10_100])
    assert res.p_value == pytest.approx(ref.pvalue) and not res.flagged
    # the same counts against an equal split are flagged
    assert st.srm_test({"c": 2_000, "t": 8_100}).flagged
    assert st.srm_test({"c": 2_000, "t": 8_100}, [20, 80]).expected_shares == {"c": 0.2, "t": 0.8}


def test_srm_allocation_errors():
    with pytest.raises(ValueError, match="missing \\['t'\\]"):
        st.srm_test({"c": 10, "t": 10}, {"c": 0.5})
    with pytest.raises(ValueError, match="has 3 shares but the data has 2 arms"):
        st.srm_test({"c": 10, "t": 10}, [1, 1, 1])
    with pytest.raises(ValueError, match="at least 2 arms"):
        st.srm_test({"c": 10})


def test_holm_matches_statsmodels():
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 0.1, 7)
    np.testing.assert_allclose(st.holm(p), multipletests(p, method="holm")[1])
    # hand case: sorted 0.01, 0.02, 0.04 -> 0.03, 0.04, 0.04
    np.testing.assert_allclose(st.holm([0.04, 0.01, 0.02]), [0.04, 0.03, 0.04])


def test_holm_ignores_nan():
    out = st.holm([0.01, np.nan, 0.04])
    assert math.isnan(out[1])
    np.testing.assert_allclose(out[[0, 2]], [0.02, 0.04])


def test_input_validation_messages():
    with pytest.raises(ValueError, match="at least 2 observations"):
        st.compare_means([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="1 missing or infinite"):
        st.compare_means([1.0, np.nan, 2.0], [1.0, 2.0])
