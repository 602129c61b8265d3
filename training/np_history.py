"""Purchase history as of a cutoff, shared by the next-purchase baselines and ranker.

Only sales (not returns) strictly before the cutoff are read. A basket is a set of
distinct products; its time is the time of its first line.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from features.contract import Tables
from training.cs_data import top_n_rows

logger = logging.getLogger(__name__)

DAY = pd.Timedelta(days=1)


def sales_before(tables: Tables, cutoff) -> pd.DataFrame:
    """Distinct (customer, basket, product) purchases before ``cutoff`` with the basket time.

    A purchase is a sale line (``quantity > 0`` and ``sales_value >= 0``), the definition
    used by :mod:`features.labels` and :mod:`features.customer_product`.

    Returns
    -------
    pd.DataFrame
        Columns ``customer_id, basket_id, product_id, timestamp`` (basket time), sorted by
        customer, basket time, basket id, product id.
    """
    cutoff = pd.Timestamp(cutoff)
    tx = tables.transactions
    sale = (tx["quantity"] > 0) & (tx["sales_value"] >= 0)
    tx = tx.loc[
        (tx["timestamp"] < cutoff) & sale, ["customer_id", "basket_id", "product_id", "timestamp"]
    ]
    if tx.empty:
        return tx.reset_index(drop=True)
    bt = tx.groupby("basket_id", sort=False)["timestamp"].transform("min")
    out = tx.assign(timestamp=bt).drop_duplicates(["basket_id", "product_id"])
    return out.sort_values(
        ["customer_id", "timestamp", "basket_id", "product_id"], kind="stable"
    ).reset_index(drop=True)


def popular_products(sales: pd.DataFrame) -> pd.DataFrame:
    """Products by number of baskets that hold them (ties: more recent last sale, then id).

    Returns columns ``product_id, baskets, last`` in rank order.
    """
    pop = sales.groupby("product_id", sort=True).agg(
        baskets=("basket_id", "size"), last=("timestamp", "max")
    )
    pop = pop.reset_index().sort_values(
        ["baskets", "last", "product_id"], ascending=[False, False, True], kind="stable"
    )
    return pop.reset_index(drop=True)


def customer_product_counts(sales: pd.DataFrame) -> pd.DataFrame:
    """Per (customer, product): baskets with it and the last purchase time, in P-TopFreq order.

    Order within a customer: more baskets first, ties broken by the more recent last
    purchase, then by product id.
    """
    cp = (
        sales.groupby(["customer_id", "product_id"], sort=True)
        .agg(count=("basket_id", "size"), last=("timestamp", "max"))
        .reset_index()
    )
    return cp.sort_values(
        ["customer_id", "count", "last", "product_id"],
        ascending=[True, False, False, True],
        kind="stable",
    ).reset_index(drop=True)


def window_labels(tables: Tables, cutoff, days: int = 14) -> pd.DataFrame:
    """Distinct products bought in ``[cutoff, cutoff + days)`` by customers with history before it.

    The project's one definition, :func:`features.labels.next_purchase_labels`.
    """
    from features.labels import next_purchase_labels

    lab = next_purchase_labels(tables, cutoff, days=days)
    return lab[["customer_id", "product_id"]].reset_index(drop=True)


def top_n_per_row(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Column indices and values of the ``min(n, width)`` largest entries of each row, best first.

    Ties are broken by the lower column index, so the result is deterministic
    (:func:`training.cs_data.top_n_rows` without padding).
    """
    return top_n_rows(scores, max(min(n, scores.shape[1]), 0))
