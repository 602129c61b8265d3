"""benchmarks/np_headroom.py and cs_headroom.py: ranking given scores like the models do."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from cs_headroom import _Fixed  # noqa: E402
from np_headroom import ranked  # noqa: E402


def test_np_ranked_orders_by_score_then_ptop_rank_and_pads():
    cand = pd.DataFrame(
        {
            "customer_id": [1, 1, 1, 2],
            "product_id": [10, 11, 12, 10],
            "ptop_rank": [3, 1, 2, 1],
        }
    )
    score = np.array([0.9, 0.5, 0.5, 0.1])
    out = ranked(cand, score, [1, 2, 3], popular=np.array([10, 99, 98]), k=3)
    lists = {c: g.sort_values("rank")["product_id"].tolist() for c, g in out.groupby("customer_id")}
    assert lists[1] == [10, 11, 12]  # 11 before 12: same score, better P-TopFreq rank
    assert lists[2] == [10, 99, 98]  # padded with popular products it does not list yet
    assert lists[3] == [10, 99, 98]  # no candidates at all: popular only


def test_cs_fixed_scores_refuse_another_candidate_frame():
    f = _Fixed(np.array([1.0, 2.0]))
    np.testing.assert_array_equal(f.predict(np.zeros((2, 5))), [1.0, 2.0])
    with pytest.raises(ValueError, match="3 candidates"):
        f.predict(np.zeros((3, 5)))


def test_ranking_row_known_values():
    from own_labels import ranking_row

    truth = {1: {10}, 2: {20, 21}}
    recs = pd.DataFrame(
        {"customer_id": [1, 1, 2, 2], "product_id": [11, 10, 20, 22], "rank": [1, 2, 1, 2]}
    )
    row = ranking_row("2017-10-02", {"m": recs}, truth, k=2)
    assert row["cutoff"] == "2017-10-02" and row["customers"] == 2
    ndcg1 = (1 / np.log2(3)) / 1.0  # hit at rank 2, ideal: one hit at rank 1
    ndcg2 = 1.0 / (1.0 + 1 / np.log2(3))  # hit at rank 1, ideal: two hits
    assert row["m_ndcg"] == pytest.approx((ndcg1 + ndcg2) / 2)
    assert row["m_recall"] == pytest.approx((1.0 + 0.5) / 2)
