"""Customer value: LightGBM regressor of 90-day spend, CLV, probability alive, tiers and grid.

The protocol (DESIGN.md): as of a cutoff ``T``, predict each customer's net spend in
``[T, T + 90d)`` for every customer with a purchase before ``T``; MAE, Spearman and top-20%
capture; baselines last-90-days spend and BG/NBD + Gamma-Gamma (training/clv.py).

Training for cutoff ``T`` stacks earlier cutoffs ``T - 90d`` and a 14-day grid before it
(the same scheme as training/churn.py), so every label window ends at or before ``T``.
Features: the shared customer features and demographics (through
:func:`training.churn.model_features`, cumulative counts as rates), the BG/NBD +
Gamma-Gamma predictions fitted as of each training cutoff (``bg_*``) and weekly spend
levels, quartiles, exponentially weighted means and slopes (training/value_weekly.py).

Per customer (:meth:`ValueModel.predict`):

* ``expected_spend_90d`` -- the LightGBM forecast;
* ``clv_1y`` -- months 1-3 from the LightGBM forecast, months 4-12 from BG/NBD +
  Gamma-Gamma (its discounted 12-month value minus its 3-month value): revenue, not margin;
* ``p_alive`` -- BG/NBD probability the customer is still active;
* ``tier`` (most_valuable / most_growable / below_zero / standard), ``grid_cell`` and
  ``treatment`` from training/tiers.py.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np
import pandas as pd

from features.contract import Tables
from training.churn import DAY, model_features, training_cutoffs
from training.metrics import metric_rows, regression_report
from training.protocol import CUTOFFS, WINDOWS_DAYS
from training.tiers import TierConfig, pareto_share, value_tiers, value_trend_grid

logger = logging.getLogger(__name__)

FAMILY = "value"
MODEL_NAME = "lightgbm"
BASELINES = ("last_90d_spend", "bgnbd_gamma_gamma")
VALIDATION_METRIC = "mae"
VALIDATION_GREATER_IS_BETTER = False
BG_COLUMNS = ("expected_purchases", "p_alive", "expected_avg_spend", "expected_spend", "clv_1y")
SCALES = ("mix3", "mix")


@dataclass
class ValueConfig:
    """Settings of the value family (saved with the model).

    Attributes
    ----------
    horizon_days : int
        Forecast window (protocol: 90).
    train_cutoffs, train_step_days, min_history_days : int
        Training cutoffs: ``T - horizon`` and a ``train_step_days`` grid before it, each
        with ``min_history_days`` of data before it, at most ``train_cutoffs`` of them.
    clv : dict
        Settings of the BG/NBD + Gamma-Gamma model (training.clv.ValueModelConfig).
    tiers : dict
        Overrides of training.tiers.TierConfig (margin rate, shares, trend thresholds).
    target : {"ratio", "spend"}
        ``ratio`` (default): the booster learns next-90-day spend divided by a per-customer
        scale (see ``scale``, floored at ``scale_floor``) with sample weight = scale, so an
        L1 objective on the ratio is exactly the MAE of the spend and rows from early and
        late cutoffs are comparable; ``spend``: the booster learns the spend itself.
    scale : {"mix3", "mix"}
        Scale of the ratio target: ``mix3`` (default) the mean of last-90-day spend, the
        BG/NBD forecast and the exponentially weighted weekly spend (half-life 8 weeks, as
        90 days; needs ``weekly_features``); ``mix`` the mean of the first two.
    scale_floor : float
        Smallest scale (currency units) for the ratio target.
    weekly_features : bool
        Add the weekly spend-level features of training/value_weekly.py.
    lgbm : dict
        LightGBM parameters (objective included; ``n_jobs`` and seed fixed).
    """

    horizon_days: int = WINDOWS_DAYS["value"]
    train_cutoffs: int = 12
    train_step_days: int = 14
    min_history_days: int = 56
    clv: dict = field(default_factory=dict)
    tiers: dict = field(default_factory=dict)
    target: str = "ratio"
    scale: str = "mix3"
    scale_floor: float = 20.0
    weekly_features: bool = True
    lgbm: dict = field(
        default_factory=lambda: {
            # chosen on the validation cutoff 2017-06-01 with the weekly features and the
            # mix3 scale (MAE 171.4-171.6 over seeds 0-2 vs 172.9-173.1 before)
            "objective": "l1",
            "n_estimators": 300,
            "learning_rate": 0.02,
            "num_leaves": 15,
            "min_child_samples": 50,
            "subsample": 0.8,
            "subsample_freq": 1,
            "colsample_bytree": 0.5,
            "reg_lambda": 1.0,
            "n_jobs": 1,
            "random_state": 0,
            "deterministic": True,
            "force_row_wise": True,
            "verbose": -1,
        }
    )

    def __post_init__(self):
        if self.horizon_days < 1 or self.train_cutoffs < 1 or self.train_step_days < 1:
            raise ValueError("horizon_days, train_cutoffs and train_step_days must be >= 1")
        if self.target not in ("ratio", "spend"):
            raise ValueError(f"target must be 'ratio' or 'spend', got {self.target!r}")
        if self.scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {self.scale!r}")
        if self.scale == "mix3" and not self.weekly_features:
            raise ValueError("scale 'mix3' needs weekly_features=True (it uses spend90_ewm8)")
        if not self.scale_floor > 0:
            raise ValueError(f"scale_floor must be > 0, got {self.scale_floor!r}")
        TierConfig.from_dict(self.tiers)  # fail early on a bad tier override

    @classmethod
    def from_dict(cls, d: dict) -> ValueConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown ValueConfig keys {sorted(unknown)}; known: {sorted(known)}")
        base = cls()
        return replace(base, **{**d, "lgbm": {**base.lgbm, **d.get("lgbm", {})}})

    def tier_config(self) -> TierConfig:
        return TierConfig.from_dict(self.tiers)

    def clv_config(self):
        from training.clv import ValueModelConfig

        return ValueModelConfig.from_dict({**self.clv, "horizon_days": self.horizon_days})


def default_config() -> ValueConfig:
    """The value family's defaults."""
    return ValueConfig()


