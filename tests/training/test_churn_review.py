"""Review cases of the churn family with hand-set contributions (known answers)."""

from __future__ import annotations

import pandas as pd

from training.churn import CalibratedBooster, _reason_text, churn_reasons


class _FixedContrib(CalibratedBooster):
    """A 'fitted' booster whose SHAP contributions are given by hand."""

    def __init__(self, contrib: pd.DataFrame):
        super().__init__(params={})
        self.boosters_ = []
        self._contrib = contrib

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        return self._contrib.loc[X.index].assign(bias=-2.0)


def _case(**features: tuple[float, float]) -> tuple[_FixedContrib, pd.DataFrame]:
    """One customer: ``feature=(value, contribution)`` for each feature."""
    index = pd.Index([7], name="customer_id")
    X = pd.DataFrame({f: [v] for f, (v, _) in features.items()}, index=index)
    contrib = pd.DataFrame({f: [c] for f, (_, c) in features.items()}, index=index)
    return _FixedContrib(contrib), X


def test_a_reason_group_whose_features_net_push_toward_staying_is_not_a_reason():
    # visited today: recency_days pulls churn down a lot (-0.9); a related recency feature
    # pushes up a little (+0.2), so the recency group nets -0.7 toward staying. Spend fell
    # 60% (+0.1): the only group pushing toward churn.
    model, X = _case(
        recency_days=(0.0, -0.9),
        gap_exceeded_share=(1.0, 0.2),
        ipi_mean=(5.0, 0.0),
        spend_60d=(40.0, 0.1),
        spend_prev_60d=(100.0, 0.0),
    )
    reasons = churn_reasons(model, X, top=3)
    assert reasons == [["spend down 60% vs the previous 2 months ($40 vs $100)"]]


def test_reason_groups_are_ranked_by_their_summed_contribution():
    # visits: two features at +0.3 each (+0.6 in all); spend: one at +0.5. Visits come first.
    model, X = _case(
        baskets_60d=(2.0, 0.3),
        baskets_prev_60d=(8.0, 0.0),
        visit_trend=(0.33, 0.3),
        spend_60d=(40.0, 0.5),
        spend_prev_60d=(100.0, 0.0),
    )
    reasons = churn_reasons(model, X, top=3)
    assert reasons == [
        [
            "visits down: 2 in the last 2 months vs 8 before",
            "spend down 60% vs the previous 2 months ($40 vs $100)",
        ]
    ]


def test_department_share_reasons_tell_none_from_a_little():
    # a share rounding to 0% is not "0% of spend" when the customer bought some
    model, X = _case(
        dept_share__seafood_pckgd=(0.0, 0.3),
        dept_share__deli=(0.003, 0.2),
        dept_share__produce=(0.041, 0.1),
    )
    assert churn_reasons(model, X, top=3) == [
        [
            "seafood pckgd: none of their spend",
            "deli: under 1% of their spend",
            "produce: 4% of their spend",
        ]
    ]
    row = pd.Series({"dept_share__deli": float("nan")})
    assert _reason_text("dept_share__deli", row) == (
        "dept_share__deli",
        "deli: share of their spend unknown",
    )
