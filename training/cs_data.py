"""Purchase history as of a cutoff, arranged for the cross-sell rankers.

A *purchase* is a sale line (``quantity > 0`` and ``sales_value >= 0``), the definition of
:func:`features.labels.cross_sell_labels`, so "never bought before the cutoff" means the
same thing for the recommendations and for the truth. Only lines strictly before the
cutoff are read.

The recommendable products (the *item universe*) are the products with at least
``min_buyers`` distinct buyers before the cutoff: a product nobody (or one household)
bought cannot be learnt from the data, and dropping them keeps the score matrices small
(Complete Journey: ~35k of ~90k products, covering ~90% of the cross-sell truth).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from features.contract import Tables

logger = logging.getLogger(__name__)

DAY = pd.Timedelta(days=1)


def is_sale(tx: pd.DataFrame) -> pd.Series:
    """Sale lines: positive quantity and non-negative value (returns and zero lines excluded)."""
    return (tx["quantity"] > 0) & (tx["sales_value"] >= 0)


@dataclass
class CrossSellHistory:
    """Customer x product purchase counts before ``cutoff`` over the item universe.

    Attributes
    ----------
    cutoff : pd.Timestamp
    customers : np.ndarray
        Sorted ids of the customers with a purchase before the cutoff (matrix rows).
    items : np.ndarray
        Sorted product ids of the item universe (matrix columns).
    counts : scipy.sparse.csr_matrix
        float32, baskets of the customer holding the product. Its non-zero pattern is the
        exclusion set: every universe product the customer ever bought before the cutoff.
    sales : pd.DataFrame
        Distinct (customer_id, basket_id, product_id) sales with the basket time
        ``timestamp``, every product (not only the universe), before the cutoff.
    products : pd.DataFrame or None
        The products table indexed by product_id (reference data, no cutoff).
    """

    cutoff: pd.Timestamp
    customers: np.ndarray
    items: np.ndarray
    counts: sp.csr_matrix
    sales: pd.DataFrame
    products: pd.DataFrame | None = None
    _cust_pos: pd.Series = field(default=None, repr=False)
    _item_pos: pd.Series = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._cust_pos = pd.Series(np.arange(len(self.customers)), index=self.customers)
        self._item_pos = pd.Series(np.arange(len(self.items)), index=self.items)

    @property
    def n_customers(self) -> int:
        return len(self.customers)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def rows(self, customer_ids) -> np.ndarray:
        """Matrix rows of ``customer_ids`` (-1 for customers without history)."""
        return (
            self._cust_pos.reindex(np.asarray(customer_ids, dtype="int64"))
            .fillna(-1)
            .to_numpy("int64")
        )

    def cols(self, product_ids) -> np.ndarray:
        """Matrix columns of ``product_ids`` (-1 for products outside the universe)."""
        return (
            self._item_pos.reindex(np.asarray(product_ids, dtype="int64"))
            .fillna(-1)
            .to_numpy("int64")
        )

    def binary(self) -> sp.csr_matrix:
        b = self.counts.copy()
        b.data[:] = 1.0
        return b

    def item_attribute(self, column: str) -> np.ndarray:
        """``column`` of the products table for each universe item (None if unknown)."""
        if self.products is None or column not in self.products.columns:
            return np.full(self.n_items, None, dtype=object)
        return self.products[column].reindex(self.items).to_numpy(dtype=object)

    def recent_buyers(self, days: int, end_days: int = 0) -> np.ndarray:
        """Distinct buyers per universe item in ``[cutoff - days, cutoff - end_days)``."""
        s = self.sales
        lo, hi = self.cutoff - days * DAY, self.cutoff - end_days * DAY
        w = s[(s["timestamp"] >= lo) & (s["timestamp"] < hi)]
        n = w.drop_duplicates(["customer_id", "product_id"])["product_id"].value_counts()
        return n.reindex(self.items, fill_value=0).to_numpy("float64")


def sales_before(tables: Tables, cutoff) -> pd.DataFrame:
    """Distinct (customer, basket, product) sales strictly before ``cutoff`` with the basket time."""
    cutoff = pd.Timestamp(cutoff)
    tx = tables.transactions
    m = (tx["timestamp"] < cutoff) & is_sale(tx)
    s = tx.loc[m, ["customer_id", "basket_id", "product_id", "timestamp"]]
    if s.empty:
        return s.reset_index(drop=True)
    s = s.assign(timestamp=s.groupby("basket_id", sort=False)["timestamp"].transform("min"))
    s = s.drop_duplicates(["basket_id", "product_id"])
    return s.sort_values(
        ["customer_id", "timestamp", "basket_id", "product_id"], kind="stable"
    ).reset_index(drop=True)


def build_history(tables: Tables, cutoff, min_buyers: int = 2) -> CrossSellHistory:
    """Build the :class:`CrossSellHistory` of ``tables`` as of ``cutoff``.

    Raises
    ------
    ValueError
        If there is no sale before the cutoff or ``min_buyers`` < 1.
    """
    if min_buyers < 1:
        raise ValueError(f"min_buyers must be >= 1, got {min_buyers!r}")
    cutoff = pd.Timestamp(cutoff)
    sales = sales_before(tables, cutoff)
    if sales.empty:
        first = tables.transactions["timestamp"].min()
        raise ValueError(
            f"no purchase before the cutoff {cutoff} (data starts {first}); nothing to learn from"
        )
    cp = sales.groupby(["customer_id", "product_id"], sort=True).size().rename("n").reset_index()
    buyers = cp["product_id"].value_counts()
    items = np.sort(buyers.index[buyers >= min_buyers].to_numpy("int64"))
    if len(items) == 0:
        raise ValueError(f"no product has >= {min_buyers} buyers before {cutoff}; lower min_buyers")
    customers = np.sort(cp["customer_id"].unique()).astype("int64")
    cpi = cp[cp["product_id"].isin(items)]
    r = np.searchsorted(customers, cpi["customer_id"].to_numpy())
    c = np.searchsorted(items, cpi["product_id"].to_numpy())
    counts = sp.csr_matrix(
        (cpi["n"].to_numpy("float32"), (r, c)), shape=(len(customers), len(items)), dtype=np.float32
    )
    products = None
    if tables.products is not None:
        products = tables.products.set_index("product_id")
    logger.debug(
        "cross-sell history as of %s: %d customers, %d items, %d pairs",
        cutoff,
        len(customers),
        len(items),
        counts.nnz,
    )
    return CrossSellHistory(cutoff, customers, items, counts, sales, products)


def compute_threads() -> int:
    """Threads for array work whose result does not depend on the thread count.

    That is implicit's item kNN and ALS (each item's / customer's row is computed on its
    own), row blocks of sparse products, chunks of candidate scores and TIFU-KNN blocks.
    ``OMP_NUM_THREADS`` when set (the ``train all`` worker processes set 1: they already run
    side by side), else every core this process may use.
    """
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def thread_map(fn: Callable, items: Sequence, threads: int | None = None) -> list:
    """``[fn(x) for x in items]``, in order, on :func:`compute_threads` threads (numpy and
    scipy release the GIL in their heavy loops)."""
    threads = compute_threads() if threads is None else threads
    if threads <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(min(threads, len(items))) as pool:
        return list(pool.map(fn, items))


def sparse_dense_matmul(
    a: sp.csr_matrix, b: np.ndarray, threads: int | None = None, block_rows: int = 2048
) -> np.ndarray:
    """``a @ b`` (CSR times dense) in row blocks on :func:`compute_threads` threads.

    Each output row is the same sum in the same order as in one ``a @ b``, so the result
    is identical whatever the thread count.
    """
    threads = compute_threads() if threads is None else threads
    a = sp.csr_matrix(a)
    if threads <= 1 or a.shape[0] < 2 * threads:
        return np.asarray(a @ b)
    out = np.empty((a.shape[0], b.shape[1]), dtype=np.result_type(a.dtype, b.dtype))
    # many small blocks written in place: no stacking copy, and the threads stay busy
    edges = np.unique(np.r_[np.arange(0, a.shape[0], max(block_rows, 1)), a.shape[0]])

    def block(i: int) -> None:
        out[edges[i] : edges[i + 1]] = a[edges[i] : edges[i + 1]] @ b

    thread_map(block, range(len(edges) - 1), threads)
    return out


def top_n_rows(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Column indices and values of the ``n`` largest finite entries of each row, best first.

    Ties are broken by the lower column index, so the result is deterministic. Rows with
    fewer than ``n`` finite entries are padded with index -1 and value -inf.

    Wide rows take a sampled threshold first: the ``n``-th largest value of every
    ``step``-th column is a lower bound of the row's ``n``-th largest, so only the entries
    at or above it are selected from (a few times ``n`` instead of the whole row). Rows whose
    sample has too few finite values or that have too many entries at the
    bound go the exact way.
    The answer is the same either way.
    """
    m = scores.shape[1]
    n_eff = min(n, m)
    idx = np.full((scores.shape[0], n), -1, dtype=np.int64)
    val = np.full((scores.shape[0], n), -np.inf)
    if n_eff <= 0 or scores.shape[0] == 0:
        return idx, val
    nan = np.isnan(scores)
    if nan.any():  # NaN is not a score: it would sort above everything in the partition
        scores = np.where(nan, -np.inf, scores)
    step = int(np.sqrt(m / n_eff))
    rest = np.arange(scores.shape[0])
    if step >= 4:
        rest = _top_n_sampled(scores, n_eff, step, idx, val)
    if len(rest):
        idx[rest], val[rest] = _top_n_exact(scores[rest], n, n_eff)
    return idx, val


