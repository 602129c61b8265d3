"""Value tiers, the value x trend grid and the 80/20 share on hand-made rows with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.tiers import (
    GRID_TREATMENT,
    TREATMENTS,
    TierConfig,
    grid_summary,
    pareto_share,
    value_tiers,
    value_trend_grid,
)


def test_pareto_share_known_answers():
    # 10 customers: the top 2 spend 80 of 100
    assert pareto_share([40, 40, 5, 5, 2, 2, 2, 2, 1, 1]) == pytest.approx(0.8)
    assert pareto_share([10] * 10) == pytest.approx(0.2)
    # negative net spend (returns) counts as zero
    assert pareto_share([10, -5, 0, 0, 0]) == pytest.approx(1.0)
    assert np.isnan(pareto_share([0, 0, 0]))
    with pytest.raises(ValueError, match="top must be in"):
        pareto_share([1, 2], top=0)


def _rows() -> pd.DataFrame:
    # 10 customers; discount_cost is small except for customer 'cheap' (below zero)
    return pd.DataFrame(
        {
            "predicted_value": [1000, 900, 800, 700, 600, 500, 400, 300, 200, 100],
            "current_spend": [1000, 900, 200, 700, 150, 500, 400, 300, 200, 100],
            "discount_cost": [10, 10, 10, 10, 10, 10, 10, 10, 10, 40],
            "peer_group": ["a"] * 10,
            "n_categories": [50] * 10,
        },
        index=pd.Index(list("ABCDEFGHIJ"), name="customer_id"),
    )


def test_value_tiers_known_answers():
    out = value_tiers(_rows())
    # J: 0.25 * 100 - 40 = -15 < 0 -> below_zero; A, B: top 20% by predicted value
    # wallet = 80th percentile of current spend in group 'a' = 740; C (200/740 = 0.27) and
    # E (150/740 = 0.20) are growable if predicted value >= median (550): C yes (800), E yes (600)
    expected = [
        "most_valuable",
        "most_valuable",
        "most_growable",
        "standard",
        "most_growable",
        "standard",
        "standard",
        "standard",
        "standard",
        "below_zero",
    ]
    assert out["tier"].tolist() == expected
    assert out.loc["J", "net_margin"] == pytest.approx(-15.0)
    assert out.loc["C", "wallet"] == pytest.approx(740.0)
    assert out.loc["C", "wallet_share"] == pytest.approx(200 / 740)


def test_below_zero_wins_over_most_valuable():
    df = _rows()
    df.loc["A", "discount_cost"] = 300.0  # 0.25 * 1000 - 300 < 0
    assert value_tiers(df).loc["A", "tier"] == "below_zero"


def test_growable_by_category_breadth_and_peer_groups():
    df = _rows()
    df["current_spend"] = df["predicted_value"]  # nobody low on spend share now
    assert "most_growable" not in set(value_tiers(df)["tier"])
    df.loc["D", "n_categories"] = 10  # 10 / 50 categories: narrow basket -> growable
    assert value_tiers(df).loc["D", "tier"] == "most_growable"
    # peer groups: F spends 500 but its peers ('rich') spend 2,000 -> low share of wallet
    df = _rows().drop(columns="n_categories")
    df["current_spend"] = df["predicted_value"]
    df.loc[["F"], "peer_group"] = "rich"
    extra = pd.DataFrame(
        {
            "predicted_value": [50.0] * 4,
            "current_spend": [2000.0] * 4,
            "discount_cost": [0.0] * 4,
            "peer_group": ["rich"] * 4,
        },
        index=pd.Index(list("KLMN"), name="customer_id"),
    )
    out = value_tiers(pd.concat([df, extra]))
    assert out.loc["F", "tier"] == "most_growable"
    assert out.loc["F", "wallet_share"] == pytest.approx(0.25)


def test_value_tiers_validates_inputs():
    with pytest.raises(ValueError, match=r"missing column\(s\) \['discount_cost'\]"):
        value_tiers(_rows().drop(columns="discount_cost"))
    bad = _rows()
    bad.loc["B", "predicted_value"] = np.nan
    with pytest.raises(ValueError, match="'predicted_value' has missing values .*'B'"):
        value_tiers(bad)
    bad = _rows()
    bad.loc["C", "discount_cost"] = -1.0
    with pytest.raises(ValueError, match="discount_cost must be >= 0"):
        value_tiers(bad)
    with pytest.raises(ValueError, match="gross_margin_rate must be in"):
        TierConfig(gross_margin_rate=1.5)
    with pytest.raises(ValueError, match="unknown TierConfig keys"):
        TierConfig.from_dict({"margin": 0.3})


def test_value_trend_grid_cells_and_treatments():
    df = pd.DataFrame(
        {
            # 10 customers: top 2 high, bottom 5 low, 3 mid
            "predicted_value": [100, 90, 80, 70, 60, 50, 40, 30, 20, 10],
            "spend_trend": [1.5, 0.5, 1.2, 1.0, 0.8, 1.3, 1.0, 0.79, 1.21, 0.9],
        },
        index=range(10),
    )
    g = value_trend_grid(df)
    assert g["value_class"].tolist() == ["high"] * 2 + ["mid"] * 3 + ["low"] * 5
    assert g["grid_cell"].tolist() == [
        "high/growing",
        "high/declining",
        "mid/growing",
        "mid/stable",
        "mid/declining",
        "low/growing",
        "low/stable",
        "low/declining",
        "low/growing",
        "low/stable",
    ]
    assert g["treatment"].tolist() == [
        "one-to-one",
        "correct",
        "improve",
        "one-to-many",
        "correct",
        "improve",
        "mass x partner",
        "mass x partner",
        "improve",
        "mass x partner",
    ]


def test_grid_mapping_is_complete_and_uses_every_treatment():
    cells = {f"{v}/{t}" for v in ("high", "mid", "low") for t in ("growing", "stable", "declining")}
    assert set(GRID_TREATMENT) == cells
    assert set(GRID_TREATMENT.values()) == set(TREATMENTS)


def test_grid_summary_counts():
    df = pd.DataFrame({"predicted_value": [3.0, 2.0, 1.0, 0.5, 0.1], "spend_trend": [1.0] * 5})
    g = value_trend_grid(df, TierConfig(high_value_share=0.2, low_value_share=0.4))
    s = grid_summary(g, df["predicted_value"])
    assert s.loc["high/stable", "customers"] == 1
    assert s.loc["mid/stable", "customers"] == 2
    assert s.loc["low/stable", "customers"] == 2
    assert s.loc["low/stable", "value"] == pytest.approx(0.6)
    assert s["customers"].sum() == 5


def test_undefined_shares_are_not_low_and_zero_value_gets_no_tier():
    df = _rows()
    df["current_spend"] = df["predicted_value"]  # nobody low on spend share
    df["n_categories"] = np.nan  # breadth unknown (no products table)
    out = value_tiers(df)
    assert "most_growable" not in set(out["tier"]) and out["breadth_share"].isna().all()
    # a peer group whose reference spend is 0: its members' share is undefined, not low
    df.loc[["F", "G", "H", "I", "J"], "peer_group"] = "zero"
    df.loc[["F", "G", "H", "I", "J"], ["current_spend", "discount_cost"]] = 0.0
    out = value_tiers(df)
    assert out.loc[list("FGHIJ"), "wallet_share"].isna().all()
    assert "most_growable" not in set(out["tier"])
    # all forecasts 0: nobody is most valuable or growable, and every grid cell is 'low'
    zero = _rows().assign(predicted_value=0.0, current_spend=0.0, discount_cost=0.0)
    assert set(value_tiers(zero)["tier"]) == {"standard"}
    grid = value_trend_grid(zero.assign(spend_trend=1.0))
    assert set(grid["value_class"]) == {"low"}
