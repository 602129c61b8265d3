"""benchmarks/churn_headroom.py: the own-label cross-fit and the paired bootstrap."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from churn_headroom import OWN_WEIGHT, bootstrap_gaps, cross_fit_own_labels, interval  # noqa: E402


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
