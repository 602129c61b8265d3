"""Value family on a planted shop: customers with known spend rates must be ordered by them."""

from __future__ import annotations

import pandas as pd
import pytest
from scipy.stats import spearmanr
from test_churn import START, planted_shop

from training import value
from training.tiers import TIERS, TREATMENTS
from training.value import ValueConfig, ValueModel

CUTOFF = pd.Timestamp("2017-07-03")
FAST = {
    "train_cutoffs": 4,
    "lgbm": {"n_estimators": 150, "learning_rate": 0.05, "min_child_samples": 20},
}


@pytest.fixture(scope="module")
def shop():
    return planted_shop(n=200, days=300, seed=1)


@pytest.fixture(scope="module")
def fitted(shop):
    tables, _ = shop
    return ValueModel(ValueConfig.from_dict(FAST)).fit(tables, CUTOFF)


@pytest.fixture(scope="module")
def predictions(shop, fitted):
    tables, _ = shop
    return fitted.predict(tables, CUTOFF).set_index("customer_id")


def test_value_ordering_follows_planted_spend_rates(shop, predictions):
    tables, truth = shop
    day = (CUTOFF - START).days
    # customers who keep buying through the window: expected 90-day spend = 90 * rate * value
    stays = truth[truth["stop_day"] > day + 90].index.intersection(predictions.index)
    planted = 90 * truth.loc[stays, "rate"] * truth.loc[stays, "value"]
    rho = spearmanr(predictions.loc[stays, "expected_spend_90d"], planted).statistic
    assert rho > 0.8, rho
    # within a factor ~1.5 of the planted level on average (not just the order)
    ratio = predictions.loc[stays, "expected_spend_90d"].sum() / planted.sum()
    assert 0.65 < ratio < 1.5, ratio
    # customers already gone (stopped 30+ days before the cutoff) are predicted near zero
    gone = truth[truth["stop_day"] < day - 30].index.intersection(predictions.index)
    assert len(gone) >= 5
    assert predictions.loc[gone, "expected_spend_90d"].median() < 0.2 * planted.median()


def test_prediction_columns_and_domains(predictions):
    p = predictions
    for c in ("expected_spend_90d", "clv_1y", "p_alive", "tier", "grid_cell", "treatment"):
        assert c in p.columns, c
    assert (p["expected_spend_90d"] >= 0).all()
    # months 1-3 of the CLV are the 90-day forecast discounted at 1% a month (factor 0.9803)
    assert (p["clv_1y"] >= 0.9803 * p["expected_spend_90d"] - 1e-9).all()
    assert (p["clv_1y"] > p["expected_spend_90d"]).mean() > 0.5
    assert p["p_alive"].between(0, 1).all()
    assert set(p["tier"]) <= set(TIERS)
    assert set(p["treatment"]) <= set(TREATMENTS)
    # top 20% by predicted value are most valuable unless below zero (no discounts here)
    assert (p["tier"] == "most_valuable").sum() == round(0.2 * len(p))
    assert (p["tier"] == "below_zero").sum() == 0
    assert (p["grid_cell"].str.startswith("high/")).sum() == round(0.2 * len(p))


def test_below_zero_tier_from_discounts(shop, fitted):
    tables, _ = shop
    tx = tables.transactions.copy()
    recent = tx["timestamp"] >= CUTOFF - pd.Timedelta(days=90)
    cust, other = sorted(tx.loc[recent & (tx["timestamp"] < CUTOFF), "customer_id"].unique())[:2]
    # discounts worth 40% of every purchase in the last 90 days: above the 25% margin
    m = (tx["customer_id"] == cust) & recent
    tx.loc[m, "retail_discount"] = 0.4 * tx.loc[m, "sales_value"]
    t2 = type(tables)(transactions=tx)
    out = fitted.predict(t2, CUTOFF, customer_ids=[cust, other]).set_index("customer_id")
    assert out.loc[cust, "tier"] == "below_zero"
    assert out.loc[cust, "net_margin_90d"] < 0
    assert out.loc[other, "tier"] != "below_zero"


