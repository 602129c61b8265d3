"""Statistical building blocks for A/B analysis: Welch tests, delta-method lifts, CUPED,
sample-ratio-mismatch and Holm correction.

These are plain numpy functions so the same code serves :func:`campaigns.analysis.analyze`
and the simulation checks in :mod:`campaigns.validation`.

Conventions
-----------
* Sample variances use ``ddof=1``.
* The absolute lift of a per-customer mean uses Welch's t-test (Welch-Satterthwaite degrees of
  freedom; t quantiles for the interval), i.e. ``scipy.stats.ttest_ind(equal_var=False)``.
* The relative lift of a per-customer mean uses the delta method with the same Welch t
  quantile as the absolute lift (so the two intervals agree at small n); ratio metrics use the
  delta method with normal quantiles (a z-test throughout).
* A 0/1 metric with tiny counts (fewer than ``EXACT_MIN_COUNT`` successes or failures in an
  arm, which includes a constant arm) gets Fisher's exact p-value and Newcombe's hybrid score
  interval with continuity correction instead of Welch's, which claims certainty when the
  standard error is 0. A non-binary metric with a standard error of 0 gets NaN p and interval.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

logger = logging.getLogger(__name__)

SRM_THRESHOLD = 0.001
#: A 0/1 metric switches to the exact method when an arm has fewer successes or failures.
EXACT_MIN_COUNT = 5


def _as_float_array(values, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size < 2:
        raise ValueError(f"{name} needs at least 2 observations, got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(
            f"{name} contains {int((~np.isfinite(arr)).sum())} missing or infinite values"
        )
    return arr


def welch_from_moments(
    mean_t: float,
    var_t: float,
    n_t: int,
    mean_c: float,
    var_c: float,
    n_c: int,
    alpha: float = 0.05,
) -> dict[str, float]:
    """Welch test of ``mean_t - mean_c`` from summary statistics.

    Returns
    -------
    dict
        ``diff``, ``se``, ``df``, ``t``, ``p_value``, ``ci_low``, ``ci_high``; the test and
        interval are NaN when the standard error is 0 (both arms constant).
    """
    a = var_t / n_t
    b = var_c / n_c
    se2 = a + b
    se = float(np.sqrt(se2))
    diff = float(mean_t - mean_c)
    if se == 0.0:
        # Both arms constant: the sample carries no information on the variance, so there is no
        # test and no interval (reporting p = 0 and a zero-width interval would claim certainty).
        return {
            "diff": diff,
            "se": 0.0,
            "df": np.nan,
            "t": np.nan,
            "p_value": np.nan,
            "ci_low": np.nan,
            "ci_high": np.nan,
        }
    denom = a * a / (n_t - 1) + b * b / (n_c - 1)
    dof = float(se2 * se2 / denom)
    t = diff / se
    p = float(2.0 * stats.t.sf(abs(t), dof))
    q = float(stats.t.ppf(1.0 - alpha / 2.0, dof))
    return {
        "diff": diff,
        "se": se,
        "df": dof,
        "t": float(t),
        "p_value": p,
        "ci_low": diff - q * se,
        "ci_high": diff + q * se,
    }


def relative_lift_delta(
    mean_t: float,
    se_t: float,
    mean_c: float,
    se_c: float,
    alpha: float = 0.05,
    df: float | None = None,
) -> dict[str, float]:
    """Relative lift ``mean_t / mean_c - 1`` of two independent estimates, delta method.

    ``Var(m_t/m_c) ~= se_t^2 / m_c^2 + m_t^2 se_c^2 / m_c^4``.

    Parameters
    ----------
    mean_t, mean_c : float
        The two estimates (means or ratios).
    se_t, se_c : float
        Their standard errors.
    alpha : float
        Two-sided level of the interval.
    df : float, optional
        Degrees of freedom of a t quantile (pass the Welch degrees of freedom of the absolute
        lift so both intervals use the same quantile); default, or when not finite: normal.

    Returns
    -------
    dict
        ``rel``, ``se``, ``ci_low``, ``ci_high`` (all NaN when ``mean_c`` is 0; the interval is
        NaN when the delta-method standard error is 0, which only says the sample cannot
        estimate it).
    """
    if mean_c == 0.0:
        return {"rel": np.nan, "se": np.nan, "ci_low": np.nan, "ci_high": np.nan}
    rel = mean_t / mean_c - 1.0
    var = se_t**2 / mean_c**2 + mean_t**2 * se_c**2 / mean_c**4
    se = float(np.sqrt(var))
    if not (np.isfinite(se) and se > 0):
        return {"rel": float(rel), "se": se, "ci_low": np.nan, "ci_high": np.nan}
    q = _quantile(alpha, df)
    return {
        "rel": float(rel),
        "se": se,
        "ci_low": float(rel - q * se),
        "ci_high": float(rel + q * se),
    }


def _quantile(alpha: float, df: float | None = None) -> float:
    """Two-sided ``1 - alpha`` quantile: Student t with ``df`` degrees of freedom, else normal."""
    if df is not None and np.isfinite(df) and df > 0:
        return float(stats.t.ppf(1.0 - alpha / 2.0, df))
    return float(stats.norm.ppf(1.0 - alpha / 2.0))


def is_binary(values) -> bool:
    """Whether every value is 0 or 1."""
    return bool(np.isin(np.asarray(values, dtype=float), (0.0, 1.0)).all())


def wilson_cc_interval(successes: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval with continuity correction for a proportion (Newcombe 1998, method 4)."""
    if n <= 0:
        return np.nan, np.nan
    z = float(stats.norm.ppf(1.0 - alpha / 2.0))
    p = successes / n
    denom = 2.0 * (n + z * z)
    lo = 0.0
    if successes > 0:
        root = np.sqrt(max(z * z - 2.0 - 1.0 / n + 4.0 * p * (n * (1.0 - p) + 1.0), 0.0))
        lo = max(0.0, (2.0 * n * p + z * z - 1.0 - z * root) / denom)
    hi = 1.0
    if successes < n:
        root = np.sqrt(max(z * z + 2.0 - 1.0 / n + 4.0 * p * (n * (1.0 - p) - 1.0), 0.0))
        hi = min(1.0, (2.0 * n * p + z * z + 1.0 + z * root) / denom)
    return float(lo), float(hi)


