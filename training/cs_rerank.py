"""LightGBM re-ranker over the union of the cross-sell signals' candidates.

For a cutoff T every signal ranker of :mod:`training.cs_rankers` is fitted on purchases
before T; each proposes its top ``candidates`` never-bought products per customer; the
union is described by each signal's score and rank, product popularity and trend,
customer features (:mod:`features.customer`, :mod:`features.demographics`) and the
customer's affinity to the candidate's description, product type, category, department
and manufacturer; LightGBM (``lambdarank`` by default) orders it.

Training uses only earlier cutoffs whose labels end at or before T: cutoffs
``T - 28 d, T - 56 d, ...`` with the cross-sell labels of :func:`features.labels.cross_sell_labels`
computed on ``tables.before(T)``, so no event at or after T is ever read.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

from features._util import private_label
from features.contract import Tables
from training.base import RECS_COLUMNS, Ranker, as_id_list, empty_recs
from training.cs_data import DAY, CrossSellHistory, build_history, thread_map, top_n_rows
from training.cs_rankers import (
    CHUNK,
    ALSRanker,
    CooccurrenceRanker,
    CrossSellRanker,
    EASERanker,
    ItemKNNRanker,
    LookAlikeRanker,
    PopularityRanker,
    TrialRanker,
)
from training.np_features import label_candidates

logger = logging.getLogger(__name__)

WINDOW_DAYS = 28
SIGNAL_CLASSES: dict[str, type[CrossSellRanker]] = {
    "popularity": PopularityRanker,
    "item_knn": ItemKNNRanker,
    "cooccurrence": CooccurrenceRanker,
    "als": ALSRanker,
    "ease": EASERanker,
    "look_alike": LookAlikeRanker,
    "trial": TrialRanker,
}
ATTRIBUTES = ("description", "product_type", "category", "department", "manufacturer_id")
CUSTOMER_COLUMNS = (
    "recency_days",
    "frequency",
    "tenure_days",
    "baskets_90d",
    "basket_size_mean",
    "n_products",
    "n_categories",
    "private_share",
    "discount_share",
)
DEMOGRAPHIC_COLUMNS = ("has_demographics", "age_mid", "income_mid", "kids_n", "household_size_n")
SIGNAL_REASONS = {
    "popularity": "popular right now",
    "item_knn": "customers who buy what you buy also buy this",
    "cooccurrence": "often bought with {description}",
    "als": "matches your taste profile",
    "ease": "often bought with {description}",
    "look_alike": "households like yours buy this",
    "trial": "households who shop like you just started buying this",
}


def make_signals(signal_params: dict[str, dict], min_buyers: int) -> dict[str, CrossSellRanker]:
    """Unfitted signal rankers from ``{name: params}`` (names of :data:`SIGNAL_CLASSES`)."""
    unknown = sorted(set(signal_params) - set(SIGNAL_CLASSES))
    if unknown:
        raise ValueError(f"unknown cross-sell signal(s) {unknown}; known: {sorted(SIGNAL_CLASSES)}")
    return {
        name: SIGNAL_CLASSES[name](**params, min_buyers=min_buyers)
        for name, params in signal_params.items()
    }


class SignalSet:
    """Signal rankers fitted at one cutoff plus the product and customer statistics."""

    def __init__(self, tables: Tables, cutoff, signal_params: dict[str, dict], min_buyers: int):
        self.cutoff = pd.Timestamp(cutoff)
        self.history: CrossSellHistory = build_history(tables, self.cutoff, min_buyers)
        self.signals = make_signals(signal_params, min_buyers)
        self.seconds: dict[str, float] = {}
        for name, ranker in self.signals.items():
            t0 = time.perf_counter()
            ranker.fit(tables, self.cutoff, history=self.history)
            self.seconds[name] = time.perf_counter() - t0
        cp = _customer_product_table(self.history)
        self.product_frame = _product_frame(tables, self.history, cp)
        self.customer_frame = _customer_frame(tables, self.history, cp)
        self.affinity = _affinity_tables(self.history, cp)


def _product_frame(tables: Tables, h: CrossSellHistory, cp: pd.DataFrame) -> pd.DataFrame:
    from features.customer_product import product_features

    pf = product_features(tables, h.cutoff).reindex(h.items)
    first = cp.groupby("product_id")["first"].min().reindex(h.items)
    last = cp.groupby("product_id")["last"].max().reindex(h.items)
    buyers = np.asarray(h.binary().sum(axis=0)).ravel()
    b7, b28 = h.recent_buyers(7), h.recent_buyers(28)
    prev28 = h.recent_buyers(56, end_days=28)
    first_buys = cp.loc[cp["first"] >= h.cutoff - 28 * DAY, "product_id"].value_counts()
    adopt28 = first_buys.reindex(h.items, fill_value=0).to_numpy("float64")
    at_risk = h.n_customers - (buyers - adopt28)  # customers who had not bought it 28 days ago
    tx = tables.transactions
    recent = tx[
        (tx["timestamp"] >= h.cutoff - 14 * DAY)
        & (tx["timestamp"] < h.cutoff)
        & (tx["quantity"] > 0)
    ]
    recent = recent[recent["sales_value"] >= 0]
    promo = (recent["retail_discount"] > 0).groupby(recent["product_id"]).mean().reindex(h.items)
    depth = recent["retail_discount"] / (recent["sales_value"] + recent["retail_discount"]).where(
        lambda v: v > 0
    )
    depth = depth.groupby(recent["product_id"]).mean().reindex(h.items)
    out = pd.DataFrame(
        {
            "p_buyers": buyers,
            "p_buyers_7d": b7,
            "p_buyers_28d": b28,
            "p_trend": (b28 + 1.0) / (prev28 + 1.0),
            "p_trend_7d": (4.0 * b7 + 1.0) / (b28 + 1.0),
            "p_adopters_28d": adopt28,
            "p_adopter_share_28d": adopt28 / np.maximum(b28, 1.0),
            "p_adoption_rate_28d": adopt28 / (np.maximum(at_risk, 0.0) + 50.0),
            "p_promo_share_14d": promo.to_numpy("float64"),
            "p_promo_depth_14d": depth.to_numpy("float64"),
            "p_age_days": (h.cutoff - first).dt.total_seconds().to_numpy() / 86400.0,
            "p_last_days": (h.cutoff - last).dt.total_seconds().to_numpy() / 86400.0,
            "p_repurchase_rate": pf["prod_repurchase_rate"].to_numpy("float64"),
            "p_price_mean": pf["prod_price_mean"].to_numpy("float64"),
            "p_private": private_label(h.item_attribute("brand")),
        },
        index=pd.Index(h.items, name="product_id"),
    )
    for attr in ATTRIBUTES:
        out[attr] = h.item_attribute(attr)
    return out


def _partner_reason(partner: str | None, product: str | None) -> str:
    """Why an item-based signal picked a product: the customer's product it goes with. A
    partner of the same name (another size or variety) is a look-alike, not a companion."""
    if not isinstance(partner, str) or not partner.strip():
        return "often bought with your usual products"
    if isinstance(product, str) and partner.strip().lower() == product.strip().lower():
        return f"like the {partner} you buy"
    return f"often bought with {partner}"


def _customer_frame(tables: Tables, h: CrossSellHistory, cp: pd.DataFrame) -> pd.DataFrame:
    from features.customer import customer_features
    from features.demographics import demographic_features

    cf = customer_features(tables, h.cutoff).reindex(h.customers)
    out = pd.DataFrame(index=pd.Index(h.customers, name="customer_id"))
    for c in CUSTOMER_COLUMNS:
        out[f"c_{c}"] = cf[c].to_numpy("float64") if c in cf.columns else np.nan
    demo = demographic_features(tables, h.customers)
    for c in DEMOGRAPHIC_COLUMNS:
        out[f"c_{c}"] = demo[c].to_numpy("float64")
    # exploration habit: products first bought in the last 28 days, and their share of the
    # products bought in those days
    lo = h.cutoff - 28 * DAY
    new = cp.loc[cp["first"] >= lo, "customer_id"].value_counts().reindex(h.customers, fill_value=0)
    active = (
        cp.loc[cp["last"] >= lo, "customer_id"].value_counts().reindex(h.customers, fill_value=0)
    )
    out["c_new_products_28d"] = new.to_numpy("float64")
    out["c_new_share_28d"] = new.to_numpy("float64") / np.maximum(active.to_numpy("float64"), 1.0)
    return out


def _customer_product_table(h: CrossSellHistory) -> pd.DataFrame:
    """(customer, product) -> baskets, first and last purchase time, every product bought."""
    return (
        h.sales.groupby(["customer_id", "product_id"], sort=False)["timestamp"]
        .agg(n="size", first="min", last="max")
        .reset_index()
    )


def _affinity_tables(h: CrossSellHistory, cp: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per attribute: (customer, value) -> distinct products, baskets, days since last purchase,
    products adopted (first bought) in the last 56 days."""
    out = {}
    if h.products is None:
        return out
    recent = (cp["first"] >= h.cutoff - 56 * DAY).to_numpy()
    for attr in ATTRIBUTES:
        if attr not in h.products.columns:
            continue
        val = h.products[attr].reindex(cp["product_id"].to_numpy()).to_numpy(dtype=object)
        ok = pd.notna(val)
        d = pd.DataFrame(
            {
                "customer_id": cp["customer_id"].to_numpy()[ok],
                attr: val[ok],
                "n": cp["n"].to_numpy()[ok],
                "last": cp["last"].to_numpy()[ok],
                "new": recent[ok],
            }
        )
        g = d.groupby(["customer_id", attr], sort=False).agg(
            products=("n", "size"), baskets=("n", "sum"), last=("last", "max"), new=("new", "sum")
        )
        g[f"a_{attr}_days"] = (h.cutoff - g.pop("last")).dt.total_seconds() / 86400.0
        g = g.rename(
            columns={
                "products": f"a_{attr}_products",
                "baskets": f"a_{attr}_baskets",
                "new": f"a_{attr}_new56",
            }
        )
        out[attr] = g.reset_index()
    return out


