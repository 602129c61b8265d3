"""Next-purchase baselines: G-TopFreq, P-TopFreq and TIFU-KNN.

All three implement :class:`training.base.Ranker` and only read sales strictly before the
cutoff given to ``fit``. Customers unknown at fit time (or with fewer than ``n`` scored
products) are padded with the globally most frequent products, scored 0.

TIFU-KNN follows Hu et al., "Modeling Personalized Item Frequency Information for
Next-basket Recommendation" (SIGIR 2020):

* each basket is a binary product vector;
* a customer's baskets, newest last, are cut into groups of ``group_size`` (m)
  consecutive baskets counted back from the newest one (the oldest group may be shorter);
* a group vector is the mean of its baskets weighted ``r_b ** j`` (j = 0 for the newest
  basket of the group, 1 for the one before, ...);
* the customer vector is the mean of the group vectors weighted ``r_g ** i`` (i = 0 for
  the newest group);
* the score is ``alpha * u + (1 - alpha) * mean of the k nearest customers' vectors``
  (Euclidean distance between customer vectors, the customer excluded).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from features.contract import Tables
from training.base import RECS_COLUMNS, Ranker, as_id_list, empty_recs
from training.cs_data import compute_threads, thread_map
from training.metrics import ranking_report, truth_to_dict
from training.np_history import (
    customer_product_counts,
    popular_products,
    sales_before,
    top_n_per_row,
    window_labels,
)

logger = logging.getLogger(__name__)

#: Rows of the dense score block computed at once (memory: rows x products x 8 bytes).
SCORE_CHUNK = 256


def _check_n(n: int) -> int:
    if not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    return int(n)


def pad_with_popular(
    recs: pd.DataFrame, ids: list[int], popular: np.ndarray, n: int
) -> pd.DataFrame:
    """Complete every customer's list to ``n`` rows with popular products not already listed."""
    have = recs.groupby("customer_id").size() if len(recs) else pd.Series(dtype="int64")
    need = pd.Series(ids, dtype="int64").drop_duplicates()
    short = need[need.map(have).fillna(0).to_numpy() < n]
    if len(short) == 0 or len(popular) == 0:
        out = recs
    else:
        pad = pd.DataFrame(
            {
                "customer_id": np.repeat(short.to_numpy(), min(len(popular), 2 * n)),
                "product_id": np.tile(popular[: 2 * n], len(short)),
            }
        )
        pad["_order"] = np.tile(np.arange(min(len(popular), 2 * n)), len(short))
        pad = pad.merge(recs[["customer_id", "product_id"]], how="left", indicator=True)
        pad = (
            pad[pad["_merge"] == "left_only"]
            .drop(columns="_merge")
            .sort_values(["customer_id", "_order"])
        )
        pad["score"] = 0.0
        base = recs.groupby("customer_id").size().rename("_have") if len(recs) else None
        if base is not None:
            pad = pad.merge(base, left_on="customer_id", right_index=True, how="left")
        else:
            pad["_have"] = 0
        pad["rank"] = (
            pad["_have"].fillna(0).astype("int64") + pad.groupby("customer_id").cumcount() + 1
        )
        pad = pad[pad["rank"] <= n].drop(columns=["_order", "_have"])
        out = pd.concat([recs, pad], ignore_index=True) if len(recs) else pad
    out = out[out["customer_id"].isin(need)]
    out = out.astype(
        {"customer_id": "int64", "product_id": "int64", "rank": "int64", "score": "float64"}
    )
    order = pd.Categorical(out["customer_id"], categories=need.to_numpy())
    out = out.assign(_c=order).sort_values(["_c", "rank"]).drop(columns="_c")
    return out[RECS_COLUMNS + [c for c in out.columns if c not in RECS_COLUMNS]].reset_index(
        drop=True
    )


class GTopFreq(Ranker):
    """The globally most frequent products (by number of baskets), the same list for everyone."""

    name = "g_topfreq"

    def fit(self, tables: Tables, cutoff, sales: pd.DataFrame | None = None) -> GTopFreq:
        """Count baskets before ``cutoff`` (``sales``: precomputed :func:`sales_before`)."""
        if sales is None:
            sales = sales_before(tables, cutoff)
        if sales.empty:
            raise ValueError(f"GTopFreq.fit: no sales before the cutoff {pd.Timestamp(cutoff)}")
        pop = popular_products(sales)
        self.cutoff_ = pd.Timestamp(cutoff)
        self.products_ = pop["product_id"].to_numpy()
        self.counts_ = pop["baskets"].to_numpy().astype(float)
        return self

    def recommend(self, customer_ids: Iterable[int] | int, n: int = 10) -> pd.DataFrame:
        n = _check_n(n)
        ids = as_id_list(customer_ids)
        if not ids:
            return empty_recs()
        m = min(n, len(self.products_))
        return pd.DataFrame(
            {
                "customer_id": np.repeat(np.asarray(ids, dtype="int64"), m),
                "product_id": np.tile(self.products_[:m], len(ids)),
                "rank": np.tile(np.arange(1, m + 1), len(ids)),
                "score": np.tile(self.counts_[:m], len(ids)),
            }
        )


