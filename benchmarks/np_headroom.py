"""Is the next-purchase ranker limited by its training labels or by its features? NDCG@10.

Usage::

    python benchmarks/np_headroom.py                 # Complete Journey, ~10 minutes
    python benchmarks/np_headroom.py --cutoffs 2017-09-01 --json out.json

The ranker for cutoff ``T`` learns from the 14-day windows after ``T - 14``, ``T - 28`` and
``T - 42`` days. This prints, per cutoff, on the customers who buy in the window (as
``tailor evaluate next-purchase``), NDCG@10 and Recall@10 of

* ``tifu_knn`` -- the best baseline (its tuned parameters);
* ``lgbm_ranker`` -- the shipped ranker, trained as ``tailor evaluate`` trains it;
* ``lgbm_own_labels`` -- the same learner also given the labels *of the cutoff's own
  window* (3-fold cross-fitted over its customers: a customer's candidates are scored by
  a model trained on the earlier cutoffs plus the other customers' candidates at ``T``).
  It uses the future; if it is not better than ``lgbm_ranker``, fresher training labels
  are not what holds the ranker back -- what its features say about the order of a
  customer's own products is;
* ``perfect_order`` -- the candidates ordered by the truth (bought first): the ceiling of
  any re-ranking of the same candidates.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from own_labels import cross_fit_own_labels, ranking_row, run_ranking  # noqa: E402

from training import next_purchase as NP  # noqa: E402
from training.baselines_np import TifuKnn, pad_with_popular  # noqa: E402
from training.metrics import truth_to_dict  # noqa: E402
from training.np_features import label_candidates  # noqa: E402
from training.np_history import sales_before, window_labels  # noqa: E402
from training.protocol import K  # noqa: E402


def ranked(cand: pd.DataFrame, score: np.ndarray, ids, popular, k: int = K) -> pd.DataFrame:
    """Top ``k`` per customer by ``score`` (ties as the ranker breaks them), padded with
    popular products like :meth:`NextPurchaseRanker.recommend`."""
    c = cand[["customer_id", "product_id", "ptop_rank"]].assign(score=score)
    c = c.sort_values(
        ["customer_id", "score", "ptop_rank", "product_id"],
        ascending=[True, False, True, True],
        kind="stable",
    )
    c["rank"] = c.groupby("customer_id").cumcount() + 1
    return pad_with_popular(c[c["rank"] <= k], list(ids), popular, k)


def headroom(tables, cutoff, config=None, folds: int = 3) -> dict:
    """NDCG@10 / Recall@10 of TIFU-KNN, the shipped ranker, own labels and perfect order."""
    import lightgbm as lgb

    cfg = NP._config(config)
    cutoff = pd.Timestamp(cutoff)
    labels = window_labels(tables, cutoff, cfg.window_days)
    truth = truth_to_dict(labels)
    ids = sorted(truth)
    ranker = NP.NextPurchaseRanker(cfg)
    train = ranker.training_frame(tables, cutoff)
    ranker.fit(tables, cutoff, customer_ids=ids, train=train)
    cand, _ = NP.NextPurchaseRanker._candidates(cfg, tables, cutoff, np.asarray(ids))
    cand["label"] = label_candidates(cand, labels)
    feats = ranker.feature_names_
    popular = ranker.popular_
    params = ranker.model_.get_params()

    def fit_predict(Xa, ya, w, Xs):
        # like the training cutoffs: only the cutoff's customers who buy a candidate
        own = w != 1.0
        keep = ~own
        has_pos = pd.Series(ya[own]).groupby(Xa.loc[own, "customer_id"].to_numpy()).transform("max")
        keep[own] = has_pos.to_numpy() > 0
        clf = lgb.LGBMClassifier(**params).fit(Xa.loc[keep, feats], ya[keep], sample_weight=w[keep])
        return clf.predict_proba(Xs[feats])[:, 1]

    own = cross_fit_own_labels(
        train[["customer_id", *feats]],
        train["label"].to_numpy(),
        cand[["customer_id", *feats]],
        cand["label"].to_numpy(),
        fit_predict,
        folds=folds,
        groups=cand["customer_id"].to_numpy(),
    )
    base = TifuKnn.from_params(cfg.tifu).fit(tables, cutoff, sales=sales_before(tables, cutoff))
    scored = {
        "tifu_knn": base.recommend(ids, K),
        "lgbm_ranker": ranker.recommend(ids, K),
        "lgbm_own_labels": ranked(cand, own, ids, popular),
        "perfect_order": ranked(cand, cand["label"].to_numpy() + 0.0, ids, popular),
    }
    return ranking_row(cutoff, scored, truth, K)


def main(argv=None) -> int:
    return run_ranking(headroom, "next_purchase", "Next purchase", __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
