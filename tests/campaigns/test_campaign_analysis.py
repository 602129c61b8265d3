"""analyze(): hand-made tables with known answers, error messages, JSON shape."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from campaigns import stats as st
from campaigns.analysis import CampaignDataError, analyze, parse_allocation


@pytest.fixture
def three_arms() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    n = 300
    arm = np.repeat(["ctl", "a", "b"], n)
    x = rng.gamma(2.0, 5.0, 3 * n)
    lift = np.select([arm == "a", arm == "b"], [0.1, 0.0], 0.0)
    conv = (rng.random(3 * n) < 0.2 + lift).astype(int)
    spend = conv * (x + rng.gamma(2.0, 3.0, 3 * n))
    visit = np.maximum(conv, (rng.random(3 * n) < 0.4).astype(int))
    return pd.DataFrame({"arm": arm, "conversion": conv, "spend": spend, "visit": visit, "past": x})


def test_means_and_lifts_match_the_building_blocks(three_arms):
    df = three_arms
    res = analyze(df, "arm", "ctl", "conversion,spend")
    assert res.arms == ["ctl", "a", "b"]
    t = res.table
    for arm in ["ctl", "a", "b"]:
        for metric in ["conversion", "spend"]:
            row = t[(t.arm == arm) & (t.metric == metric)].iloc[0]
            vals = df.loc[df.arm == arm, metric]
            assert row["n"] == 300
            assert row["mean"] == pytest.approx(vals.mean())
    r = res.lift("a", "spend")
    ref = st.compare_means(df.loc[df.arm == "a", "spend"], df.loc[df.arm == "ctl", "spend"])
    assert r["abs_lift"] == pytest.approx(ref["diff"])
    assert (r["abs_ci_low"], r["abs_ci_high"]) == pytest.approx((ref["ci_low"], ref["ci_high"]))
    assert r["rel_lift"] == pytest.approx(ref["rel"])
    assert r["p_value"] == pytest.approx(ref["p_value"])
    # rates get a Wilson interval for the mean
    c = t[(t.arm == "a") & (t.metric == "conversion")].iloc[0]
    k = int(df.loc[df.arm == "a", "conversion"].sum())
    assert (c["mean_ci_low"], c["mean_ci_high"]) == pytest.approx(st.wilson_interval(k, 300))
    assert c["kind"] == "rate" and r["kind"] == "mean"
    # control rows carry no lift
    ctl = t[t.is_control]
    assert ctl["abs_lift"].isna().all() and ctl["p_value"].isna().all()


def test_holm_across_treatment_arms(three_arms):
    res = analyze(three_arms, "arm", "ctl", ["conversion"])
    rows = res.table[~res.table.is_control]
    np.testing.assert_allclose(rows["p_value_holm"], st.holm(rows["p_value"].to_numpy()))
    for _, r in rows.iterrows():
        assert r["significant"] == (r["p_value_holm"] < 0.05)


def test_cuped_rows_reduce_variance(three_arms):
    res = analyze(three_arms, "arm", "ctl", "spend", covariate="past")
    cu = res.lift("a", "spend", "cuped")
    raw = res.lift("a", "spend")
    y = three_arms["spend"].to_numpy(float)
    x = three_arms["past"].to_numpy(float)
    y_adj, theta = st.cuped_adjust(y, x)
    m = three_arms.arm.to_numpy()
    ref = st.compare_means(y_adj[m == "a"], y_adj[m == "ctl"])
    assert cu["abs_lift"] == pytest.approx(ref["diff"])
    assert cu["theta"] == pytest.approx(theta)
    assert cu["variance_reduction"] == pytest.approx(1 - (ref["se"] / raw["abs_se"]) ** 2)
    r2 = np.corrcoef(y, x)[0, 1] ** 2
    assert res.cuped["spend"]["expected_variance_reduction"] == pytest.approx(r2)
    # the reduction on one comparison is close to the pooled corr^2 (0.07 here)
    assert 0.03 < cu["variance_reduction"] and abs(cu["variance_reduction"] - r2) < 0.03
    assert cu["mean"] == raw["mean"]  # the table reports raw means


def test_ratio_metric(three_arms):
    res = analyze(three_arms, "arm", "ctl", "spend/visit")
    r = res.lift("b", "spend/visit")
    df = three_arms
    a, c = df[df.arm == "b"], df[df.arm == "ctl"]
    ref = st.compare_ratios(a.spend, a.visit, c.spend, c.visit)
    assert r["kind"] == "ratio"
    assert r["mean"] == pytest.approx(a.spend.sum() / a.visit.sum())
    assert r["abs_lift"] == pytest.approx(ref["diff"]) and r["p_value"] == pytest.approx(
        ref["p_value"]
    )


def test_economics_hand_computed():
    df = pd.DataFrame(
        {
            "g": ["c"] * 4 + ["t"] * 4,
            "spend": [0, 10, 0, 10, 10, 20, 0, 10],
            "disc": [0, 0, 0, 0, 1, 2, 0, 1],
        }
    )
    res = analyze(df, "g", "c", "spend", margin=0.5, cost_per_contact=0.5, discount_col="disc")
    e = res.economics.iloc[0]
    assert e["incremental_revenue"] == pytest.approx(20.0)  # (10 - 5) * 4
    assert e["discount_cost"] == pytest.approx(4.0)  # (1 - 0) * 4
    assert e["contact_cost"] == pytest.approx(2.0)
    assert e["incremental_margin"] == pytest.approx(0.5 * 20 - 4 - 2)
    assert e["roi"] == pytest.approx(4.0 / 6.0)
    assert e["incremental_margin_ci_low"] < 4.0 < e["incremental_margin_ci_high"]


def test_economics_without_margin_leaves_margin_empty():
    df = pd.DataFrame({"g": ["c", "c", "t", "t"], "spend": [0.0, 2.0, 2.0, 4.0]})
    res = analyze(df, "g", "c", "spend")
    e = res.economics.iloc[0]
    assert e["incremental_revenue"] == pytest.approx(4.0)
    assert np.isnan(e["incremental_margin"]) and np.isnan(e["roi"])
    assert any("margin rate not given" in n for n in res.notes)


def test_srm_is_flagged_and_noted():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"arm": ["c"] * 10_000 + ["t"] * 9_500, "y": rng.random(19_500) < 0.1})
    res = analyze(df, "arm", "c", "y")
    assert res.srm.flagged
    assert res.to_dict()["srm"]["flagged"] is True
    assert any("SAMPLE RATIO MISMATCH" in n for n in res.notes)
    # the same split is fine when it was planned
    ok = analyze(df, "arm", "c", "y", allocation={"c": 10_000, "t": 9_500})
    assert not ok.srm.flagged


def test_integer_arm_labels_and_allocation_order():
    df = pd.DataFrame({"arm": [0, 0, 1, 1, 2, 2], "y": [0, 1, 1, 1, 0, 0]})
    res = analyze(df, "arm", "0", "y", allocation="0.5,0.25,0.25")
    assert res.arms == ["0", "1", "2"]
    assert res.srm.expected_shares == {"0": 0.5, "1": 0.25, "2": 0.25}
    assert parse_allocation("1=1, 0=2, 2=1", ["0", "1", "2"]) == {"0": 0.5, "1": 0.25, "2": 0.25}


def test_over_time_cumulative_matches_final_result():
    rng = np.random.default_rng(2)
    n = 400
    df = pd.DataFrame(
        {
            "arm": rng.choice(["c", "t"], n),
            "date": pd.Timestamp("2024-03-01") + pd.to_timedelta(rng.integers(0, 5, n), unit="D"),
            "y": rng.normal(1.0, 1.0, n),
        }
    )
    res = analyze(df, "arm", "c", "y")
    ot = res.over_time
    assert sorted(ot["date"].unique()) == sorted(pd.to_datetime(df["date"].unique()))
    last = ot[ot["date"] == ot["date"].max()]
    t_last = last[last.arm == "t"].iloc[0]
    r = res.lift("t", "y")
    assert t_last["n"] == (df.arm == "t").sum()
    assert t_last["mean"] == pytest.approx(df.loc[df.arm == "t", "y"].mean())
    assert t_last["abs_lift"] == pytest.approx(r["abs_lift"])
    assert (t_last["ci_low"], t_last["ci_high"]) == pytest.approx(
        (r["abs_ci_low"], r["abs_ci_high"])
    )
    first_day = ot[ot["date"] == ot["date"].min()]
    assert (first_day["n"] < last["n"].to_numpy()).all()


def test_to_dict_is_strict_json(three_arms):
    res = analyze(
        three_arms, "arm", "ctl", "conversion,spend,spend/visit", covariate="past", margin=0.3
    )
    d = res.to_dict()
    text = json.dumps(d, allow_nan=False)
    back = json.loads(text)
    m = back["arms"]["a"]["metrics"]["spend"]
    assert set(m) >= {
        "n",
        "mean",
        "lift",
        "ci",
        "p_value",
        "p_value_holm",
        "relative_lift",
        "relative_ci",
        "cuped",
    }
    assert (
        back["arms"]["ctl"]["is_control"] is True
        and "lift" not in back["arms"]["ctl"]["metrics"]["spend"]
    )
    assert back["srm"]["flagged"] is False
    assert back["economics"]["a"]["n"] == 300


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            {"metrics": "conversion,revenue"},
            "missing column\\(s\\) 'revenue' \\(metric 'revenue'\\)",
        ),
        (
            {"metrics": "conversion", "covariate": "pre"},
            "missing column\\(s\\) 'pre' \\(covariate\\)",
        ),
        (
            {"metrics": "conversion", "control": "holdout"},
            "control arm 'holdout' not found in column 'arm'; arms are \\['a', 'b', 'ctl'\\]",
        ),
        ({"metrics": "spend//visit"}, "ratio metrics are written"),
        ({"metrics": ""}, "no metric given"),
        (
            {"metrics": "conversion", "allocation": "0.5,0.5"},
            "allocation has 2 shares but there are 3 arms",
        ),
        ({"metrics": "conversion", "margin": 30.0}, "margin is a rate"),
    ],
)
def test_bad_input_messages(three_arms, kwargs, match):
    args = {"arm": "arm", "control": "ctl"} | kwargs
    with pytest.raises(CampaignDataError, match=match):
        analyze(three_arms, **args)


def test_bad_values_messages():
    df = pd.DataFrame(
        {"arm": ["c", "c", "t", "t"], "y": [1.0, None, 2.0, 3.0], "s": ["1", "x", "2", "3"]}
    )
    with pytest.raises(CampaignDataError, match="metric 'y' column 'y' has 1 missing values"):
        analyze(df, "arm", "c", "y")
    with pytest.raises(CampaignDataError, match="column 's' is not numeric: 1 values such as 'x'"):
        analyze(df, "arm", "c", "s")
    with pytest.raises(CampaignDataError, match="holds only the control arm"):
        analyze(df[df.arm == "c"], "arm", "c", "s")
    one = pd.DataFrame({"arm": ["c", "c", "t"], "y": [1.0, 2.0, 3.0]})
    with pytest.raises(CampaignDataError, match="fewer than 2 customers"):
        analyze(one, "arm", "c", "y")


@pytest.mark.parametrize("metrics", ["spend", "conversion,spend", "spend/visit"])
def test_covariate_that_is_a_metric_is_refused_clearly(three_arms, metrics):
    with pytest.raises(CampaignDataError, match="the covariate must be a pre-period column"):
        analyze(three_arms, "arm", "ctl", metrics, covariate="spend")


def test_covariate_can_be_the_revenue_column(three_arms):
    df = three_arms.assign(past_copy=three_arms["past"])
    res = analyze(df, "arm", "ctl", "conversion", covariate="past", revenue_col="past")
    ref = analyze(df, "arm", "ctl", "conversion", covariate="past", revenue_col="past_copy")
    pd.testing.assert_frame_equal(res.economics, ref.economics)
    pd.testing.assert_frame_equal(res.table, ref.table)
    assert res.lift("a", "conversion", "cuped")["theta"] == pytest.approx(
        st.cuped_theta(df["conversion"], df["past"])
    )


def test_exact_and_constant_lifts_are_noted():
    df = pd.DataFrame(
        {"arm": ["c", "c", "t", "t"], "conv": [0, 0, 1, 1], "amount": [2.0, 2.0, 3.0, 3.0]}
    )
    res = analyze(df, "arm", "c", "conv,amount")
    conv = res.lift("t", "conv")
    assert conv["p_value"] == pytest.approx(1 / 3) and not conv["significant"]
    amount = res.lift("t", "amount")
    assert np.isnan(amount["p_value"]) and np.isnan(amount["abs_ci_low"])
    assert amount["significant"] is None
    assert any("'conv', arm 't'" in n and "Fisher's exact" in n for n in res.notes)
    assert any("'amount', arm 't'" in n and "both arms are constant" in n for n in res.notes)


def test_an_amount_with_no_spend_yet_is_a_mean_not_a_rate():
    # early in a campaign nobody has bought: spend is all 0, which looks like a 0/1 rate
    df = pd.DataFrame({"arm": ["c"] * 6 + ["t"] * 6, "spend": [0.0] * 12, "paid": [0.0] * 12})
    res = analyze(df, "arm", "c", "spend,paid")
    spend = res.lift("t", "spend")
    assert spend["kind"] == "mean" and np.isnan(spend["p_value"])
    assert any("'spend', arm 't'" in n and "both arms are constant" in n for n in res.notes)
    assert res.lift("t", "paid")["kind"] == "rate"  # not an amount: a 0/1 column is a rate
    assert analyze(df, "arm", "c", "paid", revenue_col="paid").lift("t", "paid")["kind"] == "mean"
    df.attrs["amounts"] = ["paid"]  # what the event-log reader marks
    assert analyze(df, "arm", "c", "paid").lift("t", "paid")["kind"] == "mean"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"metrics": "arm"}, "metric 'arm' names the arm column 'arm'"),
        ({"metrics": "spend/arm"}, "metric 'spend/arm' names the arm column 'arm'"),
        ({"metrics": "conversion", "revenue_col": "arm"}, "revenue column names the arm column"),
        ({"metrics": "conversion", "discount_col": "arm"}, "discount column names the arm column"),
    ],
)
def test_arm_column_as_an_outcome_is_refused_clearly(three_arms, kwargs, match):
    # was a bare KeyError('arm') from deep inside analyze
    with pytest.raises(CampaignDataError, match=match):
        analyze(three_arms, "arm", "ctl", **kwargs)


def test_ratio_with_a_zero_denominator_is_noted(three_arms):
    df = three_arms.assign(visit=np.where(three_arms["arm"] == "b", 0, three_arms["visit"]))
    res = analyze(df, "arm", "ctl", "spend/visit")
    assert np.isnan(res.lift("b", "spend/visit")["abs_lift"])
    assert any(
        "ratio 'spend/visit': the denominator 'visit' sums to 0 in arm(s) ['b']" in n
        for n in res.notes
    )


def test_arm_category_without_rows_is_noted(three_arms):
    df = three_arms.astype({"arm": "category"})
    df = df[df["arm"] != "b"]  # the category stays, as in a filtered Parquet file
    assert "b" in df["arm"].cat.categories
    res = analyze(df, "arm", "ctl", "conversion")
    assert res.arms == ["ctl", "a"]
    assert any("arm(s) ['b'] of column 'arm' have no customers" in n for n in res.notes)


def test_roi_without_any_cost_is_noted(three_arms):
    res = analyze(three_arms, "arm", "ctl", "conversion", margin=0.3)
    assert res.economics["roi"].isna().all()
    assert any("ROI is not computed for arm(s) ['a', 'b']" in n for n in res.notes)
    paid = analyze(three_arms, "arm", "ctl", "conversion", margin=0.3, cost_per_contact=0.1)
    assert paid.economics["roi"].notna().all()
    assert not any("ROI is not computed" in n for n in paid.notes)