def _chunk_frame(
    sig: SignalSet,
    names: list[str],
    ids: np.ndarray,
    r: np.ndarray,
    candidates: dict[str, int],
    depth: int,
) -> pd.DataFrame:
    """:func:`candidate_frame`'s signal columns for one chunk of customers (ids, history rows)."""
    h = sig.history
    scores, ranks = {}, {}
    pick = np.zeros((len(r), h.n_items), dtype=bool)
    for name in names:
        sc = sig.signals[name].masked_scores(r)
        idx, _ = top_n_rows(sc, depth)
        rk = np.full(sc.shape, depth + 1, dtype=np.int32)
        rr = np.repeat(np.arange(len(r)), depth)
        ok = idx.ravel() >= 0
        rk[rr[ok], idx.ravel()[ok]] = np.tile(np.arange(1, depth + 1), len(r))[ok]
        top = candidates.get(name, 0)
        if top > 0:
            sel = idx[:, :top]
            rs = np.repeat(np.arange(len(r)), top)
            m = sel.ravel() >= 0
            pick[rs[m], sel.ravel()[m]] = True
        finite = np.isfinite(sc)
        row_max = np.where(finite, sc, -np.inf).max(axis=1, keepdims=True)
        scores[name] = (sc, row_max)
        ranks[name] = rk
    cr, cc = np.nonzero(pick)
    f = {"customer_id": ids[cr], "product_id": h.items[cc]}
    for name in names:
        sc, row_max = scores[name]
        v = sc[cr, cc]
        f[f"s_{name}"] = v
        mx = row_max[cr, 0]
        f[f"n_{name}"] = np.where(mx > 0, v / np.where(mx > 0, mx, 1.0), 0.0)
        f[f"r_{name}"] = ranks[name][cr, cc]
    return pd.DataFrame(f)


