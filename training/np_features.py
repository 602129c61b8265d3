"""Candidates and features of the next-purchase ranker, as of one cutoff.

Candidates for a customer are

* the products of their own history, the ``history_top`` first in P-TopFreq order (more
  baskets first, ties by recency), and
* the ``tifu_top`` best products of TIFU-KNN, whose neighbour part brings products that
  similar customers buy (the co-bought, not-yet-bought items).

Each candidate row carries the shared features (``features.customer_product``,
``features.customer``, ``features.customer_product.product_features``), the TIFU-KNN score
split into the customer's own and the neighbours' part, the P-TopFreq rank and a few
ratios; with ``signals=True`` also :data:`training.np_signals.SIGNAL_FEATURES`. Nothing
at or after the cutoff is read.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from features._util import days_back
from features.contract import Tables
from features.customer import customer_features
from features.customer_product import (
    CP_COLUMNS,
    PRODUCT_COLUMNS,
    customer_product_features,
    product_features,
)
from training.baselines_np import TifuKnn
from training.np_history import sales_before
from training.np_signals import SIGNAL_FEATURES, signal_features

logger = logging.getLogger(__name__)

# every shared customer × product feature, and the numeric product features, in their order
CP_FEATURES = list(CP_COLUMNS[2:])
PRODUCT_FEATURES = [c for c in PRODUCT_COLUMNS if c not in ("department", "category")]
CUSTOMER_FEATURES = [
    "recency_days",
    "frequency",
    "tenure_days",
    "ipi_mean",
    "ipi_std",
    "overdue_ratio",
    "baskets_90d",
    "basket_size_mean",
    "n_products",
]
WINDOW_FEATURES = [
    "win_rate_all",
    "win_rate_4",
    "win_rate_8",
    "win_rate_decay",
    "win_last",
    "win_count_all",
    "prod_win_rate",
    "cust_active_windows",
]
DERIVED_FEATURES = [
    "tifu_score",
    "tifu_own",
    "tifu_neigh",
    "tifu_rank",
    "tifu_rel",
    "ptop_rank",
    "in_history",
    "due_in_days",
    "visits_in_window",
    "expected_buys",
    "cp_recent_share",
]
FEATURES = CP_FEATURES + PRODUCT_FEATURES + CUSTOMER_FEATURES + WINDOW_FEATURES + DERIVED_FEATURES


def feature_list(signals: bool = False) -> list[str]:
    """The ranker's features: :data:`FEATURES`, plus :data:`SIGNAL_FEATURES` if ``signals``."""
    return FEATURES + SIGNAL_FEATURES if signals else list(FEATURES)


#: Decay per window of the recency-weighted window rate.
WINDOW_DECAY = 0.85


def window_features(sales: pd.DataFrame, cutoff, window_days: int = 14) -> pd.DataFrame:
    """How regularly each customer buys each product, in windows as long as the label window.

    The history is cut into windows ``[cutoff - (w + 1) * days, cutoff - w * days)``
    (w = 0 is the latest). For each (customer, product): the share of the customer's
    active windows (with any purchase) holding the product, overall, over the last 4 and 8
    windows and weighted ``WINDOW_DECAY ** w``; whether it was bought in the latest
    window; the number of windows. ``prod_win_rate`` is the mean overall share over the
    product's buyers (a global statistic of the same sales).
    """
    cutoff = pd.Timestamp(cutoff)
    days = (cutoff - sales["timestamp"]).to_numpy() / np.timedelta64(1, "D")
    w = days_back(days) // window_days  # window 0 = [cutoff - window_days, cutoff)
    cw = pd.DataFrame({"customer_id": sales["customer_id"].to_numpy(), "w": w}).drop_duplicates()
    cw["decay"] = WINDOW_DECAY ** cw["w"]
    cw["in4"] = (cw["w"] < 4).astype("int64")
    cw["in8"] = (cw["w"] < 8).astype("int64")
    cust = cw.groupby("customer_id").agg(
        act_all=("w", "size"),
        act_4=("in4", "sum"),
        act_8=("in8", "sum"),
        act_decay=("decay", "sum"),
    )
    cpw = pd.DataFrame(
        {
            "customer_id": sales["customer_id"].to_numpy(),
            "product_id": sales["product_id"].to_numpy(),
            "w": w,
        }
    ).drop_duplicates()
    cpw["in4"] = cpw["w"] < 4
    cpw["in8"] = cpw["w"] < 8
    cpw["last"] = cpw["w"] == 0
    cpw["decay"] = WINDOW_DECAY ** cpw["w"]
    cp = cpw.groupby(["customer_id", "product_id"], sort=True).agg(
        win_count_all=("w", "size"),
        n4=("in4", "sum"),
        n8=("in8", "sum"),
        win_last=("last", "max"),
        dec=("decay", "sum"),
    )
    cp = cp.join(cust, on="customer_id")
    out = pd.DataFrame(index=cp.index)
    out["win_rate_all"] = cp["win_count_all"] / cp["act_all"]
    out["win_rate_4"] = cp["n4"] / cp["act_4"].replace(0, np.nan)
    out["win_rate_8"] = cp["n8"] / cp["act_8"].replace(0, np.nan)
    out["win_rate_decay"] = cp["dec"] / cp["act_decay"]
    out["win_last"] = cp["win_last"].astype(float)
    out["win_count_all"] = cp["win_count_all"].astype(float)
    out["cust_active_windows"] = cp["act_all"].astype(float)
    prod = out.groupby(level="product_id")["win_rate_all"].mean().rename("prod_win_rate")
    out = out.reset_index().merge(prod, left_on="product_id", right_index=True, how="left")
    return out


