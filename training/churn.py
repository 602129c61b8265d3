"""Churn: LightGBM classifiers of full and partial churn, calibrated, with per-customer reasons.

The protocol (DESIGN.md, training/protocol.py): customers with a purchase in the 90 days
before the cutoff ``T``; *full churn* = no purchase in ``[T, T + 60d)``; *partial churn* =
net spend in that window below 50% of the spend in the 60 days before ``T``.

How a model for cutoff ``T`` is trained without looking past ``T``
-----------------------------------------------------------------
Training rows come from earlier cutoffs ``T - 60d``, ``T - 60d - 14d``, ... (configurable):
features as of each training cutoff, labels from its 60-day window, which therefore ends
at or before ``T``. Rows of all training cutoffs are stacked. Features are the shared
customer features (features/customer.py), demographics (features/demographics.py) and a
few churn-specific ones computed here (visit counts per window, longest gap, share of the
customer's past gaps longer than the current one, BG/NBD probability alive). Counts that
grow with calendar time (frequency, monetary, products bought ...) are turned into rates
per 30 days of tenure so that rows from early and late cutoffs are comparable.

Calibration is cross-fitted: customers are split into ``calibration_folds`` groups; each
fold model is trained on the other groups and scored on its own, a Platt (or isotonic)
map is fitted on those out-of-fold scores, and a prediction is the mean of the fold
models' calibrated probabilities. Out-of-fold labels and probabilities (each fold calibrated
by a map fitted on the other folds) are kept in the model (``oof_``) for the reliability
plot.

Reasons come from LightGBM's own SHAP contributions (``pred_contrib=True``), averaged
over the fold models: the groups of related features pushing a customer's churn log-odds
up the most (summed over each group), rendered as short text (:func:`churn_reasons`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace

import numpy as np
import pandas as pd

from features.contract import Tables
from features.demographics import DEMOGRAPHIC_COLUMNS
from training.metrics import classification_report, metric_rows
from training.protocol import CHURN_ACTIVE_DAYS, CUTOFFS, PARTIAL_CHURN_SHARE, WINDOWS_DAYS

logger = logging.getLogger(__name__)

FAMILY = "churn"
MODEL_NAME = "lightgbm"
BASELINE_NAME = "logistic_rfm"
VALIDATION_METRIC = "roc_auc"
VALIDATION_GREATER_IS_BETTER = True
TARGETS = ("churn", "partial_churn")
DAY = pd.Timedelta(days=1)

#: Cumulative counts that grow with calendar time: replaced by rates per 30 days of tenure.
CUMULATIVE = (
    "frequency",
    "monetary",
    "n_products",
    "campaigns_targeted",
    "campaigns_redeemed",
    "coupons_redeemed",
    "return_lines",
    "return_value",
)
#: Shared features left out of the models (labels of other features or calendar-bound).
DROPPED = ("rfm_segment", "r_score", "f_score", "m_score", "tenure_days", "lifecycle_stage")
#: Tenure is capped here: beyond it a customer is "established" whatever the calendar says.
TENURE_CAP_DAYS = 120.0


# --------------------------------------------------------------------------- config


@dataclass
class ChurnConfig:
    """Settings of the churn family (saved with the model).

    Attributes
    ----------
    horizon_days, active_days, partial_share
        The label definition (protocol defaults: 60, 90, 0.5).
    train_cutoffs : int
        Most training cutoffs stacked per model (``T - horizon - k * train_step_days``).
    train_step_days : int
        Days between training cutoffs.
    min_history_days : int
        A training cutoff needs this much data before it.
    calibration : {"sigmoid", "isotonic", "none"}
        Map from out-of-fold scores to probabilities; sigmoid (Platt) keeps the ranking.
    calibration_folds : int
        Customer groups of the cross-fit (>= 2).
    bgnbd_features : bool
        Add BG/NBD probability alive and expected visits (training/clv.py) as features.
    rhythm_features : bool
        Add visit-regularity, gap-distribution, trend and recent coupon/campaign features
        (training/churn_rhythm.py).
    lgbm : dict
        LightGBM parameters (``n_jobs`` and ``random_state`` included: fixed, deterministic).
    """

    horizon_days: int = WINDOWS_DAYS["churn"]
    active_days: int = CHURN_ACTIVE_DAYS
    partial_share: float = PARTIAL_CHURN_SHARE
    train_cutoffs: int = 12
    train_step_days: int = 14
    min_history_days: int = 56
    calibration: str = "sigmoid"
    calibration_folds: int = 3
    bgnbd_features: bool = True
    rhythm_features: bool = True
    top_reasons: int = 3
    lgbm: dict = field(
        default_factory=lambda: {
            # chosen on the validation cutoff 2017-08-01 (training.protocol):
            # with the rhythm features, 600 trees and 30% of the columns per tree give
            # ROC-AUC 0.905 vs 0.903 with 1000 trees and 50% (0.899 without them)
            "n_estimators": 600,
            "learning_rate": 0.01,
            "num_leaves": 3,
            "min_child_samples": 100,
            "subsample": 0.8,
            "subsample_freq": 1,
            "colsample_bytree": 0.3,
            "reg_lambda": 1.0,
            "n_jobs": 1,
            "random_state": 0,
            "deterministic": True,
            "force_row_wise": True,
            "verbose": -1,
        }
    )

    def __post_init__(self):
        if self.calibration not in ("sigmoid", "isotonic", "none"):
            raise ValueError(
                f"calibration must be 'sigmoid', 'isotonic' or 'none', got {self.calibration!r}"
            )
        if self.calibration_folds < 2:
            raise ValueError(f"calibration_folds must be >= 2, got {self.calibration_folds}")
        if self.train_cutoffs < 1 or self.train_step_days < 1:
            raise ValueError("train_cutoffs and train_step_days must be >= 1")
        if not 0 < self.partial_share <= 1:
            raise ValueError(f"partial_share must be in (0, 1], got {self.partial_share}")

    @classmethod
    def from_dict(cls, d: dict) -> ChurnConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown ChurnConfig keys {sorted(unknown)}; known: {sorted(known)}")
        base = cls()
        lgbm = {**base.lgbm, **d.get("lgbm", {})}
        return replace(base, **{**d, "lgbm": lgbm})


def default_config() -> ChurnConfig:
    """The churn family's defaults."""
    return ChurnConfig()


