"""Customer x product features as of a cutoff, and product-level global statistics.

One row per (customer, product) the customer bought (sale lines: ``quantity > 0`` and
``sales_value >= 0``) strictly before the cutoff. Purchase counts are baskets holding
the product; repurchase intervals are calendar days between the distinct days the
customer bought it.

:func:`customer_product_features` is per customer: a customer's rows do not depend on
other customers. :func:`product_features` is global (it pools every customer) and is
what callers pass around as item statistics.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from features._util import History, as_cutoff, safe_div

logger = logging.getLogger(__name__)

CP_COLUMNS = (
    "customer_id",
    "product_id",
    "cp_count",
    "cp_basket_share",
    "cp_days_since",
    "cp_baskets_since",
    "cp_interval_mean",
    "cp_interval_std",
    "cp_overdue",
    "cp_count_30d",
    "cp_count_90d",
    "cp_trend",
    "cp_price_mean",
    "cp_discount_share",
    "cp_first_days",
)
PRODUCT_COLUMNS = (
    "prod_buyers",
    "prod_baskets",
    "prod_popularity_30d",
    "prod_repurchase_rate",
    "prod_cycle_median",
    "prod_price_mean",
    "department",
    "category",
)


def _f32(a) -> np.ndarray:
    return np.asarray(a, dtype="float32")


def _cp_frame(hist: History) -> pd.DataFrame:
    p = hist.pairs
    cust, count = p["cust"], p["count"]
    freq = hist.frequency[cust]
    days_since = hist.b_days_before[p["last_b"]]
    baskets_90d = np.bincount(hist.b_cust, weights=hist.b_days_before <= 90, minlength=hist.n_cust)
    share = count / freq
    gross = p["value"] + p["retail_disc"] + p["coupon_disc"]
    out = pd.DataFrame(
        {
            "customer_id": hist.cust_ids[cust],
            "product_id": hist.prod_ids[p["prod"]],
            "cp_count": count.astype("int32"),
            "cp_basket_share": _f32(share),
            "cp_days_since": _f32(days_since),
            "cp_baskets_since": (hist.cust_b_last[cust] - p["last_b"]).astype("int32"),
            "cp_interval_mean": _f32(p["interval_mean"]),
            "cp_interval_std": _f32(p["interval_std"]),
            "cp_overdue": _f32(safe_div(days_since, p["interval_mean"])),
            "cp_count_30d": p["count_30d"].astype("int32"),
            "cp_count_90d": p["count_90d"].astype("int32"),
            "cp_trend": _f32(safe_div(p["count_90d"], baskets_90d[cust]) - share),
            "cp_price_mean": _f32(safe_div(p["value"], p["qty"])),
            "cp_discount_share": _f32(safe_div(p["retail_disc"] + p["coupon_disc"], gross)),
            "cp_first_days": _f32(hist.b_days_before[p["first_b"]]),
        }
    )
    out.attrs["cutoff"] = str(hist.cutoff)
    return out


def customer_product_features(tables, cutoff, customer_ids=None) -> pd.DataFrame:
    """Features of every (customer, product) pair bought before ``cutoff``.

    Parameters
    ----------
    tables : Tables
        Canonical tables.
    cutoff : timestamp-like
        As-of time; nothing at or after it is read.
    customer_ids : array-like, optional
        Only these customers (their rows are the same as in a run on everyone).

    Returns
    -------
    pd.DataFrame
        Sorted by (customer_id, product_id), with columns:

        * ``cp_count``: baskets holding the product; ``cp_basket_share``: that over the
          customer's purchase baskets.
        * ``cp_days_since`` / ``cp_first_days``: days from the last / first purchase to
          the cutoff; ``cp_baskets_since``: the customer's baskets after the last one
          holding it (0 = bought in the latest basket).
        * ``cp_interval_mean`` / ``cp_interval_std``: the customer's own repurchase
          interval in days (NaN with fewer than 2 / 3 distinct purchase days);
          ``cp_overdue`` = ``cp_days_since / cp_interval_mean``.
        * ``cp_count_30d``, ``cp_count_90d``: baskets in the last 30 / 90 days;
          ``cp_trend``: basket share over the last 90 days minus the overall basket
          share (NaN when the customer had no basket in those 90 days).
        * ``cp_price_mean``: spend per unit; ``cp_discount_share``: (retail + coupon
          discount) / gross value.

        Counts are int32, other values float32, to keep ~1M pairs small.
    """
    hist = History(tables, as_cutoff(cutoff), customer_ids=customer_ids)
    return _cp_frame(hist)


def _product_frame(hist: History, products: pd.DataFrame | None) -> pd.DataFrame:
    p = hist.pairs
    n = hist.n_prod
    prod = p["prod"]
    buyers = np.bincount(prod, minlength=n)
    cycles = pd.Series(p["interval_mean"]).groupby(prod).median()  # NaN intervals skipped
    cycle = np.full(n, np.nan)
    cycle[cycles.index.to_numpy()] = cycles.to_numpy()
    frame = pd.DataFrame(
        {
            "prod_buyers": buyers.astype("int32"),
            "prod_baskets": np.bincount(prod, weights=p["count"], minlength=n).astype("int32"),
            "prod_popularity_30d": np.bincount(
                prod, weights=hist.b_days_before[p["last_b"]] <= 30, minlength=n
            ).astype("int32"),
            "prod_repurchase_rate": _f32(
                safe_div(np.bincount(prod, weights=p["count"] >= 2, minlength=n), buyers)
            ),
            "prod_cycle_median": _f32(cycle),
            "prod_price_mean": _f32(
                safe_div(
                    np.bincount(prod, weights=p["value"], minlength=n),
                    np.bincount(prod, weights=p["qty"], minlength=n),
                )
            ),
        },
        index=pd.Index(hist.prod_ids, name="product_id"),
    )
    # catalogue products not sold before the cutoff: zero counts, NaN rates
    if products is not None:
        ids = pd.Index(products["product_id"]).union(frame.index)
        ids.name = "product_id"
        frame = frame.reindex(ids)
        for c in ("prod_buyers", "prod_baskets", "prod_popularity_30d"):
            frame[c] = frame[c].fillna(0).astype("int32")
        ref = products.set_index("product_id")
        for c in ("department", "category"):
            frame[c] = ref[c].reindex(ids).to_numpy(dtype=object) if c in ref.columns else None
    else:
        frame["department"] = None
        frame["category"] = None
    frame.attrs["cutoff"] = str(hist.cutoff)
    return frame


def product_features(tables, cutoff) -> pd.DataFrame:
    """Product-level statistics over all customers before ``cutoff`` (global, pass explicitly).

    Parameters
    ----------
    tables : Tables
        Canonical tables with every customer.
    cutoff : timestamp-like
        As-of time; nothing at or after it is read.

    Returns
    -------
    pd.DataFrame
        Indexed by ``product_id``: every product of the products table (if any) plus
        every product sold before the cutoff. ``prod_buyers`` (customers), ``prod_baskets``,
        ``prod_popularity_30d`` (customers who bought it in the last 30 days),
        ``prod_repurchase_rate`` (share of buyers with >= 2 baskets holding it; NaN with
        no buyer), ``prod_cycle_median`` (median over buyers of their own repurchase
        interval, days), ``prod_price_mean`` (spend per unit), ``department``, ``category``.
    """
    hist = History(tables, as_cutoff(cutoff))
    return _product_frame(hist, tables.products)