def newcombe_interval(
    x_t: int, n_t: int, x_c: int, n_c: int, alpha: float = 0.05
) -> tuple[float, float]:
    """Interval for the difference of two proportions ``x_t/n_t - x_c/n_c``.

    Newcombe's hybrid score interval (1998, method 11): it combines the continuity-corrected
    Wilson intervals of the two proportions, stays inside [-1, 1], never has zero width and
    behaves well with 0 or n successes, where the Wald / Welch interval collapses to a point.
    The continuity correction keeps it in line with Fisher's exact test.

    Examples
    --------
    >>> [round(v, 4) for v in newcombe_interval(56, 70, 48, 80)]  # Newcombe (1998) Table II
    [0.0428, 0.3422]
    """
    p_t, p_c = x_t / n_t, x_c / n_c
    l_t, u_t = wilson_cc_interval(x_t, n_t, alpha)
    l_c, u_c = wilson_cc_interval(x_c, n_c, alpha)
    d = p_t - p_c
    lo = d - np.sqrt((p_t - l_t) ** 2 + (u_c - p_c) ** 2)
    hi = d + np.sqrt((u_t - p_t) ** 2 + (p_c - l_c) ** 2)
    return float(lo), float(hi)


def exact_binary(x_t: int, n_t: int, x_c: int, n_c: int, alpha: float = 0.05) -> dict[str, float]:
    """Fisher's exact two-sided p-value and Newcombe's interval for a difference of proportions.

    Returns
    -------
    dict
        ``diff``, ``p_value``, ``ci_low``, ``ci_high``.
    """
    table = [[x_t, n_t - x_t], [x_c, n_c - x_c]]
    p = float(stats.fisher_exact(table, alternative="two-sided").pvalue)
    lo, hi = newcombe_interval(x_t, n_t, x_c, n_c, alpha)
    return {"diff": x_t / n_t - x_c / n_c, "p_value": p, "ci_low": lo, "ci_high": hi}


def needs_exact(x_t: int, n_t: int, x_c: int, n_c: int, min_count: int = EXACT_MIN_COUNT) -> bool:
    """Whether a 0/1 comparison has too few successes or failures for the Welch test."""
    return min(x_t, n_t - x_t, x_c, n_c - x_c) < min_count


