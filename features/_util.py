"""Shared, vectorised preparation of a customer history as of a cutoff.

:class:`History` reads the line items strictly before the cutoff once and arranges them
as numpy arrays with dense codes (customers, products, baskets), so every feature
family is a handful of ``np.bincount`` / sort passes instead of pandas groupbys.

Per-customer property: every array is derived from a customer's own lines (codes are
only labels), so the values of one customer do not depend on which other customers are
in the tables. Sums run in line order, which any subset of customers keeps.
"""

from __future__ import annotations

import logging
from functools import cached_property

import numpy as np
import pandas as pd

from features.contract import ContractError, Tables

logger = logging.getLogger(__name__)

DAY_NS = 86_400 * 10**9
TX_COLUMNS = (
    "customer_id",
    "basket_id",
    "product_id",
    "store_id",
    "timestamp",
    "quantity",
    "sales_value",
    "retail_discount",
    "coupon_discount",
)


def as_cutoff(cutoff) -> pd.Timestamp:
    """The cutoff as a naive ``pd.Timestamp`` (tz-aware values are converted to UTC)."""
    if cutoff is None:
        raise ValueError("cutoff is required: features read only events strictly before it")
    try:
        ts = pd.Timestamp(cutoff)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"cutoff {cutoff!r} is not a date or time: {exc}") from None
    if ts is pd.NaT:
        raise ValueError(f"cutoff {cutoff!r} is missing (NaT)")
    if ts.tzinfo is not None:
        ts = ts.tz_convert(None)
    return ts


def require_columns(df: pd.DataFrame | None, table: str, columns) -> None:
    """Raise a ContractError naming the missing columns of ``table``."""
    if df is None:
        raise ContractError(table, None, "table is required here but missing")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ContractError(
            table, missing[0], f"missing column(s) {missing}; columns present: {list(df.columns)}"
        )


def ts_ns(s: pd.Series) -> np.ndarray:
    """Nanoseconds since the epoch of a datetime column, as int64 (no copy when possible)."""
    if not pd.api.types.is_datetime64_any_dtype(s):
        raise ContractError(
            "transactions",
            s.name,
            f"expected datetime64 values, got {s.dtype}; run contract.validate first",
        )
    arr = s.to_numpy()
    if arr.dtype != "datetime64[ns]":
        arr = arr.astype("datetime64[ns]")
    return arr.view("int64")


def days_back(days_before: np.ndarray) -> np.ndarray:
    """Whole days back from the cutoff of events ``days_before`` (> 0) days before it.

    Day 0 is ``[T - 1 day, T)``, day ``d`` is ``[T - (d + 1) days, T - d days)``, so ``d < N``
    selects ``[T - N days, T)``, the project's "last N days" (``days_before <= N``), and
    ``d // 7`` numbers the weeks back the same way (week 0 = ``[T - 7 days, T)``).
    """
    return np.maximum(np.ceil(np.asarray(days_before, dtype="float64")) - 1, 0).astype("int64")


