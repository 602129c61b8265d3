"""Review cases of the churn family with hand-set contributions (known answers)."""

from __future__ import annotations

import pandas as pd

from training.churn import CalibratedBooster, churn_reasons


class _FixedContrib(CalibratedBooster):
    """A 'fitted' booster whose SHAP contributions are given by hand."""

    def __init__(self, contrib: pd.DataFrame):
        super().__init__(params={})
        self.boosters_ = []
        self._contrib = contrib

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        return self._contrib.loc[X.index].assign(bias=-2.0)


def test_a_reason_group_whose_features_net_push_toward_staying_is_not_a_reason():
    # visited today: recency_days pulls churn down a lot (-0.9); a related recency feature
    # pushes up a little (+0.2), so the recency group nets -0.7 toward staying. Spend fell
    # 60% (+0.1): the only group pushing toward churn.
    X = pd.DataFrame(
        {
            "recency_days": [0.0],
            "gap_exceeded_share": [1.0],
            "ipi_mean": [5.0],
            "spend_60d": [40.0],
            "spend_prev_60d": [100.0],
        },
        index=pd.Index([7], name="customer_id"),
    )
    contrib = pd.DataFrame(
        {
            "recency_days": [-0.9],
            "gap_exceeded_share": [0.2],
            "ipi_mean": [0.0],
            "spend_60d": [0.1],
            "spend_prev_60d": [0.0],
        },
        index=X.index,
    )
    reasons = churn_reasons(_FixedContrib(contrib), X, top=3)
    assert reasons == [["spend down 60% vs the previous 2 months ($40 vs $100)"]]


def test_reason_groups_are_ranked_by_their_summed_contribution():
    # visits: two features at +0.3 each (+0.6 in all); spend: one at +0.5. Visits come first.
    X = pd.DataFrame(
        {
            "baskets_60d": [2.0],
            "baskets_prev_60d": [8.0],
            "visit_trend": [0.33],
            "spend_60d": [40.0],
            "spend_prev_60d": [100.0],
        },
        index=pd.Index([1], name="customer_id"),
    )
    contrib = pd.DataFrame(
        {
            "baskets_60d": [0.3],
            "baskets_prev_60d": [0.0],
            "visit_trend": [0.3],
            "spend_60d": [0.5],
            "spend_prev_60d": [0.0],
        },
        index=X.index,
    )
    reasons = churn_reasons(_FixedContrib(contrib), X, top=3)
    assert reasons == [
        [
            "visits down: 2 in the last 2 months vs 8 before",
            "spend down 60% vs the previous 2 months ($40 vs $100)",
        ]
    ]
