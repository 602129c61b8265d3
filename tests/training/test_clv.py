"""BG/NBD + Gamma-Gamma: hand-made cases, published CDNOW estimates, simulate-and-recover,
and the ProbabilisticValueModel wrapper on a planted synthetic shop."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from features.contract import Tables, validate
from tests.training.clv_synth import PLANTED_BGNBD, PLANTED_GG, make_shop
from training.clv import (
    BetaGeoFitter,
    GammaGammaFitter,
    ProbabilisticValueModel,
    ValueModelConfig,
    bgnbd_log_likelihood,
    sample_bgnbd,
    summary_data_from_transactions,
    visit_days,
)

CDNOW = Path("/work/shared/data/cdnow")
PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PUBLISHED_LL = -9582.4
PUBLISHED_GG = {"p": 6.25, "q": 3.74, "v": 15.44}
# What reproduces Hardie's summary files exactly (checked in test_own_summary_reproduces_cdnow_files):
# purchases = distinct days, times in weeks measured in days (freq='D', freq_multiplier=7), the
# calibration is every transaction strictly before 1997-10-01 (i.e. up to 1997-09-30 inclusive,
# 39 weeks from 1997-01-01), and T runs from the first purchase day to the last calibration day
# 1997-09-30 (T = 272/7 = 38.86 for a 1 January customer, not 39.0).
CDNOW_CUTOFF = "1997-10-01"


def rel_err(est: float, ref: float) -> float:
    return abs(est / ref - 1)


# --------------------------------------------------------------------------- CDNOW data


@pytest.fixture(scope="module")
def cdnow_tx() -> pd.DataFrame:
    tx = pd.read_csv(
        CDNOW / "CDNOW_sample.txt",
        sep=r"\s+",
        header=None,
        names=["customer_id", "master_id", "date", "cds", "dollars"],
        dtype={"date": str},
    )
    tx["timestamp"] = pd.to_datetime(tx["date"], format="%Y%m%d")
    return tx


@pytest.fixture(scope="module")
def cdnow_file() -> pd.DataFrame:
    summ = pd.read_csv(CDNOW / "cdnow_customers_summary.csv", index_col="ID")
    money = pd.read_csv(CDNOW / "cdnow_customers_summary_with_transactions.csv", index_col="ID")
    # the two files agree on x / t_x / T; take the money from the second
    assert (summ["frequency"] == money["x"]).all() and np.allclose(summ["recency"], money["t_x"])
    return summ.assign(monetary_value=money["zbar"])


@pytest.fixture(scope="module")
def cdnow_own(cdnow_tx) -> pd.DataFrame:
    # the summary files are keyed by the id in the master file (1..2357)
    return summary_data_from_transactions(
        cdnow_tx,
        "master_id",
        "timestamp",
        "dollars",
        observation_period_end=CDNOW_CUTOFF,
        freq="D",
        freq_multiplier=7,
    )


@pytest.fixture(scope="module")
def cdnow_summaries(cdnow_file, cdnow_own) -> dict[str, pd.DataFrame]:
    return {"file": cdnow_file, "own": cdnow_own}


def test_own_summary_reproduces_cdnow_files(cdnow_file, cdnow_own, cdnow_tx):
    assert len(cdnow_own) == len(cdnow_file) == 2357
    own = cdnow_own.reindex(cdnow_file.index)
    assert (own["frequency"] == cdnow_file["frequency"]).all()
    # the files are rounded to 2 decimals
    assert np.abs(own["recency"] - cdnow_file["recency"]).max() <= 0.005 + 1e-9
    assert np.abs(own["T"] - cdnow_file["T"]).max() <= 0.005 + 1e-9
    assert np.abs(own["monetary_value"] - cdnow_file["monetary_value"]).max() <= 0.005 + 1e-9
    assert (own["frequency"] > 0).sum() == 946
    # ...while the obvious alternatives do not: an exclusive cutoff one day earlier drops
    # the purchases of 30 September, and measuring T to the cutoff gives T = 39.0
    earlier = summary_data_from_transactions(
        cdnow_tx, "master_id", "timestamp", observation_period_end="1997-09-30", freq_multiplier=7
    ).reindex(cdnow_file.index)
    assert (earlier["frequency"] != cdnow_file["frequency"]).sum() > 0
    assert cdnow_file["T"].max() == pytest.approx(272 / 7, abs=0.005)


def test_a_flat_ridge_stops_the_polish_early_without_losing_likelihood(monkeypatch):
    """Planted shoppers who never drop out: BG/NBD's a goes to 0 along a ridge where the
    likelihood no longer moves. The polish stops there instead of spending its whole
    budget of 40,000 evaluations (seconds per fit, most of a small shop's training), at the
    likelihood the full budget reaches. Whether the full budget walks the ridge to its end
    depends on the machine's floating point (40,000 evaluations on one, converged after 472
    on another), so the stall rule itself is pinned on an exact ridge below."""
    import training.clv as clv

    rng = np.random.default_rng(0)
    n, weeks = 300, 52.0
    rates = rng.gamma(2.0, 1 / 4.0, n)  # r = 2, alpha = 4, and no dropout
    counts, last = np.zeros(n), np.zeros(n)
    for i, rate in enumerate(rates):
        if k := rng.poisson(rate * weeks):
            counts[i], last[i] = k, rng.uniform(0, weeks, k).max()
    T = np.full(n, weeks)
    quick = BetaGeoFitter().fit(counts, last, T)
    assert quick.optimizer_result_.nfev < 5000
    assert quick.params_["r"] == pytest.approx(2.0, rel=0.1)
    assert quick.params_["alpha"] == pytest.approx(4.0, rel=0.15)
    assert quick.params_["a"] < 1e-6  # no dropout
    monkeypatch.setattr(clv, "STALL_ITERATIONS", 10**9)  # the full budget, as before
    full = BetaGeoFitter().fit(counts, last, T)
    assert full.optimizer_result_.nfev >= quick.optimizer_result_.nfev
    assert quick.log_likelihood_ == pytest.approx(full.log_likelihood_, abs=1e-6)
    for name in ("r", "alpha"):
        assert quick.params_[name] == pytest.approx(full.params_[name], rel=1e-4)


def test_the_polish_stops_on_a_ridge_that_gains_ever_less(monkeypatch):
    """Two log-parameters that grow together while the objective gains less and less (as
    BG/NBD's a and b do when dropout is nearly deterministic): Nelder-Mead walks on for its
    whole budget, the stall rule stops it after a few hundred steps at the same value.
    Plain scalar arithmetic, so every machine walks the same path."""
    import training.clv as clv

    def ridge(z):
        return (z[0] - z[1]) ** 2 + 1e-6 / (1 + (z[0] + z[1]) ** 2)

    start = np.array([0.5, 0.5])
    with np.errstate(over="ignore"):  # the walk ends with exp(log-parameters) = inf
        _, quick = clv._fit_log_params(ridge, start, ("a", "b"))
        monkeypatch.setattr(clv, "STALL_ITERATIONS", 10**9)  # no stall rule
        _, full = clv._fit_log_params(ridge, start, ("a", "b"))
    assert full.nfev == 40000 and not full.success
    assert quick.status == 99 and quick.nfev < 2000  # StopIteration from the callback
    assert quick.fun < 1e-60  # far along the ridge: 1e-6 at the start
    assert quick.fun == pytest.approx(full.fun, abs=1e-12)


@pytest.mark.parametrize("source", ["file", "own"])
def test_bgnbd_recovers_published_cdnow_estimates(cdnow_summaries, source):
    s = cdnow_summaries[source]
    bgf = BetaGeoFitter().fit(s["frequency"], s["recency"], s["T"])
    for name, ref in PUBLISHED_BGNBD.items():
        assert rel_err(bgf.params_[name], ref) < 0.01, (name, bgf.params_[name], ref)
    assert bgf.log_likelihood_ == pytest.approx(PUBLISHED_LL, abs=0.05)


@pytest.mark.parametrize("source", ["file", "own"])
def test_gamma_gamma_recovers_published_cdnow_estimates(cdnow_summaries, source):
    s = cdnow_summaries[source]
    repeat = s[s["frequency"] > 0]
    assert len(repeat) == 946
    ggf = GammaGammaFitter().fit(repeat["frequency"], repeat["monetary_value"])
    for name, ref in PUBLISHED_GG.items():
        assert rel_err(ggf.params_[name], ref) < 0.01, (name, ggf.params_[name], ref)
    assert ggf.gamma == ggf.params_["v"]


def test_predictions_match_hardie_spreadsheet(cdnow_file):
    # Hardie's BG/NBD Excel sheet (also lifetimes' tests). The sheet evaluates at the
    # unrounded MLE: at the 3-decimal published parameters E[X(78)] is 1.8605, 0.16% off.
    s = cdnow_file
    bgf = BetaGeoFitter().fit(s["frequency"], s["recency"], s["T"])
    times = np.array([0.1429, 1.0, 3.00, 31.8571, 32.00, 78.00])
    expected = np.array([0.0078, 0.0532, 0.1506, 1.0405, 1.0437, 1.8576])
    np.testing.assert_allclose(
        bgf.expected_number_of_purchases_up_to_time(times), expected, atol=5e-4
    )
    # customer 1: x = 2, t_x = 30.43, T = 38.86; 39 more weeks
    assert bgf.conditional_expected_number_of_purchases_up_to_time(
        39, 2, 30.43, 38.86
    ) == pytest.approx(1.226, abs=1e-3)


def test_gamma_gamma_and_clv_match_lifetimes_documentation(cdnow_file):
    # lifetimes' quickstart (CDNOW summary with money, both models without penalty) prints
    # 24.658619 / 18.911489 / 35.170981 for E[avg profit] of customers 1..3, a mean of
    # 35.252958 over all customers, and CLVs 140.096218 / 18.943466 / 38.180575. Its call
    # keeps the default freq='D' on data in weeks, so the same is done here.
    s = cdnow_file
    bgf = BetaGeoFitter().fit(s["frequency"], s["recency"], s["T"])
    repeat = s[s["frequency"] > 0]
    ggf = GammaGammaFitter().fit(repeat["frequency"], repeat["monetary_value"])
    profit = ggf.conditional_expected_average_profit(s["frequency"], s["monetary_value"])
    np.testing.assert_allclose(profit.loc[[1, 2, 3]], [24.658619, 18.911489, 35.170981], rtol=1e-4)
    assert profit.mean() == pytest.approx(35.252958, rel=1e-4)
    assert ggf.conditional_expected_average_profit() == pytest.approx(profit.loc[3])
    clv = ggf.customer_lifetime_value(
        bgf, s["frequency"], s["recency"], s["T"], s["monetary_value"], time=12, discount_rate=0.01
    )
    np.testing.assert_allclose(clv.loc[[1, 2, 3]], [140.096218, 18.943466, 38.180575], rtol=1e-4)


def test_cdnow_holdout_forecast(cdnow_tx, cdnow_own):
    # Weeks 40-78 (1997-10-01 .. 1998-06-30, 273 days = 39 weeks): measured 1,653 forecast
    # vs 1,882 actual distinct-day repeat purchases (-12%), Spearman 0.4+.
    s = cdnow_own
    bgf = BetaGeoFitter().fit(s["frequency"], s["recency"], s["T"])
    hold = cdnow_tx[cdnow_tx["timestamp"] >= CDNOW_CUTOFF].drop_duplicates(["master_id", "date"])
    actual = hold.groupby("master_id").size().reindex(s.index, fill_value=0)
    pred = bgf.conditional_expected_number_of_purchases_up_to_time(
        39, s["frequency"], s["recency"], s["T"]
    )
    assert isinstance(pred, pd.Series) and pred.index.equals(s.index)
    assert actual.sum() == 1882
    assert rel_err(pred.sum(), actual.sum()) < 0.15
    assert spearmanr(pred, actual)[0] > 0.35


# --------------------------------------------------------------------------- hand-made cases


def test_log_likelihood_matches_the_paper_formula():
    r, alpha, a, b = 0.7, 3.0, 1.3, 2.2

    def direct(x, t_x, t_obs):
        nbd = math.gamma(r + x) * alpha**r / math.gamma(r)
        beta = math.gamma(a + b) / (math.gamma(a) * math.gamma(b))
        term1 = (
            beta
            * math.gamma(a)
            * math.gamma(b + x)
            / math.gamma(a + b + x)
            * nbd
            / (alpha + t_obs) ** (r + x)
        )
        term2 = 0.0
        if x > 0:
            term2 = (
                beta
                * math.gamma(a + 1)
                * math.gamma(b + x - 1)
                / math.gamma(a + b + x)
                * nbd
                / (alpha + t_x) ** (r + x)
            )
        return math.log(term1 + term2)

    rows = [(0, 0.0, 10.0), (1, 2.0, 10.0), (3, 9.5, 10.0), (5, 1.0, 30.0), (2, 4.0, 4.0)]
    x, t_x, t_obs = (np.array(c, dtype=float) for c in zip(*rows, strict=True))
    np.testing.assert_allclose(
        bgnbd_log_likelihood((r, alpha, a, b), x, t_x, t_obs), [direct(*row) for row in rows]
    )
    # no repeat purchase: simply the NBD probability of zero events in T
    assert bgnbd_log_likelihood((r, alpha, a, b), 0, 0, 10.0) == pytest.approx(
        r * math.log(alpha / (alpha + 10))
    )


def test_weights_equal_repeated_rows():
    rng = np.random.default_rng(11)
    s = sample_bgnbd(np.full(400, 30.0), 0.6, 5.0, 0.9, 2.0, rng)
    s = s.assign(recency=s["recency"].round(0), T=30.0)  # coarse so that rows repeat
    compressed = s.groupby(["frequency", "recency", "T"]).size().rename("w").reset_index()
    assert len(compressed) < len(s) / 2
    full = BetaGeoFitter().fit(s["frequency"], s["recency"], s["T"])
    weighted = BetaGeoFitter().fit(
        compressed["frequency"], compressed["recency"], compressed["T"], weights=compressed["w"]
    )
    np.testing.assert_allclose(full.params_, weighted.params_, rtol=1e-4)
    assert full.log_likelihood_ == pytest.approx(weighted.log_likelihood_, rel=1e-8)


def test_an_unconverged_polish_keeps_the_best_point_and_says_so(monkeypatch, caplog):
    """Cut the Nelder-Mead budget to a few evaluations: the fit still returns the best
    point found (never worse than L-BFGS-B's) and the warning names the parameters."""
    import training.clv as clv

    real = clv.minimize

    def short_polish(fun, x0, method=None, **kw):
        if method == "Nelder-Mead":
            kw["options"] = {**kw.get("options", {}), "maxfev": 5}
        return real(fun, x0, method=method, **kw)

    monkeypatch.setattr(clv, "minimize", short_polish)
    rng = np.random.default_rng(3)
    s = sample_bgnbd(np.full(300, 30.0), 0.6, 5.0, 0.9, 2.0, rng)
    with caplog.at_level("WARNING", logger="training.clv"):
        m = BetaGeoFitter().fit(s["frequency"], s["recency"], s["T"])
    assert np.isfinite(m.log_likelihood_) and len(m.params_) == 4 and (m.params_ > 0).all()
    (msg,) = [r.getMessage() for r in caplog.records if "Nelder-Mead" in r.getMessage()]
    assert msg.startswith("r/alpha/a/b: the Nelder-Mead polish stopped before converging")
    assert "a=" in msg and "keeping the best point found" in msg


def test_probability_alive_and_expectations_behave():
    bgf = BetaGeoFitter()
    bgf.params_ = pd.Series(PUBLISHED_BGNBD)
    assert bgf.conditional_probability_alive(0, 0, 20) == 1.0
    # same number of purchases, the later the last one the likelier alive
    p = bgf.conditional_probability_alive([3, 3, 3], [5, 15, 30], [30, 30, 30])
    assert isinstance(p, np.ndarray) and (np.diff(p) > 0).all() and (p < 1).all()
    # a scalar call returns a float and t = 0 gives nothing
    assert bgf.conditional_expected_number_of_purchases_up_to_time(0, 2, 10, 20) == 0.0
    grows = bgf.conditional_expected_number_of_purchases_up_to_time(
        np.array([1, 10, 100]), 2, 10, 20
    )
    assert (np.diff(grows) > 0).all()
    # long horizons stay finite (the hypergeometric term diverges without the Euler transform)
    far = bgf.conditional_expected_number_of_purchases_up_to_time(1e5, 29, 38, 38.86)
    assert np.isfinite(far) and far > 0


def test_unfitted_models_say_so():
    with pytest.raises(RuntimeError, match="not fitted"):
        BetaGeoFitter().conditional_probability_alive(1, 1, 2)
    with pytest.raises(RuntimeError, match="not fitted"):
        GammaGammaFitter().conditional_expected_average_profit()
    with pytest.raises(RuntimeError, match="not fitted"):
        ProbabilisticValueModel().predict(pd.DataFrame(), "2017-01-01")


@pytest.mark.parametrize(
    "frequency, recency, T, message",
    [
        (
            [1, 2, 3],
            [1.0, 5.0, 2.0],
            [4.0, 4.0, 4.0],
            r"Some values in recency vector are larger than T vector: 1 row\(s\), first at position 1",
        ),
        (
            [1, -1, 3],
            [1.0, 0.0, 2.0],
            [4.0, 4.0, 4.0],
            r"negative values in the frequency vector: 1 row\(s\), first at position 1",
        ),
        (
            [1, 2.5, 3],
            [1.0, 2.0, 2.0],
            [4.0, 4.0, 4.0],
            r"non-integer values in the frequency vector: 1 row\(s\), first at position 1",
        ),
        (
            [1, 2, np.nan],
            [1.0, 2.0, 2.0],
            [4.0, 4.0, 4.0],
            r"NaN or infinite values in the frequency vector: 1 row\(s\), first at position 2",
        ),
        (
            [1, 2, 3],
            [1.0, np.nan, 2.0],
            [4.0, 4.0, 4.0],
            r"NaN or infinite values in the recency vector",
        ),
        (
            [0, 2, 3],
            [1.0, 2.0, 2.0],
            [4.0, 4.0, 4.0],
            r"non-zero recency values when frequency is zero: 1 row\(s\), first at position 0",
        ),
        ([1, 2, 3], [1.0, -2.0, 2.0], [4.0, 4.0, 4.0], r"negative recency"),
        (
            [1, 2],
            [1.0, 2.0, 2.0],
            [4.0, 4.0, 4.0],
            r"different lengths: {.frequency.: 2, .recency.: 3, .T.: 3}",
        ),
        ([], [], [], r"zero length vector"),
        ([0, 0], [0.0, 0.0], [4.0, 4.0], r"no customer has a repeat purchase"),
    ],
)
def test_bgnbd_input_errors(frequency, recency, T, message):
    with pytest.raises(ValueError, match=message):
        BetaGeoFitter().fit(frequency, recency, T)


def test_gamma_gamma_input_errors():
    with pytest.raises(
        ValueError,
        match=r"non-positive \(<= 0\) values in the monetary_value vector: 1 row\(s\), first at position 2",
    ):
        GammaGammaFitter().fit([1, 2, 3], [10.0, 5.0, 0.0])
    with pytest.raises(
        ValueError,
        match=r"repeat buyers only: there exist frequency <= 0 values: 1 row\(s\), first at position 0",
    ):
        GammaGammaFitter().fit([0, 2, 3], [10.0, 5.0, 7.0])
    with pytest.raises(ValueError, match=r"NaN or infinite values in the monetary_value vector"):
        GammaGammaFitter().fit([1, 2, 3], [10.0, np.inf, 7.0])
    ggf = GammaGammaFitter()
    ggf.params_ = pd.Series(PUBLISHED_GG)
    with pytest.raises(ValueError, match="for repeat buyers: 1 row"):
        ggf.conditional_expected_average_profit([0, 2], [0.0, -1.0])
    with pytest.raises(ValueError, match="freq must be one of"):
        ggf.customer_lifetime_value(BetaGeoFitter(), [1], [1], [2], [10.0], freq="M")
    ggf.params_ = pd.Series({"p": 6.0, "q": 0.8, "v": 15.0})
    with pytest.raises(ValueError, match="q = 0.8000 <= 1"):
        ggf.conditional_expected_average_profit()


# --------------------------------------------------------------------------- summary function


@pytest.fixture
def tiny_tx() -> pd.DataFrame:
    rows = [
        (1, "2020-01-01 10:00", 10.0),
        (1, "2020-01-01 15:00", 5.0),  # same day: one purchase worth 15
        (1, "2020-01-04 09:00", 20.0),
        (1, "2020-01-08 18:00", 30.0),
        (1, "2020-01-10 00:00", 99.0),  # at the cutoff: ignored
        (2, "2020-01-09 23:59", 7.0),
        (3, "2020-01-12 12:00", 1.0),  # after the cutoff only: absent
    ]
    return pd.DataFrame(rows, columns=["cust", "when", "spend"]).assign(
        when=lambda d: pd.to_datetime(d["when"])
    )


def test_summary_by_day(tiny_tx):
    s = summary_data_from_transactions(
        tiny_tx, "cust", "when", "spend", observation_period_end="2020-01-10"
    )
    assert list(s.index) == [1, 2] and s.index.name == "cust"
    # T runs to the last day before the cutoff (9 January)
    assert s.loc[1].to_dict() == {
        "frequency": 2.0,
        "recency": 7.0,
        "T": 8.0,
        "monetary_value": 25.0,
    }
    assert s.loc[2].to_dict() == {"frequency": 0.0, "recency": 0.0, "T": 0.0, "monetary_value": 0.0}
    weeks = summary_data_from_transactions(
        tiny_tx, "cust", "when", observation_period_end="2020-01-10", freq_multiplier=7
    )
    assert weeks.loc[1, "recency"] == pytest.approx(1.0) and weeks.loc[1, "T"] == pytest.approx(
        8 / 7
    )
    assert "monetary_value" not in weeks


def test_summary_by_week(tiny_tx):
    # weeks run Monday-Sunday: 30 Dec-5 Jan holds 1 and 4 January, 6-12 Jan holds 8 January
    s = summary_data_from_transactions(
        tiny_tx, "cust", "when", "spend", observation_period_end="2020-01-10", freq="W"
    )
    assert s.loc[1].to_dict() == {
        "frequency": 1.0,
        "recency": 1.0,
        "T": 1.0,
        "monetary_value": 30.0,
    }
    assert s.loc[2, "T"] == 0.0


def test_summary_reads_nothing_at_or_after_the_cutoff(tiny_tx):
    cutoff = pd.Timestamp("2020-01-10")
    base = summary_data_from_transactions(
        tiny_tx, "cust", "when", "spend", observation_period_end=cutoff
    )
    later = tiny_tx.copy()
    later.loc[later["when"] >= cutoff, "spend"] = 1e6
    extra = pd.DataFrame(
        {"cust": [1, 4], "when": pd.to_datetime(["2020-01-10", "2020-02-01"]), "spend": [5.0, 5.0]}
    )
    later = pd.concat([later, extra], ignore_index=True)
    pd.testing.assert_frame_equal(
        base,
        summary_data_from_transactions(
            later, "cust", "when", "spend", observation_period_end=cutoff
        ),
    )


def test_summary_errors(tiny_tx):
    with pytest.raises(ValueError, match="observation_period_end .* is required"):
        summary_data_from_transactions(tiny_tx, "cust", "when")
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['price'\]"):
        summary_data_from_transactions(
            tiny_tx, "cust", "when", "price", observation_period_end="2020-01-10"
        )
    with pytest.raises(ValueError, match="No transactions before"):
        summary_data_from_transactions(tiny_tx, "cust", "when", observation_period_end="2019-01-01")
    with pytest.raises(ValueError, match="freq must be one of"):
        summary_data_from_transactions(
            tiny_tx, "cust", "when", observation_period_end="2020-01-10", freq="M"
        )
    bad = tiny_tx.copy()
    bad.loc[2, "when"] = pd.NaT
    with pytest.raises(
        ValueError, match=r"missing values in the 'when' column: 1 row\(s\), first at position 2"
    ):
        summary_data_from_transactions(bad, "cust", "when", observation_period_end="2020-01-10")
    bad = tiny_tx.assign(spend=[1.0, np.nan, 1, 1, 1, 1, 1])
    with pytest.raises(ValueError, match=r"NaN or non-numeric values in the 'spend' column"):
        summary_data_from_transactions(
            bad, "cust", "when", "spend", observation_period_end="2020-01-10"
        )


# --------------------------------------------------------------------------- simulate and recover


def test_simulate_and_recover_bgnbd():
    # 8,000 customers observed 26-78 weeks: relative standard errors are ~2-4% (r, alpha)
    # and ~9-12% (a, b), so each estimate must lie within 4 standard errors of the truth
    # and the standard errors must be that small (else the check would be toothless).
    truth = {"r": 0.5, "alpha": 8.0, "a": 0.8, "b": 2.5}
    rng = np.random.default_rng(7)
    s = sample_bgnbd(rng.uniform(26, 78, size=8000), **truth, rng=rng)
    bgf = BetaGeoFitter().fit(s["frequency"], s["recency"], s["T"])
    se = bgf.standard_errors()
    for name, value in truth.items():
        assert se[name] / value < 0.15, (name, se[name])
        assert abs(bgf.params_[name] - value) < 4 * se[name], (
            name,
            bgf.params_[name],
            value,
            se[name],
        )


def test_simulator_agrees_with_the_model_formulas():
    params = {"r": 0.5, "alpha": 8.0, "a": 0.8, "b": 2.5}
    bgf = BetaGeoFitter()
    bgf.params_ = pd.Series(params)
    n, t_cal, t_hold = 20000, 39.0, 39.0
    rng = np.random.default_rng(5)
    s = sample_bgnbd(np.full(n, t_cal), **params, rng=rng)
    sem = s["frequency"].std() / math.sqrt(n)
    assert abs(s["frequency"].mean() - bgf.expected_number_of_purchases_up_to_time(t_cal)) < 4 * sem
    p_alive = bgf.conditional_probability_alive(s["frequency"], s["recency"], s["T"])
    assert abs(p_alive.mean() - s["alive"].mean()) < 4 * math.sqrt(0.25 / n)
    # the same customers' futures: simulate to T + t and cut at T
    long, events = sample_bgnbd(np.full(n, t_cal + t_hold), **params, rng=rng, return_events=True)
    cal = events[events["time"] <= t_cal].groupby("customer")["time"].agg(["size", "max"])
    future = (events["time"] > t_cal).groupby(events["customer"]).sum()
    pred = bgf.conditional_expected_number_of_purchases_up_to_time(
        t_hold, cal["size"] - 1, cal["max"], t_cal
    )
    assert rel_err(pred.sum(), future.sum()) < 0.05
    assert long["frequency"].sum() == len(events) - n


# --------------------------------------------------------------------------- wrapper on a planted shop

CUTOFF = pd.Timestamp("2017-09-01")


@pytest.fixture(scope="module")
def shop():
    return make_shop(1500, seed=3)


@pytest.fixture(scope="module")
def fitted(shop):
    tx, _ = shop
    return ProbabilisticValueModel().fit(tx, CUTOFF)


def test_synthetic_shop_honours_the_contract(shop):
    tx, truth = shop
    validate(Tables(transactions=tx))
    assert (tx["sales_value"] < 0).sum() > 50 and tx["customer_id"].nunique() == len(truth)


def test_predict_shape_and_invariants(shop, fitted):
    tx, _ = shop
    pred = fitted.predict(tx, CUTOFF)
    assert pred.index.name == "customer_id"
    assert list(pred.columns) == [
        "expected_purchases_90d",
        "p_alive",
        "expected_avg_spend",
        "expected_spend_90d",
        "clv_1y",
    ]
    first_visit = visit_days(tx, CUTOFF).groupby("customer_id").size().index
    assert pred.index.equals(first_visit)
    assert pred.notna().all().all()
    assert ((pred["p_alive"] > 0) & (pred["p_alive"] <= 1)).all()
    assert (pred["expected_purchases_90d"] >= 0).all()
    np.testing.assert_allclose(
        pred["expected_spend_90d"], pred["expected_purchases_90d"] * pred["expected_avg_spend"]
    )
    assert (pred["clv_1y"] > pred["expected_spend_90d"]).all()
    assert fitted.n_customers_ == len(pred) and 0 < fitted.n_repeat_buyers_ < len(pred)
    short = fitted.predict(tx, CUTOFF, horizon_days=30)
    assert (short["expected_purchases_30d"] < pred["expected_purchases_90d"]).all()


def test_wrapper_recovers_the_planted_parameters(fitted):
    # Visits are continuous-time BG/NBD events rounded to days (1,500 customers): each
    # parameter within 4 standard errors, the purchase rate r/alpha within 10%, the mean
    # spend per visit p v / (q - 1) within 5% (same-day returns lower it by ~1.5%).
    est, se = fitted.bgf_.params_, fitted.bgf_.standard_errors()
    for name, value in PLANTED_BGNBD.items():
        assert abs(est[name] - value) < 4 * se[name], (name, est[name], value, se[name])
    rate = PLANTED_BGNBD["r"] / PLANTED_BGNBD["alpha"]
    assert rel_err(est["r"] / est["alpha"], rate) < 0.10
    mean_spend = PLANTED_GG["p"] * PLANTED_GG["v"] / (PLANTED_GG["q"] - 1)
    assert rel_err(fitted.ggf_.conditional_expected_average_profit(), mean_spend) < 0.05


def test_wrapper_forecasts_the_holdout(shop, fitted):
    tx, _ = shop
    pred = fitted.predict(tx, CUTOFF)
    end = CUTOFF + pd.Timedelta(days=90)
    future = visit_days(tx, end)
    future = future[future["timestamp"] >= CUTOFF].groupby("customer_id")
    visits = future.size().reindex(pred.index, fill_value=0)
    spend = future["sales_value"].sum().reindex(pred.index, fill_value=0.0)
    # measured: 1,655 forecast vs 1,537 visit days (+7.7%), Spearman 0.60 / 0.59
    assert rel_err(pred["expected_purchases_90d"].sum(), visits.sum()) < 0.15
    assert rel_err(pred["expected_spend_90d"].sum(), spend.sum()) < 0.15
    assert spearmanr(pred["expected_purchases_90d"], visits)[0] > 0.45
    assert spearmanr(pred["expected_spend_90d"], spend)[0] > 0.45


def test_wrapper_reads_nothing_at_or_after_the_cutoff(shop, fitted):
    tx, _ = shop
    altered = tx.copy()
    after = altered["timestamp"] >= CUTOFF
    altered.loc[after, "sales_value"] *= 10
    altered = altered[~after | (np.arange(len(altered)) % 2 == 0)]  # and drop half of the future
    refit = ProbabilisticValueModel().fit(altered, CUTOFF)
    pd.testing.assert_series_equal(refit.bgf_.params_, fitted.bgf_.params_)
    pd.testing.assert_frame_equal(refit.predict(altered, CUTOFF), fitted.predict(tx, CUTOFF))


def test_returns_are_netted_per_day():
    day = pd.Timestamp("2017-03-01")
    rows = [
        # customer 1: buys 50 on day 0, returns 20 on day 2 (return-only day: not a visit),
        # buys 30 and returns 10 on day 5 (one visit worth 20)
        (1, 1, day, 1.0, 50.0),
        (1, 2, day + pd.Timedelta(days=2), -1.0, -20.0),
        (1, 3, day + pd.Timedelta(days=5, hours=9), 1.0, 30.0),
        (1, 3, day + pd.Timedelta(days=5, hours=9), -1.0, -10.0),
        # customer 2: only a return before the cutoff -> unknown to the model
        (2, 4, day, -1.0, -5.0),
    ]
    tx = pd.DataFrame(
        rows, columns=["customer_id", "basket_id", "timestamp", "quantity", "sales_value"]
    )
    cutoff = day + pd.Timedelta(days=10)
    s = ProbabilisticValueModel().summary(tx, cutoff)
    assert list(s.index) == [1]
    assert s.loc[1].to_dict() == {
        "frequency": 1.0,
        "recency": 5.0,
        "T": 9.0,
        "monetary_value": 20.0,
    }


def test_time_unit_does_not_change_predictions(shop, fitted):
    # weeks counted in days (freq_multiplier=7) rescale alpha by 1/7 and nothing else
    tx, _ = shop
    weekly = ProbabilisticValueModel(ValueModelConfig(freq_multiplier=7)).fit(tx, CUTOFF)
    assert weekly.bgf_.params_["alpha"] == pytest.approx(fitted.bgf_.params_["alpha"] / 7, rel=1e-4)
    pd.testing.assert_frame_equal(weekly.predict(tx, CUTOFF), fitted.predict(tx, CUTOFF), rtol=1e-4)


def test_weekly_purchase_periods(shop):
    tx, _ = shop
    tx = tx[tx["customer_id"] < 1500]  # 500 customers are enough here
    model = ProbabilisticValueModel(ValueModelConfig(freq="W")).fit(tx, CUTOFF)
    pred = model.predict(tx, CUTOFF)
    daily_summary = ProbabilisticValueModel().summary(tx, CUTOFF)
    weekly_summary = model.summary(tx, CUTOFF)
    assert (weekly_summary["frequency"] <= daily_summary["frequency"]).all()
    assert pred.notna().all().all() and (pred["expected_purchases_90d"] > 0).all()


def test_config_is_saved_with_the_model(shop, tmp_path):
    tx, _ = shop
    tx = tx[tx["customer_id"] < 1500]  # 500 customers are enough here
    cfg = ValueModelConfig(discount_rate=0.02, penalizer_coef=0.001, horizon_days=60)
    model = ProbabilisticValueModel(cfg).fit(Tables(transactions=tx), CUTOFF)
    loaded = ProbabilisticValueModel.load(model.save(tmp_path / "value.json"))
    assert loaded.config == cfg and loaded.cutoff_ == CUTOFF
    pred = loaded.predict(tx, CUTOFF)
    assert "expected_purchases_60d" in pred
    pd.testing.assert_frame_equal(pred, model.predict(tx, CUTOFF))
    with pytest.raises(ValueError, match="Unknown ValueModelConfig keys"):
        ValueModelConfig.from_dict({"freq": "D", "horizon": 30})
    with pytest.raises(ValueError, match="freq must be one of"):
        ValueModelConfig(freq="M")


def test_fit_details_are_debug_lines_not_progress(caplog):
    """train / evaluate / predict fit BG/NBD and Gamma-Gamma once per training cutoff:
    their parameters are DEBUG lines (``--verbose``), not dozens of INFO lines."""
    freq = np.array([0, 1, 2, 3, 5, 0, 2, 4])
    rec = np.array([0, 10, 20, 30, 35, 0, 15, 38.0])
    T = np.full(8, 40.0)
    with caplog.at_level("INFO", logger="training.clv"):
        BetaGeoFitter().fit(freq, rec, T)
        GammaGammaFitter().fit(freq[freq > 0], np.array([10, 12, 9, 20, 11, 14.0]))
    assert not [r for r in caplog.records if "fitted on" in r.getMessage()]
    with caplog.at_level("DEBUG", logger="training.clv"):
        BetaGeoFitter().fit(freq, rec, T)
    assert any("BG/NBD fitted on" in r.getMessage() for r in caplog.records)