class PTopFreq(Ranker):
    """The customer's own most frequent products (ties: more recent first), padded with G-TopFreq.

    ``score`` is the number of the customer's baskets holding the product.
    """

    name = "p_topfreq"

    def fit(self, tables: Tables, cutoff, sales: pd.DataFrame | None = None) -> PTopFreq:
        """Count baskets before ``cutoff`` (``sales``: precomputed :func:`sales_before`)."""
        if sales is None:
            sales = sales_before(tables, cutoff)
        if sales.empty:
            raise ValueError(f"PTopFreq.fit: no sales before the cutoff {pd.Timestamp(cutoff)}")
        self.cutoff_ = pd.Timestamp(cutoff)
        cp = customer_product_counts(sales)
        cp["rank"] = cp.groupby("customer_id").cumcount() + 1
        self.table_ = cp[["customer_id", "product_id", "rank", "count"]].set_index("customer_id")
        self.popular_ = popular_products(sales)["product_id"].to_numpy()
        return self

    def recommend(self, customer_ids: Iterable[int] | int, n: int = 10) -> pd.DataFrame:
        n = _check_n(n)
        ids = as_id_list(customer_ids)
        if not ids:
            return empty_recs()
        own = self.table_[self.table_.index.isin(ids)].reset_index()
        own = own[own["rank"] <= n].rename(columns={"count": "score"})
        return pad_with_popular(own[RECS_COLUMNS], ids, self.popular_, n)


@dataclass
class TifuParams:
    """TIFU-KNN hyper-parameters (names as in the paper)."""

    group_size: int = 7  # m: baskets per group
    within_decay: float = 0.9  # r_b
    group_decay: float = 0.7  # r_g
    k: int = 300  # nearest neighbours
    alpha: float = 0.7  # weight of the customer's own vector