def test_no_leakage_future_rows_change_nothing(shop, fitted):
    tables, _ = shop
    before = fitted.predict(tables, CUTOFF)
    cut = tables.before(CUTOFF)
    again = ValueModel(ValueConfig.from_dict(FAST)).fit(cut, CUTOFF).predict(cut, CUTOFF)
    pd.testing.assert_frame_equal(before, again)
    assert all(c + pd.Timedelta(days=90) <= CUTOFF for c in fitted.train_cutoffs_)


def test_evaluate_family_beats_last_period_on_planted_shop(shop):
    tables, _ = shop
    ev = value.evaluate_family(tables, cutoffs=[CUTOFF], config=ValueConfig.from_dict(FAST))
    assert list(ev.columns) == ["family", "model", "cutoff", "metric", "value"]
    wide = ev.pivot_table(index="metric", columns="model", values="value")
    assert set(wide.columns) == {"lightgbm", "last_90d_spend", "bgnbd_gamma_gamma"}
    for m in ("mae", "spearman", "top20_capture"):
        assert wide.loc[m].notna().all(), m
    # quitters' warning phase (spend halves, visits thin out) is invisible to last-90-days spend
    assert wide.loc["mae", "lightgbm"] < wide.loc["mae", "last_90d_spend"]
    assert value.VALIDATION_METRIC == "mae" and value.VALIDATION_GREATER_IS_BETTER is False


def test_family_api_pickles(shop, fitted):
    import cloudpickle

    tables, _ = shop
    m = cloudpickle.loads(cloudpickle.dumps(fitted))
    out = value.predict_family(m, tables, CUTOFF)
    assert list(out.columns[:5]) == [
        "customer_id",
        "expected_spend_90d",
        "clv_1y",
        "p_alive",
        "tier",
    ]
    assert out["customer_id"].is_unique


def test_config_validation():
    with pytest.raises(ValueError, match="unknown ValueConfig keys"):
        ValueConfig.from_dict({"window": 30})
    with pytest.raises(ValueError, match="gross_margin_rate must be in"):
        ValueConfig(tiers={"gross_margin_rate": 2.0})
    with pytest.raises(ValueError, match="target must be 'ratio' or 'spend'"):
        ValueConfig(target="log")
    with pytest.raises(ValueError, match="scale_floor must be > 0"):
        ValueConfig(scale_floor=0.0)
    cfg = ValueConfig.from_dict({"lgbm": {"num_leaves": 7}})
    assert cfg.lgbm["num_leaves"] == 7 and cfg.lgbm["random_state"] == 0
    with pytest.raises(RuntimeError, match="not fitted"):
        ValueModel().predict_spend(pd.DataFrame({"a": [1.0]}))


def test_figures_feature_importance(fitted):
    figs = value.figures(fitted)
    ax = figs["feature_importance"].axes[0]
    bars = ax.patches
    assert 0 < len(bars) <= 20
    widths = [b.get_width() for b in bars]
    assert widths == sorted(widths)  # strongest at the top of the chart
    imp = fitted.feature_importance()
    assert widths[-1] == pytest.approx(imp.iloc[0] / imp.sum())  # shares of the total gain
    assert sum(widths) <= 1.0 + 1e-9


def test_weekly_value_features_hand_case():
    from test_churn import _visits_shop

    from training.value_weekly import weekly_value_features

    # 10-unit baskets 1, 2, 9 and 20 days before the cutoff; data starts 20 days before it
    tables = _visits_shop([1.0, 2.0, 9.0, 20.0], CUTOFF)
    f = weekly_value_features(tables, CUTOFF, [1]).loc[1]
    per90 = 90 / 7
    assert f["spend90_w1"] == pytest.approx(20.0 * per90)  # week 0 holds two baskets
    assert f["visits_w1"] == 2.0
    # only 2 whole weeks of data: longer windows average over those
    assert f["spend90_w2"] == pytest.approx(30.0 / 2 * per90)
    assert f["spend90_w26"] == f["spend90_w2"]
    assert f["wk_spend_med_13"] == pytest.approx(15.0 * per90)