def compare_means(
    y_t, y_c, alpha: float = 0.05, binary: bool | None = None
) -> dict[str, float | str]:
    """Compare the per-customer mean of a treatment and a control arm.

    Parameters
    ----------
    y_t, y_c : array-like
        Per-customer outcomes (0/1 for rates, amounts for revenue).
    alpha : float
        Two-sided level; intervals are ``1 - alpha``.
    binary : bool, optional
        Whether the outcome is a 0/1 rate (default: when every value is 0 or 1). Pass False
        for an amount of money, which may be all 0 or 1 by chance (no spend yet).

    Returns
    -------
    dict
        ``n_t, n_c, mean_t, mean_c, var_t, var_c`` and the absolute lift (``diff, se, df, t,
        p_value, ci_low, ci_high``, Welch) and relative lift (``rel, rel_se, rel_ci_low,
        rel_ci_high``, delta method with the Welch t quantile). ``method`` says how the test
        was made: ``"welch"``; ``"exact"`` for a 0/1 metric with fewer than
        ``EXACT_MIN_COUNT`` successes or failures in an arm (Fisher's exact p-value, Newcombe's
        interval); ``"none"`` when the standard error is 0 for a non-binary metric (both arms
        constant: p-value and intervals are NaN).
    """
    y_t = _as_float_array(y_t, "treatment outcomes")
    y_c = _as_float_array(y_c, "control outcomes")
    n_t, n_c = y_t.size, y_c.size
    m_t, m_c = float(y_t.mean()), float(y_c.mean())
    v_t, v_c = float(y_t.var(ddof=1)), float(y_c.var(ddof=1))
    out: dict[str, float] = {
        "n_t": n_t,
        "n_c": n_c,
        "mean_t": m_t,
        "mean_c": m_c,
        "var_t": v_t,
        "var_c": v_c,
    }
    out.update(welch_from_moments(m_t, v_t, n_t, m_c, v_c, n_c, alpha))
    out["method"] = "welch" if out["se"] > 0 else "none"
    if binary is None:
        binary = is_binary(y_t) and is_binary(y_c)
    if binary:
        x_t, x_c = int(round(y_t.sum())), int(round(y_c.sum()))
        if out["se"] == 0.0 or needs_exact(x_t, n_t, x_c, n_c):
            out.update(exact_binary(x_t, n_t, x_c, n_c, alpha))
            out["method"] = "exact"
    rel = relative_lift_delta(m_t, np.sqrt(v_t / n_t), m_c, np.sqrt(v_c / n_c), alpha, df=out["df"])
    out.update(
        {
            "rel": rel["rel"],
            "rel_se": rel["se"],
            "rel_ci_low": rel["ci_low"],
            "rel_ci_high": rel["ci_high"],
        }
    )
    return out


def ratio_estimate(num, den) -> tuple[float, float]:
    """Ratio of sums ``sum(num) / sum(den)`` and its delta-method standard error.

    For a metric such as spend per visitor, the unit of randomisation (customer) is not the
    unit of the metric (visit), so the naive variance is wrong. With per-customer means
    ``a, b``, sample variances ``v_a, v_b`` and covariance ``c``::

        Var(a/b) ~= (v_a / b^2 - 2 a c / b^3 + a^2 v_b / b^4) / n

    Returns
    -------
    tuple of float
        ``(ratio, se)``; NaN when ``sum(den)`` is 0.
    """
    num = _as_float_array(num, "ratio numerator")
    den = _as_float_array(den, "ratio denominator")
    if num.size != den.size:
        raise ValueError(
            f"ratio numerator and denominator differ in length: {num.size} != {den.size}"
        )
    n = num.size
    a, b = float(num.mean()), float(den.mean())
    if b == 0.0:
        return np.nan, np.nan
    cov = np.cov(num, den, ddof=1)
    v_a, v_b, c = float(cov[0, 0]), float(cov[1, 1]), float(cov[0, 1])
    var = (v_a / b**2 - 2.0 * a * c / b**3 + a**2 * v_b / b**4) / n
    return a / b, float(np.sqrt(max(var, 0.0)))


