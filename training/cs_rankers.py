"""Cross-sell rankers: products the customer never bought before the cutoff.

Every ranker implements :class:`training.base.Ranker` and scores the whole item universe
of a :class:`~training.cs_data.CrossSellHistory`; :meth:`CrossSellRanker.recommend` then
drops everything the customer bought before the cutoff. Several rankers can share one
history (``fit(tables, cutoff, history=h)``) so a family is built once per cutoff.

Signals
-------
* :class:`PopularityRanker` -- distinct buyers in the last ``days`` days (baseline).
* :class:`ItemKNNRanker` -- cosine between products over customers (who bought what),
  ``neighbours`` nearest per product; a customer's score is the sum of similarities to
  their history (baseline).
* :class:`ALSRanker` -- implicit-feedback matrix factorisation (``implicit`` ALS) on
  customer x product basket counts, confidence ``alpha * log1p(count)``.
* :class:`CooccurrenceRanker` -- cosine between products over *baskets* (bought in the
  same trip), weighted by how often the customer bought each history product.
* :class:`EASERanker` -- EASE (Steck, WWW 2019): a ridge regression of every product on
  all the others over customers, solved in its customer x customer (dual) form.
* :class:`LookAlikeRanker` -- "households like yours": nearest customers on category
  shares, department shares and demographics; what they bought, weighted by similarity.
* :class:`TrialRanker` -- a ridge regression across time: from purchases before
  ``cutoff - days`` to the products first bought in the last ``days`` (off by default).

Customers without history get the recent-popularity list (flagged ``cold`` in reasons).
"""

from __future__ import annotations

import logging
import warnings
from abc import abstractmethod
from collections.abc import Iterable

import numpy as np
import pandas as pd
import scipy.sparse as sp

from features.contract import Tables
from training.base import RECS_COLUMNS, Ranker, as_id_list, empty_recs
from training.cs_data import (
    CrossSellHistory,
    build_history,
    category_shares,
    compute_threads,
    sparse_dense_matmul,
    top_n_rows,
)

logger = logging.getLogger(__name__)

#: Customers scored at once (a chunk is chunk x items float64 scores).
CHUNK = 256
FALLBACK_DAYS = 28


class CrossSellRanker(Ranker):
    """Base: fit a history, score universe items per customer row, recommend unseen ones.

    Subclasses implement :meth:`_fit` and :meth:`score_rows`.
    """

    name = "cross_sell_ranker"
    #: short human reason attached to every recommendation
    reason = "recommended for you"

    def __init__(self, min_buyers: int = 2):
        self.min_buyers = min_buyers

    def fit(
        self, tables: Tables, cutoff, history: CrossSellHistory | None = None
    ) -> CrossSellRanker:
        """Learn from purchases strictly before ``cutoff``.

        Parameters
        ----------
        tables : Tables
        cutoff : timestamp-like
        history : CrossSellHistory, optional
            A history already built for ``cutoff`` (shared between rankers); built here
            with ``min_buyers`` otherwise.
        """
        cutoff = pd.Timestamp(cutoff)
        if history is None:
            history = build_history(tables, cutoff, self.min_buyers)
        elif history.cutoff != cutoff:
            raise ValueError(f"history is as of {history.cutoff}, not the cutoff {cutoff}")
        self.history_ = history
        self.cutoff_ = cutoff
        self.fallback_ = history.recent_buyers(FALLBACK_DAYS)
        self._fit(tables, history)
        return self

    @abstractmethod
    def _fit(self, tables: Tables, history: CrossSellHistory) -> None: ...

    @abstractmethod
    def score_rows(self, rows: np.ndarray) -> np.ndarray:
        """Scores (float64, len(rows) x items) of history rows; higher is better."""

    def _check_fitted(self) -> None:
        if not hasattr(self, "history_"):
            raise RuntimeError(
                f"{type(self).__name__} is not fitted; call fit(tables, cutoff) first"
            )

    def masked_scores(self, rows: np.ndarray) -> np.ndarray:
        """:meth:`score_rows` with every product bought before the cutoff set to -inf."""
        s = np.array(self.score_rows(rows), dtype=np.float64, copy=True)
        bought = self.history_.counts[rows]
        r, c = bought.nonzero()
        s[r, c] = -np.inf
        return s

    def recommend(self, customer_ids: Iterable[int] | int, n: int = 10) -> pd.DataFrame:
        """Top ``n`` never-bought products per customer.

        Returns
        -------
        pd.DataFrame
            ``customer_id, product_id, rank (1 = best), score, reason``; customers without
            history get the recent-popularity list.
        """
        self._check_fitted()
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n!r}")
        ids = pd.unique(np.asarray(as_id_list(customer_ids), dtype="int64"))  # one list each
        if len(ids) == 0:
            return empty_recs(["reason"])
        h = self.history_
        rows = h.rows(ids)
        frames = []
        known = rows >= 0
        kid, krows = ids[known], rows[known]
        for s in range(0, len(krows), CHUNK):
            idx, val = top_n_rows(self.masked_scores(krows[s : s + CHUNK]), n)
            frames.append(_long(kid[s : s + CHUNK], idx, val, h.items, self.reason))
        if (~known).any():
            cold = ids[~known]
            idx, val = top_n_rows(self.fallback_[None, :], n)
            idx, val = np.repeat(idx, len(cold), 0), np.repeat(val, len(cold), 0)
            frames.append(_long(cold, idx, val, h.items, "popular right now"))
        out = pd.concat(frames, ignore_index=True)
        return out.sort_values(["customer_id", "rank"], kind="stable").reset_index(drop=True)


