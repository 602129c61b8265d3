"""The shared piece of the headroom benchmarks: a model also trained on a cutoff's own labels.

A model for cutoff ``T`` can only learn from labels whose window ends by ``T``. The
headroom benchmarks (``churn_headroom.py``, ``value_bounds.py --model``,
``np_headroom.py``, ``cs_headroom.py``) also give the same learner the labels of ``T``
itself, cross-fitted so that no row is scored by a model that saw its label. That uses the
future: it is a reference, not a model anyone can deploy. If it scores no better than the
shipped model, fresher training labels are not what holds the model back.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

#: The cutoff's own rows weigh this much more than an earlier cutoff's row (each earlier
#: cutoff holds about as many rows as the cutoff itself; there are up to 12 of them).
OWN_WEIGHT = 3.0


def cross_fit_own_labels(
    X: pd.DataFrame,
    y: np.ndarray,
    Xt: pd.DataFrame,
    yt: np.ndarray,
    fit_predict: Callable[[pd.DataFrame, np.ndarray, np.ndarray, pd.DataFrame], np.ndarray],
    folds: int = 5,
    seed: int = 0,
    stratify: bool = True,
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """Score every row of ``Xt`` with a model that saw ``X`` plus the other folds of ``Xt``.

    ``fit_predict(X_train, y_train, weight, X_score)`` returns scores of ``X_score``. Rows of
    ``Xt`` get weight :data:`OWN_WEIGHT`, rows of ``X`` weight 1. No row of ``Xt`` is scored
    by a model trained on it; each is scored exactly once. Folds are stratified by the label
    (a class label); ``stratify=False`` for a continuous one (plain shuffled folds).
    ``groups`` (one per row of ``Xt``) keeps each group's rows in one fold (GroupKFold:
    a customer's candidates are scored together by a model that saw none of them).
    """
    from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold

    yt = np.asarray(yt)
    if groups is not None:
        splits = GroupKFold(folds).split(Xt, yt, groups)
    else:
        splitter = StratifiedKFold if stratify else KFold
        splits = splitter(folds, shuffle=True, random_state=seed).split(Xt, yt)
    out = np.full(len(Xt), np.nan)
    for tr, te in splits:
        Xa = pd.concat([X, Xt.iloc[tr]], ignore_index=True)
        ya = np.r_[np.asarray(y), yt[tr]]
        w = np.r_[np.ones(len(X)), np.full(len(tr), OWN_WEIGHT)]
        out[te] = fit_predict(Xa, ya, w, Xt.iloc[te])
    return out


def report(
    rows: list[dict], title: str, json_path: Path | None = None, transpose: bool = False
) -> pd.DataFrame:
    """Print the per-cutoff rows with their mean (as a column table, or transposed)."""
    if json_path:
        json_path.write_text(json.dumps(rows, indent=2))
    df = pd.DataFrame(rows).set_index("cutoff")
    df.loc["mean"] = df.mean()
    df["customers"] = df["customers"].round().astype(int)
    print(f"{title}\n")
    print((df.T if transpose else df).round(4).to_string())
    return df


def arguments(description: str, argv=None) -> argparse.Namespace:
    """``--source``, ``--cutoffs`` (comma-separated) and ``--json`` of every headroom script."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--source", default="completejourney")
    ap.add_argument("--cutoffs", help="comma-separated dates (default: the reporting cutoffs)")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON")
    return ap.parse_args(argv)


def ranking_row(cutoff, scored: dict[str, pd.DataFrame], truth: dict, k: int) -> dict:
    """``{name}_ndcg`` and ``{name}_recall`` at ``k`` of each recommendation frame."""
    from training.metrics import ranking_report, recs_to_dict

    row = {"cutoff": str(pd.Timestamp(cutoff).date()), "customers": len(truth)}
    for name, recs in scored.items():
        rep = ranking_report(recs_to_dict(recs, k), truth, k)
        row[f"{name}_ndcg"], row[f"{name}_recall"] = rep[f"ndcg@{k}"], rep[f"recall@{k}"]
    return row


def run_ranking(headroom: Callable, family: str, title: str, doc: str, argv=None) -> int:
    """The ``main`` of a ranking headroom script: ``headroom(tables, cutoff)`` per cutoff."""
    from features.sources import load_source
    from training.protocol import CUTOFFS

    args = arguments(doc.splitlines()[0], argv)
    tables = load_source(args.source)
    cutoffs = args.cutoffs.split(",") if args.cutoffs else CUTOFFS[family]
    rows = []
    for c in cutoffs:
        rows.append(headroom(tables, c))
        print(f"  {rows[-1]['cutoff']} done", file=sys.stderr, flush=True)
    report(
        rows,
        f"{title} ({args.source}); lgbm_own_labels and perfect_order use the future",
        args.json,
        transpose=True,
    )
    return 0
