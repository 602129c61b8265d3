"""Uplift modelling: whom to target next time.

Two LightGBM-based estimators of the individual treatment effect
``tau(x) = E[Y | x, treated] - E[Y | x, control]``, both with scikit-learn manners
(hyper-parameters in ``__init__``, ``fit(X, treatment, y)`` returns ``self``,
``predict(X)`` returns the uplift score):

* :class:`TLearner` - one model per arm, uplift = difference of their predictions.
* :class:`ClassTransformation` - Jaskowski & Jaroszewicz (2012): for a binary outcome,
  ``Z = Y*W + (1-Y)*(1-W)`` and, with treatment and control weighted to equal size,
  ``tau(x) = 2 P(Z=1 | x) - 1``; one classifier instead of two.

And the evaluation on a held-out split, customers sorted by decreasing score, top fraction
``phi`` targeted, ``N_t(phi), N_c(phi)`` treated and control customers in it and
``Y_t(phi), Y_c(phi)`` their summed outcomes:

* Qini curve ``Q(phi) = (Y_t(phi) - Y_c(phi) N_t(phi) / N_c(phi)) / N_t``: incremental outcomes
  per treated customer of the test set. ``Q(1)`` is the average treatment effect (ATE) and
  random targeting follows the straight line ``phi * ATE``.
* Uplift (cumulative gain) curve ``G(phi) = (Y_t(phi)/N_t(phi) - Y_c(phi)/N_c(phi)) * phi``,
  also ending at the ATE; ``AUUC`` is its area over ``phi`` in [0, 1]; random targeting
  gives ``ATE / 2``.
* Qini coefficient: area between the Qini curve and the random line.
* ``uplift_at_k(k)``: ``mean_t - mean_c`` among the top ``k`` share; random targeting gives the
  ATE at every ``k``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)


def _lgbm_params(est) -> dict:
    return {
        "n_estimators": est.n_estimators,
        "learning_rate": est.learning_rate,
        "num_leaves": est.num_leaves,
        "min_child_samples": est.min_child_samples,
        "subsample": est.subsample,
        "subsample_freq": 1 if est.subsample < 1 else 0,
        "colsample_bytree": est.colsample_bytree,
        "reg_lambda": est.reg_lambda,
        "n_jobs": est.n_jobs,
        "random_state": est.random_state,
        "verbose": -1,
    }


def _check_xty(X, treatment, y) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    if not isinstance(X, pd.DataFrame):
        X = pd.DataFrame(np.asarray(X))
    t = np.asarray(treatment)
    if t.dtype == bool:
        t = t.astype(int)
    t = t.astype(float)
    yy = np.asarray(y, dtype=float)
    if not (len(X) == len(t) == len(yy)):
        raise ValueError(f"X, treatment and y differ in length: {len(X)}, {len(t)}, {len(yy)}")
    if not np.isin(t, (0.0, 1.0)).all():
        raise ValueError("treatment must be 0/1 (1 = treated)")
    if t.min() == t.max():
        raise ValueError("treatment holds a single arm: need both treated and control customers")
    if not np.isfinite(yy).all():
        raise ValueError(f"outcome has {int((~np.isfinite(yy)).sum())} missing or infinite values")
    return X, t.astype(int), yy


def _encode(
    X: pd.DataFrame, categories: dict[str, pd.Index] | None
) -> tuple[pd.DataFrame, dict[str, pd.Index]]:
    """Object/string columns -> pandas categoricals with the categories seen in fit."""
    X = X.copy()
    learned = {} if categories is None else categories
    for col in X.columns:
        s = X[col]
        if col in learned:
            X[col] = pd.Categorical(s.astype(str), categories=learned[col])
        elif categories is None and (
            s.dtype == object
            or isinstance(s.dtype, pd.CategoricalDtype)
            or pd.api.types.is_string_dtype(s)
        ):
            cat = pd.Categorical(s.astype(str))
            learned[col] = cat.categories
            X[col] = cat
    return X, learned


class _UpliftBase:
    """Shared LightGBM hyper-parameters and feature handling.

    The defaults are deliberately conservative (small trees, large leaves): an uplift is a
    small difference between two noisy rates and deeper models fit noise (on the Hillstrom
    Womens e-mail / visit split, 200 trees of 15 leaves gave a Qini of 0.0069 (T-learner) and
    0.0043 (class transformation); these defaults 0.0089 and 0.0071).
    """

    def __init__(
        self,
        n_estimators: int = 100,
        learning_rate: float = 0.05,
        num_leaves: int = 7,
        min_child_samples: int = 200,
        subsample: float = 0.8,
        colsample_bytree: float = 0.8,
        reg_lambda: float = 1.0,
        n_jobs: int = 1,
        random_state: int = 0,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _prepare(self, X, fit: bool) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame):
            X = pd.DataFrame(np.asarray(X))
        if fit:
            X, self.categories_ = _encode(X, None)
            self.feature_names_ = [str(c) for c in X.columns]
            return X
        if not hasattr(self, "feature_names_"):
            raise RuntimeError(
                f"{type(self).__name__} is not fitted: call fit(X, treatment, y) first"
            )
        missing = [c for c in self.feature_names_ if c not in map(str, X.columns)]
        if missing:
            raise ValueError(f"X lacks the feature column(s) {missing} seen in fit")
        X = X[self.feature_names_]
        X, _ = _encode(X, self.categories_)
        return X


class TLearner(_UpliftBase):
    """Two-model uplift estimator (one LightGBM per arm).

    Binary outcomes use classifiers (uplift = difference of probabilities); other outcomes
    use regressors (uplift = difference of predicted means, e.g. spend).

    Parameters
    ----------
    n_estimators, learning_rate, num_leaves, min_child_samples, subsample, colsample_bytree, reg_lambda : LightGBM hyper-parameters
    n_jobs : int
        LightGBM threads.
    random_state : int
        Seed.

    Attributes
    ----------
    model_t_, model_c_ : LightGBM estimators for treated and control customers.
    binary_ : bool
        Whether the outcome was 0/1.
    """

    def fit(self, X, treatment, y) -> TLearner:
        import lightgbm as lgb

        X, t, yy = _check_xty(X, treatment, y)
        X = self._prepare(X, fit=True)
        self.binary_ = bool(np.isin(yy, (0.0, 1.0)).all())
        params = _lgbm_params(self)
        models = []
        for arm in (1, 0):
            m = t == arm
            if self.binary_:
                if yy[m].min() == yy[m].max():
                    raise ValueError(
                        f"the {'treated' if arm else 'control'} arm has a constant outcome: nothing to learn"
                    )
                est = lgb.LGBMClassifier(**params)
            else:
                est = lgb.LGBMRegressor(**params)
            models.append(est.fit(X[m], yy[m] if not self.binary_ else yy[m].astype(int)))
        self.model_t_, self.model_c_ = models
        return self

    def predict(self, X) -> np.ndarray:
        """Predicted uplift per row."""
        X = self._prepare(X, fit=False)
        if self.binary_:
            return self.model_t_.predict_proba(X)[:, 1] - self.model_c_.predict_proba(X)[:, 1]
        return self.model_t_.predict(X) - self.model_c_.predict(X)


class ClassTransformation(_UpliftBase):
    """Class-transformation uplift estimator for a binary outcome (one LightGBM classifier).

    Treated and control rows are re-weighted to equal total weight, so the identity
    ``tau(x) = 2 P(Z=1|x) - 1`` holds for any treatment share.

    Attributes
    ----------
    model_ : lightgbm.LGBMClassifier
    treatment_share_ : float
        Share of treated rows in the training data.
    """

    def fit(self, X, treatment, y) -> ClassTransformation:
        import lightgbm as lgb

        X, t, yy = _check_xty(X, treatment, y)
        if not np.isin(yy, (0.0, 1.0)).all():
            raise ValueError(
                "ClassTransformation needs a binary 0/1 outcome; use TLearner for amounts such as spend"
            )
        X = self._prepare(X, fit=True)
        z = (yy * t + (1 - yy) * (1 - t)).astype(int)
        p = float(t.mean())
        self.treatment_share_ = p
        w = np.where(t == 1, 0.5 / p, 0.5 / (1 - p))
        self.model_ = lgb.LGBMClassifier(**_lgbm_params(self)).fit(X, z, sample_weight=w)
        return self

    def predict(self, X) -> np.ndarray:
        """Predicted uplift per row (in [-1, 1])."""
        X = self._prepare(X, fit=False)
        return 2.0 * self.model_.predict_proba(X)[:, 1] - 1.0


# ----------------------------------------------------------------------------- evaluation


def _sorted_cums(y, treatment, score, weights=None):
    y = np.asarray(y, dtype=float)
    t = np.asarray(treatment).astype(float)
    s = np.asarray(score, dtype=float)
    if not (y.size == t.size == s.size):
        raise ValueError(f"y, treatment and score differ in length: {y.size}, {t.size}, {s.size}")
    if not np.isin(t, (0.0, 1.0)).all():
        raise ValueError("treatment must be 0/1 (1 = treated)")
    if not (np.isfinite(y).all() and np.isfinite(s).all()):
        raise ValueError("y and score must be finite")
    if t.sum() == 0 or t.sum() == t.size:
        raise ValueError("need both treated and control customers to evaluate uplift")
    order = np.argsort(-s, kind="stable")
    y, t, s = y[order], t[order], s[order]
    w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=float)[..., order]
    sums = [np.cumsum(v, axis=-1) for v in (w * t, w * (1 - t), w * y * t, w * y * (1 - t))]
    # Customers with the same score cannot be told apart: within a tied block the sums are
    # their expectation over the block's orderings (linear from its start to its end), not
    # whatever order the rows came in (a constant score on a file sorted by arm would
    # otherwise "beat" random targeting).
    new = np.r_[True, s[1:] != s[:-1]]
    if not new.all():
        starts = np.flatnonzero(new)
        ends = np.r_[starts[1:] - 1, s.size - 1]
        block = np.cumsum(new) - 1
        a, b = starts[block], ends[block]
        share = (np.arange(s.size) - a + 1) / (b - a + 1)
        for i, c in enumerate(sums):
            prev = np.where(a > 0, c[..., np.maximum(a - 1, 0)], 0.0)
            sums[i] = prev + share * (c[..., b] - prev)
    nt, nc, yt, yc = sums
    return nt, nc, yt, yc


def _curves(nt, nc, yt, yc):
    n = nt + nc
    frac = n / n[..., -1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        qini = np.where(nc > 0, yt - yc * nt / nc, yt) / nt[..., -1:]
        gain = np.where((nt > 0) & (nc > 0), yt / nt - yc / nc, 0.0) * frac
    ate = yt[..., -1] / nt[..., -1] - yc[..., -1] / nc[..., -1]
    return frac, qini, gain, ate


def _area(frac, curve):
    # Trapezoid from the origin (0, 0).
    f = np.concatenate([np.zeros(frac.shape[:-1] + (1,)), frac], axis=-1)
    c = np.concatenate([np.zeros(curve.shape[:-1] + (1,)), curve], axis=-1)
    return np.sum((f[..., 1:] - f[..., :-1]) * (c[..., 1:] + c[..., :-1]) / 2.0, axis=-1)


def qini_curve(y, treatment, score, n_points: int | None = 101) -> pd.DataFrame:
    """Qini and uplift (cumulative gain) curves of a score on held-out data.

    Parameters
    ----------
    y : array-like
        Observed outcome.
    treatment : array-like
        1 = treated, 0 = control.
    score : array-like
        Predicted uplift (higher = target first).
    n_points : int or None
        Points kept (evenly spaced in the targeted fraction); None keeps every customer.

    Returns
    -------
    pandas.DataFrame
        ``fraction, qini, random, gain, random_gain`` starting at (0, 0).
    """
    nt, nc, yt, yc = _sorted_cums(y, treatment, score)
    frac, qini, gain, ate = _curves(nt, nc, yt, yc)
    frame = pd.DataFrame({"fraction": frac, "qini": qini, "gain": gain})
    frame = pd.concat(
        [pd.DataFrame({"fraction": [0.0], "qini": [0.0], "gain": [0.0]}), frame], ignore_index=True
    )
    if n_points is not None and len(frame) > n_points:
        idx = np.unique(np.round(np.linspace(0, len(frame) - 1, n_points)).astype(int))
        frame = frame.iloc[idx].reset_index(drop=True)
    frame["random"] = frame["fraction"] * ate
    frame["random_gain"] = frame["fraction"] * ate
    return frame


def auuc(y, treatment, score) -> float:
    """Area under the uplift (cumulative gain) curve; random targeting gives ``ATE / 2``."""
    nt, nc, yt, yc = _sorted_cums(y, treatment, score)
    frac, _, gain, _ = _curves(nt, nc, yt, yc)
    return float(_area(frac, gain))


def qini_coefficient(y, treatment, score) -> float:
    """Area between the Qini curve and the random-targeting line (0 for random, > 0 is better)."""
    nt, nc, yt, yc = _sorted_cums(y, treatment, score)
    frac, qini, _, ate = _curves(nt, nc, yt, yc)
    return float(_area(frac, qini) - ate / 2.0)


def uplift_at_k(y, treatment, score, k: float) -> float:
    """Observed uplift ``mean_t - mean_c`` among the top ``k`` share (0 < k <= 1) by score."""
    if not 0 < k <= 1:
        raise ValueError(f"k is a share in (0, 1], got {k}")
    nt, nc, yt, yc = _sorted_cums(y, treatment, score)
    i = max(int(np.ceil(k * nt.size)) - 1, 0)
    if nt[i] == 0 or nc[i] == 0:
        return float("nan")
    return float(yt[i] / nt[i] - yc[i] / nc[i])


def evaluate_uplift(
    y,
    treatment,
    score,
    ks: Sequence[float] = (0.1, 0.3),
    n_boot: int = 200,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, float]:
    """Score an uplift model on held-out data against random targeting.

    Confidence intervals come from a Poisson bootstrap of the test customers (the ranking is
    kept fixed; only the evaluation data are resampled).

    Returns
    -------
    dict
        ``ate`` (= uplift of random targeting at any k), ``auuc``, ``auuc_random`` (= ATE/2),
        ``qini`` (coefficient) with ``qini_ci_low/high``, and per k in ``ks``:
        ``uplift_at_{pct}`` plus ``uplift_at_{pct}_vs_random`` (difference to the ATE) with its
        interval.
    """
    nt, nc, yt, yc = _sorted_cums(y, treatment, score)
    frac, qini, gain, ate = _curves(nt, nc, yt, yc)
    out: dict[str, float] = {
        "n": int(nt.size),
        "ate": float(ate),
        "auuc": float(_area(frac, gain)),
        "auuc_random": float(ate / 2.0),
        "qini": float(_area(frac, qini) - ate / 2.0),
    }
    idx = {k: max(int(np.ceil(k * nt.size)) - 1, 0) for k in ks}
    boot_q, boot_k = _bootstrap(y, treatment, score, idx, n_boot, seed)
    if n_boot:
        lo, hi = np.nanquantile(boot_q, [alpha / 2, 1 - alpha / 2])
        out["qini_ci_low"], out["qini_ci_high"] = float(lo), float(hi)
    for k, i in idx.items():
        key = f"uplift_at_{round(k * 100)}"
        val = yt[i] / nt[i] - yc[i] / nc[i] if nt[i] and nc[i] else np.nan
        out[key] = float(val)
        out[f"{key}_vs_random"] = float(val - ate)
        if n_boot:
            lo, hi = np.nanquantile(boot_k[k], [alpha / 2, 1 - alpha / 2])
            out[f"{key}_vs_random_ci_low"], out[f"{key}_vs_random_ci_high"] = float(lo), float(hi)
    return out


def _bootstrap(y, treatment, score, idx: dict[float, int], n_boot: int, seed: int, batch: int = 25):
    """Poisson-bootstrap Qini coefficients and uplift@k minus ATE, in batches to bound memory."""
    rng = np.random.default_rng(seed)
    qs: list[np.ndarray] = []
    ks: dict[float, list[np.ndarray]] = {k: [] for k in idx}
    done = 0
    while done < n_boot:
        b = min(batch, n_boot - done)
        w = rng.poisson(1.0, size=(b, len(y))).astype(float)
        bt, bc, byt, byc = _sorted_cums(y, treatment, score, weights=w)
        bfrac, bqini, _, bate = _curves(bt, bc, byt, byc)
        qs.append(_area(bfrac, bqini) - bate / 2.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            for k, i in idx.items():
                ks[k].append(byt[:, i] / bt[:, i] - byc[:, i] / bc[:, i] - bate)
        done += b
    q = np.concatenate(qs) if qs else np.array([])
    return q, {k: np.concatenate(v) if v else np.array([]) for k, v in ks.items()}


@dataclass
class UpliftReport:
    """Held-out comparison of uplift models with random targeting.

    Attributes
    ----------
    metrics : pandas.DataFrame
        One row per model (``random`` included): the keys of :func:`evaluate_uplift`.
    curves : dict
        Model name -> :func:`qini_curve` frame on the test split.
    treatment, control, outcome : str
    features : list of str
    n_train, n_test : int
    """

    metrics: pd.DataFrame
    curves: dict[str, pd.DataFrame]
    treatment: str
    control: str
    outcome: str
    features: list[str]
    n_train: int
    n_test: int
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        recs = {}
        for _, row in self.metrics.iterrows():
            recs[row["model"]] = {
                k: (None if isinstance(v, float) and not np.isfinite(v) else v)
                for k, v in row.items()
                if k != "model"
            }
        return {
            "treatment": self.treatment,
            "control": self.control,
            "outcome": self.outcome,
            "features": self.features,
            "n_train": self.n_train,
            "n_test": self.n_test,
            "models": recs,
            "settings": self.settings,
        }


def uplift_experiment(
    df: pd.DataFrame,
    treatment_col: str,
    treatment: str,
    control: str,
    outcome: str,
    features: Sequence[str] | None = None,
    test_size: float = 0.3,
    seed: int = 0,
    models: dict | None = None,
    ks: Sequence[float] = (0.1, 0.3),
    n_boot: int = 200,
) -> UpliftReport:
    """Fit uplift models on a random split and evaluate them on the held-out part.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per randomised customer.
    treatment_col : str
        Arm column; rows in other arms than ``treatment`` and ``control`` are dropped.
    treatment, control : str
        Arm names (compared as strings).
    outcome : str
        Outcome column (0/1 for the class transformation; any number for the T-learner).
    features : sequence of str, optional
        Pre-treatment features (default: every column except the arm and ``outcome``; pass
        them explicitly to keep other outcomes out).
    test_size : float
        Held-out share, stratified by arm.
    seed : int
        Split, model and bootstrap seed.
    models : dict, optional
        Name -> unfitted estimator (default: ``TLearner`` and, for a 0/1 outcome,
        ``ClassTransformation``).
    ks : sequence of float
        Shares for uplift@k.
    n_boot : int
        Bootstrap resamples for the intervals.

    Returns
    -------
    UpliftReport
    """
    for col, role in [(treatment_col, "treatment"), (outcome, "outcome")]:
        if col not in df.columns:
            raise ValueError(
                f"missing {role} column {col!r}; the input has columns {list(map(str, df.columns))}"
            )
    arms = df[treatment_col].astype(str)
    present = sorted(arms.unique())
    for name, role in [(treatment, "treatment"), (control, "control")]:
        if str(name) not in present:
            raise ValueError(
                f"{role} arm {name!r} not found in column {treatment_col!r}; arms are {present}"
            )
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    sub = df[arms.isin([str(treatment), str(control)])].reset_index(drop=True)
    t = (sub[treatment_col].astype(str) == str(treatment)).to_numpy().astype(int)
    if features is None:
        features = [c for c in sub.columns if c not in (treatment_col, outcome)]
    features = list(features)
    missing = [c for c in features if c not in sub.columns]
    if missing:
        raise ValueError(f"missing feature column(s) {missing}")
    if not features:
        raise ValueError("no feature columns to learn uplift from")
    try:
        y = pd.to_numeric(sub[outcome], errors="raise").to_numpy(dtype=float)
    except (TypeError, ValueError):
        example = sub[outcome].iloc[0] if len(sub) else None
        raise ValueError(
            f"outcome column {outcome!r} is not numeric (values such as {example!r});"
            " the outcome is a 0/1 response or an amount"
        ) from None
    binary = bool(np.isin(y, (0.0, 1.0)).all())
    rng = np.random.default_rng(seed)
    test = np.zeros(len(sub), dtype=bool)
    for arm in (0, 1):  # stratified by arm
        idx = np.flatnonzero(t == arm)
        test[rng.choice(idx, size=int(round(test_size * idx.size)), replace=False)] = True
    X = sub[features]
    if models is None:
        models = {"t_learner": TLearner(random_state=seed)}
        if binary:
            models["class_transformation"] = ClassTransformation(random_state=seed)
    rows, curves = [], {}
    for name, est in models.items():
        logger.info("fitting uplift model %s on %d rows", name, int((~test).sum()))
        est.fit(X[~test], t[~test], y[~test])
        score = est.predict(X[test])
        res = evaluate_uplift(y[test], t[test], score, ks=ks, n_boot=n_boot, seed=seed)
        rows.append({"model": name, **res})
        curves[name] = qini_curve(y[test], t[test], score)
    rnd = rng.random(int(test.sum()))
    rows.append(
        {
            "model": "random",
            **evaluate_uplift(y[test], t[test], rnd, ks=ks, n_boot=n_boot, seed=seed),
        }
    )
    return UpliftReport(
        metrics=pd.DataFrame(rows),
        curves=curves,
        treatment=str(treatment),
        control=str(control),
        outcome=outcome,
        features=features,
        n_train=int((~test).sum()),
        n_test=int(test.sum()),
        settings={"test_size": test_size, "seed": seed, "ks": list(ks), "n_boot": n_boot},
    )
