"""Review regressions for the value family: known answers the earlier code got wrong."""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.clv import BetaGeoFitter, sample_bgnbd

# a + b < 1: a U-shaped dropout distribution, so c = a + b + x - 1 < 0 for one-time buyers
U_SHAPED = {"r": 0.5, "alpha": 5.0, "a": 0.3, "b": 0.5}


def _bgf(params: dict) -> BetaGeoFitter:
    bgf = BetaGeoFitter()
    bgf.params_ = pd.Series(params)
    return bgf


def test_conditional_expectation_of_one_time_buyers_when_a_plus_b_below_one():
    # With x = t_x = T = 0 the conditional expectation (eq. 10) is the unconditional one
    # (eq. 9). The hypergeometric term is negative here; its log was NaN, so every
    # one-time buyer got NaN expected purchases (and NaN spend and CLV).
    bgf = _bgf(U_SHAPED)
    t = np.array([10.0, 90.0, 365.0])
    expected = bgf.expected_number_of_purchases_up_to_time(t)
    got = bgf.conditional_expected_number_of_purchases_up_to_time(t, 0, 0, 0)
    assert np.isfinite(expected).all() and (expected > 0).all()
    np.testing.assert_allclose(got, expected, rtol=1e-9)


def test_one_time_buyers_future_matches_the_simulator_when_a_plus_b_below_one():
    bgf = _bgf(U_SHAPED)
    n, t_cal, t_hold = 40000, 30.0, 60.0
    rng = np.random.default_rng(11)
    _, events = sample_bgnbd(np.full(n, t_cal + t_hold), **U_SHAPED, rng=rng, return_events=True)
    cal = events[events["time"] <= t_cal].groupby("customer")["time"].agg(["size", "max"])
    future = (events["time"] > t_cal).groupby(events["customer"]).sum()
    once = cal.index[cal["size"] == 1]
    pred = bgf.conditional_expected_number_of_purchases_up_to_time(
        t_hold, np.zeros(len(once)), np.zeros(len(once)), np.full(len(once), t_cal)
    )
    actual = future.loc[once]
    sem = actual.std() / np.sqrt(len(once))
    assert np.isfinite(pred).all()
    assert abs(pred.mean() - actual.mean()) < 4 * sem, (pred.mean(), actual.mean(), sem)