# --------------------------------------------------------------------------- features


def _fit_probabilistic(tables: Tables, cutoff, config: ValueConfig):
    from training.clv import ProbabilisticValueModel

    return ProbabilisticValueModel(config.clv_config()).fit(tables.transactions, cutoff)


def _bg_predictions(pvm, tables: Tables, cutoff, horizon_days: int) -> pd.DataFrame:
    """``bg_*`` columns: expected visits and spend in the horizon, p_alive, avg spend, clv_1y."""
    p = pvm.predict(tables.transactions, cutoff, horizon_days=horizon_days)
    p.columns = [c.replace(f"_{horizon_days:g}d", "") for c in p.columns]
    return p[list(BG_COLUMNS)].add_prefix("bg_")


def value_features(
    tables: Tables, cutoff, customer_ids, config: ValueConfig, pvm=None
) -> pd.DataFrame:
    """Features of the value model as of ``cutoff`` (only events before it are read).

    ``pvm`` is a ProbabilisticValueModel fitted as of ``cutoff``; fitted here when omitted.
    """
    ids = pd.Index(customer_ids, name="customer_id")
    X = model_features(tables, cutoff, ids, horizon_days=config.horizon_days, bgnbd=False)
    pvm = pvm if pvm is not None else _fit_probabilistic(tables, cutoff, config)
    bg = _bg_predictions(pvm, tables, cutoff, config.horizon_days).reindex(ids)
    # Last-90-day spend of a customer seen for fewer than 90 days covers a shorter window:
    # scaled to 90 days, so early training cutoffs and late ones mean the same thing.
    observed = X["tenure_capped"].clip(lower=14.0, upper=config.horizon_days)
    X["spend_window_90d"] = X["spend_90d"].fillna(0.0) * config.horizon_days / observed
    X = X.join(bg)
    if config.weekly_features:
        from training.value_weekly import weekly_value_features

        X = X.join(weekly_value_features(tables, cutoff, ids))
    return X


def value_labels_for(tables: Tables, cutoff, config: ValueConfig) -> pd.DataFrame:
    """Protocol value labels (features/labels.py): ``spend_next`` of customers with history."""
    from features.labels import value_labels

    return value_labels(tables, cutoff, days=config.horizon_days)


def customers_with_history(tables: Tables, cutoff) -> pd.Index:
    """Customers with a purchase (sale line) strictly before ``cutoff``, sorted."""
    tx = tables.transactions
    m = (tx["timestamp"] < pd.Timestamp(cutoff)) & (tx["quantity"] > 0) & (tx["sales_value"] >= 0)
    return pd.Index(np.sort(tx.loc[m, "customer_id"].unique()), name="customer_id")


