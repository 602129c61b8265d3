"""Uplift models on planted data, and the evaluation metrics on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from campaigns.uplift import (
    ClassTransformation,
    TLearner,
    auuc,
    evaluate_uplift,
    qini_coefficient,
    qini_curve,
    uplift_at_k,
    uplift_experiment,
)

# hand case: already sorted by score
Y = [1, 0, 0, 1]
TR = [1, 0, 1, 0]
S = [0.9, 0.8, 0.7, 0.6]


def test_qini_curve_hand_computed():
    c = qini_curve(Y, TR, S, n_points=None)
    np.testing.assert_allclose(c["fraction"], [0, 0.25, 0.5, 0.75, 1.0])
    # Q(k) = (Y_t - Y_c N_t/N_c) / N_t with N_t = 2 treated in total
    np.testing.assert_allclose(c["qini"], [0, 0.5, 0.5, 0.5, 0.0])
    # G(k) = (Y_t/N_t - Y_c/N_c) * k/N
    np.testing.assert_allclose(c["gain"], [0, 0, 0.5, 0.375, 0.0])
    np.testing.assert_allclose(c["random"], 0.0)  # ATE = 1/2 - 1/2


def test_auuc_qini_and_uplift_at_k_hand_computed():
    assert auuc(Y, TR, S) == pytest.approx(0.25 * (0.25 + 0.4375 + 0.1875))
    assert qini_coefficient(Y, TR, S) == pytest.approx(0.25 * (0.25 + 0.5 + 0.5 + 0.25))
    assert uplift_at_k(Y, TR, S, 0.5) == pytest.approx(1.0)
    assert uplift_at_k(Y, TR, S, 1.0) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="k is a share"):
        uplift_at_k(Y, TR, S, 0.0)


def planted(
    n: int, seed: int, treated_share: float = 0.5
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """Visits with a planted uplift of +0.25 for x1 > 0.5 in segment 'a', 0 elsewhere."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "x1": rng.random(n),
            "seg": rng.choice(["a", "b"], n),
            "x3": rng.random(n),
            "noise": rng.normal(size=n),
        }
    )
    t = (rng.random(n) < treated_share).astype(int)
    tau = np.where((X.x1 > 0.5) & (X.seg == "a"), 0.25, 0.0)
    p = 0.1 + 0.2 * X.x3.to_numpy() + tau * t
    y = (rng.random(n) < p).astype(int)
    return X, t, y, tau


@pytest.mark.parametrize("model", [TLearner, ClassTransformation])
def test_models_find_planted_uplift_and_beat_random(model):
    X, t, y, tau = planted(6000, 0)
    Xte, tte, yte, tau_te = planted(4000, 1)
    est = model(random_state=0).fit(X, t, y)
    score = est.predict(Xte)
    # predicted uplift separates the planted group
    assert score[tau_te > 0].mean() - score[tau_te == 0].mean() > 0.12
    res = evaluate_uplift(yte, tte, score, n_boot=100)
    rnd = evaluate_uplift(yte, tte, np.random.default_rng(0).random(len(yte)), n_boot=0)
    assert res["qini_ci_low"] > 0 and res["qini"] > rnd["qini"] + 0.02
    assert res["auuc"] > res["auuc_random"]
    assert res["uplift_at_30_vs_random_ci_low"] > 0
    assert res["uplift_at_30"] > res["ate"] + 0.05


def test_oracle_and_reversed_scores():
    X, t, y, tau = planted(6000, 3)
    good = qini_coefficient(y, t, tau + 1e-6 * X.x1.to_numpy())
    bad = qini_coefficient(y, t, -tau - 1e-6 * X.x1.to_numpy())
    assert good > 0.02 and bad < -0.02


def test_class_transformation_weights_fix_unequal_treatment_share():
    X, t, y, tau = planted(20_000, 4, treated_share=0.8)
    est = ClassTransformation(random_state=0).fit(X, t, y)
    assert est.treatment_share_ == pytest.approx(0.8, abs=0.01)
    # mean predicted uplift ~ true ATE (0.25 * P(x1 > .5, seg a) = 0.0625); unweighted it would be about -0.26
    assert est.predict(X).mean() == pytest.approx(tau.mean(), abs=0.03)


