"""Next purchase: the personalised shopping list for the next 14 days, and when each item is due.

Model
-----
:class:`NextPurchaseRanker` is a LightGBM model over
candidates built by :func:`training.np_features.candidate_frame` (the customer's own
history plus TIFU-KNN's best products, with the shared customer, customer x product and
product features, the TIFU-KNN score and the P-TopFreq rank). It is trained on several
earlier cutoffs ``t = T - offset``; each offset is at least the label window, so every
training label ``[t, t + 14 days)`` ends at or before ``T`` and nothing at or after ``T``
is read. The default objective is ``binary`` (the probability that the customer buys the
candidate in the window): on the validation cutoff 2017-09-01 it ranked as well as
``lambdarank`` (NDCG@10 0.3675 vs 0.3649) and fitted ten times faster; set
``lgbm={"objective": "lambdarank"}`` to rank per customer instead.

Expected days
-------------
Each listed product gets ``expected_days``, the days from the cutoff to its next
purchase::

    interval = the customer's own mean repurchase interval of the product (>= 2 distinct
               purchase days), else the product's median cycle over its buyers,
               else the customer's mean days between visits / the product's basket share
    d        = days since the customer last bought it
    expected_days = interval - d                 if d <= interval
                  = (-d) mod interval            if d >  interval (a skipped cycle:
                                                  the next one in the same rhythm,
                                                  0 when d is a whole number of cycles)

For a product the customer never bought (a discovery item) ``d`` is unknown and the
product's median cycle is used: ``expected_days = prod_cycle_median / 2`` (the mean
residual time of a regular cycle seen at a random moment), or half the label window if
the product has no cycle either.

Family interface (used by ``tailor train / evaluate / predict``): :func:`default_config`,
:func:`evaluate_family`, :func:`fit_family`, :func:`predict_family`,
:data:`VALIDATION_METRIC`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from features.contract import Tables
from features.customer_product import product_features
from training.base import RECS_COLUMNS, Ranker, as_id_list, empty_recs
from training.baselines_np import (
    GTopFreq,
    PTopFreq,
    TifuKnn,
    TifuParams,
    pad_with_popular,
    tuned_tifu_params,
)
from training.cs_data import compute_threads
from training.metrics import ranking_rows, truth_to_dict
from training.np_features import candidate_frame, feature_list, fit_tifu_at, label_candidates
from training.np_history import sales_before, window_labels
from training.protocol import CUTOFFS, VALIDATION_CUTOFFS, WINDOWS_DAYS, K

logger = logging.getLogger(__name__)

FAMILY = "next_purchase"
MODEL_NAME = "lgbm_ranker"
VALIDATION_METRIC = "ndcg@10"
VALIDATION_GREATER_IS_BETTER = True
METRICS = ("ndcg@10", "recall@10", "hitrate@10")
OUTPUT_COLUMNS = [*RECS_COLUMNS, "expected_days"]

#: TIFU-KNN parameters from ``tune_tifu`` on Complete Journey at the validation cutoff
#: 2017-09-01 (grid ``baselines_np.TIFU_GRID``, NDCG@10 = 0.353 there).
TUNED_TIFU = TifuParams(group_size=7, within_decay=1.0, group_decay=0.7, k=100, alpha=0.5)


@dataclass
class NextPurchaseConfig:
    """Settings of the next-purchase family (saved with the model).

    Attributes
    ----------
    window_days : int
        Label window (the shopping-list period).
    train_offsets_days : tuple of int
        Training cutoffs ``T - offset``; every offset must be >= ``window_days``.
    history_top, tifu_top : int
        Candidates: the customer's first products in P-TopFreq order, plus TIFU-KNN's best.
    list_size : int
        Products kept per customer when the ranker is prepared (``recommend`` n <= this).
    tifu : TifuParams
        TIFU-KNN parameters, shared by the baseline and the ranker's features.
    tune_tifu : bool
        Tune TIFU-KNN on ``validation_cutoff`` (cached on disk) instead of using ``tifu``, on
        data before the (first) cutoff being fitted or evaluated only; the validation cutoff
        moves back so that its label window ends by then.
    signals : bool
        Add the :mod:`training.np_signals` features (recency counts, repurchase hazard,
        product trend, category). Off: on the validation cutoff 2017-09-01 NDCG@10 was
        0.3671 with them (mean of seeds 42/1/2: 0.3668/0.3659/0.3685) vs 0.3665 without
        (seeds 42/2: 0.3675/0.3655), within the spread between seeds, for ~4 s more per
        candidate frame and a slower LightGBM fit.
    lgbm : dict
        LightGBM parameters (``deterministic`` and the seed are fixed for reproducible
        output). ``n_jobs`` defaults to :func:`training.cs_data.compute_threads` (every
        core, or 1 in each ``train all`` worker); with OpenMP's passive wait policy (set in
        :mod:`training`) two threads fit in 38 s instead of 69 s here. The fitted trees
        depend on the thread count, not on the run.
    """

    window_days: int = WINDOWS_DAYS["next_purchase"]
    train_offsets_days: tuple[int, ...] = (14, 28, 42)
    history_top: int = 150
    tifu_top: int = 50
    list_size: int = 50
    tifu: TifuParams = field(default_factory=lambda: TifuParams(**asdict(TUNED_TIFU)))
    tune_tifu: bool = False
    validation_cutoff: str = str(VALIDATION_CUTOFFS["next_purchase"].date())
    seed: int = 42
    signals: bool = False
    lgbm: dict = field(
        default_factory=lambda: {
            "objective": "binary",
            "n_estimators": 300,
            "learning_rate": 0.05,
            "num_leaves": 31,
            "min_child_samples": 100,
            "subsample": 0.8,
            "subsample_freq": 1,
            "colsample_bytree": 0.8,
        }
    )

    def validate(self) -> NextPurchaseConfig:
        if self.window_days < 1:
            raise ValueError(f"window_days must be >= 1, got {self.window_days}")
        if not self.train_offsets_days:
            raise ValueError(
                "train_offsets_days is empty: the ranker needs at least one training cutoff"
            )
        short = [o for o in self.train_offsets_days if o < self.window_days]
        if short:
            raise ValueError(
                f"train_offsets_days {short} are shorter than the {self.window_days}-day label window: "
                "their labels would reach past the cutoff (leakage)"
            )
        if self.history_top < 1 or self.tifu_top < 0 or self.list_size < 1:
            raise ValueError("history_top and list_size must be >= 1 and tifu_top >= 0")
        return self


def default_config(**overrides) -> NextPurchaseConfig:
    """The default configuration, with ``overrides`` merged in (``tifu`` may be a dict)."""
    cfg = NextPurchaseConfig()
    for key, value in overrides.items():
        if not hasattr(cfg, key):
            raise ValueError(f"unknown next-purchase setting {key!r}")
        if key == "tifu" and isinstance(value, dict):
            value = TifuParams(**{**asdict(cfg.tifu), **value})
        elif key == "lgbm":
            value = {**cfg.lgbm, **value}
        setattr(cfg, key, value)
    return cfg.validate()


def expected_days(cand: pd.DataFrame, window_days: int = 14) -> np.ndarray:
    """Days until the next purchase of each candidate (see the module docstring)."""
    d = cand["cp_days_since"].to_numpy(dtype=float)
    own = cand["cp_interval_mean"].to_numpy(dtype=float)
    cycle = cand["prod_cycle_median"].to_numpy(dtype=float)
    share = cand["cp_basket_share"].to_numpy(dtype=float)
    ipi = cand["ipi_mean"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        by_visits = np.where(share > 0, ipi / share, np.nan)
    interval = np.where(
        np.isfinite(own) & (own > 0),
        own,
        np.where(np.isfinite(cycle) & (cycle > 0), cycle, by_visits),
    )
    known = np.isfinite(d) & np.isfinite(interval) & (interval > 0)
    out = np.full(len(cand), np.nan)
    di, ii = d[known], interval[known]
    # overdue: the next date of the same rhythm, ``last + k * interval`` (0 when today is
    # one, as at d == interval)
    out[known] = np.where(di <= ii, ii - di, np.mod(-di, ii))
    never = ~np.isfinite(d)
    out[never] = np.where(
        np.isfinite(cycle[never]) & (cycle[never] > 0), cycle[never] / 2, window_days / 2
    )
    out[~known & ~never] = window_days / 2
    return np.round(out, 1)


def query_groups(train: pd.DataFrame) -> np.ndarray:
    """Sizes of the ranker's queries: runs of consecutive rows with the same
    ``(train_cutoff, customer_id)``, in row order (what LightGBM's ``group`` means).

    A key that comes back later (the same training cutoff listed twice, or a reordered
    prebuilt frame) starts a new query instead of being counted into the first one.
    """
    if len(train) == 0:
        return np.zeros(0, dtype="int64")
    t = train["train_cutoff"].to_numpy()
    c = train["customer_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, (t[1:] != t[:-1]) | (c[1:] != c[:-1])])
    return np.diff(np.r_[starts, len(train)])


class NextPurchaseRanker(Ranker):
    """LightGBM ranker over history and TIFU-KNN candidates (see the module docstring).

    ``fit(tables, cutoff)`` trains on the earlier cutoffs and prepares every customer's
    ranked list as of ``cutoff``; ``prepare(tables, cutoff)`` re-scores as of another
    cutoff with the same trained model. The prepared lists are small, so a pickled ranker
    recommends without the data.
    """

    name = MODEL_NAME

    def __init__(self, config: NextPurchaseConfig | None = None):
        self.config = config

    def _cfg(self) -> NextPurchaseConfig:
        return (self.config or default_config()).validate()

    @staticmethod
    def _candidates(
        cfg: NextPurchaseConfig,
        tables: Tables,
        cutoff: pd.Timestamp,
        customer_ids: np.ndarray | None,
        products: pd.DataFrame | None = None,
    ) -> tuple[pd.DataFrame, TifuKnn]:
        """The candidate frame as of ``cutoff`` (features included) and the TIFU-KNN fitted for it."""
        sales = sales_before(tables, cutoff)
        tifu = fit_tifu_at(tables, cutoff, asdict(cfg.tifu), sales=sales)
        cand = candidate_frame(
            tables,
            cutoff,
            tifu,
            customer_ids=customer_ids,
            history_top=cfg.history_top,
            tifu_top=cfg.tifu_top,
            window_days=cfg.window_days,
            products=products,
            sales=sales,
            signals=cfg.signals,
        )
        return cand, tifu

    # ------------------------------------------------------------------ training
    def training_frame(
        self, tables: Tables, cutoff, progress: Callable[[str], None] | None = None
    ) -> pd.DataFrame:
        """Labelled candidates of the training cutoffs ``cutoff - offset`` (what :meth:`fit` learns from)."""
        cfg = self._cfg()
        cutoff = pd.Timestamp(cutoff)
        first = tables.transactions["timestamp"].min()
        frames = []
        for off in sorted(cfg.train_offsets_days):
            t = cutoff - pd.Timedelta(days=off)
            if t <= first:
                logger.warning(
                    "training cutoff %s is before the data starts (%s): skipped",
                    t.date(),
                    first.date(),
                )
                continue
            t0 = time.perf_counter()
            labels = window_labels(tables, t, cfg.window_days)
            if labels.empty:
                logger.warning("nobody with history buys in the window after %s: skipped", t.date())
                continue
            ids = np.sort(labels["customer_id"].unique())
            cand, _ = self._candidates(cfg, tables, t, ids)
            cand["label"] = label_candidates(cand, labels)
            # groups without a positive carry no ranking signal
            cand = cand[cand.groupby("customer_id")["label"].transform("max") > 0]
            cand.insert(0, "train_cutoff", t)
            frames.append(cand)
            if progress:
                progress(
                    f"next-purchase training cutoff {t.date()}: {len(cand):,} candidates "
                    f"({time.perf_counter() - t0:.1f}s)"
                )
        if not frames:
            raise ValueError(
                f"no training cutoff before {cutoff.date()} has customers who buy a candidate "
                f"(offsets {cfg.train_offsets_days} days): too little history"
            )
        return pd.concat(frames, ignore_index=True)

    def fit(
        self,
        tables: Tables,
        cutoff,
        customer_ids: Iterable[int] | None = None,
        progress: Callable[[str], None] | None = None,
        train: pd.DataFrame | None = None,
    ) -> NextPurchaseRanker:
        """Train on the earlier cutoffs, then :meth:`prepare` the lists as of ``cutoff``.

        ``customer_ids`` limits the prepared lists (default: everyone with history);
        ``train`` is :meth:`training_frame` of the same ``cutoff`` if already built.
        """
        import lightgbm as lgb

        cfg = self._cfg()
        cutoff = pd.Timestamp(cutoff)
        if train is None:
            train = self.training_frame(tables, cutoff, progress)
        features = feature_list(cfg.signals)
        groups = query_groups(train)
        params = {
            "n_jobs": compute_threads(),
            **cfg.lgbm,
            "random_state": cfg.seed,
            "deterministic": True,
            "force_row_wise": True,
            "verbose": -1,
        }
        ranking = params.get("objective", "lambdarank") in ("lambdarank", "rank_xendcg")
        model = lgb.LGBMRanker(**params) if ranking else lgb.LGBMClassifier(**params)
        t0 = time.perf_counter()
        if ranking:
            model.fit(train[features], train["label"], group=groups)
        else:
            model.fit(train[features], train["label"])
        if progress:
            progress(
                f"next-purchase LightGBM on {len(train):,} rows, {len(groups):,} groups "
                f"({time.perf_counter() - t0:.1f}s)"
            )
        self.model_ = model
        self.feature_names_ = features
        self.train_cutoffs_ = sorted(train["train_cutoff"].unique())
        self.n_train_rows_ = len(train)
        self.train_positive_rate_ = float(train["label"].mean())
        return self.prepare(tables, cutoff, customer_ids=customer_ids, progress=progress)

    def _predict(self, x: pd.DataFrame) -> np.ndarray:
        if hasattr(self.model_, "predict_proba"):
            return self.model_.predict_proba(x)[:, 1]
        return self.model_.predict(x)

    def feature_importance(self) -> pd.Series:
        """Gain importance of each feature, as shares summing to 1."""
        gain = pd.Series(self.model_.booster_.feature_importance("gain"), index=self.feature_names_)
        return (gain / (gain.sum() or 1.0)).sort_values(ascending=False)  # no split: zeros

    # ------------------------------------------------------------------ scoring
    def prepare(
        self,
        tables: Tables,
        cutoff,
        customer_ids: Iterable[int] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> NextPurchaseRanker:
        """Rank every customer's candidates as of ``cutoff`` (default: everyone with history)."""
        if not hasattr(self, "model_"):
            raise RuntimeError("NextPurchaseRanker.prepare: call fit first")
        cfg = self._cfg()
        cutoff = pd.Timestamp(cutoff)
        t0 = time.perf_counter()
        products = product_features(tables, cutoff)
        ids = None if customer_ids is None else np.sort(np.asarray(as_id_list(customer_ids)))
        cand, tifu = self._candidates(cfg, tables, cutoff, ids, products)
        cand["score"] = self._predict(cand[self.feature_names_]) if len(cand) else np.zeros(0)
        cand["expected_days"] = expected_days(cand, cfg.window_days)
        cand = cand.sort_values(
            ["customer_id", "score", "ptop_rank", "product_id"],
            ascending=[True, False, True, True],
            kind="stable",
        )
        cand["rank"] = cand.groupby("customer_id").cumcount() + 1
        self.recs_ = cand.loc[cand["rank"] <= cfg.list_size, OUTPUT_COLUMNS].reset_index(drop=True)
        self.popular_ = tifu.popular_[: 2 * cfg.list_size]
        self.popular_days_ = self._popular_days(products, self.popular_, cfg.window_days)
        self.cutoff_ = cutoff
        if progress:
            progress(
                f"next-purchase lists as of {cutoff.date()} for {cand['customer_id'].nunique():,} customers "
                f"({time.perf_counter() - t0:.1f}s)"
            )
        return self

    @staticmethod
    def _popular_days(prod: pd.DataFrame, products: np.ndarray, window_days: int) -> dict:
        cycle = prod["prod_cycle_median"].reindex(products).to_numpy(dtype=float)
        days = np.where(np.isfinite(cycle) & (cycle > 0), cycle / 2, window_days / 2)
        return dict(zip(products.tolist(), np.round(days, 1).tolist(), strict=True))

    def recommend(self, customer_ids: Iterable[int] | int, n: int = 10) -> pd.DataFrame:
        if not hasattr(self, "recs_"):
            raise RuntimeError("NextPurchaseRanker.recommend: call fit (or prepare) first")
        if not isinstance(n, int | np.integer) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        cfg = self._cfg()
        if n > cfg.list_size:
            raise ValueError(
                f"n={n} is more than the prepared list size {cfg.list_size}; raise config.list_size"
            )
        ids = as_id_list(customer_ids)
        if not ids:
            return empty_recs(["expected_days"])
        recs = self.recs_[self.recs_["customer_id"].isin(ids) & (self.recs_["rank"] <= n)]

        out = pad_with_popular(recs, ids, self.popular_, n)
        pad = out["expected_days"].isna()
        out.loc[pad, "expected_days"] = out.loc[pad, "product_id"].map(self.popular_days_)
        return out[OUTPUT_COLUMNS]


# ---------------------------------------------------------------------------- family API


def _config(config) -> NextPurchaseConfig:
    if config is None:
        return default_config()
    if isinstance(config, dict):
        return default_config(**config)
    return config.validate()


def _tifu_params(tables: Tables, cfg: NextPurchaseConfig, progress, cutoff) -> TifuParams:
    """``cfg.tifu``, or TIFU-KNN tuned on data before ``cutoff`` only: at the validation
    cutoff, moved back so that its label window ends by ``cutoff`` if need be."""
    if not cfg.tune_tifu:
        return cfg.tifu
    end = pd.Timestamp(cutoff)
    at = min(pd.Timestamp(cfg.validation_cutoff), end - pd.Timedelta(days=cfg.window_days))
    return tuned_tifu_params(tables.before(end), at, progress=progress)


def fit_family(
    tables: Tables, cutoff, config=None, progress: Callable[[str], None] | None = None
) -> NextPurchaseRanker:
    """Train the ranker on cutoffs before ``cutoff`` and prepare every customer's list as of it."""
    cfg = _config(config)
    cfg.tifu = _tifu_params(tables, cfg, progress, cutoff)
    return NextPurchaseRanker(cfg).fit(tables, cutoff, progress=progress)


def figures(model: NextPurchaseRanker, top: int = 25) -> dict:
    """``{"feature_importance": Figure}``: the ranker's largest gain shares (an MLflow artifact)."""
    from training.plots import importance_figure

    cutoff = getattr(model, "cutoff_", None)
    when = f" as of {pd.Timestamp(cutoff).date()}" if cutoff is not None else ""
    fig = importance_figure(
        model.feature_importance(), f"next-purchase ranker{when}: feature importance", top
    )
    return {"feature_importance": fig}


def predict_family(model: NextPurchaseRanker, tables: Tables, cutoff, k: int = K) -> pd.DataFrame:
    """Shopping lists as of ``cutoff``: customer_id, product_id, rank (1 = best), score, expected_days.

    Every customer with a purchase before ``cutoff`` gets ``k`` products (only those the model
    was prepared for, if it was prepared at ``cutoff`` for a subset).
    """
    cutoff = pd.Timestamp(cutoff)
    if getattr(model, "cutoff_", None) != cutoff:
        model.prepare(tables, cutoff)
    ids = model.recs_["customer_id"].unique()
    return model.recommend(ids, n=k).reset_index(drop=True)


def _report(model_name: str, recs: pd.DataFrame, truth: dict, cutoff: pd.Timestamp) -> list[dict]:
    return ranking_rows(FAMILY, model_name, recs, truth, cutoff, K, METRICS)


def evaluate_family(
    tables: Tables,
    cutoffs=None,
    config=None,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """The ranker and the three baselines on the same split at each cutoff.

    Returns
    -------
    pd.DataFrame
        Long table ``family, model, cutoff, metric, value`` with NDCG@10, Recall@10,
        HitRate@10 (and the number of customers) of ``lgbm_ranker``, ``g_topfreq``,
        ``p_topfreq`` and ``tifu_knn`` over the customers with history who buy in the
        window.
    """
    cfg = _config(config)
    cutoffs = CUTOFFS[FAMILY] if cutoffs is None else [pd.Timestamp(c) for c in cutoffs]
    cfg.tifu = _tifu_params(tables, cfg, progress, min(cutoffs))
    rows: list[dict] = []
    for cutoff in cutoffs:
        cutoff = pd.Timestamp(cutoff)
        truth = truth_to_dict(window_labels(tables, cutoff, cfg.window_days))
        if not truth:
            raise ValueError(
                f"nobody with history buys in the {cfg.window_days} days after {cutoff.date()}"
            )
        ids = sorted(truth)
        t0 = time.perf_counter()
        ranker = NextPurchaseRanker(cfg).fit(tables, cutoff, customer_ids=ids, progress=progress)
        rows += _report(MODEL_NAME, ranker.recommend(ids, K), truth, cutoff)
        t_model = time.perf_counter() - t0
        sales = sales_before(tables, cutoff)
        for base in (GTopFreq(), PTopFreq(), TifuKnn.from_params(cfg.tifu)):
            base.fit(tables, cutoff, sales=sales)
            rows += _report(base.name, base.recommend(ids, K), truth, cutoff)
        if progress:
            got = {
                r["model"]: r["value"]
                for r in rows
                if r["cutoff"] == cutoff and r["metric"] == VALIDATION_METRIC
            }
            progress(
                f"next-purchase {cutoff.date()}: "
                + ", ".join(f"{m} {v:.4f}" for m, v in got.items())
                + f" (model {t_model:.0f}s, total {time.perf_counter() - t0:.0f}s)"
            )
    return pd.DataFrame(rows, columns=["family", "model", "cutoff", "metric", "value"])
