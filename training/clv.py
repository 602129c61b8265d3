"""Probabilistic customer value: BG/NBD repeat buying + Gamma-Gamma spend.

Own implementation with numpy/scipy of the models popularised by ``lifetimes`` (which is
unmaintained), with the same names and conventions so its documentation still helps:

* :class:`BetaGeoFitter` -- BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers
  the easy way"). A customer buys as a Poisson process with rate ``lambda ~ Gamma(r,
  alpha)`` and, after each *repeat* purchase, drops out for good with probability
  ``p ~ Beta(a, b)``.
* :class:`GammaGammaFitter` -- the spend model (Fader, Hardie & Lee 2005b; Colombo &
  Jiang 1999): each purchase value ``z ~ Gamma(p, nu)`` with ``nu ~ Gamma(q, gamma)``.
* :func:`summary_data_from_transactions` -- RFM summary (frequency, recency, T,
  monetary_value) as of an explicit, exclusive cutoff.
* :class:`ProbabilisticValueModel` -- the two models behind one ``fit(transactions,
  cutoff)`` / ``predict(transactions, cutoff)`` shape over the canonical ``transactions``
  table (features/contract.py).

Conventions (as in lifetimes and Hardie's spreadsheets): ``frequency`` is the number of
*repeat* purchase periods (distinct purchase days by default), ``recency`` the time from
the first to the last purchase, ``T`` the time from the first purchase to the end of the
observation period, all in one time unit; ``monetary_value`` the mean value of the repeat
purchases (the first purchase is excluded).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, expit, gammaln, hyp2f1

logger = logging.getLogger(__name__)

#: Length of one ``freq`` period in days (before ``freq_multiplier``).
FREQ_DAYS = {"D": 1.0, "W": 7.0}
#: Periods per month used to step the CLV sum; the same factors as lifetimes.
PERIODS_PER_MONTH = {"D": 30.0, "W": 4.345}

BGNBD_PARAMS = ("r", "alpha", "a", "b")
GAMMA_GAMMA_PARAMS = ("p", "q", "v")


# --------------------------------------------------------------------------- validation


def _as_1d(name: str, values) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _first_bad(mask: np.ndarray) -> str:
    idx = np.flatnonzero(mask)
    return f"{len(idx)} row(s), first at position {int(idx[0])}"


def _check_finite(name: str, arr: np.ndarray) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(
            f"There exist NaN or infinite values in the {name} vector: {_first_bad(bad)}."
        )


def _check_inputs(
    frequency,
    recency=None,
    T=None,
    monetary_value=None,
    weights=None,
) -> tuple[np.ndarray, ...]:
    """Validate model inputs at the boundary and return them as float arrays.

    The messages start like lifetimes' ``_check_inputs`` and add how many rows are wrong
    and where the first one is.
    """
    x = _as_1d("frequency", frequency)
    named = {"frequency": x}
    if recency is not None:
        named["recency"] = _as_1d("recency", recency)
    if T is not None:
        named["T"] = _as_1d("T", T)
    if monetary_value is not None:
        named["monetary_value"] = _as_1d("monetary_value", monetary_value)
    if weights is not None:
        named["weights"] = _as_1d("weights", weights)
    lengths = {k: len(v) for k, v in named.items()}
    if min(lengths.values()) == 0:
        raise ValueError(f"There exists a zero length vector in one of {', '.join(named)}.")
    n = max(lengths.values())
    if any(v not in (1, n) for v in lengths.values()):
        raise ValueError(f"Vectors have different lengths: {lengths}")
    # scalars (length 1) broadcast, e.g. one T for every customer
    named = {k: np.broadcast_to(v, (n,)) for k, v in named.items()}
    for k, v in named.items():
        _check_finite(k, v)

    if (x < 0).any():
        raise ValueError(
            f"There exist negative values in the frequency vector: {_first_bad(x < 0)}."
        )
    nonint = x != np.round(x)
    if nonint.any():
        raise ValueError(
            f"There exist non-integer values in the frequency vector: {_first_bad(nonint)}."
        )
    if "recency" in named:
        rec = named["recency"]
        if (rec < 0).any():
            raise ValueError(
                "There exist negative recency (ex: last order set before first order): "
                f"{_first_bad(rec < 0)}."
            )
        zero_freq = (x == 0) & (rec != 0)
        if zero_freq.any():
            raise ValueError(
                f"There exist non-zero recency values when frequency is zero: {_first_bad(zero_freq)}."
            )
    if "T" in named:
        t_obs = named["T"]
        if (t_obs < 0).any():
            raise ValueError(
                f"There exist negative values in the T vector: {_first_bad(t_obs < 0)}."
            )
        if "recency" in named:
            # a small slack absorbs rounding in published summaries (2 decimals)
            too_late = named["recency"] > t_obs + 1e-9
            if too_late.any():
                i = int(np.flatnonzero(too_late)[0])
                raise ValueError(
                    "Some values in recency vector are larger than T vector: "
                    f"{_first_bad(too_late)} (recency={named['recency'][i]:g}, T={t_obs[i]:g})."
                )
    if "monetary_value" in named:
        m = named["monetary_value"]
        if (m <= 0).any():
            raise ValueError(
                f"There exist non-positive (<= 0) values in the monetary_value vector: {_first_bad(m <= 0)}."
            )
    if "weights" in named:
        w = named["weights"]
        if (w < 0).any():
            raise ValueError(
                f"There exist negative values in the weights vector: {_first_bad(w < 0)}."
            )
        if w.sum() <= 0:
            raise ValueError("The weights vector sums to zero.")
    return tuple(named.values())


def _like(result: np.ndarray, *inputs):
    """Return ``result`` shaped like the inputs: a float for scalars, a Series for Series."""
    for v in inputs:
        if isinstance(v, pd.Series) and len(v) == len(np.atleast_1d(result)):
            return pd.Series(np.atleast_1d(result), index=v.index)
    if all(np.ndim(v) == 0 for v in inputs):
        return float(np.asarray(result).reshape(-1)[0])
    return np.asarray(result)


#: The Nelder-Mead polish stops when the mean negative log-likelihood has gained less than
#: STALL_GAIN over the last STALL_ITERATIONS steps (a ridge; a converging fit stops before).
STALL_GAIN = 1e-12
STALL_ITERATIONS = 300


def _fit_log_params(objective, x0: np.ndarray, names: tuple[str, ...]) -> tuple[np.ndarray, object]:
    """Minimise ``objective(log_params)``: L-BFGS-B from ``x0``, then a Nelder-Mead polish.

    The polish matters: L-BFGS-B on finite-difference gradients stops a few 1e-4 away in
    the flat directions of these likelihoods, which is visible at 3 significant digits.
    """

    def safe(z):
        val = objective(z)
        return val if np.isfinite(val) else 1e100

    bounds = [(-20.0, 20.0)] * len(x0)
    first = minimize(safe, x0, method="L-BFGS-B", bounds=bounds)
    history: list[float] = []

    def stop_on_a_ridge(intermediate_result) -> None:
        # On a flat ridge (a and b of BG/NBD growing together, say) the simplex walks on
        # for its whole budget of 40,000 evaluations (seconds per fit, most of a small
        # shop's training) while the likelihood no longer moves: stop once it has gained
        # less than STALL_GAIN over the last STALL_ITERATIONS steps.
        history.append(intermediate_result.fun)
        if (
            len(history) > STALL_ITERATIONS
            and history[-STALL_ITERATIONS - 1] - history[-1] < STALL_GAIN
        ):
            raise StopIteration

    polish = minimize(
        safe,
        first.x,
        method="Nelder-Mead",
        callback=stop_on_a_ridge,
        options={"xatol": 1e-9, "fatol": 1e-13, "maxiter": 20000, "maxfev": 40000},
    )
    best = polish if polish.fun <= first.fun else first
    stalled = len(history) > STALL_ITERATIONS and polish.status == 99  # StopIteration
    if not np.isfinite(objective(best.x)):
        raise RuntimeError(
            f"Optimisation failed: non-finite likelihood at {dict(zip(names, np.exp(best.x), strict=True))}"
        )
    if stalled:
        logger.debug(
            "%s: a flat likelihood ridge (less than %.0e gained in %d Nelder-Mead steps); "
            "keeping %s",
            "/".join(names),
            STALL_GAIN,
            STALL_ITERATIONS,
            ", ".join(f"{n}={v:.4g}" for n, v in zip(names, np.exp(best.x), strict=True)),
        )
    elif not polish.success:
        # typically a flat ridge (e.g. BG/NBD's a and b growing together when dropout is
        # nearly deterministic): say how much the polish gained so the user can judge
        logger.warning(
            "%s: the Nelder-Mead polish stopped before converging (%s); keeping the best "
            "point found (mean log-likelihood %.3g above L-BFGS-B's): %s",
            "/".join(names),
            polish.message.rstrip("."),
            first.fun - best.fun,
            ", ".join(f"{n}={v:.4g}" for n, v in zip(names, np.exp(best.x), strict=True)),
        )
    return np.exp(best.x), best


def _numerical_hessian(f, z: np.ndarray, h: float = 1e-4) -> np.ndarray:
    """Central-difference Hessian of a scalar function."""
    n = len(z)
    hess = np.empty((n, n))
    for i in range(n):
        for j in range(i, n):
            ei = np.zeros(n)
            ej = np.zeros(n)
            ei[i] = h
            ej[j] = h
            val = (f(z + ei + ej) - f(z + ei - ej) - f(z - ei + ej) + f(z - ei - ej)) / (4 * h * h)
            hess[i, j] = hess[j, i] = val
    return hess


# --------------------------------------------------------------------------- BG/NBD


def bgnbd_log_likelihood(params, frequency, recency, T) -> np.ndarray:
    """Per-customer BG/NBD log-likelihood (Fader, Hardie & Lee 2005, eq. 6).

    Parameters
    ----------
    params : sequence of float
        ``(r, alpha, a, b)``, all > 0.
    frequency, recency, T : array-like
        Repeat purchases ``x``, time of the last purchase ``t_x`` and observation length
        ``T``, all measured from the first purchase.

    Returns
    -------
    numpy.ndarray
        ``log L_i`` per customer.
    """
    r, alpha, a, b = params
    x = np.asarray(frequency, dtype=float)
    t_x = np.asarray(recency, dtype=float)
    t_obs = np.asarray(T, dtype=float)
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + betaln(a, b + x) - betaln(a, b)
    alive = -(r + x) * np.log(alpha + t_obs)
    with np.errstate(divide="ignore", invalid="ignore"):
        # B(a+1, b+x-1) / B(a, b+x) = a / (b + x - 1)
        dead = np.where(
            x > 0,
            np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) - (r + x) * np.log(alpha + t_x),
            -np.inf,
        )
    return common + np.logaddexp(alive, dead)


class BetaGeoFitter:
    """BG/NBD repeat-buying model fitted by maximum likelihood.

    Parameters
    ----------
    penalizer_coef : float, default 0.0
        L2 penalty on the parameters added to the *mean* negative log-likelihood, as in
        lifetimes; useful on small or odd samples, 0 reproduces published estimates.

    Attributes
    ----------
    params_ : pandas.Series
        Fitted ``r, alpha, a, b``.
    log_likelihood_ : float
        Total (weighted) log-likelihood at ``params_``, without the penalty.
    n_customers_ : int
        Rows used (or total weight).
    """

    def __init__(self, penalizer_coef: float = 0.0):
        self.penalizer_coef = penalizer_coef

    def fit(self, frequency, recency, T, weights=None, initial_params=None) -> BetaGeoFitter:
        """Fit on one row per customer (or per distinct row with ``weights`` = counts).

        Parameters
        ----------
        frequency, recency, T : array-like
            See :func:`summary_data_from_transactions`; one time unit throughout.
        weights : array-like, optional
            Row multiplicities (for compressed data).
        initial_params : sequence of float, optional
            ``(r, alpha, a, b)`` start; by default a moment-based guess.

        Returns
        -------
        BetaGeoFitter
        """
        if self.penalizer_coef < 0:
            raise ValueError(f"penalizer_coef must be >= 0, got {self.penalizer_coef}")
        if weights is None:
            x, t_x, t_obs = _check_inputs(frequency, recency, T)
            w = np.ones_like(x)
        else:
            x, t_x, t_obs, w = _check_inputs(frequency, recency, T, weights=weights)
        if not (x > 0).any():
            raise ValueError(
                "Cannot fit BG/NBD: no customer has a repeat purchase (all frequency == 0)."
            )
        w_sum = w.sum()
        pen = self.penalizer_coef

        def objective(log_params):
            params = np.exp(log_params)
            ll = bgnbd_log_likelihood(params, x, t_x, t_obs)
            return -(w * ll).sum() / w_sum + pen * (params**2).sum()

        if initial_params is None:
            # Purchase rate of customers ignoring dropout, with r = 1 as shape; a = 1, b = 3
            # (a mean dropout probability of 1/4 per purchase) is the usual ballpark.
            rate = max((w * x).sum() / max((w * t_obs).sum(), 1e-12), 1e-6)
            initial_params = (1.0, 1.0 / rate, 1.0, 3.0)
        x0 = np.log(np.asarray(initial_params, dtype=float))
        params, res = _fit_log_params(objective, x0, BGNBD_PARAMS)
        self.params_ = pd.Series(params, index=list(BGNBD_PARAMS))
        self.log_likelihood_ = float((w * bgnbd_log_likelihood(params, x, t_x, t_obs)).sum())
        self.n_customers_ = float(w_sum)
        self.optimizer_result_ = res
        self._data = (x, t_x, t_obs, w)
        logger.debug(
            "BG/NBD fitted on %d customers: r=%.4f alpha=%.4f a=%.4f b=%.4f LL=%.2f",
            int(w_sum),
            *params,
            self.log_likelihood_,
        )
        return self

    def standard_errors(self) -> pd.Series:
        """Asymptotic standard errors of ``r, alpha, a, b`` at the fit.

        From the inverse of the observed information (numerical Hessian of the total
        negative log-likelihood in log-parameters, mapped back by the delta method).
        The penalty is ignored.
        """
        if not hasattr(self, "_data"):
            raise RuntimeError("standard_errors() needs a model fitted in this session.")
        x, t_x, t_obs, w = self._data
        log_params = np.log(self.params_.to_numpy())

        def nll(z):
            return -(w * bgnbd_log_likelihood(np.exp(z), x, t_x, t_obs)).sum()

        cov = np.linalg.inv(_numerical_hessian(nll, log_params))
        return pd.Series(np.exp(log_params) * np.sqrt(np.diag(cov)), index=list(BGNBD_PARAMS))

    # ----------------------------------------------------------------- predictions

    def _params(self) -> tuple[float, float, float, float]:
        if not hasattr(self, "params_"):
            raise RuntimeError("BetaGeoFitter is not fitted yet: call fit() first.")
        return tuple(float(self.params_[k]) for k in BGNBD_PARAMS)

    def conditional_expected_number_of_purchases_up_to_time(self, t, frequency, recency, T):
        """Expected repeat purchases in ``(T, T + t]`` given a customer's history (eq. 10).

        Returns a float for scalar inputs, a Series (with the input's index) if any input
        is a Series, else an array.
        """
        r, alpha, a, b = self._params()
        x, t_x, t_obs = _check_inputs(frequency, recency, T)
        t_arr = np.asarray(t, dtype=float)
        if (t_arr < 0).any() or not np.isfinite(t_arr).all():
            raise ValueError(f"t must be finite and >= 0, got {t}")
        ca, cb, cc = r + x, b + x, a + b + x - 1
        z = t_arr / (alpha + t_obs + t_arr)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            hyp = hyp2f1(ca, cb, cc, z)
            # Euler's transformation when the direct series overflows for z near 1
            hyp_alt = hyp2f1(cc - ca, cc - cb, cc, z)
            direct = np.isfinite(hyp)
            # the term is negative when c = a + b + x - 1 < 0 (x = 0 and a + b < 1): keep its
            # sign apart from the log of its size
            sign = np.where(direct, np.sign(hyp), np.sign(hyp_alt))
            ln_hyp = np.where(
                direct,
                np.log(np.abs(hyp)),
                np.log(np.abs(hyp_alt)) + (cc - ca - cb) * np.log1p(-z),
            )
            first = (a + b + x - 1) / (a - 1)
            ln_term = ln_hyp + (r + x) * np.log((alpha + t_obs) / (alpha + t_obs + t_arr))
            second = np.where(sign < 0, 1 + np.exp(ln_term), -np.expm1(ln_term))
            denom = 1 + (x > 0) * (a / np.maximum(b + x - 1, 1e-300)) * (
                (alpha + t_obs) / (alpha + t_x)
            ) ** (r + x)
        out = first * second / denom
        return _like(out, frequency, recency, T, t)

    def conditional_probability_alive(self, frequency, recency, T):
        """P(customer still alive at T | history) (eq. 13); 1 for customers with no repeat."""
        r, alpha, a, b = self._params()
        x, t_x, t_obs = _check_inputs(frequency, recency, T)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_odds_dead = (r + x) * np.log((alpha + t_obs) / (alpha + t_x)) + np.log(
                a / np.maximum(b + x - 1, 1e-300)
            )
        out = np.where(x == 0, 1.0, expit(-log_odds_dead))
        return _like(out, frequency, recency, T)

    def expected_number_of_purchases_up_to_time(self, t):
        """Expected repeat purchases in ``(0, t]`` for a new customer (eq. 9)."""
        r, alpha, a, b = self._params()
        t_arr = np.asarray(t, dtype=float)
        if (t_arr < 0).any() or not np.isfinite(t_arr).all():
            raise ValueError(f"t must be finite and >= 0, got {t}")
        z = t_arr / (alpha + t_arr)
        out = (
            (a + b - 1)
            / (a - 1)
            * (1 - hyp2f1(r, b, a + b - 1, z) * (alpha / (alpha + t_arr)) ** r)
        )
        return _like(out, t)


def sample_bgnbd(
    T,
    r: float,
    alpha: float,
    a: float,
    b: float,
    rng: np.random.Generator,
    return_events: bool = False,
):
    """Draw customers from the BG/NBD process (for simulate-and-recover checks).

    Each customer buys at time 0, then as a Poisson process with rate ``lambda ~
    Gamma(r, rate=alpha)``; after each repeat purchase they drop out with probability
    ``p ~ Beta(a, b)``. Purchases up to ``T`` are observed.

    Parameters
    ----------
    T : array-like
        Observation length per customer (its size is the number of customers).
    r, alpha, a, b : float
        BG/NBD parameters.
    rng : numpy.random.Generator
    return_events : bool, default False
        Also return every purchase as ``(customer, time)`` rows, the first at time 0.

    Returns
    -------
    pandas.DataFrame or (pandas.DataFrame, pandas.DataFrame)
        ``frequency, recency, T, lambda_, p_, alive`` per customer (index 0..n-1), and
        the events when asked.
    """
    t_obs = np.asarray(T, dtype=float)
    n = len(t_obs)
    lam = rng.gamma(r, 1.0 / alpha, size=n)
    p = rng.beta(a, b, size=n)
    now = np.zeros(n)
    count = np.zeros(n, dtype=np.int64)
    active = np.ones(n, dtype=bool)  # alive and still inside the observation window
    alive = np.ones(n, dtype=bool)
    ev_c, ev_t = [np.arange(n)], [np.zeros(n)]
    while active.any():
        idx = np.flatnonzero(active)
        nxt = now[idx] + rng.exponential(1.0, size=len(idx)) / np.maximum(lam[idx], 1e-300)
        inside = nxt <= t_obs[idx]
        active[idx[~inside]] = False
        buy = idx[inside]
        now[buy] = nxt[inside]
        count[buy] += 1
        ev_c.append(buy)
        ev_t.append(nxt[inside])
        dies = rng.random(len(buy)) < p[buy]
        alive[buy[dies]] = False
        active[buy[dies]] = False
    summary = pd.DataFrame(
        {
            "frequency": count.astype(float),
            "recency": now,
            "T": t_obs,
            "lambda_": lam,
            "p_": p,
            "alive": alive,
        }
    )
    if not return_events:
        return summary
    events = pd.DataFrame({"customer": np.concatenate(ev_c), "time": np.concatenate(ev_t)})
    return summary, events.sort_values(["customer", "time"], kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------- Gamma-Gamma


def gamma_gamma_log_likelihood(params, frequency, monetary_value) -> np.ndarray:
    """Per-customer Gamma-Gamma log-likelihood of the mean spend ``m`` over ``x`` purchases.

    The mean of ``x`` Gamma(p, nu) values is Gamma(p x, nu x); integrating nu over
    Gamma(q, v) gives the density used here.
    """
    p, q, v = params
    x = np.asarray(frequency, dtype=float)
    m = np.asarray(monetary_value, dtype=float)
    return (
        gammaln(p * x + q)
        - gammaln(p * x)
        - gammaln(q)
        + q * np.log(v)
        + (p * x - 1) * np.log(m)
        + (p * x) * np.log(x)
        - (p * x + q) * np.log(x * m + v)
    )


class GammaGammaFitter:
    """Gamma-Gamma model of the mean value of a customer's repeat purchases.

    Fit on repeat buyers only (frequency > 0). ``params_`` holds ``p, q, v``; ``v`` is
    the ``gamma`` of Fader, Hardie & Lee's note and is also available as ``gamma``.

    Parameters
    ----------
    penalizer_coef : float, default 0.0
        L2 penalty added to the mean negative log-likelihood (as in lifetimes).
    """

    def __init__(self, penalizer_coef: float = 0.0):
        self.penalizer_coef = penalizer_coef

    def fit(self, frequency, monetary_value, weights=None, initial_params=None) -> GammaGammaFitter:
        """Fit by maximum likelihood.

        Parameters
        ----------
        frequency : array-like
            Repeat purchases per customer; every value must be > 0.
        monetary_value : array-like
            Mean value of those repeat purchases; every value must be > 0.
        weights : array-like, optional
            Row multiplicities.
        initial_params : sequence of float, optional
            ``(p, q, v)`` start.

        Returns
        -------
        GammaGammaFitter
        """
        if self.penalizer_coef < 0:
            raise ValueError(f"penalizer_coef must be >= 0, got {self.penalizer_coef}")
        x0_ = _as_1d("frequency", frequency)
        if len(x0_) and np.isfinite(x0_).all() and (x0_ <= 0).any():
            raise ValueError(
                "Gamma-Gamma is fitted on repeat buyers only: there exist frequency <= 0 values: "
                f"{_first_bad(x0_ <= 0)}; pass the rows with frequency > 0."
            )
        if weights is None:
            x, m = _check_inputs(frequency, monetary_value=monetary_value)
            w = np.ones_like(x)
        else:
            x, m, w = _check_inputs(frequency, monetary_value=monetary_value, weights=weights)
        if len(x) < 2:
            raise ValueError(f"Gamma-Gamma needs at least 2 repeat buyers, got {len(x)}.")
        w_sum = w.sum()
        pen = self.penalizer_coef

        def objective(log_params):
            params = np.exp(log_params)
            return (
                -(w * gamma_gamma_log_likelihood(params, x, m)).sum() / w_sum
                + pen * (params**2).sum()
            )

        if initial_params is None:
            # E[z] = p v / (q - 1): start with p = 2, q = 3 and match the observed mean spend.
            mean_spend = (w * m).sum() / w_sum
            initial_params = (2.0, 3.0, mean_spend)
        params, res = _fit_log_params(
            objective, np.log(np.asarray(initial_params, dtype=float)), GAMMA_GAMMA_PARAMS
        )
        self.params_ = pd.Series(params, index=list(GAMMA_GAMMA_PARAMS))
        self.log_likelihood_ = float((w * gamma_gamma_log_likelihood(params, x, m)).sum())
        self.n_customers_ = float(w_sum)
        self.optimizer_result_ = res
        if params[1] <= 1:
            logger.warning(
                "Gamma-Gamma q=%.3f <= 1: the population mean spend is infinite", params[1]
            )
        logger.debug(
            "Gamma-Gamma fitted on %d repeat buyers: p=%.4f q=%.4f v=%.4f", int(w_sum), *params
        )
        return self

    @property
    def gamma(self) -> float:
        """The scale parameter ``v`` under the name used by Fader, Hardie & Lee."""
        return float(self._params()[2])

    def _params(self) -> tuple[float, float, float]:
        if not hasattr(self, "params_"):
            raise RuntimeError("GammaGammaFitter is not fitted yet: call fit() first.")
        return tuple(float(self.params_[k]) for k in GAMMA_GAMMA_PARAMS)

    def conditional_expected_average_profit(self, frequency=None, monetary_value=None):
        """E[mean purchase value | x, m] = p (v + x m) / (p x + q - 1).

        Without arguments, the population mean ``p v / (q - 1)``. Customers with
        ``frequency == 0`` get the population mean whatever their ``monetary_value``.
        """
        p, q, v = self._params()
        if q <= 1:
            raise ValueError(f"q = {q:.4f} <= 1: the expected spend is infinite under this fit.")
        if frequency is None and monetary_value is None:
            return p * v / (q - 1)
        if frequency is None or monetary_value is None:
            raise ValueError("Pass both frequency and monetary_value, or neither.")
        x = _as_1d("frequency", frequency)
        m = _as_1d("monetary_value", monetary_value)
        _check_inputs(x)
        _check_finite("monetary_value", m)
        if len(m) != len(x):
            raise ValueError(
                f"Vectors have different lengths: frequency {len(x)}, monetary_value {len(m)}"
            )
        bad = (x > 0) & (m <= 0)
        if bad.any():
            raise ValueError(
                "There exist non-positive (<= 0) values in the monetary_value vector "
                f"for repeat buyers: {_first_bad(bad)}."
            )
        xm = np.where(x > 0, x * m, 0.0)
        out = p * (v + xm) / (p * x + q - 1)
        return _like(out, frequency, monetary_value)

    def customer_lifetime_value(
        self,
        transaction_prediction_model: BetaGeoFitter,
        frequency,
        recency,
        T,
        monetary_value,
        time: int = 12,
        discount_rate: float = 0.01,
        freq: str = "D",
        freq_multiplier: float = 1,
    ):
        """Discounted value of the next ``time`` months (lifetimes' discounted-cash-flow sum).

        ``sum_{k=1..time} E[spend per purchase] * E[purchases in month k] / (1 + d)^k``,
        where months are 30 days (``freq='D'``) or 4.345 weeks (``freq='W'``) and the
        purchase model's time unit is ``freq * freq_multiplier``.

        Parameters
        ----------
        transaction_prediction_model : BetaGeoFitter
            Fitted purchase model in the same time unit as ``recency`` and ``T``.
        frequency, recency, T, monetary_value : array-like
            The customer summary.
        time : int, default 12
            Months to sum over.
        discount_rate : float, default 0.01
            Monthly discount rate.
        freq : {'D', 'W'}
        freq_multiplier : float, default 1
        """
        if freq not in PERIODS_PER_MONTH:
            raise ValueError(f"freq must be one of {sorted(PERIODS_PER_MONTH)}, got {freq!r}")
        if freq_multiplier <= 0:
            raise ValueError(f"freq_multiplier must be > 0, got {freq_multiplier}")
        if int(time) != time or time < 1:
            raise ValueError(f"time (months) must be a positive integer, got {time}")
        if discount_rate <= -1:
            raise ValueError(f"discount_rate must be > -1, got {discount_rate}")
        spend = np.asarray(
            self.conditional_expected_average_profit(frequency, monetary_value), dtype=float
        )
        spend = np.atleast_1d(spend)
        factor = PERIODS_PER_MONTH[freq] / freq_multiplier
        clv = np.zeros_like(spend)
        prev = np.zeros_like(spend)
        for k in range(1, int(time) + 1):
            cum = np.atleast_1d(
                np.asarray(
                    transaction_prediction_model.conditional_expected_number_of_purchases_up_to_time(
                        k * factor, frequency, recency, T
                    ),
                    dtype=float,
                )
            )
            clv += spend * (cum - prev) / (1 + discount_rate) ** k
            prev = cum
        return _like(clv, frequency, recency, T, monetary_value)


# --------------------------------------------------------------------------- RFM summary


def _period_start(ts: pd.Series | pd.Timestamp, freq: str):
    if isinstance(ts, pd.Series):
        return ts.dt.to_period(freq).dt.start_time
    return ts.to_period(freq).start_time


def summary_data_from_transactions(
    transactions: pd.DataFrame,
    customer_col: str,
    datetime_col: str,
    monetary_col: str | None = None,
    observation_period_end=None,
    freq: str = "D",
    freq_multiplier: float = 1,
) -> pd.DataFrame:
    """Frequency / recency / T (/ monetary_value) per customer as of an exclusive cutoff.

    Only rows with ``datetime_col < observation_period_end`` are read. Purchases are
    counted as distinct ``freq`` periods (distinct days by default): several rows in one
    period are one purchase whose value is their sum.

    * ``frequency`` -- purchase periods after the first one;
    * ``recency`` -- last minus first purchase period;
    * ``T`` -- the last period before the cutoff minus the first purchase period, so a
      customer's last possible purchase has ``recency == T`` (Hardie's CDNOW files and
      lifetimes with an inclusive end date measure T the same way);
    * ``monetary_value`` -- mean value of the repeat periods, 0 when ``frequency == 0``.

    Times are in units of ``freq`` periods divided by ``freq_multiplier`` (``freq='D',
    freq_multiplier=7`` gives weeks measured in days, as in the CDNOW papers).

    Parameters
    ----------
    transactions : pandas.DataFrame
        One row per purchase (or line item).
    customer_col, datetime_col : str
        Column names.
    monetary_col : str, optional
        Value column; adds ``monetary_value`` when given.
    observation_period_end : datetime-like
        The cutoff (required, exclusive).
    freq : {'D', 'W'}, default 'D'
    freq_multiplier : float, default 1

    Returns
    -------
    pandas.DataFrame
        Indexed by ``customer_col``, sorted by it.
    """
    if observation_period_end is None:
        raise ValueError("observation_period_end (the exclusive cutoff) is required.")
    if freq not in FREQ_DAYS:
        raise ValueError(f"freq must be one of {sorted(FREQ_DAYS)}, got {freq!r}")
    if not freq_multiplier > 0:
        raise ValueError(f"freq_multiplier must be > 0, got {freq_multiplier}")
    needed = [customer_col, datetime_col] + ([monetary_col] if monetary_col else [])
    missing = [c for c in needed if c not in transactions.columns]
    if missing:
        raise ValueError(
            f"transactions lacks column(s) {missing}; it has {list(transactions.columns)}"
        )
    cutoff = pd.Timestamp(observation_period_end)
    ts = pd.to_datetime(transactions[datetime_col])
    if ts.isna().any():
        raise ValueError(
            f"There exist missing values in the {datetime_col!r} column: {_first_bad(ts.isna().to_numpy())}."
        )
    if transactions[customer_col].isna().any():
        raise ValueError(
            f"There exist missing values in the {customer_col!r} column: "
            f"{_first_bad(transactions[customer_col].isna().to_numpy())}."
        )
    keep = (ts < cutoff).to_numpy()
    if not keep.any():
        raise ValueError(f"No transactions before observation_period_end={cutoff}.")
    df = pd.DataFrame(
        {
            "customer": transactions[customer_col].to_numpy()[keep],
            "period": _period_start(ts[keep], freq).to_numpy(),
        }
    )
    if monetary_col:
        value = pd.to_numeric(transactions[monetary_col], errors="coerce").to_numpy(dtype=float)[
            keep
        ]
        if not np.isfinite(value).all():
            raise ValueError(
                f"There exist NaN or non-numeric values in the {monetary_col!r} column: "
                f"{_first_bad(~np.isfinite(value))}."
            )
        df["value"] = value
    else:
        df["value"] = 0.0

    periods = df.groupby(["customer", "period"], sort=True)["value"].sum().reset_index()
    g = periods.groupby("customer", sort=True)
    first = g["period"].min()
    last = g["period"].max()
    count = g["period"].size()
    unit = pd.Timedelta(days=FREQ_DAYS[freq]) * freq_multiplier
    end = _period_start(cutoff - pd.Timedelta(1, "ns"), freq)
    out = pd.DataFrame(
        {
            "frequency": (count - 1).astype(float),
            "recency": (last - first) / unit,
            "T": (end - first) / unit,
        }
    )
    out.index.name = customer_col
    if monetary_col:
        total = g["value"].sum()
        first_value = g["value"].first()  # rows are sorted by period within customer
        repeat_value = total - first_value
        out["monetary_value"] = np.where(
            out["frequency"] > 0, repeat_value / out["frequency"].clip(lower=1), 0.0
        )
    return out


# --------------------------------------------------------------------------- wrapper


@dataclass
class ValueModelConfig:
    """Settings of :class:`ProbabilisticValueModel` (saved with the model).

    Attributes
    ----------
    freq : {'D', 'W'}
        Purchase period: a purchase is a distinct day ('D') or week ('W') with spend.
    freq_multiplier : float
        Time unit of the models = ``freq`` periods / ``freq_multiplier``.
    penalizer_coef : float
        L2 penalty of the BG/NBD fit.
    gg_penalizer_coef : float
        L2 penalty of the Gamma-Gamma fit.
    discount_rate : float
        Monthly discount rate of the one-year CLV.
    clv_months : int
        Months summed in ``clv_1y`` (12 by definition of the column).
    horizon_days : int
        Default prediction horizon of :meth:`ProbabilisticValueModel.predict`.
    """

    freq: str = "D"
    freq_multiplier: float = 1
    penalizer_coef: float = 0.0
    gg_penalizer_coef: float = 0.0
    discount_rate: float = 0.01
    clv_months: int = 12
    horizon_days: int = 90

    def __post_init__(self):
        if self.freq not in FREQ_DAYS:
            raise ValueError(f"freq must be one of {sorted(FREQ_DAYS)}, got {self.freq!r}")
        if not self.freq_multiplier > 0:
            raise ValueError(f"freq_multiplier must be > 0, got {self.freq_multiplier}")
        if self.penalizer_coef < 0 or self.gg_penalizer_coef < 0:
            raise ValueError("penalizer coefficients must be >= 0")
        if self.horizon_days <= 0:
            raise ValueError(f"horizon_days must be > 0, got {self.horizon_days}")

    @classmethod
    def from_dict(cls, d: dict) -> ValueModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(
                f"Unknown ValueModelConfig keys {sorted(unknown)}; known: {sorted(known)}"
            )
        return cls(**d)

    @property
    def unit_days(self) -> float:
        return FREQ_DAYS[self.freq] * self.freq_multiplier


TX_COLUMNS = ("customer_id", "timestamp", "sales_value")


def visit_days(transactions: pd.DataFrame, cutoff) -> pd.DataFrame:
    """One row per customer and day with net spend > 0, from rows strictly before ``cutoff``.

    ``sales_value`` is summed per customer-day, so returns on a day net out against that
    day's purchases. A day whose net value is <= 0 (only returns) is not a visit and its
    refund is dropped rather than attributed to an earlier purchase.

    Returns
    -------
    pandas.DataFrame
        Columns ``customer_id, timestamp (midnight), sales_value``.
    """
    missing = [c for c in TX_COLUMNS if c not in transactions.columns]
    if missing:
        raise ValueError(
            f"transactions lacks column(s) {missing}; it has {list(transactions.columns)}"
        )
    cutoff = pd.Timestamp(cutoff)
    tx = transactions.loc[transactions["timestamp"] < cutoff, list(TX_COLUMNS)]
    if tx.empty:
        raise ValueError(f"No transactions before cutoff {cutoff}.")
    day = tx["timestamp"].dt.floor("D")
    daily = (
        tx.assign(timestamp=day)
        .groupby(["customer_id", "timestamp"], sort=True)["sales_value"]
        .sum()
        .reset_index()
    )
    return daily[daily["sales_value"] > 0].reset_index(drop=True)


class ProbabilisticValueModel:
    """BG/NBD + Gamma-Gamma customer value over the canonical ``transactions`` table.

    Parameters
    ----------
    config : ValueModelConfig, optional
        Defaults when omitted.

    Attributes
    ----------
    bgf_ : BetaGeoFitter
    ggf_ : GammaGammaFitter
    cutoff_ : pandas.Timestamp
        The cutoff of the fit.
    n_customers_, n_repeat_buyers_ : int
    """

    name = "bgnbd_gamma_gamma"

    def __init__(self, config: ValueModelConfig | None = None):
        self.config = config

    def _config(self) -> ValueModelConfig:
        return self.config if self.config is not None else ValueModelConfig()

    def summary(self, transactions, cutoff) -> pd.DataFrame:
        """RFM summary (in model time units) of the customers with a visit before ``cutoff``."""
        tx = getattr(transactions, "transactions", transactions)  # a Tables or a frame
        cfg = self._config()
        visits = visit_days(tx, cutoff)
        return summary_data_from_transactions(
            visits,
            "customer_id",
            "timestamp",
            "sales_value",
            observation_period_end=cutoff,
            freq=cfg.freq,
            freq_multiplier=cfg.freq_multiplier,
        )

    def fit(self, transactions, cutoff) -> ProbabilisticValueModel:
        """Fit both models on the transactions strictly before ``cutoff``.

        Parameters
        ----------
        transactions : pandas.DataFrame or features.contract.Tables
            Canonical transactions (customer_id, timestamp, sales_value at least).
        cutoff : datetime-like

        Returns
        -------
        ProbabilisticValueModel
        """
        cfg = self._config()
        summ = self.summary(transactions, cutoff)
        self.bgf_ = BetaGeoFitter(penalizer_coef=cfg.penalizer_coef).fit(
            summ["frequency"], summ["recency"], summ["T"]
        )
        repeat = summ[summ["frequency"] > 0]
        self.ggf_ = GammaGammaFitter(penalizer_coef=cfg.gg_penalizer_coef).fit(
            repeat["frequency"], repeat["monetary_value"]
        )
        self.cutoff_ = pd.Timestamp(cutoff)
        self.n_customers_ = len(summ)
        self.n_repeat_buyers_ = len(repeat)
        return self

    def predict(self, transactions, cutoff, horizon_days: float | None = None) -> pd.DataFrame:
        """Per-customer value predictions as of ``cutoff`` (rows strictly before it are read).

        Parameters
        ----------
        transactions : pandas.DataFrame or features.contract.Tables
        cutoff : datetime-like
            Usually the fit cutoff; a later one scores with the fitted parameters.
        horizon_days : float, optional
            Defaults to ``config.horizon_days`` (90).

        Returns
        -------
        pandas.DataFrame
            Indexed by ``customer_id``: ``expected_purchases_{h}d`` (visit days in
            ``[cutoff, cutoff + h days)``), ``p_alive``, ``expected_avg_spend`` (per visit),
            ``expected_spend_{h}d`` and ``clv_1y`` (discounted, 12 months).
        """
        if not hasattr(self, "bgf_"):
            raise RuntimeError("ProbabilisticValueModel is not fitted yet: call fit() first.")
        cfg = self._config()
        h = cfg.horizon_days if horizon_days is None else horizon_days
        if not h > 0:
            raise ValueError(f"horizon_days must be > 0, got {h}")
        summ = self.summary(transactions, cutoff)
        f, r, t_obs, m = (summ[c] for c in ("frequency", "recency", "T", "monetary_value"))
        h_label = f"{h:g}d"
        out = pd.DataFrame(index=summ.index)
        out[f"expected_purchases_{h_label}"] = (
            self.bgf_.conditional_expected_number_of_purchases_up_to_time(
                h / cfg.unit_days, f, r, t_obs
            )
        )
        out["p_alive"] = self.bgf_.conditional_probability_alive(f, r, t_obs)
        out["expected_avg_spend"] = self.ggf_.conditional_expected_average_profit(f, m)
        out[f"expected_spend_{h_label}"] = (
            out[f"expected_purchases_{h_label}"] * out["expected_avg_spend"]
        )
        out["clv_1y"] = self.ggf_.customer_lifetime_value(
            self.bgf_,
            f,
            r,
            t_obs,
            m,
            time=cfg.clv_months,
            discount_rate=cfg.discount_rate,
            freq=cfg.freq,
            freq_multiplier=cfg.freq_multiplier,
        )
        return out

    # ----------------------------------------------------------------- persistence

    def to_dict(self) -> dict:
        """Config and fitted parameters as plain JSON-able data."""
        if not hasattr(self, "bgf_"):
            raise RuntimeError("ProbabilisticValueModel is not fitted yet: call fit() first.")
        return {
            "model": self.name,
            "config": asdict(self._config()),
            "bgnbd": {k: float(v) for k, v in self.bgf_.params_.items()},
            "bgnbd_log_likelihood": self.bgf_.log_likelihood_,
            "gamma_gamma": {k: float(v) for k, v in self.ggf_.params_.items()},
            "cutoff": self.cutoff_.isoformat(),
            "n_customers": self.n_customers_,
            "n_repeat_buyers": self.n_repeat_buyers_,
        }

    @classmethod
    def from_dict(cls, d: dict) -> ProbabilisticValueModel:
        model = cls(ValueModelConfig.from_dict(d["config"]))
        model.bgf_ = BetaGeoFitter(model.config.penalizer_coef)
        model.bgf_.params_ = pd.Series({k: float(d["bgnbd"][k]) for k in BGNBD_PARAMS})
        model.bgf_.log_likelihood_ = float(d["bgnbd_log_likelihood"])
        model.ggf_ = GammaGammaFitter(model.config.gg_penalizer_coef)
        model.ggf_.params_ = pd.Series({k: float(d["gamma_gamma"][k]) for k in GAMMA_GAMMA_PARAMS})
        model.cutoff_ = pd.Timestamp(d["cutoff"])
        model.n_customers_ = int(d["n_customers"])
        model.n_repeat_buyers_ = int(d["n_repeat_buyers"])
        return model

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` as JSON (config included)."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> ProbabilisticValueModel:
        """Read a model written by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text()))

    def get_params(self) -> dict:
        return {"config": self.config}