def observed_weeks_before(transactions: pd.DataFrame, cutoff, data_start=None) -> int:
    """Whole weeks from the first day of the data (``data_start``, default the first
    transaction) to ``cutoff``; 0 when there is no data before ``cutoff``."""
    if data_start is None:
        if transactions.empty:
            return 0
        data_start = transactions["timestamp"].min()
    start = pd.Timestamp(data_start).floor("D")
    return max(int(((pd.Timestamp(cutoff) - start) / pd.Timedelta(days=1)) // 7), 0)


def safe_div(num, den) -> np.ndarray:
    """``num / den`` with NaN where ``den`` is 0 (or NaN), without warnings."""
    num = np.asarray(num, dtype="float64")
    den = np.asarray(den, dtype="float64")
    out = np.full(np.broadcast(num, den).shape, np.nan)
    ok = den != 0
    np.divide(num, den, out=out, where=ok)
    return out


def private_label(brand) -> np.ndarray:
    """1.0 for a private-label brand, 0.0 for a national one, NaN for anything else
    (missing, blank or a value outside the contract's ``national/private``); case and
    surrounding spaces are ignored. One definition for every feature that reads brands."""
    low = pd.Series(brand, dtype="object").map(
        lambda b: b.strip().lower() if isinstance(b, str) else None
    )
    out = np.full(len(low), np.nan)
    out[(low == "private").to_numpy()] = 1.0
    out[(low == "national").to_numpy()] = 0.0
    return out


def slug(name: str) -> str:
    """A column-name-safe lower-case version of a label ('DRUG GM' -> 'drug_gm')."""
    out = "".join(ch.lower() if ch.isalnum() else "_" for ch in str(name))
    out = "_".join(p for p in out.split("_") if p)
    return out or "unnamed"


def group_bounds(sorted_codes: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """First and one-past-last position of each code ``0..n-1`` in an ascending array."""
    codes = np.arange(n)
    return np.searchsorted(sorted_codes, codes, "left"), np.searchsorted(
        sorted_codes, codes, "right"
    )


class History:
    """Line items strictly before ``cutoff`` as arrays, with baskets and customer x product pairs.

    Parameters
    ----------
    tables : Tables
        Canonical tables (see :mod:`features.contract`).
    cutoff : timestamp-like
        Only transactions with ``timestamp < cutoff`` are read.
    customer_ids : array-like, optional
        Restrict to these customers.

    Notes
    -----
    *Sale lines* have ``quantity > 0`` and ``sales_value >= 0``; baskets and purchase
    counts use sale lines only. Spend is the net ``sales_value`` of all lines (returns
    negative). Basket codes are ranked by (customer, time), so a customer's baskets are
    consecutive codes in time order.
    """

    def __init__(self, tables: Tables, cutoff, customer_ids=None):
        self.cutoff = as_cutoff(cutoff)
        self.cutoff_ns = self.cutoff.value
        tx = tables.transactions
        require_columns(tx, "transactions", TX_COLUMNS)
        ts = ts_ns(tx["timestamp"])
        mask = ts < self.cutoff_ns
        cust = tx["customer_id"].to_numpy()
        if customer_ids is not None:
            mask &= np.isin(cust, np.asarray(pd.Index(customer_ids).unique(), dtype=cust.dtype))
        take = (lambda a: a) if mask.all() else (lambda a: a[mask])
        self.n_lines = int(mask.sum())

        self.ts = take(ts)
        self.cust_code, self.cust_ids = pd.factorize(take(cust), sort=True)
        self.prod_code, self.prod_ids = pd.factorize(take(tx["product_id"].to_numpy()), sort=True)
        self.cust_ids = np.asarray(self.cust_ids, dtype="int64")
        self.prod_ids = np.asarray(self.prod_ids, dtype="int64")
        self.n_cust, self.n_prod = len(self.cust_ids), len(self.prod_ids)
        self.qty = take(tx["quantity"].to_numpy("float64"))
        self.value = take(tx["sales_value"].to_numpy("float64"))
        self.retail_disc = take(tx["retail_discount"].to_numpy("float64"))
        self.coupon_disc = take(tx["coupon_discount"].to_numpy("float64"))
        self.days_before = (self.cutoff_ns - self.ts) / DAY_NS
        self.sale = (self.qty > 0) & (self.value >= 0)
        self.is_return = (self.qty < 0) | (self.value < 0)
        self._build_baskets(take(tx["basket_id"].to_numpy()), take(tx["store_id"].to_numpy()))
        logger.debug(
            "history as of %s: %d lines, %d customers, %d products, %d baskets",
            self.cutoff,
            self.n_lines,
            self.n_cust,
            self.n_prod,
            self.n_baskets,
        )

    # ------------------------------------------------------------------ baskets

    def _build_baskets(self, basket_id: np.ndarray, store_id: np.ndarray) -> None:
        sale = self.sale
        s_cust = self.cust_code[sale]
        s_ts = self.ts[sale]
        code, uniq = pd.factorize(basket_id[sale])
        nb = len(uniq)
        b_cust = np.zeros(nb, dtype="int64")
        b_cust[code] = s_cust  # one customer per basket (contract)
        b_ts = np.full(nb, np.iinfo("int64").min, dtype="int64")
        np.maximum.at(b_ts, code, s_ts)
        st_code, st_ids = pd.factorize(store_id[sale])
        b_store = np.full(nb, -1, dtype="int64")
        np.maximum.at(b_store, code, st_code)
        order = np.lexsort((np.asarray(uniq), b_ts, b_cust))
        rank = np.empty(nb, dtype="int64")
        rank[order] = np.arange(nb)
        self.line_basket = np.full(self.n_lines, -1, dtype="int64")
        self.line_basket[sale] = rank[code]
        self.n_baskets = nb
        self.n_stores = len(st_ids)
        self.b_cust = b_cust[order]
        self.b_ts = b_ts[order]
        self.b_store = b_store[order]
        self.b_days_before = (self.cutoff_ns - self.b_ts) / DAY_NS
        self.b_day = self.b_ts // DAY_NS
        sb = self.line_basket[sale]
        self.b_lines = np.bincount(sb, minlength=nb)
        self.b_value = np.bincount(sb, weights=self.value[sale], minlength=nb)
        self.cust_b_start, end = group_bounds(self.b_cust, self.n_cust)
        self.frequency = end - self.cust_b_start
        self.cust_b_last = end - 1  # valid where frequency > 0

    # ------------------------------------------------------------------ pairs

    @cached_property
    def pairs(self) -> dict[str, np.ndarray]:
        """Customer x product statistics over sale lines, one entry per pair, sorted by (customer, product).

        Keys: cust, prod (codes), count (baskets), first_b, last_b (basket codes),
        n_days, interval_mean, interval_std (calendar days between distinct purchase
        days), count_30d, count_90d, value, qty, retail_disc, coupon_disc.
        """
        sale = self.sale
        nb = max(self.n_baskets, 1)
        pair_key = self.cust_code[sale].astype("int64") * self.n_prod + self.prod_code[sale]
        if self.n_cust * self.n_prod >= np.iinfo("int64").max // nb:
            pair_key = pd.factorize(pair_key, sort=True)[0].astype("int64")  # dense, same order
        key = pair_key * nb + self.line_basket[sale]
        del pair_key
        order = np.argsort(key, kind="stable")
        ks = key[order]
        del key
        n = len(ks)
        if n == 0:
            empty_i, empty_f = np.zeros(0, "int64"), np.zeros(0, "float64")
            return {
                k: empty_i for k in ("cust", "prod", "count", "first_b", "last_b", "n_days")
            } | {
                k: empty_f
                for k in (
                    "interval_mean",
                    "interval_std",
                    "count_30d",
                    "count_90d",
                    "value",
                    "qty",
                    "retail_disc",
                    "coupon_disc",
                )
            }
        new_pb = np.empty(n, dtype=bool)
        new_pb[0] = True
        np.not_equal(ks[1:], ks[:-1], out=new_pb[1:])
        pb_rows = np.flatnonzero(new_pb)
        pb_key = ks[pb_rows]
        pb_pair_key = pb_key // nb
        pb_b = pb_key % nb
        del pb_key
        new_pair = np.empty(len(pb_rows), dtype=bool)
        new_pair[0] = True
        np.not_equal(pb_pair_key[1:], pb_pair_key[:-1], out=new_pair[1:])
        pb_pair = np.cumsum(new_pair) - 1
        n_pairs = int(pb_pair[-1]) + 1
        pair_start = np.flatnonzero(new_pair)
        pair_end = np.append(pair_start[1:], len(pb_rows)) - 1
        first_b = pb_b[pair_start]
        last_b = pb_b[pair_end]
        cust = self.b_cust[first_b]
        # product code: recover from the line at the start of each pair
        line_idx = np.flatnonzero(sale)[order[pb_rows[pair_start]]]
        prod = self.prod_code[line_idx].astype("int64")
        count = np.bincount(pb_pair, minlength=n_pairs)
        pb_days_before = self.b_days_before[pb_b]
        count_30d = np.bincount(pb_pair, weights=pb_days_before <= 30, minlength=n_pairs)
        count_90d = np.bincount(pb_pair, weights=pb_days_before <= 90, minlength=n_pairs)
        # distinct purchase days per pair and the gaps between them
        pb_day = self.b_day[pb_b]
        new_day = new_pair.copy()
        new_day[1:] |= pb_day[1:] != pb_day[:-1]
        d_pair = pb_pair[new_day]
        d_day = pb_day[new_day]
        n_days = np.bincount(d_pair, minlength=n_pairs)
        gap_ok = np.empty(len(d_pair), dtype=bool)
        gap_ok[0] = False
        np.equal(d_pair[1:], d_pair[:-1], out=gap_ok[1:])
        gaps = np.diff(d_day, prepend=0).astype("float64")
        g_pair, gaps = d_pair[gap_ok], gaps[gap_ok]
        n_gaps = n_days - 1
        interval_mean = safe_div(np.bincount(g_pair, weights=gaps, minlength=n_pairs), n_gaps)
        dev2 = (gaps - interval_mean[g_pair]) ** 2
        interval_std = np.sqrt(
            safe_div(
                np.bincount(g_pair, weights=dev2, minlength=n_pairs),
                np.where(n_gaps >= 2, n_gaps - 1, 0),
            )
        )
        # money per pair over every sale line (a basket may hold the product on several lines)
        line_pair = np.empty(n, dtype="int64")
        line_pair[order] = pb_pair[
            np.cumsum(new_pb) - 1
        ]  # back to sale-line order: sequential reads

        def per_pair(arr):
            return np.bincount(line_pair, weights=arr[sale], minlength=n_pairs)

        out = {
            "cust": cust,
            "prod": prod,
            "count": count,
            "first_b": first_b,
            "last_b": last_b,
            "n_days": n_days,
            "interval_mean": interval_mean,
            "interval_std": interval_std,
            "count_30d": count_30d,
            "count_90d": count_90d,
            "value": per_pair(self.value),
            "qty": per_pair(self.qty),
            "retail_disc": per_pair(self.retail_disc),
            "coupon_disc": per_pair(self.coupon_disc),
        }
        return out

    # ------------------------------------------------------------------ product lookups

    def product_attribute(self, products: pd.DataFrame | None, column: str) -> np.ndarray:
        """Value of ``products[column]`` for each product code (object array; None if unknown)."""
        out = np.full(self.n_prod, None, dtype=object)
        if products is None or column not in products.columns:
            return out
        idx = pd.Index(products["product_id"]).get_indexer(self.prod_ids)
        found = idx >= 0
        vals = products[column].to_numpy(dtype=object)
        out[found] = vals[idx[found]]
        return out