def test_t_learner_regression_for_spend():
    rng = np.random.default_rng(6)
    n = 6000
    X = pd.DataFrame({"x1": rng.random(n), "x2": rng.random(n)})
    t = rng.integers(0, 2, n)
    tau = 10.0 * X.x1.to_numpy()
    y = 5.0 * X.x2.to_numpy() + tau * t + rng.normal(0, 3, n)
    est = TLearner(random_state=0).fit(X, t, y)
    assert not est.binary_
    assert np.corrcoef(est.predict(X), tau)[0, 1] > 0.8


def test_unseen_category_at_predict_time():
    X, t, y, _ = planted(3000, 7)
    est = TLearner().fit(X, t, y)
    X2 = X.head(5).copy()
    X2["seg"] = ["a", "zzz", "b", "a", "b"]
    assert np.isfinite(est.predict(X2)).all()


def test_uplift_errors():
    X, t, y, _ = planted(500, 8)
    with pytest.raises(ValueError, match="binary 0/1 outcome"):
        ClassTransformation().fit(X, t, y * 2.5)
    with pytest.raises(RuntimeError, match="not fitted"):
        TLearner().predict(X)
    with pytest.raises(ValueError, match="single arm"):
        TLearner().fit(X, np.ones(len(X)), y)
    with pytest.raises(ValueError, match="treatment must be 0/1"):
        TLearner().fit(X, t * 2, y)
    est = TLearner(n_estimators=5).fit(X, t, y)
    with pytest.raises(ValueError, match="lacks the feature column\\(s\\) \\['noise'\\]"):
        est.predict(X.drop(columns="noise"))


def test_uplift_experiment_report():
    X, t, y, _ = planted(5000, 9)
    df = X.assign(arm=np.where(t == 1, "mail", "none"), visit=y)
    rep = uplift_experiment(df, "arm", "mail", "none", "visit", n_boot=50)
    assert rep.features == ["x1", "seg", "x3", "noise"]
    assert rep.n_test == pytest.approx(1500, abs=2) and rep.n_train + rep.n_test == 5000
    assert list(rep.metrics["model"]) == ["t_learner", "class_transformation", "random"]
    m = rep.metrics.set_index("model")
    assert (m.loc[["t_learner", "class_transformation"], "qini"] > m.loc["random", "qini"]).all()
    assert set(rep.curves) == {"t_learner", "class_transformation"}
    d = rep.to_dict()
    assert d["models"]["random"]["ate"] == pytest.approx(m.loc["random", "ate"])
    with pytest.raises(ValueError, match="treatment arm 'sms' not found"):
        uplift_experiment(df, "arm", "sms", "none", "visit")


def test_tied_scores_do_not_depend_on_the_row_order():
    # no effect at all and one constant score, on a file sorted by arm
    rng = np.random.default_rng(0)
    y = rng.binomial(1, 0.2, 2000).astype(float)
    t = np.r_[np.ones(1000), np.zeros(1000)]
    const = np.zeros(2000)
    for order in (np.arange(2000), np.arange(2000)[::-1]):
        assert qini_coefficient(y[order], t[order], const) == pytest.approx(0.0, abs=1e-12)
        res = evaluate_uplift(y[order], t[order], const, n_boot=50)
        assert res["uplift_at_10_vs_random"] == pytest.approx(0.0, abs=1e-12)
        assert res["qini_ci_low"] <= 0.0 <= res["qini_ci_high"]
    # ties within a score level are averaged; distinct levels still rank
    y2 = np.array([1.0, 0.0, 0.0, 1.0])
    t2 = np.array([1.0, 0.0, 1.0, 0.0])
    s2 = np.array([1.0, 1.0, 0.0, 0.0])
    swapped = np.array([1, 0, 3, 2])
    assert qini_coefficient(y2, t2, s2) == pytest.approx(
        qini_coefficient(y2[swapped], t2[swapped], s2[swapped])
    )
    assert qini_coefficient(y2, t2, s2) > 0  # the top level holds the treated buyer


def test_text_outcome_is_named_in_the_error():
    df = pd.DataFrame(
        {"arm": ["t", "c"] * 20, "x": np.arange(40.0), "channel": ["Web", "Phone"] * 20}
    )
    with pytest.raises(ValueError, match="outcome column 'channel' is not numeric"):
        uplift_experiment(df, "arm", "t", "c", "channel", features=["x"])
