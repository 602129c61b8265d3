"""Is the churn model limited by its training labels or by its features? ROC-AUCs per cutoff.

Usage::

    python benchmarks/churn_headroom.py                 # Complete Journey, ~1 minute
    python benchmarks/churn_headroom.py --cutoffs 2017-08-01,2017-07-03 --json out.json

A churn model for cutoff ``T`` can only learn from labels whose 60-day window ends by
``T``: its newest training rows are two months old when it scores. This prints, per
cutoff, the full-churn ROC-AUC of

* ``logistic_rfm`` and ``lightgbm`` -- the protocol baseline and the shipped model, trained
  as ``tailor evaluate churn`` trains them (only on earlier cutoffs);
* ``*_own_labels`` -- the same learners also given the labels *of the cutoff itself*
  (5-fold cross-fitted over its customers: each customer is scored by a model trained on
  the earlier cutoffs plus the other four fifths of the cutoff's customers). They use the
  future, so no deployed model can do this; if they score no better than the shipped
  model, the staleness of the training labels is not what holds the model back -- the
  information in the features is;
* ``gap`` -- ``lightgbm - logistic_rfm`` (the issue's goal asks for +0.03 on average), with
  ``gap_lo``/``gap_hi``, its 95% interval from a paired bootstrap over customers (how much
  of the gap is the luck of ~150 churners per cutoff); on the mean row, the interval of the
  mean gap (resamples of the cutoffs averaged).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from own_labels import arguments, cross_fit_own_labels  # noqa: E402

from features.sources import load_source  # noqa: E402
from training import churn as C  # noqa: E402
from training.protocol import CUTOFFS  # noqa: E402


def _lgbm(params: dict):
    def fit_predict(X, y, w, Xs):
        import lightgbm as lgb

        return lgb.LGBMClassifier(**params).fit(X, y, sample_weight=w).predict_proba(Xs)[:, 1]

    return fit_predict


def _logistic(X, y, w, Xs):
    return C.LogisticRFMBaseline().fit(X, y, sample_weight=w).predict_proba(Xs)


def bootstrap_gaps(y, p_a, p_b, n: int = 400, seed: int = 0) -> np.ndarray:
    """ROC-AUC(p_a) - ROC-AUC(p_b) on ``n`` resamples of the customers (paired)."""
    from sklearn.metrics import roc_auc_score

    y, p_a, p_b = np.asarray(y).astype(int), np.asarray(p_a), np.asarray(p_b)
    rng = np.random.default_rng(seed)
    gaps = np.full(n, np.nan)
    for k in range(n):
        i = rng.integers(0, len(y), len(y))
        if y[i].min() < y[i].max():
            gaps[k] = roc_auc_score(y[i], p_a[i]) - roc_auc_score(y[i], p_b[i])
    return gaps


def interval(gaps: np.ndarray) -> tuple[float, float]:
    """Central 95% of bootstrap gaps (NaN resamples, single-class ones, dropped)."""
    lo, hi = np.nanpercentile(gaps, [2.5, 97.5])
    return float(lo), float(hi)


def headroom(tables, cutoff, config: C.ChurnConfig | None = None, cache=None) -> dict:
    """Full-churn ROC-AUCs of the baseline and the model, shipped and with own labels."""
    from sklearn.metrics import roc_auc_score

    cfg = config or C.default_config()
    cache = cache or C._FrameCache(tables, cfg)
    cutoff = pd.Timestamp(cutoff)
    X, y, rfm, groups = C.training_frame(tables, cutoff, cfg, cache)
    Xt, yt, rfmt = cache.get(cutoff)
    yc, ytc = y["churn"].to_numpy().astype(int), yt["churn"].to_numpy().astype(int)
    model = C.CalibratedBooster(cfg.lgbm, cfg.calibration_folds, cfg.calibration)
    p_model = model.fit(X, yc, groups).predict_proba(Xt)
    p_base = C.LogisticRFMBaseline().fit(rfm, yc).predict_proba(rfmt)
    p_model_own = cross_fit_own_labels(X, yc, Xt, ytc, _lgbm(cfg.lgbm))
    p_base_own = cross_fit_own_labels(rfm, yc, rfmt, ytc, _logistic)
    row = {"cutoff": str(cutoff.date()), "customers": int(len(ytc)), "churners": int(ytc.sum())}
    for name, p in (
        ("logistic_rfm", p_base),
        ("lightgbm", p_model),
        ("logistic_rfm_own_labels", p_base_own),
        ("lightgbm_own_labels", p_model_own),
    ):
        row[name] = float(roc_auc_score(ytc, p))
    row["gap"] = row["lightgbm"] - row["logistic_rfm"]
    row["gaps"] = bootstrap_gaps(ytc, p_model, p_base)
    row["gap_lo"], row["gap_hi"] = interval(row["gaps"])
    return row


def main(argv=None) -> int:
    args = arguments(__doc__.splitlines()[0], argv)
    tables = load_source(args.source)
    cutoffs = args.cutoffs.split(",") if args.cutoffs else CUTOFFS["churn"]
    cfg = C.default_config()
    cache = C._FrameCache(tables, cfg)
    rows = []
    for c in cutoffs:
        rows.append(headroom(tables, c, cfg, cache))
        print(f"  {rows[-1]['cutoff']} done", file=sys.stderr, flush=True)
    gaps = np.mean([r.pop("gaps") for r in rows], axis=0)  # gap of the 3-cutoff mean
    df = pd.DataFrame(rows).set_index("cutoff")
    df.loc["mean"] = df.mean()
    df.loc["mean", ["gap_lo", "gap_hi"]] = interval(gaps)
    df[["customers", "churners"]] = df[["customers", "churners"]].round().astype(int)
    print(f"Full-churn ROC-AUC ({args.source}); *_own_labels also train on the cutoff's labels\n")
    print(df.round(4).to_string())
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
