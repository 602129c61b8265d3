"""Statistical honesty checks by simulation: A/A false-positive rate, CI coverage with and
without CUPED, and the power of the sample-ratio-mismatch check.

The simulated shop has a latent customer value ``a ~ Gamma(2, 10)`` (mean 20, skewed)
driving both a pre-period spend ``x = a * Gamma(20, 0.05)`` (the CUPED covariate) and the
outcome:

* ``revenue``: zero-inflated, ``B * a * Gamma(20, 0.05)`` with ``B ~ Bernoulli(0.6)``, mean 12;
  ``corr(x, y)^2`` is about 0.27, the variance CUPED can remove;
* ``conversion``: ``Bernoulli(a / 160)``, mean 0.125 (``corr^2`` about 0.06).

A treatment with relative effect ``lift`` multiplies the revenue (or the conversion
probability) by ``1 + lift``, so the true absolute effect is ``lift * 12`` (``lift * 0.125``)
and the true relative effect is ``lift`` (up to clipping probabilities at 1, which happens
with chance below 1e-5 for ``lift <= 0.1``).

Every simulated test goes through the same functions as :func:`campaigns.analysis.analyze`
(:func:`campaigns.stats.compare_means`, :func:`campaigns.stats.cuped_adjust`).
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
import pandas as pd

from campaigns import stats as st

logger = logging.getLogger(__name__)

SimMetric = Literal["revenue", "conversion"]
TRUE_MEANS = {"revenue": 12.0, "conversion": 0.125}


def simulate_arm(
    n: int, metric: SimMetric, lift: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Outcomes and pre-period covariate for ``n`` customers of one arm.

    Returns
    -------
    tuple of numpy.ndarray
        ``(y, x)``.
    """
    a = rng.gamma(2.0, 10.0, n)
    x = a * rng.gamma(20.0, 0.05, n)
    if metric == "revenue":
        y = (rng.random(n) < 0.6) * a * rng.gamma(20.0, 0.05, n) * (1.0 + lift)
    elif metric == "conversion":
        y = (rng.random(n) < np.minimum(a / 160.0 * (1.0 + lift), 1.0)).astype(float)
    else:
        raise ValueError(f"metric must be 'revenue' or 'conversion', got {metric!r}")
    return y, x


def simulate_tests(
    n_sims: int,
    n_per_arm: int,
    metric: SimMetric = "revenue",
    lift: float = 0.0,
    alpha: float = 0.05,
    seed: int = 0,
) -> pd.DataFrame:
    """Run ``n_sims`` simulated two-arm experiments, each analysed with and without CUPED.

    Returns
    -------
    pandas.DataFrame
        One row per (simulation, adjustment): ``sim, adjustment, diff, ci_low, ci_high, rel,
        rel_ci_low, rel_ci_high, p_value, se``.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_sims):
        y_c, x_c = simulate_arm(n_per_arm, metric, 0.0, rng)
        y_t, x_t = simulate_arm(n_per_arm, metric, lift, rng)
        raw = st.compare_means(y_t, y_c, alpha)
        y_adj, _ = st.cuped_adjust(np.concatenate([y_t, y_c]), np.concatenate([x_t, x_c]))
        cu = st.compare_means(y_adj[:n_per_arm], y_adj[n_per_arm:], alpha)
        for name, r in (("none", raw), ("cuped", cu)):
            rows.append(
                {
                    "sim": i,
                    "adjustment": name,
                    "diff": r["diff"],
                    "se": r["se"],
                    "ci_low": r["ci_low"],
                    "ci_high": r["ci_high"],
                    "rel": r["rel"],
                    "rel_ci_low": r["rel_ci_low"],
                    "rel_ci_high": r["rel_ci_high"],
                    "p_value": r["p_value"],
                }
            )
    return pd.DataFrame(rows)


def summarise_tests(
    sims: pd.DataFrame, metric: SimMetric, lift: float, alpha: float = 0.05
) -> pd.DataFrame:
    """Rejection rate, CI coverage (absolute and relative) and mean SE per adjustment.

    Returns
    -------
    pandas.DataFrame
        Index ``adjustment``; columns ``n_sims, rejection_rate, coverage_abs, coverage_rel,
        mc_se`` (Monte-Carlo standard error of a rate near ``1 - alpha``), ``mean_se`` and
        ``variance_reduction`` (CUPED vs none, from the mean squared SE).
    """
    true_abs = lift * TRUE_MEANS[metric]
    out = {}
    for adj, g in sims.groupby("adjustment", sort=False):
        n = len(g)
        out[adj] = {
            "n_sims": n,
            "rejection_rate": float((g["p_value"] < alpha).mean()),
            "coverage_abs": float(((g["ci_low"] <= true_abs) & (true_abs <= g["ci_high"])).mean()),
            "coverage_rel": float(((g["rel_ci_low"] <= lift) & (lift <= g["rel_ci_high"])).mean()),
            "mc_se": float(np.sqrt(alpha * (1 - alpha) / n)),
            "mean_se": float(g["se"].mean()),
        }
    frame = pd.DataFrame(out).T
    if {"none", "cuped"} <= set(frame.index):
        ms = sims.groupby("adjustment")["se"].apply(lambda s: float((s**2).mean()))
        frame["variance_reduction"] = 1 - ms / ms["none"]
    return frame


def srm_detection_rate(
    n_total: int = 20_000,
    loss: float = 0.05,
    n_sims: int = 2_000,
    threshold: float = st.SRM_THRESHOLD,
    seed: int = 0,
) -> dict[str, float]:
    """How often the SRM check fires when the treatment arm loses a share of its customers.

    Each simulation randomises ``n_total`` customers 50/50 (binomial), then drops each
    treated customer with probability ``loss`` (a logging or redirect bug), and runs
    :func:`campaigns.stats.srm_test` against the planned 50/50.

    Returns
    -------
    dict
        ``detection_rate``, ``n_sims``, ``loss``, ``n_total``, ``threshold`` and the verdict on
        the expected counts (``expected_counts_flagged``, ``expected_counts_p_value``).
    """
    rng = np.random.default_rng(seed)
    n_t = rng.binomial(n_total, 0.5, n_sims)
    n_c = n_total - n_t
    kept_t = rng.binomial(n_t, 1.0 - loss)
    flags = [
        st.srm_test({"control": int(c), "treatment": int(t)}, threshold=threshold).flagged
        for c, t in zip(n_c, kept_t, strict=True)
    ]
    half = n_total // 2
    exp = st.srm_test(
        {"control": half, "treatment": int(round(half * (1 - loss)))}, threshold=threshold
    )
    return {
        "n_total": n_total,
        "loss": loss,
        "n_sims": n_sims,
        "threshold": threshold,
        "detection_rate": float(np.mean(flags)),
        "expected_counts_flagged": exp.flagged,
        "expected_counts_p_value": exp.p_value,
    }
