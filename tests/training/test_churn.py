"""Churn family on a planted shop: a known group stops buying and the model must find it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from features.contract import Tables, validate
from training import churn
from training.churn import (
    ChurnConfig,
    ChurnModel,
    LogisticRFMBaseline,
    churn_reasons,
    reliability_plot,
    training_cutoffs,
)

START = pd.Timestamp("2017-01-01")
CUTOFF = pd.Timestamp("2017-09-01")


def planted_shop(n: int = 240, days: int = 300, seed: int = 0) -> tuple[Tables, pd.DataFrame]:
    """A shop whose customers visit as Poisson processes; a planted third of them quit.

    Each customer visits at rate ``rate`` (per day) with baskets worth about ``value``.
    A quitter stops for good on ``stop_day``; during the 40 days before, they visit at a
    third of their rate and spend half as much (the warning signs the model must read).
    Returns the validated tables and the truth per customer: rate, value, quitter, stop_day.
    """
    rng = np.random.default_rng(seed)
    rate = rng.uniform(0.08, 0.4, n)
    value = rng.gamma(4.0, 10.0, n)
    quitter = rng.random(n) < 1 / 3
    stop = np.where(quitter, rng.integers(60, days, n), days + 1)
    rows = []
    basket = 0
    for c in range(n):
        t = rng.exponential(1 / rate[c])
        while t < min(stop[c], days):
            warning = quitter[c] and t >= stop[c] - 40
            basket += 1
            v = value[c] * rng.uniform(0.6, 1.4) * (0.5 if warning else 1.0)
            for k in range(2):
                rows.append(
                    (c + 1, basket, 1 + (c + k) % 20, START + pd.Timedelta(days=float(t)), v / 2)
                )
            t += rng.exponential(1 / rate[c]) * (3.0 if warning else 1.0)
    tx = pd.DataFrame(
        rows, columns=["customer_id", "basket_id", "product_id", "timestamp", "sales_value"]
    )
    tx["store_id"] = 1
    tx["quantity"] = 1.0
    tx["retail_discount"] = 0.0
    tx["coupon_discount"] = 0.0
    truth = pd.DataFrame(
        {"rate": rate, "value": value, "quitter": quitter, "stop_day": stop},
        index=pd.Index(np.arange(1, n + 1), name="customer_id"),
    )
    return validate(Tables(transactions=tx)), truth


#: Small, fast settings for the tests.
FAST = {
    "train_cutoffs": 5,
    "train_step_days": 14,
    "calibration_folds": 2,
    "lgbm": {"n_estimators": 120, "learning_rate": 0.05, "min_child_samples": 20, "num_leaves": 4},
}


@pytest.fixture(scope="module")
def shop():
    return planted_shop()


@pytest.fixture(scope="module")
def fitted(shop):
    tables, _ = shop
    return ChurnModel(ChurnConfig.from_dict(FAST)).fit(tables, CUTOFF)


def test_training_cutoffs_label_windows_end_by_cutoff(shop):
    tables, _ = shop
    cuts = training_cutoffs(tables, CUTOFF, 60, 10, 14, 56)
    assert cuts[0] == CUTOFF - pd.Timedelta(days=60)
    assert all(c + pd.Timedelta(days=60) <= CUTOFF for c in cuts)
    assert cuts == sorted(cuts, reverse=True) and len(set(cuts)) == len(cuts)
    assert min(cuts) >= START + pd.Timedelta(days=56)
    # grid days are shared by two cutoffs a week apart
    later = training_cutoffs(tables, CUTOFF + pd.Timedelta(days=7), 60, 10, 14, 56)
    assert set(cuts[1:4]) <= set(later)
    with pytest.raises(
        ValueError, match="no training cutoff for 2017-03-01.*needs 56 days of history"
    ):
        training_cutoffs(tables, "2017-03-01", 60, 10, 14, 56)


def test_model_ranks_the_planted_quitters_first(shop, fitted):
    tables, truth = shop
    pred = fitted.predict(tables, CUTOFF).set_index("customer_id")
    labels = churn.labels_for(tables, CUTOFF, fitted.config)
    from sklearn.metrics import roc_auc_score

    assert set(pred.index) == set(labels.index)
    auc = roc_auc_score(labels["churn"], pred.loc[labels.index, "churn_probability"])
    assert auc > 0.85, auc
    # planted quitters in their warning phase at the cutoff score far above steady buyers
    stop = truth["stop_day"].reindex(pred.index)
    day = (CUTOFF - START).days
    warning = truth["quitter"].reindex(pred.index) & (stop > day) & (stop <= day + 40)
    steady = ~truth["quitter"].reindex(pred.index)
    assert warning.sum() >= 5
    p = pred["churn_probability"]
    assert p[warning].median() > 3 * p[steady].median()
    # the partial churn model also sees them (their spend halves, then stops)
    assert (
        pred.loc[warning, "partial_churn_probability"].median()
        > pred.loc[steady, "partial_churn_probability"].median()
    )
    assert p.between(0, 1).all() and pred["partial_churn_probability"].between(0, 1).all()


def test_reasons_come_from_contributions(shop, fitted):
    tables, _ = shop
    X = fitted.features(tables, CUTOFF)
    reasons = churn_reasons(fitted, X, top=3)
    assert len(reasons) == len(X)
    assert all(len(r) <= 3 and len(set(r)) == len(r) for r in reasons)
    # the customer most likely to churn: reasons exist and name the rhythm / spend signals
    p = fitted.predict_proba(X)["churn_probability"]
    i = int(np.argmax(p.to_numpy()))
    assert reasons[i], "the riskiest customer has no reason"
    assert any(
        k in " ".join(reasons[i]) for k in ("no visit", "visits", "spend", "visit every", "expects")
    )
    # the first reason is the text of the feature group with the largest summed contribution
    contrib = fitted.models_["churn"].contributions(X).drop(columns="bias")
    group = {f: churn.REASON_GROUPS.get(f, (f,))[0] for f in contrib.columns}
    sums = contrib.iloc[i].groupby(group).sum()
    top_feature = next(f for f in contrib.columns if group[f] == sums.idxmax())
    assert sums.max() > 0
    assert reasons[i][0] == churn._reason_text(top_feature, X.iloc[i])[1]
    # no listed reason belongs to a group whose contributions net push toward staying
    texts = {churn._reason_text(f, X.iloc[i])[1]: sums[group[f]] for f in contrib.columns}
    assert all(texts[r] > 0 for r in reasons[i])
    # recency text carries the numbers of the row
    r = X.iloc[i]
    text = churn._reason_recency(r)
    assert f"no visit for {r['recency_days']:.0f} days" in text
    # not yet overdue: no recency text (it would read "0.2x the usual gap" as a reason)
    assert churn._reason_recency(pd.Series({"recency_days": 3.0, "ipi_mean": 20.0})) is None
    assert (
        churn._reason_recency(pd.Series({"recency_days": 30.0, "ipi_mean": 10.0}))
        == "no visit for 30 days, 3.0x the usual gap of 10 days"
    )
    assert churn._reason_recency(pd.Series({"recency_days": 5.0})) == "no visit for 5 days"
    for text in (t for rs in reasons for t in rs if t.startswith("no visit for")):
        if "x the usual gap" in text:
            assert float(text.split(", ")[1].split("x")[0]) >= 1.0, text
    one = pd.Series({"baskets_60d": 1.0, "baskets_prev_60d": 0.0, "baskets_90d": 1.0})
    assert churn._reason_visits(one) == "only 1 visit in the last 90 days"
    assert churn._reason_visits(one.replace(1.0, 2.0)) == "only 2 visits in the last 90 days"
    # single features read as sentences, not "coupon share = 0.0123"
    row = pd.Series({"coupon_share": 0.0123, "store_loyalty": 1.0, "hour_mean": 14.4})
    assert churn._reason_text("coupon_share", row)[1] == (
        "coupons: 1.2% of the shelf price of their baskets"
    )
    assert churn._reason_text("store_loyalty", row)[1] == "100% of their visits in one store"
    assert churn._reason_text("hour_mean", row)[1] == "usually shops around 14:00"
    assert churn._reason_text("weekend_share", row)[1] == "weekend share unknown"
    # a hand-set row: spend 40 now vs 100 before -> "spend down 60%"
    row = pd.Series({"spend_60d": 40.0, "spend_prev_60d": 100.0, "spend_30d": 10.0})
    assert churn._reason_spend(row).startswith("spend down 60% vs the previous 2 months")
    with pytest.raises(TypeError, match="needs a fitted ChurnModel"):
        churn_reasons(object(), X)


def test_calibrated_probabilities_track_observed_rates(shop, fitted):
    tables, _ = shop
    m = fitted.models_["churn"]
    oof = m.oof_
    # out-of-fold, each fold calibrated by a map fitted on the others: close to the base rate,
    # but not equal to it by construction (a map fitted on all rows would be)
    gap = abs(oof["p"].mean() - oof["y"].mean())
    assert 1e-6 < gap < 0.02, gap
    # fresh rows: the cutoff's own labels, never seen in training
    labels = churn.labels_for(tables, CUTOFF, fitted.config)["churn"]
    p = fitted.predict(tables, CUTOFF, reasons=False).set_index("customer_id")["churn_probability"]
    p = p.reindex(labels.index)
    assert abs(p.mean() - labels.mean()) < 0.03
    base = labels.mean()
    assert ((p - labels) ** 2).mean() < ((base - labels) ** 2).mean()  # better than the base rate


def test_logistic_baseline_tiny_case():
    # churners: long recency, few visits, low spend
    rfm = pd.DataFrame(
        {
            "recency_days": [1, 2, 3, 2, 1, 40, 60, 50, 70, 45],
            "frequency": [30, 25, 40, 20, 35, 2, 1, 3, 1, 2],
            "monetary": [900, 800, 1200, 700, 1000, 40, 20, 60, 10, 30],
        }
    )
    y = np.array([0] * 5 + [1] * 5)
    b = LogisticRFMBaseline().fit(rfm, y)
    p = b.predict_proba(rfm)
    assert p[5:].min() > p[:5].max()
    new = pd.DataFrame({"recency_days": [0, 80], "frequency": [50, 1], "monetary": [2000, 5]})
    lo, hi = b.predict_proba(new)
    assert lo < 0.2 < 0.8 < hi


def test_logistic_baseline_sample_weight_equals_repeated_rows():
    rng = np.random.default_rng(0)
    rfm = pd.DataFrame(
        {
            "recency_days": rng.integers(0, 90, 40),
            "frequency": rng.integers(1, 40, 40),
            "monetary": rng.uniform(10, 1000, 40),
        }
    )
    y = rng.integers(0, 2, 40)
    w = np.where(np.arange(40) < 10, 3.0, 1.0)
    weighted = LogisticRFMBaseline().fit(rfm, y, sample_weight=w).predict_proba(rfm)
    idx = np.r_[np.arange(40), np.repeat(np.arange(10), 2)]
    repeated = LogisticRFMBaseline().fit(rfm.iloc[idx], y[idx]).predict_proba(rfm)
    plain = LogisticRFMBaseline().fit(rfm, y).predict_proba(rfm)
    # StandardScaler sees the repeated rows but not the weights: compare loosely, yet far
    # closer to the repeated fit than to the unweighted one
    assert np.abs(weighted - repeated).max() < 0.25 * np.abs(plain - repeated).max()


def test_no_leakage_future_rows_change_nothing(shop, fitted):
    tables, _ = shop
    before = fitted.predict(tables, CUTOFF, reasons=False)
    cut = tables.before(CUTOFF)
    again = (
        ChurnModel(ChurnConfig.from_dict(FAST)).fit(cut, CUTOFF).predict(cut, CUTOFF, reasons=False)
    )
    pd.testing.assert_frame_equal(before, again)


def test_evaluate_family_long_table(shop):
    tables, _ = shop
    cfg = ChurnConfig.from_dict(FAST)
    ev = churn.evaluate_family(tables, cutoffs=[CUTOFF], config=cfg)
    assert list(ev.columns) == ["family", "model", "cutoff", "metric", "value"]
    assert set(ev["model"]) == {"lightgbm", "logistic_rfm"}
    wide = ev.pivot_table(index="metric", columns="model", values="value")
    for m in ("roc_auc", "pr_auc", "brier", "partial_roc_auc", "partial_pr_auc", "partial_brier"):
        assert wide[["lightgbm", "logistic_rfm"]].loc[m].notna().all(), m
    # the planted warning signs (visit gaps widen) are beyond log-RFM's reach
    assert wide.loc["roc_auc", "lightgbm"] > wide.loc["roc_auc", "logistic_rfm"]
    assert churn.VALIDATION_METRIC in set(ev["metric"]) and churn.VALIDATION_GREATER_IS_BETTER


def test_fit_predict_family_pickles(shop, fitted, tmp_path):
    import cloudpickle

    tables, _ = shop
    m = cloudpickle.loads(cloudpickle.dumps(fitted))
    out = churn.predict_family(m, tables, CUTOFF)
    assert list(out.columns[:4]) == [
        "customer_id",
        "churn_probability",
        "partial_churn_probability",
        "reasons",
    ]
    assert out["customer_id"].is_unique
    figs = churn.figures(m)
    assert set(figs) == {"reliability_churn", "reliability_partial_churn"}
    assert all(isinstance(f, Figure) for f in figs.values())


def test_reliability_plot_returns_figure_and_png(tmp_path):
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 2000)
    y = rng.random(2000) < p
    path = tmp_path / "rel.png"
    fig = reliability_plot(y, {"calibrated": p, "overconfident": p**3}, path=path, n_bins=10)
    assert isinstance(fig, Figure)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ax = fig.axes[0]
    calibrated = ax.lines[1].get_xydata()
    assert np.abs(calibrated[:, 0] - calibrated[:, 1]).max() < 0.08
    with pytest.raises(ValueError, match="3 probabilities for 2000 labels"):
        reliability_plot(y, [0.1, 0.2, 0.3])


def test_config_validation():
    with pytest.raises(ValueError, match="calibration must be"):
        ChurnConfig(calibration="beta")
    with pytest.raises(ValueError, match="unknown ChurnConfig keys"):
        ChurnConfig.from_dict({"horizon": 30})
    cfg = ChurnConfig.from_dict({"lgbm": {"num_leaves": 8}})
    assert cfg.lgbm["num_leaves"] == 8 and cfg.lgbm["n_jobs"] == 1


def _visits_shop(days_before_cutoff: list[float], cutoff: pd.Timestamp) -> Tables:
    """One customer (id 1) with one 10-unit basket on each given day before ``cutoff``."""
    ts = [cutoff - pd.Timedelta(days=d) for d in days_before_cutoff]
    tx = pd.DataFrame(
        {
            "customer_id": 1,
            "basket_id": range(1, len(ts) + 1),
            "product_id": 1,
            "timestamp": ts,
            "sales_value": 10.0,
        }
    )
    tx["store_id"] = 1
    tx["quantity"] = 1.0
    tx["retail_discount"] = 0.0
    tx["coupon_discount"] = 0.0
    return validate(Tables(transactions=tx))


def test_rhythm_features_hand_case():
    from training.churn_rhythm import RHYTHM_COLUMNS, rhythm_features

    # visits 300, 230, 160, 150, 140, 40 and 20.5 days before the cutoff: gaps (days)
    # 70, 70, 10, 10, 100, 20; the open gap is 20.5 days
    days = [300.2, 230.2, 160.2, 150.2, 140.2, 40.2, 20.7]
    tables = _visits_shop(days, CUTOFF)
    f = rhythm_features(tables, CUTOFF, [1, 2]).loc[1]
    assert list(rhythm_features(tables, CUTOFF, [1]).columns) == list(RHYTHM_COLUMNS)
    assert f["visits_4w"] == 0.25 and f["visit_weeks_4w"] == 0.25  # one visit in 4 weeks
    assert f["visits_8w"] == 2 / 8 and f["visits_26w"] == 5 / 26
    assert f["gap_median"] == 45.0
    # gaps >= 20.5: 70, 70, 100; of those >= 80.5: 100 -> (1 + 0.1) / (3 + 1)
    assert f["gaps_ge_recency"] == 3
    assert f["gap_survival_60"] == pytest.approx(1.1 / 4)
    assert f["share_gaps_over_60"] == pytest.approx(3 / 6)
    assert f["recency_over_median_gap"] == pytest.approx(20.5 / 45)
    assert f["basket_median_all"] == 10.0
    # a customer without history gets NaN gaps and zero counts
    g = rhythm_features(tables, CUTOFF, [1, 2]).loc[2]
    assert g["visits_26w"] == 0 and np.isnan(g["gap_median"])
    # later rows change nothing
    later = _visits_shop([*days, -1.0, -5.0], CUTOFF)
    pd.testing.assert_frame_equal(
        rhythm_features(later, CUTOFF, [1, 2]), rhythm_features(tables, CUTOFF, [1, 2])
    )


def test_rhythm_windows_are_the_last_n_days_and_small_batches_work():
    from training.churn_rhythm import rhythm_features

    # midnight baskets exactly 7 and 60 days before the cutoff: in the last week / 60 days
    tables = _visits_shop([7.0, 60.0], CUTOFF)
    f = rhythm_features(tables, CUTOFF, [1]).loc[1]
    # week 0 = [T - 7 d, T) holds the basket of 7 days back (60 days back is week 8)
    assert f["visits_4w"] == 0.25 and f["visit_weeks_4w"] == 0.25
    assert f["basket_median_60d"] == 10.0  # the basket of exactly 60 days back counts
    # a customer with one visit day, an unknown one, or nobody: NaN gaps, no KeyError
    one = _visits_shop([3.0], CUTOFF)
    g = rhythm_features(one, CUTOFF, [1, 999])
    assert np.isnan(g["gap_median"]).all() and g.loc[1, "visits_4w"] == 1.0  # 1 week of data
    assert rhythm_features(one, CUTOFF, []).empty


def old_and_new_customer_shop(cutoff: pd.Timestamp) -> Tables:
    """Customer 1 seen for 200 days before ``cutoff``, customer 2 only for the last 12."""
    old = _visits_shop([200.0, 100.0, 10.0], cutoff)
    new = _visits_shop([12.0, 5.0], cutoff).transactions.assign(customer_id=2, basket_id=[8, 9])
    return validate(Tables(transactions=pd.concat([old.transactions, new], ignore_index=True)))


def test_rhythm_features_of_a_subset_match_given_the_data_start():
    from training.churn_rhythm import rhythm_features

    tables = old_and_new_customer_shop(CUTOFF)
    full = rhythm_features(tables, CUTOFF, [1, 2])
    alone = tables.subset_customers([2])
    # on its own the newcomer's two weeks look like the whole data: 2 visit weeks out of 2
    assert rhythm_features(alone, CUTOFF, [2]).loc[2, "visit_weeks_4w"] == 1.0
    assert full.loc[2, "visit_weeks_4w"] == 0.5
    start = tables.transactions["timestamp"].min()
    pd.testing.assert_frame_equal(
        rhythm_features(alone, CUTOFF, [2], data_start=start), full.loc[[2]]
    )
