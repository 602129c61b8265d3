"""Value tiers, the value x trend grid and the 80/20 share: pure functions over per-customer rows.

These turn predicted value into the decisions of DESIGN.md ("differentiate by value"):
whom to give the deepest deals (most valuable), whom to invest in (most growable), whom
to spend nothing extra on (below-zero), and which of five treatments each cell of the
value x trend grid gets. They read only the columns named in each docstring, so the
rules can be tested on hand-made rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

TIERS = ("most_valuable", "most_growable", "below_zero", "standard")
VALUE_CLASSES = ("high", "mid", "low")
TRENDS = ("growing", "stable", "declining")
TREATMENTS = ("one-to-one", "one-to-many", "mass x partner", "improve", "correct")

#: Treatment of each cell of the value x trend grid (see :func:`value_trend_grid`).
GRID_TREATMENT: dict[str, str] = {
    "high/growing": "one-to-one",
    "high/stable": "one-to-one",
    "high/declining": "correct",
    "mid/growing": "improve",
    "mid/stable": "one-to-many",
    "mid/declining": "correct",
    "low/growing": "improve",
    "low/stable": "mass x partner",
    "low/declining": "mass x partner",
}


@dataclass
class TierConfig:
    """Thresholds of the tiers and the grid (saved with the value model).

    Attributes
    ----------
    gross_margin_rate : float
        Gross margin assumed on net sales (0.25 = 25 cents per dollar sold).
    most_valuable_share : float
        Top share of customers by predicted value that is "most valuable".
    growable_min_value_quantile : float
        A growable customer's predicted value is at least this quantile of all customers.
    growable_max_wallet_share : float
        ... and their share-of-wallet proxy (or category breadth share) is below this.
    wallet_quantile : float
        A peer group's wallet (and breadth) is this quantile of its members' current
        spend (and category count): what a well-served customer like them spends.
    high_value_share, low_value_share : float
        Grid value classes: top ``high_value_share`` by predicted value are "high", the
        bottom ``low_value_share`` are "low", the rest "mid".
    growing_trend, declining_trend : float
        Grid trends: ``spend_trend`` >= growing_trend is "growing", <= declining_trend is
        "declining", otherwise "stable" (1 = last 2 months equal to the 2 before).
    """

    gross_margin_rate: float = 0.25
    most_valuable_share: float = 0.2
    growable_min_value_quantile: float = 0.5
    growable_max_wallet_share: float = 0.5
    wallet_quantile: float = 0.8
    high_value_share: float = 0.2
    low_value_share: float = 0.5
    growing_trend: float = 1.2
    declining_trend: float = 0.8

    def __post_init__(self):
        for name in (
            "gross_margin_rate",
            "most_valuable_share",
            "growable_min_value_quantile",
            "growable_max_wallet_share",
            "wallet_quantile",
            "high_value_share",
            "low_value_share",
        ):
            v = getattr(self, name)
            if not 0 <= v <= 1:
                raise ValueError(f"TierConfig.{name} must be in [0, 1], got {v}")
        if self.high_value_share + self.low_value_share > 1:
            raise ValueError(
                "TierConfig: high_value_share + low_value_share must be <= 1, got "
                f"{self.high_value_share} + {self.low_value_share}"
            )
        if not self.declining_trend < self.growing_trend:
            raise ValueError(
                f"TierConfig: declining_trend ({self.declining_trend}) must be below "
                f"growing_trend ({self.growing_trend})"
            )

    @classmethod
    def from_dict(cls, d: dict) -> TierConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown TierConfig keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)


def _require(df: pd.DataFrame, columns, what: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{what} needs a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(
            f"{what}: missing column(s) {missing}; columns present: {list(df.columns)}"
        )
    for c in columns:
        if df[c].isna().any():
            bad = df.index[df[c].isna()][:5].tolist()
            raise ValueError(f"{what}: column {c!r} has missing values (first rows: {bad})")


def _top_share_mask(values: pd.Series, share: float) -> np.ndarray:
    """True for the ``round(share * n)`` largest values (ties broken by position, stable)."""
    n_top = int(round(share * len(values)))
    mask = np.zeros(len(values), dtype=bool)
    if n_top:
        order = np.argsort(-values.to_numpy("float64"), kind="stable")
        mask[order[:n_top]] = True
    return mask


def pareto_share(values, top: float = 0.2) -> float:
    """Share of the total held by the top ``top`` share of customers (the 80/20 figure).

    Negative values (net returns) count as 0. Returns NaN when the total is 0.
    """
    if not 0 < top <= 1:
        raise ValueError(f"top must be in (0, 1], got {top}")
    v = np.clip(np.asarray(values, dtype="float64"), 0, None)
    if len(v) == 0 or v.sum() == 0:
        return float("nan")
    n_top = max(1, int(round(top * len(v))))
    return float(np.sort(v)[::-1][:n_top].sum() / v.sum())


def value_tiers(df: pd.DataFrame, config: TierConfig | None = None) -> pd.DataFrame:
    """Assign each customer a value tier.

    Rules, first match wins:

    1. ``below_zero``: ``gross_margin_rate * sales - discount_cost < 0`` -- the discounts and
       coupons the customer takes cost more than the margin their purchases bring (no
       costly incentives for them, whatever their spend).
    2. ``most_valuable``: the top ``most_valuable_share`` by ``predicted_value``.
    3. ``most_growable``: ``predicted_value`` at least its ``growable_min_value_quantile``
       quantile, and a low share of wallet -- ``wallet_share`` (current spend / the peer
       group's wallet, the ``wallet_quantile`` quantile of current spend among customers of
       the same ``peer_group``) or ``breadth_share`` (categories bought / the peer group's
       ``wallet_quantile`` quantile of ``n_categories``) below ``growable_max_wallet_share``.
       A share whose reference is 0 or unknown (no ``n_categories``, NaN) is not low.
    4. ``standard``: everyone else.

    Tiers 2 and 3 need ``predicted_value > 0``, so ties at zero are never ranked by row order.
    Quantiles and shares are taken over the rows passed: tier a whole population, not a
    sample of it.

    Parameters
    ----------
    df : pd.DataFrame
        One row per customer with ``predicted_value``, ``current_spend`` (spend in the
        latest period) and ``discount_cost`` (retail discount + coupon cost in that period);
        optional ``sales`` (net sales that earn the margin; default ``current_spend``),
        ``peer_group`` (e.g. life-cycle stage; default one group) and ``n_categories``.
    config : TierConfig, optional

    Returns
    -------
    pd.DataFrame
        Same index: ``tier``, ``net_margin``, ``wallet``, ``wallet_share``,
        ``breadth_share`` (NaN without ``n_categories``).
    """
    cfg = config or TierConfig()
    _require(df, ("predicted_value", "current_spend", "discount_cost"), "value_tiers")
    if (df["discount_cost"] < 0).any():
        bad = df.index[df["discount_cost"] < 0][:5].tolist()
        raise ValueError(f"value_tiers: discount_cost must be >= 0 (first rows: {bad})")
    sales = df["sales"] if "sales" in df.columns else df["current_spend"]
    groups = (
        df["peer_group"].fillna("unknown").astype(str)
        if "peer_group" in df.columns
        else pd.Series("all", index=df.index)
    )
    spend = df["current_spend"].clip(lower=0).astype("float64")
    wallet = spend.groupby(groups).transform(lambda s: s.quantile(cfg.wallet_quantile))
    # a share is undefined (NaN) when its peer group's reference is 0 or the breadth is unknown
    # (no products table); an undefined share is not a low one
    wallet_share = (spend / wallet.where(wallet > 0)).clip(upper=1.0)
    low_share = wallet_share < cfg.growable_max_wallet_share
    if "n_categories" in df.columns:
        cats = df["n_categories"].astype("float64")
        top_cats = cats.groupby(groups).transform(lambda s: s.quantile(cfg.wallet_quantile))
        breadth_share = (cats / top_cats.where(top_cats > 0)).clip(upper=1.0)
        low_share |= breadth_share < cfg.growable_max_wallet_share
    else:
        breadth_share = pd.Series(np.nan, index=df.index)

    value = df["predicted_value"].astype("float64")
    net_margin = cfg.gross_margin_rate * sales.astype("float64") - df["discount_cost"]
    below_zero = (net_margin < 0).to_numpy()
    # no value, no tier: a zero forecast is neither most valuable nor growable (ties at 0)
    positive = (value > 0).to_numpy()
    top = _top_share_mask(value, cfg.most_valuable_share) & positive
    growable = (
        (value >= value.quantile(cfg.growable_min_value_quantile)).to_numpy()
        & low_share.to_numpy()
        & positive
    )
    tier = np.select(
        [below_zero, top, growable], ["below_zero", "most_valuable", "most_growable"], "standard"
    )
    return pd.DataFrame(
        {
            "tier": tier,
            "net_margin": net_margin.to_numpy(),
            "wallet": wallet.to_numpy(),
            "wallet_share": wallet_share.to_numpy(),
            "breadth_share": breadth_share.to_numpy(),
        },
        index=df.index,
    )


def value_trend_grid(df: pd.DataFrame, config: TierConfig | None = None) -> pd.DataFrame:
    """Place each customer in the 3 x 3 value x trend grid and give the cell's treatment.

    Value class by ``predicted_value`` rank: the top ``high_value_share`` (20%) are
    ``high``, the bottom ``low_value_share`` (50%) ``low``, the rest ``mid``; a value of 0
    or less is always ``low``. Trend by
    ``spend_trend`` (spend of the last 60 days over the 60 before, smoothed): at least
    ``growing_trend`` (1.2) is ``growing``, at most ``declining_trend`` (0.8) ``declining``,
    otherwise ``stable``.

    ============  =============  ==============  ==============
    value/trend   growing        stable          declining
    ============  =============  ==============  ==============
    high          one-to-one     one-to-one      correct
    mid           improve        one-to-many     correct
    low           improve        mass x partner  mass x partner
    ============  =============  ==============  ==============

    * one-to-one: personal offers and the deepest deals, service by name;
    * one-to-many: segment programmes (life-cycle, category) for steady middle customers;
    * mass x partner: low-cost mass channels and manufacturer-funded (partner) deals;
    * improve: invest to move a rising customer up a class (cross-sell, breadth);
    * correct: a valuable customer slipping -- find and fix the cause (retention offer).

    Parameters
    ----------
    df : pd.DataFrame
        ``predicted_value`` and ``spend_trend`` per customer.
    config : TierConfig, optional

    Returns
    -------
    pd.DataFrame
        Same index: ``value_class``, ``trend``, ``grid_cell`` ("high/growing" ...),
        ``treatment``.
    """
    cfg = config or TierConfig()
    _require(df, ("predicted_value", "spend_trend"), "value_trend_grid")
    value = df["predicted_value"].astype("float64")
    high = _top_share_mask(value, cfg.high_value_share) & (value > 0).to_numpy()
    low = (_top_share_mask(-value, cfg.low_value_share) | (value <= 0).to_numpy()) & ~high
    value_class = np.select([high, low], ["high", "low"], "mid")
    trend_v = df["spend_trend"].to_numpy("float64")
    trend = np.select(
        [trend_v >= cfg.growing_trend, trend_v <= cfg.declining_trend],
        ["growing", "declining"],
        "stable",
    )
    cell = pd.Series(value_class, index=df.index) + "/" + pd.Series(trend, index=df.index)
    return pd.DataFrame(
        {
            "value_class": value_class,
            "trend": trend,
            "grid_cell": cell.to_numpy(),
            "treatment": cell.map(GRID_TREATMENT).to_numpy(),
        },
        index=df.index,
    )


def grid_summary(grid: pd.DataFrame, value: pd.Series | None = None) -> pd.DataFrame:
    """Customers (and optional summed ``value``) per grid cell, with the cell's treatment."""
    _require(grid, ("grid_cell",), "grid_summary")
    out = grid.groupby("grid_cell").size().rename("customers").to_frame()
    if value is not None:
        out["value"] = value.groupby(grid["grid_cell"]).sum()
    out = out.reindex(list(GRID_TREATMENT)).fillna(0)
    out["treatment"] = [GRID_TREATMENT[c] for c in out.index]
    return out