def test_weekly_value_weeks_are_seven_days_back_from_the_cutoff():
    from test_churn import _visits_shop

    from training.value_weekly import weekly_matrices

    # midnight baskets on each of the 7 days of [T - 7 d, T), and one at T - 14 d
    tables = _visits_shop([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 14.0], CUTOFF)
    spend, visits, obs = weekly_matrices(tables, CUTOFF, pd.Index([1]))
    assert visits[0, :3].tolist() == [7.0, 1.0, 0.0] and spend[0, :2].tolist() == [70.0, 10.0]
    assert obs == 2


def test_ratio_scale_kinds():
    X = pd.DataFrame(
        {
            "spend_window_90d": [90.0, 0.0],
            "bg_expected_spend": [30.0, 0.0],
            "spend90_ewm8": [60.0, 1.0],
        }
    )
    assert list(value.spend_scale(X, 20.0, "mix")) == [60.0, 20.0]
    assert list(value.spend_scale(X, 20.0, "mix3")) == [60.0, 20.0]
    with pytest.raises(ValueError, match="unknown scale"):
        value.spend_scale(X, 20.0, "max")
    with pytest.raises(ValueError, match="needs weekly_features"):
        ValueConfig(weekly_features=False)
    assert ValueConfig(weekly_features=False, scale="mix").scale == "mix"


def test_clv_does_not_depend_on_the_bg_nbd_time_unit(shop, fitted):
    # days or weeks-measured-in-days: the same buyers, so the same dollars (the months 4-12
    # of clv_1y once ignored freq_multiplier and came out ~3x too large in weeks)
    tables, _ = shop
    weeks = ValueModel(ValueConfig.from_dict({**FAST, "clv": {"freq_multiplier": 7}}))
    weeks = weeks.fit(tables, CUTOFF)
    ids = fitted.predict(tables, CUTOFF)["customer_id"]
    days_clv = fitted._clv_after_first_quarter(tables, CUTOFF, pd.Index(ids))
    weeks_clv = weeks._clv_after_first_quarter(tables, CUTOFF, pd.Index(ids))
    ratio = weeks_clv.sum() / days_clv.sum()
    assert 0.8 < ratio < 1.25, ratio


def test_unknown_breadth_is_not_low(shop, predictions):
    # the planted shop has no products table: breadth is unknown, so growable customers are
    # those with a low share of wallet only
    assert predictions["breadth_share"].isna().all()
    growable = predictions[predictions["tier"] == "most_growable"]
    assert len(growable) > 0 and (growable["wallet_share"] < 0.5).all()


def test_weekly_slopes_use_only_the_weeks_the_data_has():
    from test_churn import _visits_shop

    from training.value_weekly import weekly_value_features

    # a flat 10 a week; the data begin 16 days back, so 2 whole weeks are observed: no
    # trend (13 weeks read the 11 weeks before the data as zero spend and called it growth)
    tables = _visits_shop([2.0, 9.0, 16.0], CUTOFF)
    f = weekly_value_features(tables, CUTOFF, [1]).loc[1]
    assert f["spend_slope_13"] == pytest.approx(0.0) and f["visit_slope_13"] == 0.0
    # 20 then 30 in the 2 observed weeks: slope 10 a week (x 90/7)
    rising = _visits_shop([2.0, 2.5, 3.0, 9.0, 9.5, 16.0], CUTOFF)
    g = weekly_value_features(rising, CUTOFF, [1]).loc[1]
    assert g["spend_slope_13"] == pytest.approx(10.0 * 90 / 7)
    # one week of data: no slope rather than a division by zero
    one = weekly_value_features(_visits_shop([1.0, 3.0], CUTOFF), CUTOFF, [1]).loc[1]
    assert one["spend_slope_13"] == 0.0


def test_weekly_features_of_a_subset_match_given_the_data_start():
    from test_churn import old_and_new_customer_shop

    from training.value_weekly import weekly_value_features

    tables = old_and_new_customer_shop(CUTOFF)
    full = weekly_value_features(tables, CUTOFF, [1, 2])
    alone = tables.subset_customers([2])
    assert not weekly_value_features(alone, CUTOFF, [2]).equals(full.loc[[2]])
    start = tables.transactions["timestamp"].min()
    pd.testing.assert_frame_equal(
        weekly_value_features(alone, CUTOFF, [2], data_start=start), full.loc[[2]]
    )