# --------------------------------------------------------------------------- features


def _basket_table(tables: Tables, cutoff: pd.Timestamp) -> pd.DataFrame:
    """One row per purchase basket before ``cutoff``: customer_id, ts, day, value."""
    tx = tables.transactions
    tx = tx[tx["timestamp"] < cutoff]
    sale = (tx["quantity"] > 0) & (tx["sales_value"] >= 0)
    b = (
        tx.groupby("basket_id", sort=False)
        .agg(
            customer_id=("customer_id", "first"),
            ts=("timestamp", "min"),
            value=("sales_value", "sum"),
        )
        .reset_index()
    )
    has_sale = pd.Index(tx.loc[sale, "basket_id"].unique())
    b = b[b["basket_id"].isin(has_sale)]
    b["day"] = b["ts"].dt.floor("D")
    return b


def churn_extra_features(tables: Tables, cutoff, customer_ids: pd.Index) -> pd.DataFrame:
    """Churn-specific rhythm features as of ``cutoff`` (only baskets before it are read).

    Columns: ``weeks_active_13w`` (weeks with a purchase among the last 13),
    ``weekly_spend_cv_13w`` (coefficient of variation of weekly spend), ``baskets_30d``, ``baskets_60d``, ``baskets_prev_60d``, ``spend_14d``,
    ``ipi_max`` (longest gap between visit days), ``ipi_recent`` (mean gap between visits
    of the last 90 days), ``gap_exceeded_share`` (share of the customer's past gaps at
    least as long as the current one), ``recency_over_max_gap``, ``last_basket_rel`` (last
    basket value / mean basket value), ``visit_trend`` ((visits 60d + 1) / (previous 60d + 1)),
    ``campaigns_active`` (campaigns targeting the customer that started before and end after
    the cutoff).
    """
    cutoff = pd.Timestamp(cutoff)
    ids = pd.Index(customer_ids, name="customer_id")
    b = _basket_table(tables, cutoff)
    b = b[b["customer_id"].isin(ids)]
    age = (cutoff - b["ts"]) / DAY
    out = pd.DataFrame(index=ids)
    g = b.groupby("customer_id")

    def count(mask):
        return b[mask].groupby("customer_id").size().reindex(ids, fill_value=0).astype("float64")

    out["baskets_30d"] = count(age <= 30)
    out["baskets_60d"] = count(age <= 60)
    out["baskets_prev_60d"] = count((age > 60) & (age <= 120))
    out["visit_trend"] = (out["baskets_60d"] + 1) / (out["baskets_prev_60d"] + 1)
    out["spend_14d"] = (
        b[age <= 14].groupby("customer_id")["value"].sum().reindex(ids, fill_value=0.0)
    )
    # regularity over the last 13 weeks (7-day blocks counted back from the cutoff)
    recent13 = b[age <= 91].assign(week=(age[age <= 91] // 7).clip(upper=12).astype(int))
    weekly = recent13.groupby(["customer_id", "week"])["value"].sum().unstack(fill_value=0.0)
    weekly = weekly.reindex(index=ids, columns=range(13), fill_value=0.0)
    out["weeks_active_13w"] = (weekly > 0).sum(axis=1).astype("float64")
    w_mean = weekly.mean(axis=1)
    out["weekly_spend_cv_13w"] = (weekly.std(axis=1) / w_mean.where(w_mean > 0)).astype("float64")
    days = b[["customer_id", "day"]].drop_duplicates().sort_values(["customer_id", "day"])
    days["gap"] = days.groupby("customer_id")["day"].diff() / DAY
    gaps = days.groupby("customer_id")["gap"]
    out["ipi_max"] = gaps.max().reindex(ids)
    recent = days[days["day"] >= cutoff - 90 * DAY]
    out["ipi_recent"] = recent.groupby("customer_id")["gap"].mean().reindex(ids)
    last = g["ts"].max().reindex(ids)
    recency = (cutoff - last) / DAY
    out["recency_over_max_gap"] = recency / out["ipi_max"].where(out["ipi_max"] > 0)
    rec = days["customer_id"].map(recency)
    valid = days["gap"].notna()
    exceeded = (days["gap"] >= rec) & valid
    out["gap_exceeded_share"] = (
        exceeded.groupby(days["customer_id"]).sum() / valid.groupby(days["customer_id"]).sum()
    ).reindex(ids)
    last_val = b.sort_values("ts").groupby("customer_id")["value"].last().reindex(ids)
    out["last_basket_rel"] = last_val / g["value"].mean().reindex(ids)
    out["campaigns_active"] = np.nan
    if tables.campaigns is not None and tables.campaign_targets is not None:
        c = tables.campaigns
        live = c.loc[(c["start_date"] < cutoff) & (c["end_date"] >= cutoff), "campaign_id"]
        tg = tables.campaign_targets
        tg = tg[tg["campaign_id"].isin(live)]
        out["campaigns_active"] = (
            tg.groupby("customer_id").size().reindex(ids, fill_value=0).astype("float64")
        )
    return out


def bgnbd_features(tables: Tables, cutoff, horizon_days: int) -> pd.DataFrame:
    """BG/NBD probability alive and expected visit days in the horizon, fitted as of ``cutoff``."""
    from training.clv import ProbabilisticValueModel

    m = ProbabilisticValueModel().fit(tables.transactions, cutoff)
    summ = m.summary(tables.transactions, cutoff)
    f, r, t = summ["frequency"], summ["recency"], summ["T"]
    unit = m._config().unit_days
    return pd.DataFrame(
        {
            "p_alive": m.bgf_.conditional_probability_alive(f, r, t),
            "bgnbd_expected_visits": m.bgf_.conditional_expected_number_of_purchases_up_to_time(
                horizon_days / unit, f, r, t
            ),
        },
        index=summ.index,
    )


def _build_features(
    tables: Tables,
    cutoff,
    customer_ids=None,
    horizon_days: int = 60,
    bgnbd: bool = True,
    rhythm: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Model features and the raw RFM columns (for the baseline) from one feature pass."""
    from features.customer import customer_features
    from features.demographics import demographic_features

    cutoff = pd.Timestamp(cutoff)
    cf = customer_features(tables, cutoff)
    ids = cf.index if customer_ids is None else pd.Index(customer_ids, name="customer_id")
    cf = cf.reindex(ids)
    rfm = cf[["recency_days", "frequency", "monetary"]].astype("float64")
    tenure = cf["tenure_days"].clip(lower=1.0)
    for c in CUMULATIVE:
        cf[f"{c}_rate"] = cf[c] / tenure * 30.0
    cf["tenure_capped"] = cf["tenure_days"].clip(upper=TENURE_CAP_DAYS)
    cf["spend_rate_vs_90d"] = (cf["spend_90d"] / 3.0 + 10.0) / (cf["monetary_rate"] + 10.0)
    cf = cf.drop(columns=[c for c in (*CUMULATIVE, *DROPPED) if c in cf.columns])
    demo = demographic_features(tables, ids).drop(columns=["lifecycle_stage"])
    out = cf.join(demo).join(churn_extra_features(tables, cutoff, ids))
    if rhythm:
        from training.churn_rhythm import rhythm_features

        out = out.join(rhythm_features(tables, cutoff, ids, horizon_days))
    if bgnbd:
        out = out.join(bgnbd_features(tables, cutoff, horizon_days))
    return out.astype("float64"), rfm


def model_features(
    tables: Tables,
    cutoff,
    customer_ids=None,
    horizon_days: int = 60,
    bgnbd: bool = True,
    rhythm: bool = False,
) -> pd.DataFrame:
    """Numeric feature frame (indexed by customer_id) of the churn and value models.

    Parameters
    ----------
    tables : Tables
        Canonical tables; only events strictly before ``cutoff`` are read.
    cutoff : timestamp-like
    customer_ids : array-like, optional
        Rows wanted (default: every customer with a purchase before ``cutoff``). Customers
        without history get NaN features.
    horizon_days : int
        Horizon of the BG/NBD expected-visits feature.
    bgnbd : bool
        Add ``p_alive`` and ``bgnbd_expected_visits``.
    rhythm : bool
        Add the visit-regularity and trend columns of :mod:`training.churn_rhythm`.

    Returns
    -------
    pd.DataFrame
        Shared customer features (cumulative counts as ``*_rate`` per 30 days of tenure,
        RFM scores and tenure dropped, ``tenure_capped`` added), numeric demographics and
        the columns of :func:`churn_extra_features` (+ BG/NBD), all float64.
    """
    return _build_features(tables, cutoff, customer_ids, horizon_days, bgnbd, rhythm)[0]


def labels_for(tables: Tables, cutoff, config: ChurnConfig) -> pd.DataFrame:
    """Protocol churn labels (features/labels.py) with the config's definition."""
    from features.labels import churn_labels

    return churn_labels(
        tables,
        cutoff,
        horizon=config.horizon_days,
        active_days=config.active_days,
        partial_share=config.partial_share,
    )


#: Training cutoffs other than the latest sit on a fixed grid of days counted from here, so
#: models for different cutoffs share them (features are computed once per evaluation run).
GRID_EPOCH = pd.Timestamp("2000-01-03")


def training_cutoffs(
    tables: Tables, cutoff, horizon_days: int, n: int, step_days: int, min_history_days: int
) -> list[pd.Timestamp]:
    """Earlier cutoffs whose ``horizon_days`` label windows end at or before ``cutoff``.

    The latest is ``cutoff - horizon_days``; the others are the latest ``n - 1`` days of a
    ``step_days`` grid (anchored at :data:`GRID_EPOCH`) at least half a step before it and
    with ``min_history_days`` of data before them. Latest first.
    """
    cutoff = pd.Timestamp(cutoff)
    first = tables.transactions["timestamp"].min().floor("D")
    earliest = first + min_history_days * DAY
    latest = cutoff - horizon_days * DAY
    if latest < earliest:
        raise ValueError(
            f"no training cutoff for {cutoff.date()}: the data starts {first.date()} and a training "
            f"cutoff needs {min_history_days} days of history plus a {horizon_days}-day "
            "label window ending by the cutoff"
        )
    out = [latest]
    last_grid = latest - (step_days // 2) * DAY
    k = (last_grid.floor("D") - GRID_EPOCH).days // step_days
    g = GRID_EPOCH + k * step_days * DAY
    while len(out) < n and g >= earliest:
        out.append(g)
        g -= step_days * DAY
    return out


class _FrameCache:
    """Features and labels per cutoff, computed once per evaluation run."""

    def __init__(self, tables: Tables, config: ChurnConfig):
        self.tables, self.config = tables, config
        self._data: dict[pd.Timestamp, tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]] = {}

    def get(self, cutoff) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """(features, labels, raw RFM) of the customers active before ``cutoff``."""
        cutoff = pd.Timestamp(cutoff)
        if cutoff not in self._data:
            lab = labels_for(self.tables, cutoff, self.config)
            X, rfm = _build_features(
                self.tables,
                cutoff,
                lab.index,
                horizon_days=self.config.horizon_days,
                bgnbd=self.config.bgnbd_features,
                rhythm=self.config.rhythm_features,
            )
            self._data[cutoff] = (X, lab, rfm)
        return self._data[cutoff]


def training_frame(
    tables: Tables, cutoff, config: ChurnConfig, cache: _FrameCache | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Stacked training rows for a model as of ``cutoff``: X, labels, raw RFM, customer ids."""
    cache = cache or _FrameCache(tables, config)
    Xs, ys, rs = [], [], []
    cuts = training_cutoffs(
        tables,
        cutoff,
        config.horizon_days,
        config.train_cutoffs,
        config.train_step_days,
        config.min_history_days,
    )
    for c in cuts:
        X, lab, rfm = cache.get(c)
        Xs.append(X)
        ys.append(lab)
        rs.append(rfm)
    X = pd.concat(Xs)
    groups = X.index.to_numpy()
    return (
        X.reset_index(drop=True),
        pd.concat(ys).reset_index(drop=True),
        pd.concat(rs).reset_index(drop=True),
        groups,
    )


# --------------------------------------------------------------------------- models


class LogisticRFMBaseline:
    """Logistic regression on standardised log(1 + recency, frequency, monetary).

    The protocol's churn baseline; trained on the same stacked cutoffs as the model.
    """

    name = BASELINE_NAME
    columns = ("recency_days", "frequency", "monetary")

    def __init__(self, C: float = 1.0):
        self.C = C

    @classmethod
    def transform(cls, rfm: pd.DataFrame) -> np.ndarray:
        """log1p of recency (days), frequency (baskets), monetary (net spend, floored at 0)."""
        return np.log1p(rfm[list(cls.columns)].clip(lower=0).fillna(0.0).to_numpy("float64"))

    def fit(self, X: pd.DataFrame, y, sample_weight=None) -> LogisticRFMBaseline:
        """Fit on raw ``recency_days``, ``frequency``, ``monetary`` columns and 0/1 labels.

        ``sample_weight`` (optional, one per row) weighs the logistic loss.
        """
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.model_ = make_pipeline(StandardScaler(), LogisticRegression(C=self.C)).fit(
            self.transform(X),
            np.asarray(y).astype(int),
            logisticregression__sample_weight=sample_weight,
        )
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Churn probability from raw ``recency_days``, ``frequency``, ``monetary``."""
        return self.model_.predict_proba(self.transform(X))[:, 1]


class _Calibrator:
    """Platt (logistic on the raw log-odds) or isotonic map; identity for 'none'."""

    def __init__(self, method: str):
        self.method = method

    def fit(self, raw: np.ndarray, y: np.ndarray) -> _Calibrator:
        if self.method == "sigmoid":
            from sklearn.linear_model import LogisticRegression

            self.map_ = LogisticRegression(C=1e6).fit(raw.reshape(-1, 1), y)
        elif self.method == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            self.map_ = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(raw, y)
        return self

    def transform(self, raw: np.ndarray) -> np.ndarray:
        if self.method == "sigmoid":
            return self.map_.predict_proba(raw.reshape(-1, 1))[:, 1]
        if self.method == "isotonic":
            return self.map_.predict(raw)
        return 1.0 / (1.0 + np.exp(-raw))


class CalibratedBooster:
    """Cross-fitted LightGBM classifier with calibrated probabilities.

    Attributes
    ----------
    boosters_ : list[lightgbm.Booster]
        One per fold (trained without that fold's customers).
    calibrator_ : _Calibrator
        Fitted on the out-of-fold raw scores.
    oof_ : pd.DataFrame
        ``y``, ``raw``, ``p`` of the training rows, each scored by the fold model that did
        not see its customer, ``p`` calibrated by a map fitted on the other folds: the
        reliability plot's data.
    feature_names_ : list[str]
    """

    def __init__(self, params: dict, folds: int = 3, calibration: str = "sigmoid"):
        self.params = params
        self.folds = folds
        self.calibration = calibration

    def fit(self, X: pd.DataFrame, y, groups) -> CalibratedBooster:
        import lightgbm as lgb
        from sklearn.model_selection import GroupKFold

        y = np.asarray(y).astype(int)
        if len(np.unique(y)) < 2:
            raise ValueError("churn training labels hold a single class: nothing to learn")
        self.feature_names_ = list(X.columns)
        raw = np.zeros(len(y))
        self.boosters_ = []
        splits = list(GroupKFold(n_splits=self.folds).split(X, y, groups))
        for tr, te in splits:
            clf = lgb.LGBMClassifier(**self.params).fit(X.iloc[tr], y[tr])
            self.boosters_.append(clf.booster_)
            raw[te] = clf.booster_.predict(X.iloc[te], raw_score=True)
        self.calibrator_ = _Calibrator(self.calibration).fit(raw, y)
        # the reliability plot's probabilities: each fold calibrated by a map fitted on the
        # other folds, so neither the booster nor the map has seen the row it scores (a map
        # fitted on all rows would match the base rate, and isotonic every bin, by design)
        p = np.zeros(len(y))
        for tr, te in splits:
            if len(np.unique(y[tr])) < 2:
                p[te] = self.calibrator_.transform(raw[te])
                continue
            p[te] = _Calibrator(self.calibration).fit(raw[tr], y[tr]).transform(raw[te])
        self.oof_ = pd.DataFrame({"y": y, "raw": raw, "p": p})
        return self

    def _frame(self, X: pd.DataFrame) -> pd.DataFrame:
        return X.reindex(columns=self.feature_names_)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        X = self._frame(X)
        ps = [self.calibrator_.transform(b.predict(X, raw_score=True)) for b in self.boosters_]
        return np.mean(ps, axis=0)

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """Mean SHAP contributions (log-odds) of the fold models; last column ``bias``."""
        X = self._frame(X)
        c = np.mean([b.predict(X, pred_contrib=True) for b in self.boosters_], axis=0)
        return pd.DataFrame(c, index=X.index, columns=[*self.feature_names_, "bias"])

    def feature_importance(self) -> pd.Series:
        gain = np.mean([b.feature_importance("gain") for b in self.boosters_], axis=0)
        return pd.Series(gain, index=self.feature_names_).sort_values(ascending=False)


class ChurnModel:
    """Full- and partial-churn classifiers as of a cutoff (the churn family's fitted object).

    Parameters
    ----------
    config : ChurnConfig, optional

    Attributes
    ----------
    models_ : dict[str, CalibratedBooster]
        One per target (``churn``, ``partial_churn``).
    feature_names_ : list[str]
    cutoff_ : pd.Timestamp
    train_cutoffs_ : list[pd.Timestamp]
    n_train_rows_ : int
    base_rates_ : dict[str, float]
        Label rates of the training rows.
    """

    name = MODEL_NAME

    def __init__(self, config: ChurnConfig | None = None):
        self.config = config

    def _config(self) -> ChurnConfig:
        return self.config if self.config is not None else ChurnConfig()

    def fit(self, tables: Tables, cutoff, cache: _FrameCache | None = None) -> ChurnModel:
        """Train on the stacked training cutoffs before ``cutoff`` (see the module docstring)."""
        cfg = self._config()
        cutoff = pd.Timestamp(cutoff)
        X, y, _, groups = training_frame(tables, cutoff, cfg, cache)
        self.models_ = {
            tgt: CalibratedBooster(cfg.lgbm, cfg.calibration_folds, cfg.calibration).fit(
                X, y[tgt], groups
            )
            for tgt in TARGETS
        }
        self.feature_names_ = list(X.columns)
        self.cutoff_ = cutoff
        self.train_cutoffs_ = training_cutoffs(
            tables,
            cutoff,
            cfg.horizon_days,
            cfg.train_cutoffs,
            cfg.train_step_days,
            cfg.min_history_days,
        )
        self.n_train_rows_ = len(X)
        self.base_rates_ = {tgt: float(y[tgt].mean()) for tgt in TARGETS}
        logger.info(
            "churn model as of %s: %d rows from %d cutoffs, base rates %s",
            cutoff.date(),
            len(X),
            len(self.train_cutoffs_),
            ", ".join(f"{t} {r:.1%}" for t, r in self.base_rates_.items()),
        )
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "models_"):
            raise RuntimeError("ChurnModel is not fitted yet: call fit() first.")

    def features(self, tables: Tables, cutoff, customer_ids=None) -> pd.DataFrame:
        """Feature rows as of ``cutoff``; default: customers active in the ``active_days`` before it."""
        cfg = self._config()
        if customer_ids is None:
            customer_ids = active_customers(tables, cutoff, cfg.active_days)
        return model_features(
            tables,
            cutoff,
            customer_ids,
            cfg.horizon_days,
            bgnbd=cfg.bgnbd_features,
            rhythm=cfg.rhythm_features,
        )

    def predict_proba(self, X: pd.DataFrame) -> pd.DataFrame:
        """``churn_probability`` and ``partial_churn_probability`` for feature rows ``X``."""
        self._check_fitted()
        return pd.DataFrame(
            {f"{tgt}_probability": self.models_[tgt].predict_proba(X) for tgt in TARGETS},
            index=X.index,
        )

    def predict(
        self, tables: Tables, cutoff, customer_ids=None, reasons: bool = True
    ) -> pd.DataFrame:
        """Churn scores as of ``cutoff`` for the customers active before it.

        Returns
        -------
        pd.DataFrame
            ``customer_id``, ``churn_probability``, ``partial_churn_probability`` and (if
            ``reasons``) ``reasons``: a list of short texts, the top features pushing full
            churn up. Customers with no purchase in the ``active_days`` before the cutoff are
            outside the model's population and are not listed.
        """
        self._check_fitted()
        X = self.features(tables, cutoff, customer_ids)
        out = self.predict_proba(X)
        if reasons:
            out["reasons"] = churn_reasons(self, X, top=self._config().top_reasons)
        return out.rename_axis("customer_id").reset_index()


def active_customers(tables: Tables, cutoff, active_days: int = CHURN_ACTIVE_DAYS) -> pd.Index:
    """Customers with a purchase (sale line) in ``[cutoff - active_days, cutoff)``, sorted."""
    cutoff = pd.Timestamp(cutoff)
    tx = tables.transactions
    m = (
        (tx["timestamp"] < cutoff)
        & (tx["timestamp"] >= cutoff - active_days * DAY)
        & (tx["quantity"] > 0)
        & (tx["sales_value"] >= 0)
    )
    return pd.Index(np.sort(tx.loc[m, "customer_id"].unique()), name="customer_id")


# --------------------------------------------------------------------------- reasons


def _fmt_money(x: float) -> str:
    return f"${x:,.0f}"


def _val(row: pd.Series, col: str) -> float:
    v = row.get(col, np.nan)
    return float(v) if v is not None else float("nan")


def _reason_recency(row: pd.Series) -> str | None:
    """None when the customer is not yet overdue: "no visit for 3 days, 0.2x the usual gap"
    is no reason to churn, whatever pushed the group's contribution up."""
    r, ipi = _val(row, "recency_days"), _val(row, "ipi_mean")
    if np.isfinite(ipi) and ipi > 0:
        if r < ipi:
            return None
        return f"no visit for {r:.0f} days, {r / ipi:.1f}x the usual gap of {ipi:.0f} days"
    return f"no visit for {r:.0f} days"


def _visits(n: float) -> str:
    return f"{n:.0f} visit" if round(n) == 1 else f"{n:.0f} visits"


def _reason_spend(row: pd.Series) -> str:
    now, before = _val(row, "spend_60d"), _val(row, "spend_prev_60d")
    if np.isfinite(before) and before > 0 and now < before:
        return f"spend down {100 * (1 - max(now, 0) / before):.0f}% vs the previous 2 months ({_fmt_money(now)} vs {_fmt_money(before)})"
    s30 = _val(row, "spend_30d")
    return f"low recent spend: {_fmt_money(s30)} in the last 30 days, {_fmt_money(now)} in 60"


def _reason_visits(row: pd.Series) -> str:
    now, before = _val(row, "baskets_60d"), _val(row, "baskets_prev_60d")
    if np.isfinite(before) and before > now:
        return f"visits down: {now:.0f} in the last 2 months vs {before:.0f} before"
    return f"only {_visits(_val(row, 'baskets_90d'))} in the last 90 days"


def _reason_rhythm(row: pd.Series) -> str:
    m, sd = _val(row, "ipi_mean"), _val(row, "ipi_std")
    if not np.isfinite(m):
        return "a single visit day so far: no shopping rhythm yet"
    if np.isfinite(sd):
        return f"infrequent, irregular shopper: a visit every {m:.0f} days (+/- {sd:.0f})"
    return f"infrequent shopper: a visit every {m:.0f} days"


def _reason_bgnbd(row: pd.Series) -> str:
    return (
        f"buying pattern expects only {_val(row, 'bgnbd_expected_visits'):.1f} visits in the "
        f"next 60 days (probability still active {_val(row, 'p_alive'):.0%})"
    )


def _reason_rate(row: pd.Series) -> str:
    return f"low overall activity: {_val(row, 'frequency_rate'):.1f} visits and {_fmt_money(_val(row, 'monetary_rate'))} a month"


def _reason_campaigns(row: pd.Series) -> str:
    if _val(row, "campaigns_targeted_rate") == 0:
        return "never reached by a campaign"
    if _val(row, "coupons_redeemed_rate") == 0:
        return "reached by campaigns but never redeemed a coupon"
    return "little response to campaigns"


def _reason_breadth(row: pd.Series) -> str:
    now, trend = _val(row, "categories_60d"), _val(row, "categories_trend")
    if np.isfinite(now) and np.isfinite(trend) and trend < 1:
        before = (now + 1.0) / trend - 1.0
        return f"fewer categories: {now:.0f} in the last 2 months vs {before:.0f} before"
    return f"narrow baskets: {_val(row, 'n_categories'):.0f} categories, {_val(row, 'basket_size_mean'):.0f} items a basket"


def _reason_last_basket(row: pd.Series) -> str:
    now, trend = _val(row, "basket_median_60d"), _val(row, "basket_median_trend")
    if np.isfinite(now) and np.isfinite(trend) and trend < 0.9:
        before = (now + 5.0) / trend - 5.0
        return f"smaller baskets: typical basket {_fmt_money(now)} in the last 2 months vs {_fmt_money(before)} before"
    return f"last basket {_val(row, 'last_basket_rel'):.0%} of the usual basket value"


def _reason_tenure(row: pd.Series) -> str:
    t = _val(row, "tenure_capped")
    if t < TENURE_CAP_DAYS:
        return f"new customer: first visit {t:.0f} days ago"
    return "long-standing customer with changing habits"


def _reason_profile(row: pd.Series) -> str:
    if _val(row, "has_demographics") == 0:
        return "no household profile on file"
    return "household profile typical of churners"


#: feature -> (reason group, renderer). Features of one group give one text.
REASON_GROUPS: dict[str, tuple[str, Callable[[pd.Series], str]]] = {
    **{
        c: ("recency", _reason_recency)
        for c in (
            "recency_days",
            "overdue_ratio",
            "recency_over_max_gap",
            "gap_exceeded_share",
            "recency_over_median_gap",
            "recency_over_p90_gap",
            "recency_z",
            "gap_survival_60",
            "gaps_ge_recency",
        )
    },
    **{
        c: ("spend", _reason_spend)
        for c in (
            "spend_14d",
            "spend_30d",
            "spend_60d",
            "spend_90d",
            "spend_prev_60d",
            "spend_trend",
            "spend_rate_vs_90d",
            "spend_slope_13w",
            "spend_slope_rel_13w",
            "weekly_spend_median_13w",
        )
    },
    **{
        c: ("visits", _reason_visits)
        for c in (
            "baskets_30d",
            "baskets_60d",
            "baskets_90d",
            "baskets_prev_60d",
            "visit_trend",
            "visits_4w",
            "visits_8w",
            "visits_26w",
            "visit_weeks_4w",
            "visit_weeks_8w",
            "visit_weeks_26w",
            "visit_slope_13w",
            "visit_slope_rel_13w",
            "visits_4w_vs_13w",
            "weeks_active_13w",
        )
    },
    **{
        c: ("rhythm", _reason_rhythm)
        for c in (
            "ipi_mean",
            "ipi_std",
            "ipi_max",
            "ipi_recent",
            "weekly_spend_cv_13w",
            "gap_median",
            "gap_p90",
            "share_gaps_over_60",
        )
    },
    **{c: ("bgnbd", _reason_bgnbd) for c in ("p_alive", "bgnbd_expected_visits")},
    **{c: ("rate", _reason_rate) for c in ("frequency_rate", "monetary_rate")},
    **{
        c: ("campaigns", _reason_campaigns)
        for c in (
            "campaigns_targeted_rate",
            "campaigns_redeemed_rate",
            "coupons_redeemed_rate",
            "redemption_rate",
            "campaigns_active",
            "coupons_redeemed_60d",
            "coupon_disc_60d",
            "campaigns_started_60d",
        )
    },
    **{
        c: ("breadth", _reason_breadth)
        for c in (
            "n_categories",
            "n_departments",
            "n_products_rate",
            "basket_size_mean",
            "top_category_share",
            "categories_60d",
            "categories_trend",
        )
    },
    **{
        c: ("last_basket", _reason_last_basket)
        for c in (
            "last_basket_rel",
            "basket_median_all",
            "basket_median_60d",
            "basket_median_trend",
        )
    },
    "tenure_capped": ("tenure", _reason_tenure),
    **{c: ("profile", _reason_profile) for c in DEMOGRAPHIC_COLUMNS if c != "lifecycle_stage"},
}


#: Plain texts of single features outside :data:`REASON_GROUPS` (value formatted in).
FEATURE_TEXTS: dict[str, str] = {
    "discount_share": "store discounts: {v:.0%} of the shelf price of their baskets",
    "coupon_share": "coupons: {v:.1%} of the shelf price of their baskets",
    "deal_line_share": "{v:.0%} of their items bought on a deal",
    "store_loyalty": "{v:.0%} of their visits in one store",
    "weekend_share": "{v:.0%} of their visits at the weekend",
    "hour_mean": "usually shops around {v:.0f}:00",
}


def _reason_text(feature: str, row: pd.Series) -> tuple[str, str | None]:
    """The feature's reason group and its text for ``row`` (None: no honest text here)."""
    if feature in REASON_GROUPS:
        group, fn = REASON_GROUPS[feature]
        return group, fn(row)
    v = row.get(feature, np.nan)
    if feature in FEATURE_TEXTS and np.isfinite(v):
        return feature, FEATURE_TEXTS[feature].format(v=float(v))
    if feature.startswith("dept_share__"):
        dept = feature.removeprefix("dept_share__").replace("_", " ")
        if not np.isfinite(v):
            return feature, f"{dept}: share of their spend unknown"
        # "0% of spend" read as nothing bought where a few cents were
        share = "none" if v <= 0 else "under 1%" if v < 0.005 else f"{float(v):.0%}"
        return feature, f"{dept}: {share} of their spend"
    label = feature.replace("_", " ")
    return feature, f"{label} = {float(v):.3g}" if np.isfinite(v) else f"{label} unknown"


def churn_reasons(model, X: pd.DataFrame, top: int = 3, target: str = "churn") -> list[list[str]]:
    """Per row of ``X``: up to ``top`` short texts for the features raising churn the most.

    Uses LightGBM's own SHAP contributions (``pred_contrib=True``, averaged over the
    cross-fitted fold models). Related features (e.g. ``recency_days`` and ``overdue_ratio``)
    render the same text and form one group, ranked by the sum of its features' contributions
    to the churn log-odds; only groups with a positive sum are listed, and not a group whose
    text would contradict it (recency for a customer who is not yet overdue). A customer
    with no such group gets an empty list.

    Parameters
    ----------
    model : ChurnModel or CalibratedBooster
        Fitted; for a :class:`ChurnModel` ``target`` picks the classifier.
    X : pd.DataFrame
        Feature rows (as from :meth:`ChurnModel.features`), with raw values for the texts.
    top : int
    target : {"churn", "partial_churn"}

    Returns
    -------
    list[list[str]]
        Aligned with the rows of ``X``.
    """
    if top < 1:
        raise ValueError(f"top must be >= 1, got {top}")
    booster = model.models_[target] if isinstance(model, ChurnModel) else model
    if not hasattr(booster, "boosters_"):
        raise TypeError(
            f"churn_reasons needs a fitted ChurnModel or CalibratedBooster, got {type(model).__name__}"
        )
    contrib = booster.contributions(X).drop(columns="bias")
    names = list(contrib.columns)
    # one text per group, weighed by the group's summed contribution (SHAP values add up):
    # a group whose features net push toward staying is no reason, even if one of them is > 0
    group_of = [REASON_GROUPS[f][0] if f in REASON_GROUPS else f for f in names]
    groups = list(dict.fromkeys(group_of))  # first-seen order: ties keep the column order
    first = {g: names[group_of.index(g)] for g in groups}
    member = np.zeros((len(names), len(groups)))
    member[np.arange(len(names)), [groups.index(g) for g in group_of]] = 1.0
    values = contrib.to_numpy() @ member
    order = np.argsort(-values, axis=1, kind="stable")
    out: list[list[str]] = []
    for i in range(len(X)):
        row = X.iloc[i]
        texts: list[str] = []
        for j in order[i]:
            if values[i, j] <= 0 or len(texts) >= top:
                break
            text = _reason_text(first[groups[j]], row)[1]
            if text is not None:  # e.g. recency when the customer is not overdue
                texts.append(text)
        out.append(texts)
    return out


# --------------------------------------------------------------------------- plots


def reliability_plot(y_true, probabilities, path=None, n_bins: int = 10, title: str | None = None):
    """Reliability diagram (mean predicted vs observed rate per quantile bin) + histogram.

    Parameters
    ----------
    y_true : array-like of 0/1
    probabilities : array-like or dict[str, array-like]
        One curve per entry (e.g. the model and a baseline on the same rows).
    path : str or Path, optional
        Also save the figure there as PNG.
    n_bins : int
        Quantile bins of the predicted probability.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        Drawn on an Agg canvas (no display, no change to pyplot's global backend).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    y = np.asarray(y_true).astype(float)
    curves = probabilities if isinstance(probabilities, dict) else {"model": probabilities}
    fig = Figure(figsize=(6, 6.5))
    FigureCanvasAgg(fig)
    ax, axh = fig.subplots(2, 1, gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="perfectly calibrated")
    top = 0.0
    for name, p in curves.items():
        p = np.asarray(p, dtype=float)
        if len(p) != len(y):
            raise ValueError(f"{name}: {len(p)} probabilities for {len(y)} labels")
        bins = pd.qcut(pd.Series(p).rank(method="first"), q=min(n_bins, len(p)), labels=False)
        g = pd.DataFrame({"p": p, "y": y, "bin": bins}).groupby("bin")
        mp, my = g["p"].mean(), g["y"].mean()
        brier = float(np.mean((p - y) ** 2))
        ax.plot(mp, my, marker="o", label=f"{name} (Brier {brier:.4f})")
        axh.hist(p, bins=40, range=(0, 1), histtype="step", label=name)
        top = max(top, float(mp.max()), float(my.max()))
    lim = min(1.0, top * 1.1 + 0.02)
    ax.set_xlim(0, lim)
    ax.set_ylim(0, lim)
    ax.set_ylabel("observed rate")
    ax.set_title(title or f"Reliability ({n_bins} quantile bins, n={len(y):,})")
    ax.legend(loc="upper left", fontsize=8)
    axh.set_xlabel("predicted probability")
    axh.set_ylabel("customers")
    axh.set_yscale("log")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, format="png", dpi=100)
    return fig


def figures(model: ChurnModel) -> dict:
    """Reliability plots of the fitted model on its cross-fitted (out-of-fold) training rows."""
    model._check_fitted()
    out = {}
    for tgt, m in model.models_.items():
        out[f"reliability_{tgt}"] = reliability_plot(
            m.oof_["y"],
            {MODEL_NAME: m.oof_["p"]},
            title=f"{tgt.replace('_', ' ')}: out-of-fold reliability, model as of {model.cutoff_.date()}",
        )
    return out


# --------------------------------------------------------------------------- family API


def _rows(model: str, cutoff, metrics: dict, prefix: str = "") -> list[dict]:
    return metric_rows(FAMILY, model, cutoff, metrics, prefix)


def evaluate_family(
    tables: Tables, cutoffs=None, config: ChurnConfig | None = None, progress=None
) -> pd.DataFrame:
    """LightGBM and the logistic-RFM baseline on the protocol cutoffs, same rows, same run.

    Parameters
    ----------
    tables : Tables
    cutoffs : list of timestamps, optional
        Default ``CUTOFFS["churn"]``.
    config : ChurnConfig, optional
    progress : callable, optional
        Called with a short message after each cutoff.

    Returns
    -------
    pd.DataFrame
        Long table ``family, model, cutoff, metric, value``. Full churn metrics are
        ``roc_auc``, ``pr_auc``, ``brier`` (+ ``base_rate``, ``n_customers``); partial churn
        ones carry the prefix ``partial_``; ``fit_seconds`` is the model's training time.
    """
    import time

    cfg = config or default_config()
    cutoffs = [pd.Timestamp(c) for c in (cutoffs or CUTOFFS["churn"])]
    cache = _FrameCache(tables, cfg)
    rows: list[dict] = []
    for cutoff in cutoffs:
        t0 = time.perf_counter()
        X, y, rfm, groups = training_frame(tables, cutoff, cfg, cache)
        t_feat = time.perf_counter() - t0
        Xt, yt, rfmt = cache.get(cutoff)
        t1 = time.perf_counter()
        model = ChurnModel(cfg).fit(tables, cutoff, cache)
        t_fit = time.perf_counter() - t1
        pred = model.predict_proba(Xt)
        for tgt in TARGETS:
            prefix = "" if tgt == "churn" else "partial_"
            rows += _rows(
                MODEL_NAME,
                cutoff,
                classification_report(yt[tgt], pred[f"{tgt}_probability"]),
                prefix,
            )
            base = LogisticRFMBaseline().fit(rfm, y[tgt])
            rows += _rows(
                BASELINE_NAME,
                cutoff,
                classification_report(yt[tgt], base.predict_proba(rfmt)),
                prefix,
            )
        rows += _rows(MODEL_NAME, cutoff, {"fit_seconds": t_fit, "feature_seconds": t_feat})
        msg = f"churn {cutoff.date()}: {len(X):,} training rows, fit {t_fit:.1f} s"
        logger.info(msg)
        if progress is not None:
            progress(msg)
    return pd.DataFrame(rows, columns=["family", "model", "cutoff", "metric", "value"])


def fit_family(tables: Tables, cutoff, config: ChurnConfig | None = None) -> ChurnModel:
    """Fit the churn family as of ``cutoff`` (picklable; config kept in ``model.config``)."""
    return ChurnModel(config or default_config()).fit(tables, cutoff)


def predict_family(model: ChurnModel, tables: Tables, cutoff, **_) -> pd.DataFrame:
    """``customer_id, churn_probability, partial_churn_probability, reasons`` as of ``cutoff``."""
    return model.predict(tables, cutoff)