class _FrameCache:
    """Features, labels and the fitted BG/NBD model per cutoff, once per evaluation run."""

    def __init__(self, tables: Tables, config: ValueConfig):
        self.tables, self.config = tables, config
        self._data: dict[pd.Timestamp, tuple] = {}

    def get(self, cutoff, labels: bool = True) -> tuple[pd.DataFrame, pd.DataFrame | None, object]:
        cutoff = pd.Timestamp(cutoff)
        if cutoff not in self._data:
            ids = customers_with_history(self.tables, cutoff)
            pvm = _fit_probabilistic(self.tables, cutoff, self.config)
            X = value_features(self.tables, cutoff, ids, self.config, pvm)
            self._data[cutoff] = (X, pvm)
        X, pvm = self._data[cutoff]
        y = value_labels_for(self.tables, cutoff, self.config).reindex(X.index) if labels else None
        return X, y, pvm


def _training_cutoffs(tables: Tables, cutoff, config: ValueConfig) -> list[pd.Timestamp]:
    return training_cutoffs(
        tables,
        cutoff,
        config.horizon_days,
        config.train_cutoffs,
        config.train_step_days,
        config.min_history_days,
    )


def training_frame(
    tables: Tables, cutoff, config: ValueConfig, cache: _FrameCache | None = None
) -> tuple[pd.DataFrame, np.ndarray]:
    """Stacked training rows for a model as of ``cutoff``: features and 90-day spend."""
    cache = cache or _FrameCache(tables, config)
    Xs, ys = [], []
    for c in _training_cutoffs(tables, cutoff, config):
        X, y, _ = cache.get(c)
        Xs.append(X)
        ys.append(y["spend_next"])
    return pd.concat(Xs).reset_index(drop=True), pd.concat(ys).to_numpy("float64")


# --------------------------------------------------------------------------- model


def _recent_discounts(tables: Tables, cutoff, ids: pd.Index, days: int) -> pd.DataFrame:
    """Net spend and discount cost (retail + coupon) per customer in ``[cutoff - days, cutoff)``."""
    cutoff = pd.Timestamp(cutoff)
    tx = tables.transactions
    w = tx[(tx["timestamp"] < cutoff) & (tx["timestamp"] >= cutoff - days * DAY)]
    g = w.groupby("customer_id")
    return pd.DataFrame(
        {
            "sales": g["sales_value"].sum(),
            "discount_cost": g["retail_discount"].sum() + g["coupon_discount"].sum(),
        }
    ).reindex(ids, fill_value=0.0)


def spend_scale(X: pd.DataFrame, floor: float, kind: str = "mix") -> np.ndarray:
    """Per-customer scale of the ratio target (see ``ValueConfig.scale``).

    ``mix``: mean of last-90-day spend and the BG/NBD forecast; ``mix3``: mean of those and
    the exponentially weighted weekly spend as 90 days (``spend90_ewm8``). Floored at ``floor``.
    """
    last = X["spend_window_90d"].fillna(0.0).clip(lower=0).to_numpy("float64")
    bg = X["bg_expected_spend"].fillna(0.0).clip(lower=0).to_numpy("float64")
    if kind == "mix":
        return np.maximum(0.5 * (last + bg), floor)
    if kind == "mix3":
        ewm = X["spend90_ewm8"].fillna(0.0).clip(lower=0).to_numpy("float64")
        return np.maximum((last + bg + ewm) / 3.0, floor)
    raise ValueError(f"unknown scale {kind!r}; choose one of {SCALES}")