def _top_n_sampled(
    scores: np.ndarray, n_eff: int, step: int, idx: np.ndarray, val: np.ndarray
) -> np.ndarray:
    """Fill ``idx``/``val`` for the rows a sampled bound settles; return the other rows."""
    # step = floor(sqrt(m / n_eff)) gives ceil(m / step) >= sqrt(m * n_eff) >= n_eff columns
    sample = scores[:, ::step]
    bound = np.partition(sample, sample.shape[1] - n_eff, axis=1)[:, sample.shape[1] - n_eff]
    # at least n_eff sampled entries are >= bound, so the true top n are all >= it
    # rows with NaN (a NaN row sum: NaN, or both infinities) go the exact way
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(bound) & ~np.isnan(scores.sum(axis=1))
    mask = scores >= np.where(ok, bound, np.inf)[:, None]
    counts = mask.sum(axis=1)
    ok &= counts <= max(64 * n_eff, 4096)  # heavy ties at the bound: the exact way is cheaper
    mask[~ok] = False
    rows = np.flatnonzero(ok)
    if len(rows):
        # the entries at or above the bound, packed to the left in column order, so the
        # exact selection of the small packed matrix breaks ties by the lower column too
        r, c = np.nonzero(mask)  # only the rows in ``rows``, by row then column
        slot = (np.cumsum(ok) - 1)[r]  # the row's place in ``rows``
        pos = np.arange(len(r)) - np.r_[0, np.cumsum(counts[rows])[:-1]][slot]
        packed = np.full((len(rows), counts[rows].max()), -np.inf)
        packed_col = np.zeros(packed.shape, dtype=np.int64)
        packed[slot, pos] = scores[r, c]
        packed_col[slot, pos] = c
        p_idx, p_val = _top_n_exact(packed, n_eff, n_eff)
        idx[rows, :n_eff] = np.take_along_axis(packed_col, p_idx, axis=1)
        val[rows, :n_eff] = p_val
    return np.flatnonzero(~ok)


