"""Labels of the evaluation protocol (DESIGN.md, "Time and evaluation").

Labels read events at or after the cutoff; the only thing they read before it is who
has a history (and, for cross-sell, what the customer already bought). A *purchase* is a
sale line (``quantity > 0`` and ``sales_value >= 0``); spend is net ``sales_value``
(returns negative). A window that runs past the last transaction is logged as a warning:
its labels are censored.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from features._util import as_cutoff, require_columns

logger = logging.getLogger(__name__)


def _tx(tables) -> pd.DataFrame:
    tx = tables.transactions
    require_columns(
        tx, "transactions", ("customer_id", "product_id", "timestamp", "quantity", "sales_value")
    )
    return tx


def _positive_days(days, name: str) -> pd.Timedelta:
    if not isinstance(days, int | np.integer) or days <= 0:
        raise ValueError(f"{name} must be a positive whole number of days, got {days!r}")
    return pd.Timedelta(days=int(days))


def _check_end(tx: pd.DataFrame, end: pd.Timestamp, what: str) -> None:
    last = tx["timestamp"].max()
    if pd.notna(last) and end > last + pd.Timedelta(days=1):
        logger.warning(
            "%s window ends %s, after the last transaction (%s): labels are censored",
            what,
            end,
            last,
        )


def _is_sale(tx: pd.DataFrame) -> pd.Series:
    return (tx["quantity"] > 0) & (tx["sales_value"] >= 0)


def _buyers_before(tx: pd.DataFrame, cutoff: pd.Timestamp) -> pd.Index:
    """Customers with at least one purchase strictly before ``cutoff`` (sorted)."""
    m = (tx["timestamp"] < cutoff) & _is_sale(tx)
    return pd.Index(np.sort(tx.loc[m, "customer_id"].unique()), name="customer_id")


def _window(tx: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    ts = tx["timestamp"]
    return tx[(ts >= start) & (ts < end)]


def next_purchase_labels(tables, cutoff, days: int = 14) -> pd.DataFrame:
    """Distinct products each customer with history buys in ``[cutoff, cutoff + days)``.

    Returns
    -------
    pd.DataFrame
        Columns ``customer_id``, ``product_id`` (sale lines only; returns excluded),
        sorted. Customers with no purchase in the window have no rows.
    """
    cutoff = as_cutoff(cutoff)
    tx = _tx(tables)
    end = cutoff + _positive_days(days, "days")
    _check_end(tx, end, "next-purchase")
    w = _window(tx, cutoff, end)
    w = w[_is_sale(w) & w["customer_id"].isin(_buyers_before(tx, cutoff))]
    out = (
        w[["customer_id", "product_id"]]
        .drop_duplicates()
        .sort_values(["customer_id", "product_id"])
    )
    return out.reset_index(drop=True)


def cross_sell_labels(tables, cutoff, days: int = 28, level: str = "product") -> pd.DataFrame:
    """Products (or categories) new to a customer, bought in ``[cutoff, cutoff + days)``.

    New means the customer never bought it (at that level) before the cutoff; only
    customers with a purchase before the cutoff are labelled.

    Parameters
    ----------
    level : {"product", "category"}
        Category level needs the products table; products without a category are skipped.

    Returns
    -------
    pd.DataFrame
        Columns ``customer_id`` and ``product_id`` (or ``category``), sorted.
    """
    if level not in ("product", "category"):
        raise ValueError(f"level must be 'product' or 'category', got {level!r}")
    cutoff = as_cutoff(cutoff)
    tx = _tx(tables)
    end = cutoff + _positive_days(days, "days")
    _check_end(tx, end, "cross-sell")
    item = "product_id"
    cols = ["customer_id", "product_id"]
    sale = tx[_is_sale(tx) & (tx["timestamp"] < end)]
    if level == "category":
        if tables.products is None or "category" not in tables.products.columns:
            raise ValueError(
                "cross_sell_labels(level='category') needs a products table with a 'category' column"
            )
        cat = tables.products.set_index("product_id")["category"]
        sale = sale[cols + ["timestamp"]].assign(category=sale["product_id"].map(cat).to_numpy())
        sale = sale[sale["category"].notna()]
        item = "category"
    before = sale[sale["timestamp"] < cutoff]
    after = sale[
        (sale["timestamp"] >= cutoff) & sale["customer_id"].isin(before["customer_id"].unique())
    ]
    after = after[["customer_id", item]].drop_duplicates()
    known = before[["customer_id", item]].drop_duplicates()
    merged = after.merge(known, on=["customer_id", item], how="left", indicator=True)
    out = merged.loc[merged["_merge"] == "left_only", ["customer_id", item]]
    return out.sort_values(["customer_id", item]).reset_index(drop=True)


def _spend_by_customer(tx: pd.DataFrame, start, end, ids: pd.Index) -> pd.Series:
    w = _window(tx, start, end)
    w = w[w["customer_id"].isin(ids)]
    return (
        w.groupby("customer_id")["sales_value"].sum().reindex(ids, fill_value=0.0).astype("float64")
    )


def churn_labels(
    tables, cutoff, horizon: int = 60, active_days: int = 90, partial_share: float = 0.5
) -> pd.DataFrame:
    """Full and partial churn of the customers active in the ``active_days`` before ``cutoff``.

    Returns
    -------
    pd.DataFrame
        Indexed by ``customer_id`` (customers with a purchase in
        ``[cutoff - active_days, cutoff)``): ``churn`` (1 = no purchase in
        ``[cutoff, cutoff + horizon)``), ``partial_churn`` (1 = net spend in that window
        below ``partial_share`` x the net spend in the ``horizon`` days before the cutoff),
        ``spend_prev``, ``spend_next``.
    """
    if not 0 < partial_share <= 1:
        raise ValueError(f"partial_share must be in (0, 1], got {partial_share!r}")
    cutoff = as_cutoff(cutoff)
    tx = _tx(tables)
    h = _positive_days(horizon, "horizon")
    a = _positive_days(active_days, "active_days")
    _check_end(tx, cutoff + h, "churn")
    sale = tx[_is_sale(tx)]
    active = _window(sale, cutoff - a, cutoff)["customer_id"].unique()
    ids = pd.Index(np.sort(active), name="customer_id")
    bought = pd.Index(_window(sale, cutoff, cutoff + h)["customer_id"].unique())
    spend_prev = _spend_by_customer(tx, cutoff - h, cutoff, ids)
    spend_next = _spend_by_customer(tx, cutoff, cutoff + h, ids)
    return pd.DataFrame(
        {
            "churn": (~ids.isin(bought)).astype("int8"),
            "partial_churn": (spend_next < partial_share * spend_prev).astype("int8").to_numpy(),
            "spend_prev": spend_prev.to_numpy(),
            "spend_next": spend_next.to_numpy(),
        },
        index=ids,
    )


def value_labels(tables, cutoff, days: int = 90) -> pd.DataFrame:
    """Net spend in ``[cutoff, cutoff + days)`` of every customer with a purchase before ``cutoff``.

    Returns
    -------
    pd.DataFrame
        Indexed by ``customer_id``: ``spend_next`` (0 when nothing was bought).
    """
    cutoff = as_cutoff(cutoff)
    tx = _tx(tables)
    end = cutoff + _positive_days(days, "days")
    _check_end(tx, end, "value")
    ids = _buyers_before(tx, cutoff)
    return pd.DataFrame(
        {"spend_next": _spend_by_customer(tx, cutoff, end, ids).to_numpy()}, index=ids
    )