def _long(
    cust: np.ndarray, idx: np.ndarray, val: np.ndarray, items: np.ndarray, reason: str
) -> pd.DataFrame:
    ok = idx >= 0
    k = idx.shape[1]
    out = pd.DataFrame(
        {
            "customer_id": np.repeat(cust, k)[ok.ravel()],
            "product_id": items[np.where(ok, idx, 0)].ravel()[ok.ravel()],
            "rank": np.tile(np.arange(1, k + 1), len(cust))[ok.ravel()],
            "score": val.ravel()[ok.ravel()],
        }
    )
    out["reason"] = reason
    return out[RECS_COLUMNS + ["reason"]]


# --------------------------------------------------------------------------- popularity


class PopularityRanker(CrossSellRanker):
    """Recent popularity: distinct buyers of each product in the last ``days`` days."""

    name = "popularity"
    reason = "popular right now"

    def __init__(self, days: int = 56, min_buyers: int = 2):
        super().__init__(min_buyers)
        self.days = days

    def _fit(self, tables, history) -> None:
        if self.days < 1:
            raise ValueError(f"days must be >= 1, got {self.days!r}")
        pop = history.recent_buyers(self.days)
        # ties: all-time buyers, then product id (top_n_rows)
        self.popularity_ = pop + 1e-6 * (
            np.asarray(history.binary().sum(axis=0)).ravel() / history.n_customers
        )

    def score_rows(self, rows) -> np.ndarray:
        return np.broadcast_to(self.popularity_, (len(rows), len(self.popularity_)))


# --------------------------------------------------------------------------- item-item


def _item_cosine(matrix: sp.csr_matrix, neighbours: int) -> sp.csr_matrix:
    """Items x items cosine over the rows of ``matrix``, ``neighbours`` largest per item, no diagonal."""
    from implicit.nearest_neighbours import CosineRecommender

    model = CosineRecommender(K=neighbours + 1, num_threads=compute_threads())
    with warnings.catch_warnings():
        # the input is CSR; implicit's all-pairs step warns about a COO matrix it builds itself
        warnings.filterwarnings("ignore", "Method expects CSR input", category=Warning)
        model.fit(matrix.astype(np.float32).tocsr(), show_progress=False)
    sim = model.similarity.tocsr().astype(np.float64)
    sim.setdiag(0.0)
    sim.eliminate_zeros()
    return sim


