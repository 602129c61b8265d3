"""Is the cross-sell re-ranker limited by its training labels or by its features? NDCG@10.

Usage::

    python benchmarks/cs_headroom.py                 # Complete Journey, ~10 minutes
    python benchmarks/cs_headroom.py --cutoffs 2017-09-01 --json out.json

The re-ranker for cutoff ``T`` learns from the 28-day windows after ``T - 28`` and
``T - 56`` days. This prints, per cutoff, on the customers who buy a product new to them in
the window (as ``tailor evaluate cross-sell``), NDCG@10 and Recall@10 of

* ``als`` -- the best baseline (``implicit`` ALS with its own settings);
* ``lgbm_rerank`` -- the shipped re-ranker, trained as ``tailor evaluate`` trains it;
* ``lgbm_own_labels`` -- the same learner also given the labels *of the cutoff's own
  window* (3-fold cross-fitted over its customers: a customer's candidates are scored by a
  model trained on the earlier cutoffs plus the other customers' candidates at ``T``, whose
  rows count like one more training cutoff's). It uses the future; if it is not better
  than ``lgbm_rerank``, fresher labels are not what holds the re-ranker back;
* ``perfect_order`` -- the candidates ordered by the truth: the ceiling of any re-ranking
  of the same candidate pool (``candidate_recall``: the share of the window's new
  purchases that are in the pool at all).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from own_labels import cross_fit_own_labels, ranking_row, run_ranking  # noqa: E402

from features.labels import cross_sell_labels  # noqa: E402
from training import cross_sell as CS  # noqa: E402
from training.metrics import truth_to_dict  # noqa: E402
from training.np_features import label_candidates  # noqa: E402
from training.protocol import K  # noqa: E402


class _Fixed:
    """Stands in for the trained LightGBM: returns given scores for the candidate frame."""

    def __init__(self, scores: np.ndarray):
        self.scores = scores

    def predict(self, x) -> np.ndarray:
        if len(x) != len(self.scores):
            raise ValueError(f"{len(x)} candidates to score, {len(self.scores)} scores given")
        return self.scores

    predict_proba = None


def _recommend(model, ids, scores: np.ndarray) -> pd.DataFrame:
    """``model.recommend`` (padding and cold customers included) with ``scores`` instead of
    the model's own, on the same candidate frame."""
    trained = model.model_
    objective = model.objective
    try:
        model.model_, model.objective = _Fixed(scores), "lambdarank"
        return model.recommend(ids, K)
    finally:
        model.model_, model.objective = trained, objective


def headroom(tables, cutoff, config=None, folds: int = 3) -> dict:
    """NDCG@10 / Recall@10 of ALS, the shipped re-ranker, own labels and perfect order."""
    import lightgbm as lgb

    cfg = CS._config(config)
    cutoff = pd.Timestamp(cutoff)
    labels = cross_sell_labels(tables, cutoff, days=cfg.window_days)
    truth = truth_to_dict(labels)
    ids = np.asarray(sorted(truth), dtype="int64")
    model = CS.make_model(cfg)
    train = model.training_frame(tables, cutoff)
    model.fit(tables, cutoff, train=train)
    known = ids[model.signals_.history.rows(ids) >= 0]
    cand = model.score_candidates(known)
    cand["label"] = label_candidates(cand, labels)
    cand["group"] = "own-" + cand["customer_id"].astype(str)
    feats = model.feature_names_
    params = model.model_.get_params()

    def fit_predict(Xa, ya, w, Xs):
        own = (w != 1.0) & (
            pd.Series(ya).groupby(Xa["group"].to_numpy()).transform("max").to_numpy() > 0
        )
        keep = (w == 1.0) | own
        x, ya = Xa.loc[keep, feats].astype("float32"), ya[keep]
        if model.objective == "binary":
            clf = lgb.LGBMClassifier(**params).fit(x, ya)
            return clf.predict_proba(Xs[feats].astype("float32"))[:, 1]
        sizes = Xa[keep].groupby("group", sort=False).size().to_numpy()
        rk = lgb.LGBMRanker(**params).fit(x, ya, group=sizes)
        return rk.predict(Xs[feats].astype("float32"))

    cols = ["group", *feats]
    own = cross_fit_own_labels(
        train[cols],
        train["label"].to_numpy(),
        cand[cols],
        cand["label"].to_numpy(),
        fit_predict,
        folds=folds,
        groups=cand["customer_id"].to_numpy(),
    )
    base = CS._baselines(model, tables, cutoff, cfg)["als"]
    scored = {
        "als": base.recommend(list(ids), K),
        "lgbm_rerank": model.recommend(list(ids), K),
        "lgbm_own_labels": _recommend(model, list(ids), own),
        "perfect_order": _recommend(model, list(ids), cand["label"].to_numpy() + 0.0),
    }
    row = ranking_row(cutoff, scored, truth, K)
    row["candidate_recall"] = cand["label"].sum() / len(labels)
    return row


def main(argv=None) -> int:
    return run_ranking(headroom, "cross_sell", "Cross-sell", __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