def compare_ratios(num_t, den_t, num_c, den_c, alpha: float = 0.05) -> dict[str, float]:
    """Compare a ratio metric (``sum(num) / sum(den)``) between two arms, delta method.

    Returns the same keys as :func:`compare_means` except ``method`` (``var_*`` are
    ``n * se^2``; ``df`` is NaN because the test is a z-test; p-value and interval are NaN when
    the standard error is 0).
    """
    r_t, se_t = ratio_estimate(num_t, den_t)
    r_c, se_c = ratio_estimate(num_c, den_c)
    n_t, n_c = len(num_t), len(num_c)
    diff = r_t - r_c
    se = float(np.sqrt(se_t**2 + se_c**2))
    z = float(stats.norm.ppf(1.0 - alpha / 2.0))
    if np.isfinite(se) and se > 0:
        zstat = diff / se
        p = float(2.0 * stats.norm.sf(abs(zstat)))
        ci_low, ci_high = diff - z * se, diff + z * se
    else:
        zstat, p, ci_low, ci_high = np.nan, np.nan, np.nan, np.nan
    rel = relative_lift_delta(r_t, se_t, r_c, se_c, alpha)
    return {
        "n_t": n_t,
        "n_c": n_c,
        "mean_t": r_t,
        "mean_c": r_c,
        "var_t": se_t**2 * n_t,
        "var_c": se_c**2 * n_c,
        "diff": diff,
        "se": se,
        "df": np.nan,
        "t": zstat,
        "p_value": p,
        "ci_low": ci_low,
        "ci_high": ci_high,
        "rel": rel["rel"],
        "rel_se": rel["se"],
        "rel_ci_low": rel["ci_low"],
        "rel_ci_high": rel["ci_high"],
    }


def cuped_theta(y, x) -> float:
    """CUPED coefficient ``theta = cov(y, x) / var(x)`` (Deng et al. 2013).

    Compute it on all arms pooled: the covariate is measured before randomisation, so its
    distribution is the same in every arm and pooling keeps the adjustment unbiased.
    """
    y = _as_float_array(y, "outcome")
    x = _as_float_array(x, "covariate")
    var_x = float(x.var(ddof=1))
    if var_x == 0.0:
        return 0.0
    return float(np.cov(y, x, ddof=1)[0, 1] / var_x)


def cuped_adjust(
    y, x, theta: float | None = None, x_mean: float | None = None
) -> tuple[np.ndarray, float]:
    """CUPED-adjusted outcome ``y - theta * (x - mean(x))``.

    Parameters
    ----------
    y, x : array-like
        Outcome and pre-period covariate, one value per customer, all arms together.
    theta, x_mean : float, optional
        Pre-computed coefficient and covariate mean (default: estimated from ``y, x``).

    Returns
    -------
    tuple
        ``(y_adjusted, theta)``. The adjusted outcome has the same expectation in each arm as
        ``y`` (randomisation makes ``E[x]`` equal across arms), and lower variance by a factor
        ``1 - corr(y, x)^2``.
    """
    y = _as_float_array(y, "outcome")
    x = _as_float_array(x, "covariate")
    if theta is None:
        theta = cuped_theta(y, x)
    if x_mean is None:
        x_mean = float(x.mean())
    return y - theta * (x - x_mean), float(theta)