class _ItemItemRanker(CrossSellRanker):
    """Score = weighted history x item-item similarity."""

    def __init__(self, neighbours: int = 200, min_buyers: int = 2):
        super().__init__(min_buyers)
        self.neighbours = neighbours

    def _history_weights(self, rows) -> sp.csr_matrix:
        return self.history_.binary()[rows]

    def score_rows(self, rows) -> np.ndarray:
        return np.asarray((self._history_weights(rows) @ self.similarity_).todense())

    def explain(self, row: int, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each recommended column: the history item contributing most and its similarity."""
        hist = self.history_.counts[row].indices
        if len(hist) == 0 or len(cols) == 0:
            return np.full(len(cols), -1), np.zeros(len(cols))
        sub = np.asarray(self.similarity_[hist][:, cols].todense())
        best = sub.argmax(axis=0)
        return hist[best], sub[best, np.arange(len(cols))]


class ItemKNNRanker(_ItemItemRanker):
    """Item-kNN: cosine between products over customers; sum of similarities to the history."""

    name = "item_knn"
    reason = "customers who bought what you buy also buy this"

    def _fit(self, tables, history) -> None:
        self.similarity_ = _item_cosine(history.binary(), self.neighbours)


class CooccurrenceRanker(_ItemItemRanker):
    """Basket co-occurrence: cosine over baskets, history weighted by log(1 + baskets)."""

    name = "cooccurrence"
    reason = "often bought together with what you buy"

    def _fit(self, tables, history) -> None:
        s = history.sales
        cols = history.cols(s["product_id"].to_numpy())
        keep = cols >= 0
        baskets, b = np.unique(s["basket_id"].to_numpy()[keep], return_inverse=True)
        m = sp.csr_matrix(
            (np.ones(int(keep.sum()), dtype=np.float32), (b, cols[keep])),
            shape=(len(baskets), history.n_items),
        )
        self.similarity_ = _item_cosine(m, self.neighbours)

    def _history_weights(self, rows) -> sp.csr_matrix:
        w = self.history_.counts[rows].copy()
        w.data = np.log1p(w.data)
        return w


# --------------------------------------------------------------------------- ALS


class ALSRanker(CrossSellRanker):
    """Implicit ALS on customer x product basket counts (confidence ``alpha * log1p(count)``).

    Deterministic for a given ``random_state`` (BLAS limited to one thread; implicit's
    ``compute_threads()`` solver threads each solve their own rows, so the result does not
    depend on their number).
    """

    name = "als"
    reason = "matches your taste profile"

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.1,
        alpha: float = 1.0,
        iterations: int = 15,
        random_state: int = 0,
        min_buyers: int = 2,
    ):
        super().__init__(min_buyers)
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.random_state = random_state

    def _fit(self, tables, history) -> None:
        from implicit.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        conf = history.counts.copy()
        conf.data = (self.alpha * np.log1p(conf.data)).astype(np.float32)
        # implicit checks the BLAS thread pool when the model is built: limit it first
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.regularization,
                alpha=1.0,
                iterations=self.iterations,
                random_state=self.random_state,
                num_threads=compute_threads(),  # same factors whatever the count
                calculate_training_loss=False,
            )
            model.fit(conf.tocsr(), show_progress=False)
        self.user_factors_ = np.asarray(model.user_factors, dtype=np.float64)
        self.item_factors_ = np.asarray(model.item_factors, dtype=np.float64)

    def score_rows(self, rows) -> np.ndarray:
        return self.user_factors_[rows] @ self.item_factors_.T


# --------------------------------------------------------------------------- EASE


def _log_counts(counts: sp.csr_matrix) -> sp.csr_matrix:
    """``log1p`` of basket counts, float64 CSR: the customer vectors of EASE and Trial."""
    x = counts.astype(np.float64).tocsr()
    x.data = np.log1p(x.data)
    return x


class EASERanker(CrossSellRanker):
    """EASE: item-item ridge regression with a zero diagonal (Steck, WWW 2019).

    The weights ``B = I - P / diag(P)`` with ``P = (X'X + lam I)^-1`` predict each product
    from all the others. With far fewer customers than products (Complete Journey: ~2.5k
    x ~35k) the Woodbury identity gives ``X P = M X`` and
    ``diag(P) = (1 - colsum(M X * X)) / lam`` with ``M = (X X' + lam I)^-1``, a customer x
    customer inverse, so the item x item matrix is never formed. Scores are
    ``X B = X - (M X) / diag(P)``; ``X`` is ``log1p`` basket counts.
    """

    name = "ease"
    reason = "fits the rest of your basket"

    def __init__(self, lam: float = 500.0, min_buyers: int = 2):
        super().__init__(min_buyers)
        self.lam = lam

    def _fit(self, tables, history) -> None:
        if not self.lam > 0:
            raise ValueError(f"lam must be > 0, got {self.lam!r}")
        x = _log_counts(history.counts)
        gram = (x @ x.T).toarray()
        gram[np.diag_indices_from(gram)] += self.lam
        m = np.linalg.inv(gram)
        xt = x.T.tocsr()
        mx = sparse_dense_matmul(xt, m).T  # M X (M is symmetric), customers x items
        diag_p = (1.0 - np.asarray(x.multiply(mx).sum(axis=0)).ravel()) / self.lam
        self.x_ = x
        self._xt = xt
        self.mx_ = mx.astype(np.float32)
        self.inv_diag_ = (1.0 / diag_p).astype(np.float32)

    def score_rows(self, rows) -> np.ndarray:
        return self.x_[rows].toarray() - self.mx_[rows] * self.inv_diag_[None, :]

    def _items_by_customers(self) -> sp.csr_matrix:
        """``X'`` as CSR, built on first use (models pickled before it existed lack it)."""
        xt = getattr(self, "_xt", None)
        if xt is None:
            xt = self._xt = self.x_.T.tocsr()
        return xt

    def explain(self, row: int, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each recommended column: the history item contributing most and its share.

        The score of an unbought product ``j`` is ``sum_k x_k B_kj`` over the history items
        ``k``, with ``B_kj = -P_kj / P_jj = (X'MX)_kj / (lam P_jj)``.
        """
        x_row = self.x_[row]
        hist = x_row.indices
        if len(hist) == 0 or len(cols) == 0:
            return np.full(len(cols), -1), np.zeros(len(cols))
        xh = self._items_by_customers()[hist]  # rows of X' (slicing columns of X is slow)
        b = np.asarray(xh @ self.mx_[:, cols]) * (self.inv_diag_[cols] / self.lam)[None, :]
        contrib = x_row.data[:, None] * b
        best = contrib.argmax(axis=0)
        return hist[best], contrib[best, np.arange(len(cols))]


class TrialRanker(CrossSellRanker):
    """What customers with a history like yours tried for the first time lately.

    A ridge regression, like EASE, but across time: from each customer's purchases before
    ``cutoff - days`` (``X_in``, ``log1p`` basket counts) to the products they bought for
    the first time in the ``days`` before the cutoff (``Y``, 0/1). In its customer x
    customer form ``B = X_in' (X_in X_in' + lam I)^-1 Y``; a customer's scores are
    ``x B`` with ``x`` their whole history before the cutoff. Only purchases before the
    cutoff are read.
    """

    name = "trial"
    reason = "households who shop like you just started buying this"

    def __init__(self, lam: float = 1000.0, days: int = 28, min_buyers: int = 2):
        super().__init__(min_buyers)
        self.lam = lam
        self.days = days

    def _fit(self, tables, history) -> None:
        if not self.lam > 0:
            raise ValueError(f"lam must be > 0, got {self.lam!r}")
        if not isinstance(self.days, int | np.integer) or self.days < 1:
            raise ValueError(f"days must be a whole number >= 1, got {self.days!r}")
        split = history.cutoff - pd.Timedelta(days=int(self.days))
        sales = history.sales
        cols = history.cols(sales["product_id"].to_numpy())
        rows = history.rows(sales["customer_id"].to_numpy())
        keep = cols >= 0
        rows, cols = rows[keep], cols[keep]
        early = (sales["timestamp"].to_numpy() < split.to_datetime64())[keep]
        shape = (history.n_customers, history.n_items)
        x_in = _log_counts(
            sp.csr_matrix((np.ones(early.sum()), (rows[early], cols[early])), shape=shape)
        )
        late = sp.csr_matrix(
            (np.ones((~early).sum(), dtype=np.float64), (rows[~early], cols[~early])), shape=shape
        )
        late.data[:] = 1.0
        # first time in the window: bought in it, never before it
        y = (late - late.multiply(x_in > 0)).tocsr()
        y.eliminate_zeros()
        x = _log_counts(history.counts)
        gram = (x_in @ x_in.T).toarray()
        gram[np.diag_indices_from(gram)] += self.lam
        # Q = X X_in' (X_in X_in' + lam I)^-1: customers x customers
        self.q_ = np.linalg.solve(gram, (x @ x_in.T).toarray().T).T
        self.y_t_ = y.T.tocsr()

    def score_rows(self, rows) -> np.ndarray:
        return sparse_dense_matmul(self.y_t_, self.q_[rows].T).T


# --------------------------------------------------------------------------- look-alike


def customer_profile(
    tables: Tables, history: CrossSellHistory, demographics_weight: float = 0.5
) -> np.ndarray:
    """Unit-length customer vectors for look-alike search (rows = history customers).

    Blocks: sqrt of category shares (private: the shared features only carry departments),
    department shares from :func:`features.customer.customer_features`, and standardised
    demographics from :func:`features.demographics.demographic_features` (zeros for
    customers without a profile) scaled by ``demographics_weight``.
    """
    from features.customer import customer_features
    from features.demographics import demographic_features

    blocks = []
    cat, _ = category_shares(history)
    if cat.shape[1]:
        blocks.append(_unit(np.sqrt(cat.toarray())))
    cf = customer_features(tables, history.cutoff).reindex(history.customers)
    dept = (
        cf[[c for c in cf.columns if c.startswith("dept_share__")]].fillna(0.0).to_numpy("float64")
    )
    if dept.shape[1]:
        blocks.append(_unit(np.sqrt(np.clip(dept, 0.0, None))))
    if demographics_weight > 0:
        demo = demographic_features(tables, history.customers)
        num = demo[
            ["age_mid", "income_mid", "homeowner", "married", "household_size_n", "kids_n"]
        ].astype(float)
        z = ((num - num.mean()) / num.std(ddof=0).replace(0, 1.0)).fillna(0.0).to_numpy()
        stage = (
            pd.get_dummies(demo["lifecycle_stage"])
            .drop(columns="unknown", errors="ignore")
            .to_numpy(float)
        )
        d = np.hstack([z / np.sqrt(max(z.shape[1], 1)), stage])
        blocks.append(demographics_weight * _unit(d))
    if not blocks:
        raise ValueError(
            "look-alike: no customer attribute to compare (no categories, departments or demographics)"
        )
    return _unit(np.hstack(blocks))


def _unit(a: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(a, axis=1, keepdims=True)
    return a / np.where(norm > 0, norm, 1.0)


class LookAlikeRanker(CrossSellRanker):
    """ "Households like yours buy this": the ``neighbours`` most similar customers' purchases.

    Similarity is the cosine between :func:`customer_profile` vectors; a product's score
    is the similarity-weighted share of neighbours who bought it.
    """

    name = "look_alike"
    reason = "households like yours buy this"

    def __init__(self, neighbours: int = 50, demographics_weight: float = 0.5, min_buyers: int = 2):
        super().__init__(min_buyers)
        self.neighbours = neighbours
        self.demographics_weight = demographics_weight

    def _fit(self, tables, history) -> None:
        prof = customer_profile(tables, history, self.demographics_weight)
        sim = prof @ prof.T
        np.fill_diagonal(sim, -np.inf)
        k = min(self.neighbours, history.n_customers - 1)
        self.binary_ = history.binary().astype(np.float64)
        if k < 1:  # one customer: nobody looks alike, every score is 0
            self.neighbours_ = sp.csr_matrix((history.n_customers, history.n_customers))
            return
        idx, val = top_n_rows(sim, k)
        val = np.clip(val, 0.0, None)
        val = val / np.maximum(val.sum(axis=1, keepdims=True), 1e-12)
        n = history.n_customers
        self.neighbours_ = sp.csr_matrix(
            (val.ravel(), (np.repeat(np.arange(n), k), idx.ravel())), shape=(n, n)
        )

    def score_rows(self, rows) -> np.ndarray:
        return np.asarray((self.neighbours_[rows] @ self.binary_).todense())