class ValueModel:
    """LightGBM 90-day spend regressor + BG/NBD/Gamma-Gamma for CLV and p_alive.

    Parameters
    ----------
    config : ValueConfig, optional

    Attributes
    ----------
    booster_ : lightgbm.Booster
    feature_names_ : list[str]
    pvm_ : training.clv.ProbabilisticValueModel
        Fitted as of the model's cutoff (``p_alive`` and months 4-12 of ``clv_1y``).
    cutoff_ : pd.Timestamp
    train_cutoffs_ : list[pd.Timestamp]
    n_train_rows_ : int
    """

    name = MODEL_NAME

    def __init__(self, config: ValueConfig | None = None):
        self.config = config

    def _config(self) -> ValueConfig:
        return self.config if self.config is not None else ValueConfig()

    def fit(self, tables: Tables, cutoff, cache: _FrameCache | None = None) -> ValueModel:
        """Train on the stacked training cutoffs before ``cutoff``."""
        import lightgbm as lgb

        cfg = self._config()
        cutoff = pd.Timestamp(cutoff)
        cache = cache or _FrameCache(tables, cfg)
        X, y = training_frame(tables, cutoff, cfg, cache)
        if cfg.target == "ratio":
            scale = spend_scale(X, cfg.scale_floor, cfg.scale)
            self.scale_kind_ = cfg.scale
            reg = lgb.LGBMRegressor(**cfg.lgbm).fit(X, y / scale, sample_weight=scale)
        else:
            reg = lgb.LGBMRegressor(**cfg.lgbm).fit(X, y)
        self.booster_ = reg.booster_
        self.feature_names_ = list(X.columns)
        self.pvm_ = cache.get(cutoff, labels=False)[2]
        self.cutoff_ = cutoff
        self.train_cutoffs_ = _training_cutoffs(tables, cutoff, cfg)
        self.n_train_rows_ = len(X)
        logger.info(
            "value model as of %s: %d rows from %d cutoffs",
            cutoff.date(),
            len(X),
            len(self.train_cutoffs_),
        )
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "booster_"):
            raise RuntimeError("ValueModel is not fitted yet: call fit() first.")

    def predict_spend(self, X: pd.DataFrame) -> np.ndarray:
        """90-day spend forecast for feature rows ``X`` (floored at 0)."""
        self._check_fitted()
        raw = self.booster_.predict(X.reindex(columns=self.feature_names_))
        if self._config().target == "ratio":
            # models saved before the ``scale`` setting existed used "mix"
            kind = getattr(self, "scale_kind_", "mix")
            raw = raw * spend_scale(X, self._config().scale_floor, kind)
        return np.clip(raw, 0, None)

    def predict(self, tables: Tables, cutoff, customer_ids=None) -> pd.DataFrame:
        """Value, CLV, p_alive, tier and grid cell of each customer as of ``cutoff``.

        Parameters
        ----------
        tables : Tables
        cutoff : timestamp-like
            Usually the fit cutoff; the BG/NBD model fitted then scores later cutoffs too.
        customer_ids : array-like, optional
            Default: every customer with a purchase before ``cutoff``. Tiers and grid cells
            are relative to the customers scored (top 20%, peer-group wallets), so score the
            whole population to tier it.

        Returns
        -------
        pd.DataFrame
            ``customer_id, expected_spend_90d, clv_1y, p_alive, tier, grid_cell, treatment``
            plus ``value_class``, ``trend``, ``current_spend_90d``, ``net_margin_90d``,
            ``wallet_share``, ``breadth_share``, ``bg_expected_spend_90d``.
        """
        from features.demographics import demographic_features

        self._check_fitted()
        cfg = self._config()
        cutoff = pd.Timestamp(cutoff)
        ids = (
            customers_with_history(tables, cutoff)
            if customer_ids is None
            else pd.Index(customer_ids, name="customer_id")
        )
        X = value_features(tables, cutoff, ids, cfg, self.pvm_)
        spend = self.predict_spend(X)
        out = pd.DataFrame(index=ids)
        out["expected_spend_90d"] = spend
        # months 1-3 are the spend forecast, discounted like months 4-12 (one third a month)
        rate = self.pvm_._config().discount_rate
        first_quarter = np.mean([(1 + rate) ** -m for m in (1, 2, 3)])
        out["clv_1y"] = spend * first_quarter + self._clv_after_first_quarter(tables, cutoff, ids)
        out["p_alive"] = X["bg_p_alive"].to_numpy()
        recent = _recent_discounts(tables, cutoff, ids, cfg.horizon_days)
        stage = demographic_features(tables, ids)["lifecycle_stage"]
        tier_in = pd.DataFrame(
            {
                "predicted_value": spend,
                "current_spend": X["spend_90d"].fillna(0.0).to_numpy(),
                "sales": recent["sales"].to_numpy(),
                "discount_cost": recent["discount_cost"].clip(lower=0).to_numpy(),
                "peer_group": stage.to_numpy(),
                # NaN without a products table: breadth is then unknown, not low
                "n_categories": X["n_categories"].to_numpy(),
                "spend_trend": X["spend_trend"].fillna(1.0).to_numpy(),
            },
            index=ids,
        )
        tcfg = cfg.tier_config()
        tiers = value_tiers(tier_in, tcfg)
        grid = value_trend_grid(tier_in, tcfg)
        out["tier"] = tiers["tier"]
        out = out.join(grid[["grid_cell", "treatment", "value_class", "trend"]])
        out["current_spend_90d"] = tier_in["current_spend"]
        out["net_margin_90d"] = tiers["net_margin"]
        out["wallet_share"] = tiers["wallet_share"]
        out["breadth_share"] = tiers["breadth_share"]
        out["bg_expected_spend_90d"] = X["bg_expected_spend"].to_numpy()
        return out.rename_axis("customer_id").reset_index()

    def _clv_after_first_quarter(self, tables: Tables, cutoff, ids: pd.Index) -> np.ndarray:
        """BG/NBD + Gamma-Gamma discounted value of months 4-12 (12-month CLV minus 3-month)."""
        pvm = self.pvm_
        cfg = pvm._config()
        s = pvm.summary(tables.transactions, cutoff).reindex(ids)
        ok = s["frequency"].notna().to_numpy()
        out = np.zeros(len(ids))
        if ok.any():
            s = s[ok]
            args = (pvm.bgf_, s["frequency"], s["recency"], s["T"], s["monetary_value"])
            kw = {
                "discount_rate": cfg.discount_rate,
                "freq": cfg.freq,
                "freq_multiplier": cfg.freq_multiplier,
            }
            full = np.asarray(pvm.ggf_.customer_lifetime_value(*args, time=12, **kw), dtype=float)
            first = np.asarray(pvm.ggf_.customer_lifetime_value(*args, time=3, **kw), dtype=float)
            out[ok] = np.clip(full - first, 0, None)
        return out

    def feature_importance(self) -> pd.Series:
        self._check_fitted()
        gain = self.booster_.feature_importance("gain")
        return pd.Series(gain, index=self.feature_names_).sort_values(ascending=False)