def candidate_frame(
    sig: SignalSet,
    customer_ids: Iterable[int],
    candidates: dict[str, int],
    rank_depth: int = 200,
) -> pd.DataFrame:
    """Candidates (union of each signal's top ``candidates[name]``) with their features.

    Only customers with history before the cutoff get candidates; nothing they bought
    before the cutoff is ever a candidate.
    """
    h = sig.history
    ids = np.asarray(list(customer_ids), dtype="int64")
    rows = h.rows(ids)
    ids, rows = ids[rows >= 0], rows[rows >= 0]
    names = list(sig.signals)
    depth = max([rank_depth] + [candidates.get(n, 0) for n in names])
    chunk = max(CHUNK // 2, 1)  # several signals' score and rank matrices are alive at once
    starts = range(0, len(rows), chunk)
    frames = thread_map(
        lambda s0: _chunk_frame(
            sig, names, ids[s0 : s0 + chunk], rows[s0 : s0 + chunk], candidates, depth
        ),
        starts,
    )
    if not frames:
        return pd.DataFrame(columns=["customer_id", "product_id"])
    cand = pd.concat(frames, ignore_index=True)
    rank_cols = [f"r_{n}" for n in names]
    cand["r_best"] = cand[rank_cols].min(axis=1)
    cand["n_signals_top50"] = (cand[rank_cols] <= 50).sum(axis=1)
    cand = cand.join(sig.product_frame, on="product_id")
    cand = cand.join(sig.customer_frame, on="customer_id")
    for attr, tab in sig.affinity.items():
        cand = cand.merge(tab, on=["customer_id", attr], how="left")
        for c in (f"a_{attr}_products", f"a_{attr}_baskets", f"a_{attr}_new56"):
            cand[c] = cand[c].fillna(0.0)
    if "a_category_products" in cand.columns:
        cand["a_category_share"] = cand["a_category_products"] / cand["c_n_products"].clip(lower=1)
    cand = cand.drop(columns=[a for a in ATTRIBUTES if a in cand.columns])
    return cand


def feature_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in ("customer_id", "product_id", "label")]


