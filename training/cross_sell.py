"""Cross-sell: products a customer never bought before the cutoff and is likely to try.

Protocol (DESIGN.md, :mod:`training.protocol`): at a cutoff ``T`` the truth of a customer
is the set of products bought in ``[T, T + 28 days)`` that the customer never bought
before ``T`` (:func:`features.labels.cross_sell_labels`); customers with a purchase
before ``T`` and at least one such product are scored with NDCG@10, Recall@10 and
HitRate@10.

Model
-----
:class:`~training.cs_rerank.LightGBMReRanker` (``lgbm_rerank``): the signal rankers of
:mod:`training.cs_rankers` (recent popularity, item-kNN, implicit ALS and EASE by default) are
fitted on purchases before the cutoff; the union of their top candidates is described by
each signal's score and rank, product popularity and trend, and the customer's affinity
to the candidate's description, product type, category and department; LightGBM orders
it. It trains on earlier cutoffs ``T - 28 d, T - 56 d, ...`` whose labels end at or
before ``T`` (read from ``tables.before(T)``), so nothing at or after ``T`` is used.

Categories: with ``categories`` (default) the evaluation also ranks the *categories* a
customer never bought from, by running the same model and baselines on category-level
tables (:mod:`training.cs_categories`); their metrics are prefixed ``category_``.
``tailor predict cross-sell --level category`` writes such lists.

Baselines (same history, same customers): ``popularity`` (distinct buyers in the last 56
days, already-bought products excluded), ``item_knn`` (cosine over customers) and ``als``
(implicit ALS, 64 factors, regularization 0.1: :data:`ALS_BASELINE`, whatever the model's
own ALS signal uses). The model's ALS signal is reported alone as ``als_tuned`` when its
parameters differ, and the EASE, look-alike and co-occurrence signals (when used) as extra
rows, so the re-ranker's gain over its best single signal shows.

Family interface (used by ``tailor train / evaluate / predict``): :func:`default_config`,
:func:`evaluate_family`, :func:`fit_family`, :func:`predict_family`, :func:`figures`,
:data:`VALIDATION_METRIC`.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.contract import Tables
from training.cs_categories import METRIC_PREFIX as CATEGORY_PREFIX
from training.cs_categories import category_tables, has_categories
from training.cs_rankers import ALSRanker, ItemKNNRanker, PopularityRanker
from training.cs_rerank import SIGNAL_CLASSES, LightGBMReRanker
from training.metrics import ranking_rows, truth_to_dict
from training.protocol import CUTOFFS, WINDOWS_DAYS, K

logger = logging.getLogger(__name__)

FAMILY = "cross_sell"
MODEL_NAME = "lgbm_rerank"
VALIDATION_METRIC = "ndcg@10"
VALIDATION_GREATER_IS_BETTER = True
METRICS = ("ndcg@10", "recall@10", "hitrate@10")
OUTPUT_COLUMNS = ["customer_id", "product_id", "rank", "score", "reason"]
#: Signals reported alone next to the baselines when they are part of the model.
EXTRA_SIGNAL_ROWS = ("ease", "look_alike", "cooccurrence", "trial")
#: The ALS baseline's definition (row ``als``), independent of the model's ALS signal.
ALS_BASELINE = {"factors": 64, "iterations": 15, "regularization": 0.1, "alpha": 1.0}


@dataclass
class CrossSellConfig:
    """Settings of the cross-sell family (saved with the model).

    Attributes
    ----------
    window_days : int
        Label window; also the spacing of the re-ranker's training cutoffs.
    min_buyers : int
        Item universe: products with at least this many distinct buyers before the cutoff.
    signals : dict
        ``{signal name: constructor parameters}``; names from
        :data:`training.cs_rerank.SIGNAL_CLASSES`.
    candidates : dict
        Top-n candidates each signal contributes to the re-ranker (0 = feature only).
    rank_depth : int
        Signal ranks beyond this depth are reported as ``rank_depth + 1``.
    train_cutoffs : int
        Earlier cutoffs (every ``window_days`` back) the re-ranker is trained on.
    objective : {"binary", "lambdarank"}
    lgbm : dict
        LightGBM parameters merged over the re-ranker's defaults.
    drop_features : tuple of str
        Feature-name prefixes kept out of the model: customer-level columns (constant
        within a customer's list, so they only add noise) and counts that grow with the
        time since the data start, whose scale differs between training and scoring
        cutoffs.
    popularity_days, knn_neighbours : int
        Parameters of the popularity and item-kNN baselines.
    als_baseline : dict
        Parameters of the ALS baseline (row ``als``), fixed whatever the model's own ALS
        signal uses; when they differ the signal alone is reported too (``als_tuned``).
    categories : bool
        Also evaluate at the category level (categories never bought before,
        :mod:`training.cs_categories`): metrics ``category_ndcg@10`` etc. for the model and
        every baseline. Needs a products table with categories (skipped without one).
    seed : int
    """

    window_days: int = WINDOWS_DAYS["cross_sell"]
    min_buyers: int = 3
    signals: dict = field(
        default_factory=lambda: {
            "popularity": {"days": 56},
            "item_knn": {"neighbours": 200},
            # tuned on the validation cutoff (2017-09-01): ALS alone NDCG@10 0.0505 vs
            # 0.0463 with the baseline's 64 factors / regularization 0.1
            "als": {"factors": 32, "iterations": 15, "regularization": 10.0, "alpha": 1.0},
            # EASE as a feature (no candidates of its own): on the validation cutoffs
            # 2017-09-01 / 08-04 / 07-07 the re-ranker's NDCG@10 rose from 0.0604 to 0.0616
            # (mean of 3 seeds each); with 100 or 200 EASE candidates 0.0615 / 0.0614, with
            # 100 EASE and 50 (not 100) ALS candidates 0.0616.
            # EASE alone: 0.0579 (lam 500-1000 alike, 2000 lower), the best single signal.
            "ease": {"lam": 1000.0},
        }
    )
    candidates: dict = field(default_factory=lambda: {"popularity": 30, "item_knn": 50, "als": 100})
    rank_depth: int = 200
    train_cutoffs: int = 2
    objective: str = "binary"
    lgbm: dict = field(
        default_factory=lambda: {
            "n_estimators": 150,
            "learning_rate": 0.05,
            "num_leaves": 15,
            "min_child_samples": 300,
            "n_jobs": 1,
        }
    )
    drop_features: tuple[str, ...] = (
        "c_",
        "a_manufacturer_id",
        "p_age_days",
        "p_last_days",
        "p_buyers",
    )
    popularity_days: int = 56
    knn_neighbours: int = 200
    als_baseline: dict = field(default_factory=lambda: dict(ALS_BASELINE))
    categories: bool = True
    seed: int = 0

    def validate(self) -> CrossSellConfig:
        """Check every setting; raise ``ValueError`` naming the first wrong one."""
        for name in (
            "window_days",
            "min_buyers",
            "rank_depth",
            "train_cutoffs",
            "popularity_days",
            "knn_neighbours",
        ):
            v = getattr(self, name)
            if not isinstance(v, int | np.integer) or isinstance(v, bool) or v < 1:
                raise ValueError(f"cross-sell config: {name} must be an integer >= 1, got {v!r}")
        if self.objective not in ("binary", "lambdarank"):
            raise ValueError(
                f"cross-sell config: objective must be 'binary' or 'lambdarank', got {self.objective!r}"
            )
        if not isinstance(self.signals, dict) or not self.signals:
            raise ValueError(
                "cross-sell config: signals is empty; the re-ranker needs at least one signal"
            )
        unknown = sorted(set(self.signals) - set(SIGNAL_CLASSES))
        if unknown:
            raise ValueError(
                f"cross-sell config: unknown signal(s) {unknown}; known: {sorted(SIGNAL_CLASSES)}"
            )
        if not isinstance(self.categories, bool):
            raise ValueError(
                f"cross-sell config: categories must be true or false, got {self.categories!r}"
            )
        if not isinstance(self.als_baseline, dict):
            raise ValueError(
                f"cross-sell config: als_baseline must be a dict of parameters, got {self.als_baseline!r}"
            )
        for name, params in self.signals.items():
            if not isinstance(params, dict):
                raise ValueError(
                    f"cross-sell config: signals[{name!r}] must be a dict of parameters, got {params!r}"
                )
        extra = sorted(set(self.candidates) - set(self.signals))
        if extra:
            raise ValueError(
                f"cross-sell config: candidates for signal(s) {extra} that are not in signals"
            )
        bad = {
            k: v for k, v in self.candidates.items() if not isinstance(v, int | np.integer) or v < 0
        }
        if bad:
            raise ValueError(f"cross-sell config: candidates must be integers >= 0, got {bad}")
        if sum(self.candidates.values()) < 1:
            raise ValueError(
                "cross-sell config: no signal contributes candidates (all candidates are 0)"
            )
        if not isinstance(self.lgbm, dict):
            raise ValueError(
                f"cross-sell config: lgbm must be a dict, got {type(self.lgbm).__name__}"
            )
        threads = self.lgbm.get("n_jobs")
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ValueError(
                f"cross-sell config: lgbm n_jobs must be a whole number >= 1, got {threads!r}"
            )
        return self


def default_config(**overrides) -> CrossSellConfig:
    """The default configuration with ``overrides`` merged in (``lgbm`` is merged key by key)."""
    cfg = CrossSellConfig()
    for key, value in overrides.items():
        if key.startswith("_") or not hasattr(cfg, key):
            raise ValueError(f"unknown cross-sell setting {key!r}")
        if key == "lgbm" and isinstance(value, dict):
            value = {**cfg.lgbm, **value}
        if key == "drop_features":
            value = tuple(value)
        setattr(cfg, key, value)
    return cfg.validate()


def validation_config(cfg: CrossSellConfig) -> CrossSellConfig:
    """What ``tailor train`` validates with: products only (the category level, ~25 s more
    on Complete Journey, is reported by ``tailor evaluate cross-sell``)."""
    return dataclasses.replace(cfg, categories=False)


def _config(config) -> CrossSellConfig:
    if config is None:
        return default_config()
    if isinstance(config, dict):
        return default_config(**config)
    if not isinstance(config, CrossSellConfig):
        raise TypeError(f"config must be a CrossSellConfig or a dict, got {type(config).__name__}")
    return config.validate()


def make_model(config: CrossSellConfig | dict | None = None) -> LightGBMReRanker:
    """An unfitted re-ranker built from the family configuration."""
    cfg = _config(config)
    return LightGBMReRanker(
        signal_params=copy.deepcopy(cfg.signals),
        candidates=dict(cfg.candidates),
        rank_depth=cfg.rank_depth,
        train_cutoffs=cfg.train_cutoffs,
        objective=cfg.objective,
        lgbm_params=dict(cfg.lgbm),
        min_buyers=cfg.min_buyers,
        seed=cfg.seed,
        window_days=cfg.window_days,
        drop_features=tuple(cfg.drop_features),
    )


def fit_family(
    tables: Tables, cutoff, config=None, progress: Callable[[str], None] | None = None
) -> LightGBMReRanker:
    """Train the re-ranker on cutoffs before ``cutoff`` and fit its signals as of ``cutoff``.

    The returned model is picklable (cloudpickle) and carries ``feature_names_`` and the
    configuration (``config_``).
    """
    cfg = _config(config)
    cutoff = pd.Timestamp(cutoff)
    t0 = time.perf_counter()
    model = make_model(cfg).fit(tables, cutoff, progress=progress)
    model.config_ = cfg
    logger.info(
        "cross-sell model fitted as of %s in %.1f s", cutoff.date(), time.perf_counter() - t0
    )
    return model


def predict_family(model: LightGBMReRanker, tables: Tables, cutoff, k: int = K) -> pd.DataFrame:
    """Cross-sell lists as of ``cutoff``: customer_id, product_id, rank (1 = best), score, reason.

    Every customer with a purchase before ``cutoff`` gets ``k`` products they never bought
    before it. If the model was fitted as of another date, its signals are refitted as of
    ``cutoff`` on a copy (the trained LightGBM is kept), so ``model`` is not changed.
    """
    if not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    cutoff = pd.Timestamp(cutoff)
    if not hasattr(model, "model_"):
        raise RuntimeError("predict_family: the model is not fitted; call fit_family first")
    if getattr(model, "cutoff_", None) != cutoff or not hasattr(model, "signals_"):
        model = copy.copy(model).prepare(tables, cutoff)
    ids = model.signals_.history.customers
    out = model.recommend(ids, n=int(k), reasons=True)
    return out[OUTPUT_COLUMNS].reset_index(drop=True)


def _report(model_name: str, recs: pd.DataFrame, truth: dict, cutoff: pd.Timestamp) -> list[dict]:
    return ranking_rows(FAMILY, model_name, recs, truth, cutoff, K, METRICS)


def _baselines(model: LightGBMReRanker, tables: Tables, cutoff, cfg: CrossSellConfig) -> dict:
    """Baselines fitted on the model's own history (same universe, same exclusions)."""
    sig = model.signals_
    out = {}
    pop = sig.signals.get("popularity")
    if pop is None or pop.days != cfg.popularity_days:
        pop = PopularityRanker(days=cfg.popularity_days, min_buyers=cfg.min_buyers)
        pop.fit(tables, cutoff, history=sig.history)
    out["popularity"] = pop
    knn = sig.signals.get("item_knn")
    if knn is None or knn.neighbours != cfg.knn_neighbours:
        knn = ItemKNNRanker(neighbours=cfg.knn_neighbours, min_buyers=cfg.min_buyers)
        knn.fit(tables, cutoff, history=sig.history)
    out["item_knn"] = knn
    als = sig.signals.get("als")
    base_als = {**ALS_BASELINE, **cfg.als_baseline}
    if als is None or any(getattr(als, k) != v for k, v in base_als.items()):
        if als is not None:
            out["als_tuned"] = als
        als = ALSRanker(**base_als, min_buyers=cfg.min_buyers)
        als.fit(tables, cutoff, history=sig.history)
    out["als"] = als
    for name in EXTRA_SIGNAL_ROWS:
        if name in sig.signals:
            out[name] = sig.signals[name]
    return out


def evaluate_family(
    tables: Tables,
    cutoffs=None,
    config=None,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """The re-ranker and the baselines on the same split at each cutoff.

    Returns
    -------
    pd.DataFrame
        Long table ``family, model, cutoff, metric, value`` with NDCG@10, Recall@10,
        HitRate@10 and ``n_customers`` of ``lgbm_rerank``, ``popularity``, ``item_knn``,
        ``als`` (and ``als_tuned`` when the model's ALS differs) over the customers with
        history who buy at least one never-bought product in the window; with
        ``config.categories`` the same at the category level, metrics prefixed
        ``category_`` (customers who buy from a category new to them).
    """
    cfg = _config(config)
    cutoffs = CUTOFFS[FAMILY] if cutoffs is None else [pd.Timestamp(c) for c in cutoffs]
    if not cutoffs:
        raise ValueError("evaluate_family: no cutoff given")
    levels = [("", tables)]
    if cfg.categories and has_categories(tables):
        levels.append((CATEGORY_PREFIX, category_tables(tables)))
    elif cfg.categories:
        logger.info("cross-sell: no product categories in the source; category level skipped")
    rows: list[dict] = []
    for cutoff in cutoffs:
        for prefix, level_tables in levels:
            rows += _evaluate_level(level_tables, pd.Timestamp(cutoff), cfg, prefix, progress)
    return pd.DataFrame(rows, columns=["family", "model", "cutoff", "metric", "value"])


def _evaluate_level(
    tables: Tables, cutoff: pd.Timestamp, cfg: CrossSellConfig, prefix: str, progress
) -> list[dict]:
    """Rows of the model and the baselines at one cutoff; ``prefix`` marks the level's metrics."""
    from features.labels import cross_sell_labels

    what, whats = ("category", "categories") if prefix else ("product", "products")
    t0 = time.perf_counter()
    truth = truth_to_dict(cross_sell_labels(tables, cutoff, days=cfg.window_days))
    if not truth:
        raise ValueError(
            f"nobody with history buys a new {what} in the {cfg.window_days} days after {cutoff.date()}"
        )
    ids = sorted(truth)
    model = fit_family(tables, cutoff, cfg, progress=progress)
    rows = _report(MODEL_NAME, model.recommend(ids, K), truth, cutoff)
    t_model = time.perf_counter() - t0
    for name, base in _baselines(model, tables, cutoff, cfg).items():
        rows += _report(name, base.recommend(ids, K), truth, cutoff)
    got = {r["model"]: r["value"] for r in rows if r["metric"] == VALIDATION_METRIC}
    msg = (
        f"cross-sell {cutoff.date()} ({whats}): "
        + ", ".join(f"{m} {v:.4f}" for m, v in got.items())
        + f" (model {t_model:.0f}s, total {time.perf_counter() - t0:.0f}s)"
    )
    logger.info("%s", msg)
    if progress:
        progress(msg)
    for r in rows:
        r["metric"] = prefix + r["metric"]
    return rows


def feature_importance(model: LightGBMReRanker) -> pd.Series:
    """Gain importance of each feature as shares summing to 1, largest first."""
    if not hasattr(model, "model_"):
        raise RuntimeError("feature_importance: the model is not fitted")
    gain = pd.Series(
        model.model_.booster_.feature_importance("gain"), index=model.feature_names_, dtype=float
    )
    total = gain.sum()
    return (gain / total if total > 0 else gain).sort_values(ascending=False)


def figures(model: LightGBMReRanker, top: int = 25) -> dict:
    """``{"feature_importance": Figure}``: the re-ranker's largest gain shares."""
    from training.plots import importance_figure

    fig = importance_figure(
        feature_importance(model),
        f"cross-sell re-ranker as of {model.cutoff_.date()}: feature importance",
        top,
    )
    return {"feature_importance": fig}