class TifuKnn(Ranker):
    """TIFU-KNN (Hu et al., SIGIR 2020); see the module docstring for the formulas.

    Parameters
    ----------
    group_size, within_decay, group_decay, k, alpha
        See :class:`TifuParams`.
    """

    name = "tifu_knn"

    def __init__(
        self,
        group_size: int = 7,
        within_decay: float = 0.9,
        group_decay: float = 0.7,
        k: int = 300,
        alpha: float = 0.7,
    ):
        self.group_size = group_size
        self.within_decay = within_decay
        self.group_decay = group_decay
        self.k = k
        self.alpha = alpha

    @classmethod
    def from_params(cls, params: TifuParams | dict) -> TifuKnn:
        return cls(**(asdict(params) if isinstance(params, TifuParams) else params))

    def _validate(self) -> None:
        if int(self.group_size) < 1:
            raise ValueError(f"group_size must be >= 1, got {self.group_size}")
        for name in ("within_decay", "group_decay"):
            v = getattr(self, name)
            if not 0 < v <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {v}")
        if int(self.k) < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if not 0 <= self.alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")

    # ------------------------------------------------------------------ fit
    def fit(self, tables: Tables, cutoff, sales: pd.DataFrame | None = None) -> TifuKnn:
        """Build customer vectors and neighbours from sales before ``cutoff``.

        ``sales`` may pass a precomputed :func:`training.np_history.sales_before` frame.
        """
        self._validate()
        if sales is None:
            sales = sales_before(tables, cutoff)
        if sales.empty:
            raise ValueError(f"TifuKnn.fit: no sales before the cutoff {pd.Timestamp(cutoff)}")
        self.cutoff_ = pd.Timestamp(cutoff)
        self.customers_ = np.sort(sales["customer_id"].unique())
        self.products_ = np.sort(sales["product_id"].unique())
        self.popular_ = popular_products(sales)["product_id"].to_numpy()
        self.vectors_ = customer_vectors(
            sales,
            self.customers_,
            self.products_,
            self.group_size,
            self.within_decay,
            self.group_decay,
        )
        self.neighbours_ = nearest_neighbours(self.vectors_, int(self.k))
        return self

    def refit_neighbours(self, k: int) -> TifuKnn:
        """Change ``k`` without rebuilding the vectors (used by tuning)."""
        self.k = int(k)
        self.neighbours_ = nearest_neighbours(self.vectors_, self.k)
        return self

    # ------------------------------------------------------------------ scores
    def _rows(self, customer_ids: Iterable[int]) -> np.ndarray:
        """Row index of each customer in the fitted vectors (-1 if unknown)."""
        ids = np.asarray(list(customer_ids), dtype="int64")
        pos = np.searchsorted(self.customers_, ids)
        pos = np.clip(pos, 0, max(len(self.customers_) - 1, 0))
        found = self.customers_[pos] == ids
        return np.where(found, pos, -1)

    def _block(self, r: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
        """``(own, neigh, total)`` of customer rows ``r``: the own vectors (sparse, sorted
        indices), the neighbours' mean (dense) and ``alpha * own + (1 - alpha) * neigh``.

        The total adds the sparse own part into the scaled dense neighbour part: each entry
        is the same sum of the same two products as in the dense formula, so it is
        identical, without two more dense temporaries.
        """
        own = self.vectors_[r]
        own.sort_indices()
        k = self.neighbours_.shape[1]
        if k == 0 or self.alpha == 1:
            neigh = np.zeros(own.shape)
        else:
            nb = self.neighbours_[r]
            w = sp.csr_matrix(
                (np.full(nb.size, 1.0 / k), nb.ravel(), np.arange(0, nb.size + 1, k)),
                shape=(len(r), self.vectors_.shape[0]),
            )
            neigh = (w @ self.vectors_).toarray()
        total = neigh * (1 - self.alpha)
        rr = np.repeat(np.arange(own.shape[0]), np.diff(own.indptr))
        total[rr, own.indices] += self.alpha * own.data
        return own, neigh, total

    def _blocks(self, rows: np.ndarray, fn):
        """``fn(start, own, neigh, total)`` of each :data:`SCORE_CHUNK` block of customer
        ``rows``, in order, on :func:`training.cs_data.compute_threads` threads."""
        starts = list(range(0, len(rows), SCORE_CHUNK))
        return thread_map(
            lambda start: fn(start, *self._block(rows[start : start + SCORE_CHUNK])),
            starts,
            min(compute_threads(), 2),  # each block holds a few dense chunk x products arrays
        )

    def recommend(self, customer_ids: Iterable[int] | int, n: int = 10) -> pd.DataFrame:
        n = _check_n(n)
        ids = as_id_list(customer_ids)
        if not ids:
            return empty_recs()
        rows = self._rows(ids)
        known = np.asarray(ids, dtype="int64")[rows >= 0]
        krows = rows[rows >= 0]

        def block(start, own, neigh, total) -> pd.DataFrame:
            idx, val = top_n_per_row(total, n)
            part = pd.DataFrame(
                {
                    "customer_id": np.repeat(known[start : start + len(total)], idx.shape[1]),
                    "product_id": self.products_[idx.ravel()],
                    "rank": np.tile(np.arange(1, idx.shape[1] + 1), idx.shape[0]),
                    "score": val.ravel(),
                }
            )
            return part[part["score"] > 0]

        parts = self._blocks(krows, block)
        recs = pd.concat(parts, ignore_index=True) if parts else empty_recs()
        return pad_with_popular(recs, ids, self.popular_, n)

    def score_candidates(self, pairs: pd.DataFrame, top: int = 0) -> pd.DataFrame:
        """TIFU scores of (customer, product) pairs, plus each customer's ``top`` TIFU products.

        Parameters
        ----------
        pairs : pd.DataFrame
            Columns ``customer_id, product_id``; only their customers are scored.
        top : int
            Also return the customer's ``top`` best products by TIFU score (score > 0).

        Returns
        -------
        pd.DataFrame
            The union of ``pairs`` and the top lists (distinct), with ``tifu_score``,
            ``tifu_own`` (customer's own vector), ``tifu_neigh`` (neighbours' mean) and
            ``tifu_rank`` (rank among the top list, NaN outside it); 0 scores for unknown
            customers or products. Sorted by customer and product.
        """
        pairs = pairs[["customer_id", "product_id"]].drop_duplicates()
        ids = np.sort(pairs["customer_id"].unique()).astype("int64")
        rows = self._rows(ids)
        known, krows = ids[rows >= 0], rows[rows >= 0]
        kpairs = pairs[pairs["customer_id"].isin(known)]
        pcol = np.searchsorted(self.products_, kpairs["product_id"].to_numpy())
        pcol = np.clip(pcol, 0, len(self.products_) - 1)
        pok = self.products_[pcol] == kpairs["product_id"].to_numpy()
        crow = np.searchsorted(known, kpairs["customer_id"].to_numpy())

        def block(start, own, neigh, total) -> pd.DataFrame:
            in_block = (crow >= start) & (crow < start + len(total)) & pok
            bi, bc = crow[in_block] - start, pcol[in_block]
            cols = [bc]
            brow = [bi]
            rank = [np.full(len(bi), np.nan)]
            if top > 0:
                idx, val = top_n_per_row(total, top)
                r_, c_ = np.nonzero(val > 0)
                brow.append(r_)
                cols.append(idx[r_, c_])
                rank.append(c_ + 1.0)
            df = pd.DataFrame(
                {
                    "_r": np.concatenate(brow),
                    "_c": np.concatenate(cols),
                    "tifu_rank": np.concatenate(rank),
                }
            )
            df = df.sort_values(["_r", "_c", "tifu_rank"]).drop_duplicates(["_r", "_c"])
            r_, c_ = df["_r"].to_numpy(), df["_c"].to_numpy()
            return pd.DataFrame(
                {
                    "customer_id": known[start + r_],
                    "product_id": self.products_[c_],
                    "tifu_score": total[r_, c_],
                    "tifu_own": _entries(own, r_, c_),
                    "tifu_neigh": neigh[r_, c_],
                    "tifu_rank": df["tifu_rank"].to_numpy(),
                }
            )

        out = self._blocks(krows, block)
        cols = ["customer_id", "product_id", "tifu_score", "tifu_own", "tifu_neigh", "tifu_rank"]
        res = pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=cols)
        res = pairs.merge(res, how="outer", on=["customer_id", "product_id"])
        for c in ("tifu_score", "tifu_own", "tifu_neigh"):
            res[c] = res[c].astype(float).fillna(0.0)
        res["tifu_rank"] = res["tifu_rank"].astype(float)
        return res.sort_values(["customer_id", "product_id"]).reset_index(drop=True)


