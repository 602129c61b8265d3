"""Evaluation metrics shared by every model and baseline (the DESIGN.md protocol).

Ranking metrics take ``recommendations`` (customer_id -> ranked list of item ids) and
``truth`` (customer_id -> set of relevant item ids) and average over the customers in
``truth`` (customers with no recommendation count as zero).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd


def _dcg(hits: Sequence[bool]) -> float:
    return float(sum(1.0 / np.log2(i + 2) for i, h in enumerate(hits) if h))


def recall_at_k(recommended: Sequence, relevant: set, k: int = 10) -> float:
    """|top-k ∩ relevant| / |relevant| (0 when nothing is relevant)."""
    if not relevant:
        return 0.0
    top = list(recommended)[:k]
    return len(set(top) & relevant) / len(relevant)


def ndcg_at_k(recommended: Sequence, relevant: set, k: int = 10) -> float:
    """Binary NDCG@k; the ideal DCG places min(|relevant|, k) hits first."""
    if k < 1:
        raise ValueError(f"ndcg_at_k: k must be at least 1, got {k}")
    if not relevant:
        return 0.0
    top = list(recommended)[:k]
    seen: set = set()
    hits = []
    for item in top:  # a repeated item counts once
        hits.append(item in relevant and item not in seen)
        seen.add(item)
    ideal = _dcg([True] * min(len(relevant), k))
    return _dcg(hits) / ideal


def hit_rate_at_k(recommended: Sequence, relevant: set, k: int = 10) -> float:
    """1 if any of the top k is relevant, else 0."""
    return float(bool(set(list(recommended)[:k]) & relevant))


def ranking_report(
    recommendations: Mapping[int, Sequence], truth: Mapping[int, set], k: int = 10
) -> dict[str, float]:
    """Mean Recall@k, NDCG@k and HitRate@k over the customers in ``truth``."""
    if int(k) < 1:
        raise ValueError(f"ranking_report: k must be at least 1, got {k}")
    if not truth:
        raise ValueError("ranking_report: no customers with relevant items in the window")
    rec, ndcg, hit = [], [], []
    for cust, relevant in truth.items():
        items = recommendations.get(cust, [])
        rec.append(recall_at_k(items, relevant, k))
        ndcg.append(ndcg_at_k(items, relevant, k))
        hit.append(hit_rate_at_k(items, relevant, k))
    return {
        f"recall@{k}": float(np.mean(rec)),
        f"ndcg@{k}": float(np.mean(ndcg)),
        f"hitrate@{k}": float(np.mean(hit)),
        "n_customers": float(len(truth)),
    }


def recs_to_dict(recs: pd.DataFrame, k: int | None = None) -> dict[int, list]:
    """Long frame (customer_id, product_id, rank) -> {customer_id: [product ids by rank]}."""
    df = recs.sort_values(["customer_id", "rank"])
    if k is not None:
        df = df[df["rank"] <= k]
    return {c: g.tolist() for c, g in df.groupby("customer_id", sort=False)["product_id"]}


def truth_to_dict(labels: pd.DataFrame, item_col: str = "product_id") -> dict[int, set]:
    """Long frame (customer_id, item) -> {customer_id: set(items)}."""
    return {c: set(g.tolist()) for c, g in labels.groupby("customer_id", sort=False)[item_col]}


def classification_report(y_true, p) -> dict[str, float]:
    """ROC-AUC, PR-AUC (average precision) and Brier score of probabilities ``p``."""
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    y_true = np.asarray(y_true).astype(int)
    p = np.asarray(p, dtype=float)
    if len(np.unique(y_true)) < 2:
        raise ValueError("classification_report: labels hold a single class; AUC is undefined")
    return {
        "roc_auc": float(roc_auc_score(y_true, p)),
        "pr_auc": float(average_precision_score(y_true, p)),
        "brier": float(brier_score_loss(y_true, p)),
        "base_rate": float(y_true.mean()),
        "n_customers": float(len(y_true)),
    }


def regression_report(y_true, y_pred, top_share: float = 0.2) -> dict[str, float]:
    """MAE, Spearman correlation and top-``top_share`` capture of a spend forecast.

    Capture = share of the actual spend of the true top 20% customers that sits in the
    predicted top 20% (1.0 = perfect ordering of the top).
    """
    from scipy.stats import spearmanr

    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    n_top = max(1, int(round(top_share * len(y_true))))
    pred_top = np.argsort(-y_pred, kind="stable")[:n_top]
    true_top = np.argsort(-y_true, kind="stable")[:n_top]
    denom = y_true[true_top].sum()
    return {
        "mae": float(np.mean(np.abs(y_true - y_pred))),
        "spearman": float(spearmanr(y_true, y_pred).statistic),
        "top20_capture": float(y_true[pred_top].sum() / denom) if denom > 0 else float("nan"),
        "n_customers": float(len(y_true)),
    }


#: Columns of every family's long evaluation table.
EVALUATION_COLUMNS = ["family", "model", "cutoff", "metric", "value"]


def metric_rows(family: str, model: str, cutoff, metrics: Mapping, prefix: str = "") -> list[dict]:
    """Rows of the long evaluation table: one per metric of ``model`` at ``cutoff``."""
    return [
        {
            "family": family,
            "model": model,
            "cutoff": pd.Timestamp(cutoff),
            "metric": f"{prefix}{k}",
            "value": float(v),
        }
        for k, v in metrics.items()
    ]


def ranking_rows(
    family: str,
    model: str,
    recs: pd.DataFrame,
    truth: Mapping[int, set],
    cutoff,
    k: int = 10,
    metrics: Sequence[str] | None = None,
) -> list[dict]:
    """Ranking metrics of a long recommendation frame against ``truth``, as evaluation rows.

    ``metrics`` defaults to NDCG, Recall and HitRate at ``k``.
    """
    rep = ranking_report(recs_to_dict(recs, k), truth, k)
    metrics = metrics or (f"ndcg@{k}", f"recall@{k}", f"hitrate@{k}")
    return metric_rows(family, model, cutoff, {m: rep[m] for m in (*metrics, "n_customers")})