class LightGBMReRanker(Ranker):
    """Cross-sell model: candidate union of the signals, re-ranked by LightGBM.

    Parameters
    ----------
    signal_params : dict
        ``{signal name: constructor params}`` for :data:`SIGNAL_CLASSES`.
    candidates : dict
        Top-n candidates taken from each signal (0 = feature only).
    rank_depth : int
        Signal ranks beyond this are reported as ``rank_depth + 1``.
    train_cutoffs : int
        Number of earlier cutoffs (every 28 days back from T) to train on.
    objective : {"lambdarank", "binary"}
    lgbm_params : dict
        Extra LightGBM parameters.
    min_buyers : int
        Item universe: products with at least this many buyers before the cutoff.
    seed : int
    window_days : int
        Label window of the training cutoffs (and their spacing).
    drop_features : tuple of str
        Feature-name prefixes left out of the model (e.g. features whose scale drifts with
        the time since the data start, which differ between training and scoring cutoffs).
    """

    name = "lgbm_rerank"

    def __init__(
        self,
        signal_params: dict[str, dict] | None = None,
        candidates: dict[str, int] | None = None,
        rank_depth: int = 200,
        train_cutoffs: int = 2,
        objective: str = "lambdarank",
        lgbm_params: dict | None = None,
        min_buyers: int = 2,
        seed: int = 0,
        window_days: int = WINDOW_DAYS,
        drop_features: tuple[str, ...] = (),
    ):
        self.signal_params = signal_params
        self.candidates = candidates
        self.rank_depth = rank_depth
        self.train_cutoffs = train_cutoffs
        self.objective = objective
        self.lgbm_params = lgbm_params
        self.min_buyers = min_buyers
        self.seed = seed
        self.window_days = window_days
        self.drop_features = drop_features

    # ------------------------------------------------------------------ fit

    def _signal_params(self) -> dict[str, dict]:
        if self.signal_params is None:
            return {name: {} for name in SIGNAL_CLASSES}
        return self.signal_params

    def _candidates(self) -> dict[str, int]:
        if self.candidates is None:
            return {name: 50 for name in self._signal_params()}
        return self.candidates

    def _check_settings(self) -> None:
        if self.objective not in ("lambdarank", "binary"):
            raise ValueError(f"objective must be 'lambdarank' or 'binary', got {self.objective!r}")
        if self.train_cutoffs < 1:
            raise ValueError(f"train_cutoffs must be >= 1, got {self.train_cutoffs!r}")
        if self.window_days < 1:
            raise ValueError(f"window_days must be >= 1, got {self.window_days!r}")

    def training_frame(
        self, tables: Tables, cutoff, progress: Callable[[str], None] | None = None
    ) -> pd.DataFrame:
        """Labelled candidates of the training cutoffs T - 28 d, T - 56 d, ... (what :meth:`fit` learns from)."""
        self._check_settings()
        cutoff = pd.Timestamp(cutoff)
        past = tables.before(cutoff)  # nothing at or after T can reach the training labels
        first = past.transactions["timestamp"].min()
        frames = []
        for k in range(1, self.train_cutoffs + 1):
            tk = cutoff - k * self.window_days * DAY
            if tk <= first + self.window_days * DAY:
                logger.warning(
                    "cross-sell re-ranker: skipping training cutoff %s (too little history)",
                    tk.date(),
                )
                continue
            frames.append(self._cutoff_frame(past, tk, progress))
        frames = [f for f in frames if len(f)]
        if not frames:
            raise ValueError(
                f"cross-sell re-ranker: no training data before {cutoff.date()} "
                f"(needs purchases before {(cutoff - 2 * self.window_days * DAY).date()} and labels after)"
            )
        return pd.concat(frames, ignore_index=True)

    def fit(
        self,
        tables: Tables,
        cutoff,
        progress: Callable[[str], None] | None = None,
        train: pd.DataFrame | None = None,
    ) -> LightGBMReRanker:
        """Train on cutoffs T - 28 d, T - 56 d, ... (labels end at or before T), then fit the signals at T.

        ``train`` is :meth:`training_frame` of the same ``cutoff`` if already built.
        """
        import lightgbm as lgb

        self._check_settings()
        cutoff = pd.Timestamp(cutoff)
        if train is None:
            train = self.training_frame(tables, cutoff, progress)
        drop = tuple(self.drop_features)
        self.feature_names_ = [
            c for c in feature_columns(train.drop(columns=["group"])) if not c.startswith(drop)
        ]
        params = {
            "n_estimators": 300,
            "learning_rate": 0.05,
            "num_leaves": 31,
            "min_child_samples": 50,
            "subsample": 0.8,
            "subsample_freq": 1,
            "colsample_bytree": 0.8,
            "reg_lambda": 1.0,
            # one thread: on these small trees two made `predict cross-sell` slower (126 s vs 118 s)
            "n_jobs": 1,
            "deterministic": True,
            "force_row_wise": True,
            "verbose": -1,
            "random_state": self.seed,
        }
        params.update(self.lgbm_params or {})
        x = train[self.feature_names_].astype("float32")
        y = train["label"].to_numpy()
        t0 = time.perf_counter()
        if self.objective == "lambdarank":
            sizes = train.groupby("group", sort=False).size().to_numpy()
            model = lgb.LGBMRanker(objective="lambdarank", lambdarank_truncation_level=20, **params)
            model.fit(x, y, group=sizes)
        else:
            model = lgb.LGBMClassifier(objective="binary", **params)
            model.fit(x, y)
        self.model_ = model
        self.train_rows_ = len(train)
        self.train_positive_rate_ = float(y.mean())
        logger.info(
            "cross-sell re-ranker: %d rows (%.2f%% positive), trained in %.1f s",
            len(train),
            100 * y.mean(),
            time.perf_counter() - t0,
        )
        if progress:
            progress(f"fitting signals at {cutoff.date()}")
        return self.prepare(tables, cutoff)

    def __getstate__(self) -> dict:
        # The signals fitted as of the cutoff (purchase history, item-item similarities,
        # ALS factors: ~150 MB on Complete Journey) are not pickled; a restored model
        # refits them from the tables with :meth:`prepare` (deterministic, same output).
        state = self.__dict__.copy()
        state.pop("signals_", None)
        return state

    def prepare(self, tables: Tables, cutoff) -> LightGBMReRanker:
        """Fit the signals on purchases before ``cutoff``, keeping the trained LightGBM.

        Used to score as of a later date with the same model (serving, ``predict``).
        """
        self._check_fitted()
        cutoff = pd.Timestamp(cutoff)
        self.signals_ = SignalSet(tables, cutoff, self._signal_params(), self.min_buyers)
        self.cutoff_ = cutoff
        return self

    def _cutoff_frame(self, past: Tables, tk: pd.Timestamp, progress) -> pd.DataFrame:
        from features.labels import cross_sell_labels

        if progress:
            progress(f"re-ranker training cutoff {tk.date()}")
        sig = SignalSet(past, tk, self._signal_params(), self.min_buyers)
        labels = cross_sell_labels(past, tk, days=self.window_days)
        pos_customers = np.sort(labels["customer_id"].unique())
        cand = candidate_frame(sig, pos_customers, self._candidates(), self.rank_depth)
        cand["label"] = label_candidates(cand, labels)
        has_pos = cand.groupby("customer_id")["label"].transform("max") > 0
        cand = cand[has_pos].reset_index(drop=True)
        cand["group"] = tk.strftime("%Y%m%d") + "-" + cand["customer_id"].astype(str)
        logger.debug(
            "training cutoff %s: candidate recall %.3f",
            tk.date(),
            cand["label"].sum() / max(len(labels), 1),
        )
        return cand

    # ------------------------------------------------------------------ predict

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise RuntimeError("LightGBMReRanker is not fitted; call fit(tables, cutoff) first")

    def score_candidates(self, customer_ids) -> pd.DataFrame:
        """Candidate frame of ``customer_ids`` with the model's ``score``."""
        self._check_fitted()
        cand = candidate_frame(self.signals_, customer_ids, self._candidates(), self.rank_depth)
        if cand.empty:
            return cand.assign(score=np.zeros(0))
        x = cand[self.feature_names_].astype("float32")
        if self.objective == "lambdarank":
            cand["score"] = self.model_.predict(x)
        else:
            cand["score"] = self.model_.predict_proba(x)[:, 1]
        return cand

    def recommend(self, customer_ids, n: int = 10, reasons: bool = False) -> pd.DataFrame:
        """Top ``n`` never-bought products per customer (cold customers: recent popularity).

        Customers with fewer than ``n`` candidates are completed with the most popular
        products they never bought. With ``reasons=True`` a ``reason`` column names the
        strongest signal (for the item-based signals: the history product the
        recommendation goes with).
        """
        self._check_fitted()
        if not hasattr(self, "signals_"):
            raise RuntimeError(
                "LightGBMReRanker has no signals (they are not pickled); call prepare(tables, cutoff) first"
            )
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n!r}")
        extra = ["reason"] if reasons else []
        ids = pd.unique(np.asarray(as_id_list(customer_ids), dtype="int64"))  # one list each
        if len(ids) == 0:
            return empty_recs(extra)
        known = self.signals_.history.rows(ids) >= 0
        frames = []
        pop = self._popularity()
        if known.any():
            cand = self.score_candidates(ids[known])
            cand = cand.sort_values(
                ["customer_id", "score", "product_id"], ascending=[True, False, True], kind="stable"
            )
            cand["rank"] = cand.groupby("customer_id", sort=False).cumcount() + 1
            top = cand[cand["rank"] <= n]
            if reasons:
                top = top.assign(reason=self._reasons(top))
            top = top[RECS_COLUMNS + extra]
            short = pd.Series(ids[known]).loc[
                lambda c: ~c.isin(top["customer_id"].value_counts().loc[lambda v: v >= n].index)
            ]
            if len(short):
                top = pd.concat(
                    [top, self._pad(top, short.to_numpy(), pop, n, extra)], ignore_index=True
                )
            frames.append(top)
        if (~known).any():
            frames.append(pop.recommend(ids[~known], n)[RECS_COLUMNS + extra])
        out = pd.concat(frames, ignore_index=True)
        out["rank"] = out["rank"].astype("int64")
        return out.sort_values(["customer_id", "rank"], kind="stable").reset_index(drop=True)

    def _popularity(self) -> PopularityRanker:
        pop = self.signals_.signals.get("popularity")
        if pop is None:
            pop = PopularityRanker(min_buyers=self.min_buyers).fit(
                None, self.cutoff_, history=self.signals_.history
            )
        return pop

    @staticmethod
    def _pad(
        top: pd.DataFrame, short: np.ndarray, pop: PopularityRanker, n: int, extra: list[str]
    ) -> pd.DataFrame:
        """Popular never-bought products after each short list, below its last score."""
        have = top[top["customer_id"].isin(short)]
        fill = pop.recommend(short, 2 * n)
        fill = fill.merge(have[["customer_id", "product_id"]], how="left", indicator=True)
        fill = fill[fill["_merge"] == "left_only"].drop(columns="_merge")
        count = have.groupby("customer_id").size().reindex(short, fill_value=0)
        low = have.groupby("customer_id")["score"].min().reindex(short).fillna(0.0)
        fill["rank"] = (
            fill.groupby("customer_id").cumcount() + 1 + fill["customer_id"].map(count).to_numpy()
        )
        fill = fill[fill["rank"] <= n]
        fill["score"] = fill["customer_id"].map(low).to_numpy() - 1e-6 * (fill["rank"].to_numpy())
        return fill[RECS_COLUMNS + extra]

    def _reasons(self, top: pd.DataFrame) -> list[str]:
        names = [n for n in self.signals_.signals if f"r_{n}" in top.columns]
        ranks = top[[f"r_{n}" for n in names]].to_numpy()
        best = np.array([names[i] for i in ranks.argmin(axis=1)], dtype=object)
        out = np.array([SIGNAL_REASONS.get(b, "recommended for you") for b in best], dtype=object)
        h = self.signals_.history
        desc = (
            h.products["description"]
            if h.products is not None and "description" in h.products.columns
            else None
        )
        item_based = {
            n: self.signals_.signals[n]
            for n in ("cooccurrence", "item_knn", "ease")
            if n in self.signals_.signals
        }
        cust, pids = top["customer_id"].to_numpy(), top["product_id"].to_numpy()
        cols = h.cols(pids)
        for name, ranker in item_based.items():
            sel = np.flatnonzero(best == name)
            if desc is None or len(sel) == 0:
                continue
            # one explain call per customer (its rows are contiguous after the sort)
            for c in np.unique(cust[sel]):
                pos = sel[cust[sel] == c]
                partner, sim = ranker.explain(int(h.rows([c])[0]), cols[pos])
                for p, j, v in zip(pos, partner, sim, strict=True):
                    if j >= 0 and v > 0:
                        out[p] = _partner_reason(desc.get(h.items[j]), desc.get(pids[p]))
        return [str(r).replace("{description}", "your usual products") for r in out]