def _entries(m: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``m[rows, cols]`` as a flat float array (0 where the entry is not stored)."""
    if len(rows) == 0:
        return np.zeros(0)
    return np.asarray(m[rows, cols], dtype=float).ravel()


def customer_vectors(
    sales: pd.DataFrame,
    customers: np.ndarray,
    products: np.ndarray,
    group_size: int,
    within_decay: float,
    group_decay: float,
) -> sp.csr_matrix:
    """TIFU customer vectors (customers x products, CSR) from :func:`sales_before` rows."""
    baskets = sales.drop_duplicates("basket_id")[["customer_id", "basket_id", "timestamp"]]
    baskets = baskets.sort_values(["customer_id", "timestamp", "basket_id"], kind="stable")
    n_b = baskets.groupby("customer_id", sort=False)["basket_id"].transform("size").to_numpy()
    pos = baskets.groupby("customer_id", sort=False).cumcount().to_numpy()
    back = n_b - 1 - pos  # 0 = newest basket
    m = int(group_size)
    g = back // m  # 0 = newest group
    j = back % m  # position in the group from its newest basket
    n_groups = (n_b - 1) // m + 1
    # the oldest group holds the remainder
    in_group = np.where(g == n_groups - 1, n_b - (n_groups - 1) * m, m)
    w = (within_decay**j) * (group_decay**g) / (in_group * n_groups)
    bw = pd.Series(w, index=baskets["basket_id"].to_numpy())
    lw = bw.reindex(sales["basket_id"].to_numpy()).to_numpy()
    r = np.searchsorted(customers, sales["customer_id"].to_numpy())
    c = np.searchsorted(products, sales["product_id"].to_numpy())
    mat = sp.coo_matrix((lw, (r, c)), shape=(len(customers), len(products))).tocsr()
    mat.sum_duplicates()
    return mat


def nearest_neighbours(vectors: sp.csr_matrix, k: int) -> np.ndarray:
    """Indices of the ``k`` nearest rows (Euclidean) of each row, itself excluded; ties by index."""
    n = vectors.shape[0]
    k = min(int(k), n - 1)
    if k <= 0:
        return np.empty((n, 0), dtype=np.int64)
    vectors = sp.csr_matrix(vectors)
    sq = np.asarray(vectors.multiply(vectors).sum(axis=1), dtype=float).ravel()
    idx = np.empty((n, k), dtype=np.int64)
    # row blocks of at most ~16M distances (128 MB), not the whole n x n matrix
    step = max(1, min(n, _NN_BLOCK_CELLS // n))
    for start in range(0, n, step):
        stop = min(start + step, n)
        gram = (vectors[start:stop] @ vectors.T).toarray()
        dist = sq[start:stop, None] + sq[None, :] - 2 * gram
        dist[np.arange(stop - start), np.arange(start, stop)] = np.inf
        dist = np.round(dist, 12)  # float noise must not decide ties
        idx[start:stop], _ = top_n_per_row(-dist, k)
    return idx


#: Distances computed at once by :func:`nearest_neighbours` (rows per block x customers).
_NN_BLOCK_CELLS = 1 << 24


# ---------------------------------------------------------------------------- tuning

#: Coordinate-descent grid for TIFU-KNN tuning.
TIFU_GRID: dict[str, list] = {
    "group_size": [1, 3, 7, 15],
    "within_decay": [0.9, 0.95, 0.99, 1.0],
    "group_decay": [0.5, 0.7, 0.8, 0.9, 0.95],
    "k": [50, 100, 300, 600],
    "alpha": [0.5, 0.7, 0.8, 0.9, 0.95],
}


def evaluate_ranker(ranker: Ranker, truth: dict[int, set], k: int = 10) -> dict[str, float]:
    """Ranking report of ``ranker`` over the customers in ``truth``."""
    from training.metrics import recs_to_dict

    recs = ranker.recommend(list(truth), n=k)
    return ranking_report(recs_to_dict(recs, k), truth, k)


def tune_tifu(
    tables: Tables,
    cutoff,
    days: int = 14,
    metric: str = "ndcg@10",
    start: TifuParams | None = None,
    grid: dict[str, list] | None = None,
    rounds: int = 2,
    progress: Callable[[str], None] | None = None,
) -> tuple[TifuParams, float]:
    """Tune TIFU-KNN by coordinate descent on one validation cutoff.

    Each round tries every grid value of one parameter at a time, keeping the others at
    their current best; ties keep the earlier value. Returns the best parameters and score.
    """
    grid = grid or TIFU_GRID
    best = asdict(start or TifuParams())
    sales = sales_before(tables, cutoff)
    truth = truth_to_dict(window_labels(tables, cutoff, days))
    if not truth:
        raise ValueError(
            f"tune_tifu: nobody with history buys in the {days} days after {pd.Timestamp(cutoff)}"
        )
    cache: dict[tuple, float] = {}

    def score(p: dict) -> float:
        key = tuple(sorted(p.items()))
        if key not in cache:
            model = TifuKnn(**p).fit(tables, cutoff, sales=sales)
            cache[key] = evaluate_ranker(model, truth)[metric]
            if progress:
                progress(f"tifu {p} {metric}={cache[key]:.4f}")
        return cache[key]

    best_score = score(best)
    for _ in range(rounds):
        changed = False
        for name, values in grid.items():
            for v in values:
                cand = {**best, name: v}
                s = score(cand)
                if s > best_score + 1e-12:
                    best, best_score, changed = cand, s, True
        if not changed:
            break
    logger.info(
        "tuned TIFU-KNN at %s: %s (%s=%.4f)", pd.Timestamp(cutoff).date(), best, metric, best_score
    )
    return TifuParams(**best), best_score


def tuned_tifu_params(
    tables: Tables,
    cutoff,
    cache_dir: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
    **tune_options,
) -> TifuParams:
    """TIFU-KNN parameters tuned on ``cutoff``, cached on disk per data set, cutoff and search.

    The cache file is ``<cache_dir>/tifu_<fingerprint>_<cutoff>_<search>.json`` (default
    ``<settings.home>/cache``), where ``<search>`` hashes the grid and the other options of
    :func:`tune_tifu`, so a changed grid tunes again; delete the file to tune again anyway.
    """
    if cache_dir is None:
        from features.config import get_settings

        cache_dir = Path(get_settings().home) / "cache"
    cache_dir = Path(cache_dir)
    search = {"grid": TIFU_GRID, "defaults": asdict(TifuParams()), **tune_options}
    if isinstance(search.get("start"), TifuParams):
        search["start"] = asdict(search["start"])
    search_key = hashlib.sha256(
        json.dumps(search, sort_keys=True, default=str).encode()
    ).hexdigest()[:8]
    day = pd.Timestamp(cutoff).date()
    path = cache_dir / f"tifu_{tables.fingerprint(16)}_{day}_{search_key}.json"
    if path.exists():
        try:
            return TifuParams(**json.loads(path.read_text())["params"])
        except (ValueError, KeyError, TypeError):
            logger.warning("ignoring unreadable TIFU tuning cache %s", path)
    params, score = tune_tifu(tables, cutoff, progress=progress, **tune_options)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        json.dumps({"params": asdict(params), "score": score, "cutoff": str(pd.Timestamp(cutoff))})
    )
    tmp.replace(path)
    return params