def wilson_interval(successes: float, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval for a proportion (``statsmodels proportion_confint(method='wilson')``)."""
    if n <= 0:
        return np.nan, np.nan
    z = float(stats.norm.ppf(1.0 - alpha / 2.0))
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return float(centre - half), float(centre + half)


def mean_interval(y, alpha: float = 0.05, binary: bool | None = None) -> tuple[float, float]:
    """t interval for a mean (Wilson for 0/1 data; ``binary`` as in :func:`compare_means`).

    NaN for amounts that are all equal: the sample says nothing of the
    variance, so a zero-width interval would claim a certainty the data do not give, as
    :func:`compare_means` does for constant arms.
    """
    y = _as_float_array(y, "values")
    if binary is None:
        binary = bool(np.isin(y, (0.0, 1.0)).all())
    if binary:
        return wilson_interval(float(y.sum()), y.size, alpha)
    m = float(y.mean())
    se = float(y.std(ddof=1) / np.sqrt(y.size))
    if se == 0.0:
        return float("nan"), float("nan")
    q = float(stats.t.ppf(1.0 - alpha / 2.0, y.size - 1))
    return m - q * se, m + q * se


@dataclass(frozen=True)
class SRMResult:
    """Outcome of a sample-ratio-mismatch check.

    Attributes
    ----------
    counts : dict
        Observed customers per arm.
    expected_shares : dict
        Planned allocation per arm (sums to 1).
    chi2, p_value : float
        Pearson chi-square statistic and its p-value (``len(counts) - 1`` degrees of freedom).
    threshold : float
        ``flagged`` is ``p_value < threshold``.
    flagged : bool
        True when the split is implausible under the planned allocation: the randomisation or
        the logging is broken and lifts cannot be trusted.
    """

    counts: dict[str, int]
    expected_shares: dict[str, float]
    chi2: float
    p_value: float
    threshold: float
    flagged: bool

    def message(self) -> str:
        obs = ", ".join(f"{k}={v:,}" for k, v in self.counts.items())
        exp = ", ".join(f"{k}={v:.1%}" for k, v in self.expected_shares.items())
        if self.flagged:
            return (
                f"SAMPLE RATIO MISMATCH: observed {obs} vs planned {exp} "
                f"(chi2={self.chi2:.2f}, p={self.p_value:.2g} < {self.threshold:g}). "
                "The experiment is broken: do not trust these lifts until the cause is found."
            )
        return f"sample ratio OK: observed {obs} vs planned {exp} (chi2={self.chi2:.2f}, p={self.p_value:.3g})"

    def to_dict(self) -> dict:
        return {
            "counts": {k: int(v) for k, v in self.counts.items()},
            "expected_shares": dict(self.expected_shares),
            "chi2": float(self.chi2),
            "p_value": float(self.p_value),
            "threshold": float(self.threshold),
            "flagged": bool(self.flagged),
        }


def srm_test(
    counts: Mapping[str, int],
    expected_shares: Mapping[str, float] | Sequence[float] | None = None,
    threshold: float = SRM_THRESHOLD,
) -> SRMResult:
    """Chi-square goodness-of-fit of the arm sizes against the planned allocation.

    Parameters
    ----------
    counts : mapping
        Customers per arm.
    expected_shares : mapping or sequence, optional
        Planned share per arm (by name, or in the order of ``counts``); any positive scale,
        normalised to 1. Default: equal split.
    threshold : float
        Flag when the p-value is below this (0.001 is the usual choice: an SRM check runs on
        every experiment, so it must rarely cry wolf).

    Returns
    -------
    SRMResult
    """
    names = [str(k) for k in counts]
    obs = np.array([counts[k] for k in counts], dtype=float)
    if len(names) < 2:
        raise ValueError(f"sample-ratio check needs at least 2 arms, got {names}")
    if expected_shares is None:
        shares = np.full(len(names), 1.0 / len(names))
    else:
        if isinstance(expected_shares, Mapping):
            missing = [k for k in counts if k not in expected_shares]
            extra = [k for k in expected_shares if k not in counts]
            if missing or extra:
                raise ValueError(
                    f"allocation arms do not match the data: missing {missing}, unknown {extra}"
                )
            shares = np.array([expected_shares[k] for k in counts], dtype=float)
        else:
            shares = np.asarray(list(expected_shares), dtype=float)
            if shares.size != len(names):
                raise ValueError(
                    f"allocation has {shares.size} shares but the data has {len(names)} arms {names}"
                )
        if (shares <= 0).any() or not np.isfinite(shares).all():
            raise ValueError(f"allocation shares must be positive, got {shares.tolist()}")
        shares = shares / shares.sum()
    expected = shares * obs.sum()
    chi2, p = stats.chisquare(obs, expected)
    return SRMResult(
        counts={k: int(v) for k, v in zip(names, obs, strict=True)},
        expected_shares={k: float(s) for k, s in zip(names, shares, strict=True)},
        chi2=float(chi2),
        p_value=float(p),
        threshold=threshold,
        flagged=bool(p < threshold),
    )


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm step-down adjusted p-values (``statsmodels multipletests(method='holm')``).

    NaN p-values are left NaN and do not count towards the family size.
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adj = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(adj)
    return out
