"""Next purchase, review cases: expected days on whole cycles, the ranker's query groups."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.contract import validate
from features.customer_product import customer_product_features
from features.sources.synthetic import generate_with_truth
from tests.features._factories import line, make_tables
from training.next_purchase import NextPurchaseRanker, default_config, expected_days


def test_expected_days_is_zero_when_the_days_since_are_whole_cycles():
    # a weekly product: 7 days since -> due today (0); 14 or 21 days since (one or two
    # skipped weeks) -> the same rhythm falls on today as well, also 0, not a week away;
    # 10 days since -> next on day 14, in 4; 15 days since -> next on day 21, in 6
    cand = pd.DataFrame(
        {
            "cp_days_since": [7, 14, 21, 10, 15],
            "cp_interval_mean": [7] * 5,
            "prod_cycle_median": [20] * 5,
            "cp_basket_share": [0.5] * 5,
            "ipi_mean": [4] * 5,
        }
    )
    np.testing.assert_allclose(expected_days(cand, window_days=14), [0, 0, 0, 4, 6])


def test_expected_days_on_date_only_data_where_whole_cycles_are_common():
    # bought every Sunday 01-01, 01-08, 01-15, skipped 01-22; the cutoff is Sunday 01-29
    days = ["2017-01-01", "2017-01-08", "2017-01-15"]  # date-only timestamps
    tables = make_tables([line(1, b, 10, day, 2.0) for b, day in enumerate(days)])
    cp = customer_product_features(tables, "2017-01-29")
    assert cp["cp_days_since"].tolist() == [14.0] and cp["cp_interval_mean"].tolist() == [7.0]
    cand = cp.assign(prod_cycle_median=7.0, ipi_mean=7.0)
    assert expected_days(cand).tolist() == [0.0]  # due today in its weekly rhythm


def test_query_groups_are_runs_of_consecutive_rows():
    from training.next_purchase import query_groups

    t1, t2 = pd.Timestamp("2017-02-01"), pd.Timestamp("2017-01-18")
    train = pd.DataFrame(
        {
            # cutoff t1 listed twice (the same offset twice): its customers come back
            "train_cutoff": [t1, t1, t1, t1, t1, t1, t1, t2, t2],
            "customer_id": [5, 5, 7, 5, 5, 7, 7, 5, 7],
        }
    )
    assert query_groups(train).tolist() == [2, 1, 2, 2, 1, 1]
    assert query_groups(train).sum() == len(train)
    assert query_groups(train.iloc[:0]).tolist() == []


def test_lambdarank_queries_hold_one_customer_each_with_a_repeated_offset(monkeypatch):
    tables, _ = generate_with_truth(customers=60, products=50, days=200, seed=5)
    tables = validate(tables)
    cutoff = (tables.transactions["timestamp"].min() + pd.Timedelta(days=150)).normalize()
    seen = {}
    real = lgb.LGBMRanker.fit

    def spy(self, X, y, group=None, **kwargs):
        seen["group"] = np.asarray(group)
        return real(self, X, y, group=group, **kwargs)

    monkeypatch.setattr(lgb.LGBMRanker, "fit", spy)
    cfg = default_config(
        train_offsets_days=(14, 14),
        lgbm={"objective": "lambdarank", "n_estimators": 3, "min_child_samples": 5},
    )
    ranker = NextPurchaseRanker(cfg)
    train = ranker.training_frame(tables, cutoff)
    ranker.fit(tables, cutoff, train=train)
    # every query is one customer's block of consecutive rows, as LightGBM reads ``group``
    bounds = np.r_[0, np.cumsum(seen["group"])]
    assert bounds[-1] == len(train)
    cust = train["customer_id"].to_numpy()
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        assert len(set(cust[a:b])) == 1, (a, b, sorted(set(cust[a:b])))