def _top_n_exact(scores: np.ndarray, n: int, n_eff: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`top_n_rows` by a full partition of every row."""
    m = scores.shape[1]
    idx = np.full((scores.shape[0], n), -1, dtype=np.int64)
    val = np.full((scores.shape[0], n), -np.inf)
    if n_eff < m:
        part = np.argpartition(scores, m - n_eff, axis=1)[:, m - n_eff :]
    else:
        part = np.broadcast_to(np.arange(m), scores.shape)
    part_val = np.take_along_axis(scores, part, axis=1)
    kth = part_val.min(axis=1)
    # The partition holds every entry above its smallest value; it is the answer unless
    # some entry equal to that value was left out (a tie the lower column index must win)
    # or the row has too few finite entries.
    exact = np.isfinite(kth) & (
        (scores == kth[:, None]).sum(axis=1) == (part_val == kth[:, None]).sum(axis=1)
    )
    if exact.any():
        p, v = part[exact], part_val[exact]
        order = np.lexsort((p, -v), axis=1)
        idx[exact, :n_eff] = np.take_along_axis(p, order, axis=1)
        val[exact, :n_eff] = np.take_along_axis(v, order, axis=1)
    for i in np.flatnonzero(~exact):
        row = scores[i]
        above = np.flatnonzero(row > kth[i])
        tie = np.flatnonzero(row == kth[i])[: n_eff - len(above)]
        sel = np.concatenate([above, tie])
        sel = sel[np.isfinite(row[sel])]
        order = np.lexsort((sel, -row[sel]))
        sel = sel[order]
        idx[i, : len(sel)] = sel
        val[i, : len(sel)] = row[sel]
    return idx, val


def rank_matrix_rows(scores: np.ndarray) -> np.ndarray:
    """Rank (1 = best) of every entry within its row; ties by lower column index."""
    order = np.lexsort((np.broadcast_to(np.arange(scores.shape[1]), scores.shape), -scores), axis=1)
    ranks = np.empty_like(order)
    np.put_along_axis(
        ranks, order, np.arange(1, scores.shape[1] + 1)[None, :].repeat(scores.shape[0], 0), axis=1
    )
    return ranks


def category_shares(
    history: CrossSellHistory, rows: np.ndarray | None = None
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Share of each customer's purchases (customer x product pairs) per category.

    Returns the customers x categories sparse matrix (rows sum to 1 where any product has a
    category) and the category names of its columns. Every product bought counts, not only
    the universe.
    """
    cats = np.array([], dtype=object)
    n = history.n_customers
    if history.products is None or "category" not in history.products.columns:
        return sp.csr_matrix((n, 0)), cats
    s = history.sales[["customer_id", "product_id"]].drop_duplicates()
    cat = history.products["category"].reindex(s["product_id"].to_numpy()).to_numpy(dtype=object)
    ok = pd.notna(cat)
    cats, codes = np.unique(cat[ok].astype(str), return_inverse=True)
    r = history.rows(s["customer_id"].to_numpy()[ok])
    m = sp.csr_matrix((np.ones(len(r), dtype=np.float64), (r, codes)), shape=(n, len(cats)))
    tot = np.asarray(m.sum(axis=1)).ravel()
    m = sp.diags(1.0 / np.maximum(tot, 1.0)) @ m
    m = m.tocsr()
    if rows is not None:
        m = m[rows]
    return m, cats
