"""How far can a 90-day spend forecast go? Reference MAEs on the value reporting cutoffs.

Usage::

    python benchmarks/value_bounds.py            # Complete Journey, ~10 s
    python benchmarks/value_bounds.py --model    # + the LightGBM references, ~1 minute
    python benchmarks/value_bounds.py --json out.json

The value goal (issue #3) asks for an MAE 15% below the last-90-days baseline. This prints,
per reporting cutoff and on the protocol's population and label (features/labels.py), the
MAE of

* ``last_90d_spend`` -- the protocol baseline (what ``tailor evaluate value`` reports);
* ``rest_of_year_level`` -- the customer's mean daily net spend over the whole data *outside*
  the label window (before and after it), times 90. It knows each customer's spending level
  from the future, so no forecaster can use it; it only shows how much of the error is the
  noise of a 90-day window around a customer's level;
* ``adjacent_windows`` -- the mean of the customer's net spend in the 90 days before the
  window and in the 90 days after it (scaled to 90 days where the data ends sooner). It
  also knows the future, and tracks a level that drifts over the year better than the
  whole-year mean: it shows that the noise of a 90-day window alone does not rule the goal
  out -- what a forecaster cannot know is where the customer's level goes next;
* ``target_for_goal`` -- 85% of the baseline's MAE.

With ``--model`` also

* ``lightgbm`` -- the shipped model, trained as ``tailor evaluate value`` trains it (only on
  earlier cutoffs whose 90-day windows end by the cutoff: its newest labels are three
  months old);
* ``lightgbm_own_labels`` -- the same learner also given the labels *of the cutoff itself*
  (5-fold cross-fitted over its customers, as ``benchmarks/churn_headroom.py`` does for
  churn). It uses the future; if it is not much better than ``lightgbm``, fresher training
  labels are not what holds the model back -- the information in its features is.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from features.labels import value_labels  # noqa: E402
from features.sources import load_source  # noqa: E402
from training.protocol import CUTOFFS, WINDOWS_DAYS  # noqa: E402

DAYS = WINDOWS_DAYS["value"]


def _net_spend(tx: pd.DataFrame, start, end, ids: pd.Index) -> pd.Series:
    m = (tx["timestamp"] >= start) & (tx["timestamp"] < end)
    return tx.loc[m].groupby("customer_id")["sales_value"].sum().reindex(ids, fill_value=0.0)


def bounds(tables, cutoff) -> dict:
    """MAEs of the baseline and the rest-of-year oracle at ``cutoff`` (see module docs)."""
    cutoff = pd.Timestamp(cutoff)
    y = value_labels(tables, cutoff, days=DAYS)["spend_next"]
    tx = tables.transactions
    first, last = tx["timestamp"].min().normalize(), tx["timestamp"].max()
    last90 = _net_spend(tx, cutoff - pd.Timedelta(days=DAYS), cutoff, y.index)
    outside = _net_spend(tx, first, last + pd.Timedelta(seconds=1), y.index) - y
    outside_days = ((last - first).total_seconds() / 86400.0 + 1.0) - DAYS
    level = outside / outside_days * DAYS
    end = min(cutoff + 2 * DAYS * pd.Timedelta(days=1), last + pd.Timedelta(seconds=1))
    after_days = (end - (cutoff + pd.Timedelta(days=DAYS))).total_seconds() / 86400.0
    after = _net_spend(tx, cutoff + pd.Timedelta(days=DAYS), end, y.index)
    after = after * DAYS / after_days if after_days > 0 else last90
    base = float(np.mean(np.abs(y - last90)))
    return {
        "cutoff": str(cutoff.date()),
        "customers": int(len(y)),
        "last_90d_spend": base,
        "rest_of_year_level": float(np.mean(np.abs(y - level))),
        "adjacent_windows": float(np.mean(np.abs(y - (last90 + after) / 2))),
        "target_for_goal": 0.85 * base,
    }


def model_bounds(tables, cutoff, config=None, cache=None) -> dict:
    """MAEs of the shipped LightGBM and of the same learner with the cutoff's own labels."""
    import lightgbm as lgb
    from own_labels import cross_fit_own_labels

    from training import value as V

    cfg = config or V.default_config()
    cache = cache or V._FrameCache(tables, cfg)
    cutoff = pd.Timestamp(cutoff)
    Xt, yt, _ = cache.get(cutoff)
    yt = yt["spend_next"].to_numpy("float64")
    shipped = V.ValueModel(cfg).fit(tables, cutoff, cache).predict_spend(Xt)
    X, y = V.training_frame(tables, cutoff, cfg, cache)

    def fit_predict(Xa, ya, w, Xs):
        # the shipped objective: L1 on spend / scale, weighted by the scale
        sa = V.spend_scale(Xa, cfg.scale_floor, cfg.scale)
        reg = lgb.LGBMRegressor(**cfg.lgbm).fit(Xa, ya / sa, sample_weight=w * sa)
        return np.clip(reg.predict(Xs) * V.spend_scale(Xs, cfg.scale_floor, cfg.scale), 0, None)

    own = cross_fit_own_labels(X, y, Xt, yt, fit_predict, stratify=False)
    return {
        "lightgbm": float(np.mean(np.abs(yt - shipped))),
        "lightgbm_own_labels": float(np.mean(np.abs(yt - own))),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default="completejourney")
    ap.add_argument("--model", action="store_true", help="add the LightGBM references")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = ap.parse_args(argv)
    tables = load_source(args.source)
    rows = [bounds(tables, c) for c in CUTOFFS["value"]]
    if args.model:
        from training import value as V

        cfg = V.default_config()
        cache = V._FrameCache(tables, cfg)
        for r in rows:
            r.update(model_bounds(tables, r["cutoff"], cfg, cache))
            print(f"  {r['cutoff']} done", file=sys.stderr, flush=True)
    df = pd.DataFrame(rows).set_index("cutoff")
    df.loc["mean"] = df.mean()
    df["customers"] = df["customers"].round().astype(int)
    print(
        f"MAE of 90-day net spend ({args.source}); rest_of_year_level, adjacent_windows "
        "and lightgbm_own_labels use the future\n"
    )
    print(df.round(1).to_string())
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
