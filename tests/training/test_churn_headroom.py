"""benchmarks/churn_headroom.py: the own-label cross-fit and the paired bootstrap."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from churn_headroom import bootstrap_gaps, interval  # noqa: E402
from own_labels import OWN_WEIGHT, cross_fit_own_labels  # noqa: E402


def test_cross_fit_never_scores_a_row_with_its_own_label():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"id": np.arange(100, 140)})  # earlier cutoffs' rows
    y = rng.integers(0, 2, 40)
    Xt = pd.DataFrame({"id": np.arange(50)})  # the cutoff's own rows
    yt = np.r_[np.zeros(40, int), np.ones(10, int)]
    calls = []

    def fit_predict(Xa, ya, w, Xs):
        calls.append((set(Xa["id"]), set(Xs["id"])))
        own = Xa["id"] < 100
        assert (w[~own.to_numpy()] == 1).all() and (w[own.to_numpy()] == OWN_WEIGHT).all()
        return Xs["id"].to_numpy() + 1000.0

    out = cross_fit_own_labels(X, y, Xt, yt, fit_predict, folds=5)
    assert len(calls) == 5
    scored = [i for _, s in calls for i in s]
    assert sorted(scored) == list(range(50))  # every own row scored exactly once
    for trained, s in calls:
        assert not trained & s  # never by a model that saw it
        assert set(range(100, 140)) <= trained  # earlier cutoffs always in training
    np.testing.assert_array_equal(out, np.arange(50) + 1000.0)


def test_paired_bootstrap_gap_brackets_a_known_gap():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 2000)
    perfect = y + rng.uniform(0, 0.5, 2000)  # AUC 1
    noise = rng.uniform(size=2000)  # AUC ~0.5
    gaps = bootstrap_gaps(y, perfect, noise, n=200)
    assert gaps.shape == (200,)
    lo, hi = interval(gaps)
    assert 0.45 < lo < 0.5 < hi < 0.55
    lo, hi = interval(bootstrap_gaps(y, perfect, perfect, n=50))
    assert lo == pytest.approx(0.0) and hi == pytest.approx(0.0)


def test_cross_fit_plain_folds_for_a_continuous_label():
    X = pd.DataFrame({"id": np.arange(100, 110)})
    Xt = pd.DataFrame({"id": np.arange(23)})
    yt = np.linspace(0.0, 500.0, 23)  # spend: StratifiedKFold would reject it
    seen = []

    def fit_predict(Xa, ya, w, Xs):
        own = (Xa["id"] < 100).to_numpy()
        # the continuous labels reach the learner unrounded
        np.testing.assert_allclose(ya[own], yt[Xa["id"].to_numpy()[own]])
        seen.extend(Xs["id"])
        return np.asarray(ya[own].mean() + 0 * Xs["id"], dtype=float)

    out = cross_fit_own_labels(X, np.zeros(10), Xt, yt, fit_predict, folds=4, stratify=False)
    assert sorted(seen) == list(range(23)) and np.isfinite(out).all()
    with pytest.raises(ValueError):
        cross_fit_own_labels(X, np.zeros(10), Xt, yt, fit_predict, folds=4)


def test_cross_fit_groups_stay_in_one_fold():
    X = pd.DataFrame({"id": np.arange(100, 105), "g": -1})
    g = np.repeat(np.arange(12), 3)  # 12 customers, 3 candidates each
    Xt = pd.DataFrame({"id": np.arange(36), "g": g})
    yt = np.tile([1, 0, 0], 12)
    calls = []

    def fit_predict(Xa, ya, w, Xs):
        calls.append((set(Xa["g"]), set(Xs["g"])))
        return np.zeros(len(Xs))

    cross_fit_own_labels(X, np.zeros(5), Xt, yt, fit_predict, folds=3, groups=g)
    assert len(calls) == 3
    assert sorted(c for _, s in calls for c in s) == list(range(12))
    for trained, scored in calls:
        assert not trained & scored  # no customer on both sides of a fold