# --------------------------------------------------------------------------- family API


def _rows(model: str, cutoff, metrics: dict) -> list[dict]:
    return metric_rows(FAMILY, model, cutoff, metrics)


def evaluate_family(
    tables: Tables, cutoffs=None, config: ValueConfig | None = None, progress=None
) -> pd.DataFrame:
    """LightGBM and both baselines on the protocol cutoffs, same customers, same run.

    Returns
    -------
    pd.DataFrame
        Long table ``family, model, cutoff, metric, value``: ``mae``, ``spearman``,
        ``top20_capture``, ``n_customers`` for ``lightgbm``, ``last_90d_spend`` and
        ``bgnbd_gamma_gamma``; the model's ``fit_seconds`` and the actual spend's
        ``pareto_share`` (share of spend of the top 20% customers).
    """
    cfg = config or default_config()
    cutoffs = [pd.Timestamp(c) for c in (cutoffs or CUTOFFS["value"])]
    cache = _FrameCache(tables, cfg)
    rows: list[dict] = []
    for cutoff in cutoffs:
        Xt, yt, _ = cache.get(cutoff)
        y = yt["spend_next"].to_numpy()
        t0 = time.perf_counter()
        model = ValueModel(cfg).fit(tables, cutoff, cache)
        t_fit = time.perf_counter() - t0
        rows += _rows(MODEL_NAME, cutoff, regression_report(y, model.predict_spend(Xt)))
        rows += _rows(BASELINES[0], cutoff, regression_report(y, Xt["spend_90d"].fillna(0.0)))
        rows += _rows(
            BASELINES[1], cutoff, regression_report(y, Xt["bg_expected_spend"].fillna(0.0))
        )
        rows += _rows(
            MODEL_NAME, cutoff, {"fit_seconds": t_fit, "actual_pareto_share": pareto_share(y)}
        )
        msg = f"value {cutoff.date()}: {model.n_train_rows_:,} training rows, fit {t_fit:.1f} s"
        logger.info(msg)
        if progress is not None:
            progress(msg)
    return pd.DataFrame(rows, columns=["family", "model", "cutoff", "metric", "value"])


def fit_family(tables: Tables, cutoff, config: ValueConfig | None = None) -> ValueModel:
    """Fit the value family as of ``cutoff`` (picklable; config kept in ``model.config``)."""
    return ValueModel(config or default_config()).fit(tables, cutoff)


def predict_family(model: ValueModel, tables: Tables, cutoff, **_) -> pd.DataFrame:
    """``customer_id, expected_spend_90d, clv_1y, p_alive, tier, grid_cell, treatment`` (+ extras)."""
    return model.predict(tables, cutoff)


def config_dict(config: ValueConfig) -> dict:
    return asdict(config)


def figures(model: ValueModel) -> dict:
    """Gain importance of the spend forecaster's 20 strongest features (an MLflow artifact)."""
    from training.plots import importance_figure

    fig = importance_figure(
        model.feature_importance(),
        f"90-day spend model as of {model.cutoff_.date()}: feature importance",
    )
    return {"feature_importance": fig}
