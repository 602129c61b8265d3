"""Hand-computed cases for the shared ranking, classification and regression metrics."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from training.metrics import (
    classification_report,
    hit_rate_at_k,
    ndcg_at_k,
    ranking_report,
    ranking_rows,
    recall_at_k,
    recs_to_dict,
    regression_report,
    truth_to_dict,
)


def test_recall_counts_hits_in_top_k_over_relevant():
    assert recall_at_k([1, 2, 3, 4], {2, 4, 9}, k=10) == pytest.approx(2 / 3)
    assert recall_at_k([1, 2, 3, 4], {2, 4, 9}, k=2) == pytest.approx(1 / 3)  # 4 is cut off
    assert recall_at_k([1, 2], set(), k=10) == 0.0
    assert recall_at_k([], {1}, k=10) == 0.0


def test_ndcg_hand_computed():
    # hits at ranks 1 and 3, two relevant: DCG = 1 + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(3)
    assert ndcg_at_k([7, 8, 9], {7, 9}, k=10) == pytest.approx(1.5 / (1 + 1 / math.log2(3)))
    # a single hit at rank 2 of one relevant item: 1/log2(3)
    assert ndcg_at_k([1, 2, 3], {2}, k=10) == pytest.approx(1 / math.log2(3))
    # perfect order scores 1
    assert ndcg_at_k([1, 2], {1, 2}, k=10) == pytest.approx(1.0)
    assert ndcg_at_k([1, 2], set(), k=10) == 0.0


def test_k_below_one_is_an_error_not_a_zero_division():
    with pytest.raises(ValueError, match="k must be at least 1"):
        ndcg_at_k([1], {1}, k=0)
    with pytest.raises(ValueError, match="k must be at least 1"):
        ranking_report({1: [1]}, {1: {1}}, k=0)


def test_ranking_rows_name_the_metrics_at_their_k():
    recs = pd.DataFrame({"customer_id": [1, 1], "product_id": [5, 6], "rank": [1, 2]})
    rows = ranking_rows("next_purchase", "m", recs, {1: {6}}, "2017-10-02", k=1)
    got = {r["metric"]: r["value"] for r in rows}
    assert got["ndcg@1"] == 0.0 and got["hitrate@1"] == 0.0 and "ndcg@10" not in got
    rows = ranking_rows("next_purchase", "m", recs, {1: {6}}, "2017-10-02", k=2)
    assert {r["metric"]: r["value"] for r in rows}["recall@2"] == 1.0


def test_ndcg_ideal_is_capped_at_k():
    # 5 relevant items, k = 2, both top items relevant -> ideal only counts 2 slots -> 1.0
    assert ndcg_at_k([1, 2, 3], {1, 2, 3, 4, 5}, k=2) == pytest.approx(1.0)
    # 12 relevant, all 10 listed relevant -> 1.0 (ideal capped at 10, not 12)
    assert ndcg_at_k(list(range(10)), set(range(12)), k=10) == pytest.approx(1.0)


def test_ndcg_counts_a_repeated_item_once():
    # [1, 1]: second 1 is not a new hit -> DCG = 1; IDCG (2 relevant) = 1 + 1/log2(3)
    assert ndcg_at_k([1, 1], {1, 2}, k=10) == pytest.approx(1 / (1 + 1 / math.log2(3)))


def test_hit_rate():
    assert hit_rate_at_k([1, 2, 3], {3}, k=3) == 1.0
    assert hit_rate_at_k([1, 2, 3], {3}, k=2) == 0.0
    assert hit_rate_at_k([1, 2, 3], set(), k=3) == 0.0


def test_ranking_report_averages_over_truth_customers_missing_recs_count_zero():
    recs = {1: [10, 11], 2: [20, 21], 99: [5]}  # 99 is not in truth: ignored
    truth = {1: {10}, 2: {21, 22}, 3: {30}}  # 3 has no recommendation: zero
    rep = ranking_report(recs, truth, k=2)
    assert rep["recall@2"] == pytest.approx((1 + 0.5 + 0) / 3)
    nd2 = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert rep["ndcg@2"] == pytest.approx((1 + nd2 + 0) / 3)
    assert rep["hitrate@2"] == pytest.approx(2 / 3)
    assert rep["n_customers"] == 3.0
    with pytest.raises(ValueError, match="no customers"):
        ranking_report(recs, {}, k=2)


def test_recs_and_truth_to_dict():
    long = pd.DataFrame(
        {"customer_id": [2, 1, 1, 1], "product_id": [9, 6, 5, 7], "rank": [1, 2, 1, 3]}
    )
    assert recs_to_dict(long) == {1: [5, 6, 7], 2: [9]}
    assert recs_to_dict(long, k=2) == {1: [5, 6], 2: [9]}
    lab = pd.DataFrame({"customer_id": [1, 1, 2], "product_id": [3, 4, 3]})
    assert truth_to_dict(lab) == {1: {3, 4}, 2: {3}}


def test_classification_report_known_values():
    y = [0, 0, 1, 1]
    p = [0.1, 0.4, 0.35, 0.8]
    rep = classification_report(y, p)
    assert rep["roc_auc"] == pytest.approx(0.75)  # 3 of 4 positive/negative pairs ordered
    assert rep["brier"] == pytest.approx((0.01 + 0.16 + 0.4225 + 0.04) / 4)
    # AP: positives at ranks 1 (0.8) and 3 (0.35): (1/1 + 2/3) / 2
    assert rep["pr_auc"] == pytest.approx((1 + 2 / 3) / 2)
    assert rep["base_rate"] == 0.5
    with pytest.raises(ValueError, match="single class"):
        classification_report([1, 1], [0.2, 0.3])


def test_regression_report_known_values():
    y = np.array([10.0, 0.0, 5.0, 1.0, 4.0])
    yhat = np.array([8.0, 1.0, 6.0, 0.0, 2.0])
    rep = regression_report(y, yhat)
    assert rep["mae"] == pytest.approx((2 + 1 + 1 + 1 + 2) / 5)
    assert rep["spearman"] == pytest.approx(0.9)  # ranks differ by one swap of neighbours (0 and 1)
    assert rep["top20_capture"] == pytest.approx(1.0)  # top 1 of 5: customer 0 in both
    # the predicted top customer is the true bottom one
    rep = regression_report(y, -y)
    assert rep["top20_capture"] == 0.0
    assert rep["spearman"] == pytest.approx(-1.0)


def test_ranking_rows_long_table():
    from training.metrics import EVALUATION_COLUMNS, ranking_rows

    recs = pd.DataFrame(
        {
            "customer_id": [1, 1, 2],
            "product_id": [10, 11, 20],
            "rank": [1, 2, 1],
            "score": [0.9, 0.5, 0.7],
        }
    )
    truth = {1: {11}, 2: {99}}
    rows = pd.DataFrame(ranking_rows("fam", "m", recs, truth, "2017-10-02", k=10))
    assert list(rows.columns) == EVALUATION_COLUMNS
    got = dict(zip(rows["metric"], rows["value"], strict=True))
    # customer 1: the relevant item at rank 2 -> NDCG 1/log2(3); customer 2: a miss
    assert got["ndcg@10"] == pytest.approx((1 / np.log2(3)) / 2)
    assert got["recall@10"] == pytest.approx(0.5)
    assert got["hitrate@10"] == pytest.approx(0.5)
    assert got["n_customers"] == 2
    assert (rows["cutoff"] == pd.Timestamp("2017-10-02")).all()
