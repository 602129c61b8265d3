"""Simple heuristic predictions in the four families' output formats, for load benchmarks.

The load benchmark measures the serving path, not model quality: it needs a lookup store
of the real size and shape (every Complete Journey household, tens of candidates each,
every product and deal) even on a machine where no model has been trained. These
heuristics fill it in seconds: P-TopFreq for next purchase, recent popularity among
products new to the customer for cross-sell, recency over rhythm for churn, and recent
spend for value. ``tailor serve`` uses the registered champions instead.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contract import Tables, is_return

TIERS = ("below_zero", "regular", "most_growable", "most_valuable")


def _sales(tables: Tables, as_of: pd.Timestamp) -> pd.DataFrame:
    tx = tables.transactions
    tx = tx[tx["timestamp"] < as_of]
    return tx[~is_return(tx)]


def next_purchase(tables: Tables, as_of: pd.Timestamp, k: int) -> pd.DataFrame:
    tx = _sales(tables, as_of)
    tx = tx[tx["timestamp"] >= as_of - pd.Timedelta(days=180)]
    baskets = tx.groupby("customer_id")["basket_id"].nunique()
    cp = tx.groupby(["customer_id", "product_id"])["basket_id"].nunique().rename("n").reset_index()
    cp["score"] = cp["n"] / cp["customer_id"].map(baskets)
    cp = cp.sort_values(["customer_id", "score", "product_id"], ascending=[True, False, True])
    cp["rank"] = cp.groupby("customer_id").cumcount() + 1
    return cp[cp["rank"] <= k][["customer_id", "product_id", "rank", "score"]].reset_index(
        drop=True
    )


def cross_sell(tables: Tables, as_of: pd.Timestamp, k: int) -> pd.DataFrame:
    tx = _sales(tables, as_of)
    recent = tx[tx["timestamp"] >= as_of - pd.Timedelta(days=28)]
    pop = (
        recent.groupby("product_id")["customer_id"]
        .nunique()
        .sort_values(ascending=False)
        .head(4 * k)
    )
    share = pop / max(1, recent["customer_id"].nunique())
    customers = np.sort(tx["customer_id"].unique())
    grid = pd.DataFrame(
        {
            "customer_id": np.repeat(customers, len(pop)),
            "product_id": np.tile(pop.index.to_numpy(), len(customers)),
        }
    )
    grid["score"] = np.tile(share.to_numpy(), len(customers))
    bought = pd.MultiIndex.from_frame(tx[["customer_id", "product_id"]].drop_duplicates())
    grid = grid[~pd.MultiIndex.from_frame(grid[["customer_id", "product_id"]]).isin(bought)]
    grid["rank"] = grid.groupby("customer_id").cumcount() + 1
    return grid[grid["rank"] <= k].reset_index(drop=True)


def _rfm(tables: Tables, as_of: pd.Timestamp) -> pd.DataFrame:
    tx = _sales(tables, as_of)
    g = tx.groupby("customer_id")
    out = pd.DataFrame(
        {
            "last": g["timestamp"].max(),
            "first": g["timestamp"].min(),
            "visits": g["basket_id"].nunique(),
        }
    )
    out["recency"] = (as_of - out["last"]).dt.days
    out["ipi"] = ((out["last"] - out["first"]).dt.days / (out["visits"] - 1).clip(lower=1)).clip(
        lower=1
    )
    last90 = tx[tx["timestamp"] >= as_of - pd.Timedelta(days=90)]
    out["spend_90d"] = (
        last90.groupby("customer_id")["sales_value"].sum().reindex(out.index).fillna(0.0)
    )
    return out


def churn(tables: Tables, as_of: pd.Timestamp) -> pd.DataFrame:
    r = _rfm(tables, as_of)
    ratio = r["recency"] / r["ipi"]
    p = 1 / (1 + np.exp(-(ratio - 3)))
    reasons = [
        [f"no visit for {d} days (usually every {i:.0f})"] if q > 0.5 else ["visits on rhythm"]
        for d, i, q in zip(r["recency"], r["ipi"], p, strict=True)
    ]
    return pd.DataFrame(
        {
            "customer_id": r.index,
            "churn_probability": p.to_numpy(),
            "partial_churn_probability": np.clip(p.to_numpy() + 0.1, 0, 1),
            "reasons": reasons,
        }
    )


def value(tables: Tables, as_of: pd.Timestamp) -> pd.DataFrame:
    r = _rfm(tables, as_of)
    spend = r["spend_90d"]
    q = spend.rank(pct=True)
    tier = np.select(
        [spend <= 0, q >= 0.8, q >= 0.5],
        ["below_zero", "most_valuable", "most_growable"],
        "regular",
    )
    risk = pd.cut(
        r["recency"] / r["ipi"], [-np.inf, 1.5, 3, np.inf], labels=["low", "mid", "high"]
    ).astype(str)
    level = pd.cut(q, [-np.inf, 0.5, 0.8, np.inf], labels=["low", "mid", "high"]).astype(str)
    return pd.DataFrame(
        {
            "customer_id": r.index,
            "expected_spend_90d": spend.to_numpy(),
            "clv_1y": 4 * spend.to_numpy(),
            "p_alive": np.exp(-r["recency"] / (3 * r["ipi"])).to_numpy(),
            "tier": tier,
            "grid_cell": (level + "_value/" + risk + "_risk").to_numpy(),
            "treatment": "maintain",
        }
    )


def predict(
    family: str, model: object, tables: Tables, as_of: pd.Timestamp, k: int | None
) -> pd.DataFrame:
    """A ``predict`` hook for :func:`serving.precompute.precompute` (``model`` is ignored)."""
    if family == "next_purchase":
        return next_purchase(tables, as_of, k or 10)
    if family == "cross_sell":
        return cross_sell(tables, as_of, k or 10)
    if family == "churn":
        return churn(tables, as_of)
    return value(tables, as_of)