def candidate_frame(
    tables: Tables,
    cutoff,
    tifu: TifuKnn,
    customer_ids=None,
    history_top: int = 150,
    tifu_top: int = 30,
    window_days: int = 14,
    products: pd.DataFrame | None = None,
    sales: pd.DataFrame | None = None,
    signals: bool = False,
) -> pd.DataFrame:
    """Candidates with features for ``customer_ids`` (default: everyone with history).

    Parameters
    ----------
    tifu : TifuKnn
        Fitted at the same ``cutoff`` (checked).
    products : pd.DataFrame, optional
        Precomputed :func:`product_features` at ``cutoff`` (global statistics).
    sales : pd.DataFrame, optional
        Precomputed :func:`training.np_history.sales_before` at ``cutoff``.

    Returns
    -------
    pd.DataFrame
        One row per (customer, product) candidate, sorted by customer then P-TopFreq
        order, with ``customer_id, product_id`` and every column of
        :func:`feature_list` (``signals``: also the :mod:`training.np_signals` features).
    """
    cutoff = pd.Timestamp(cutoff)
    if getattr(tifu, "cutoff_", None) != cutoff:
        raise ValueError(
            f"the TIFU-KNN model was fitted at {getattr(tifu, 'cutoff_', None)}, not at {cutoff}"
        )
    cp = customer_product_features(tables, cutoff, customer_ids=customer_ids)
    if cp.empty:
        return pd.DataFrame(columns=["customer_id", "product_id", *feature_list(signals)])
    cp = cp.sort_values(
        ["customer_id", "cp_count", "cp_days_since", "product_id"],
        ascending=[True, False, True, True],
        kind="stable",
    )
    cp["ptop_rank"] = (cp.groupby("customer_id", sort=False).cumcount() + 1).astype("float32")
    hist = cp[cp["ptop_rank"] <= history_top]
    scored = tifu.score_candidates(hist[["customer_id", "product_id"]], top=tifu_top)
    cand = scored.merge(cp, on=["customer_id", "product_id"], how="left")
    cand["in_history"] = cand["cp_count"].notna().astype("float32")
    cand["cp_count"] = cand["cp_count"].fillna(0)
    for c in ("cp_count_30d", "cp_count_90d", "cp_basket_share"):
        cand[c] = cand[c].fillna(0)

    if products is None:
        products = product_features(tables, cutoff)
    cand = cand.merge(
        products[PRODUCT_FEATURES], left_on="product_id", right_index=True, how="left"
    )
    if sales is None:
        sales = sales_before(tables, cutoff)
    win = window_features(sales, cutoff, window_days)
    prod_win = win.groupby("product_id")["prod_win_rate"].first()
    cand = cand.merge(
        win.drop(columns="prod_win_rate"), on=["customer_id", "product_id"], how="left"
    )
    cand["prod_win_rate"] = cand["product_id"].map(prod_win)
    for c in WINDOW_FEATURES:
        if c.startswith("win_"):  # the customer x product ones: no window yet means 0
            cand[c] = cand[c].fillna(0)
    ids = cand["customer_id"].unique()
    cust = customer_features(tables.subset_customers(ids), cutoff)
    cand = cand.merge(cust[CUSTOMER_FEATURES], left_on="customer_id", right_index=True, how="left")

    grp = cand.groupby("customer_id", sort=False)
    cand["tifu_rel"] = cand["tifu_score"] / grp["tifu_score"].transform("max").replace(0, np.nan)
    cand["tifu_rank"] = grp["tifu_score"].rank(ascending=False, method="min")
    interval = cand["cp_interval_mean"].fillna(cand["prod_cycle_median"])
    cand["due_in_days"] = interval - cand["cp_days_since"]
    cand["visits_in_window"] = window_days / cand["ipi_mean"].clip(lower=1)
    cand["expected_buys"] = cand["cp_basket_share"] * cand["visits_in_window"]
    cand["cp_recent_share"] = cand["cp_count_90d"] / cand["baskets_90d"].replace(0, np.nan)
    cand["ptop_rank"] = cand["ptop_rank"].fillna(history_top + tifu_top + 1)
    if signals:
        sig = signal_features(
            sales, cutoff, cand[["customer_id", "product_id"]], tables.products, window_days
        )
        cand[SIGNAL_FEATURES] = sig.to_numpy()
    cand = cand.sort_values(["customer_id", "ptop_rank", "tifu_rank", "product_id"], kind="stable")
    features = feature_list(signals)
    out = cand[["customer_id", "product_id", *features]].reset_index(drop=True)
    out[features] = out[features].astype("float32")
    return out


def label_candidates(cand: pd.DataFrame, labels: pd.DataFrame) -> np.ndarray:
    """1 where the candidate (customer, product) is in ``labels``, else 0."""
    key = pd.MultiIndex.from_frame(cand[["customer_id", "product_id"]])
    pos = pd.MultiIndex.from_frame(labels[["customer_id", "product_id"]])
    return key.isin(pos).astype("int8")


def fit_tifu_at(tables: Tables, cutoff, params: dict, sales: pd.DataFrame | None = None) -> TifuKnn:
    """A TIFU-KNN model fitted at ``cutoff`` with ``params`` (``sales``: precomputed history)."""
    if sales is None:
        sales = sales_before(tables, cutoff)
    return TifuKnn(**params).fit(tables, cutoff, sales=sales)
