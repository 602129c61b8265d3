"""Experiment design: sample size and minimum detectable effect (MDE).

The formulas match the analysis in :mod:`campaigns.analysis` (two-sided Welch / unpooled
z-test of a difference in per-customer means), so a design computed here delivers the stated
power when analysed there.

For a control share ``w_c`` and ``k`` treatment arms that split the rest equally
(``w_t = (1 - w_c) / k``), each treatment-vs-control comparison on ``N`` customers in total
has ``Var(diff) = s_c^2 / (w_c N) + s_t^2 / (w_t N)``, and the design solves
``(z_{1 - a/2} + z_{power})^2 Var(diff) = mde^2``. For a conversion metric ``s^2 = p (1 - p)``
with the treated rate ``p + mde``; for revenue per customer ``s`` is the per-customer
standard deviation (the same in both arms). With ``k > 1`` the per-test level is
``alpha / k`` (Bonferroni), a safe plan for the Holm correction used in the analysis.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from scipy import optimize, stats

logger = logging.getLogger(__name__)

MetricKind = Literal["conversion", "revenue"]


@dataclass(frozen=True)
class Design:
    """A planned experiment.

    Attributes
    ----------
    metric : str
        ``"conversion"`` (a rate) or ``"revenue"`` (a per-customer mean, e.g. spend).
    baseline : float
        Control rate or mean.
    sd : float
        Per-customer standard deviation in control (``sqrt(p(1-p))`` for a rate).
    mde_abs, mde_rel : float
        Minimum detectable effect, absolute and relative to ``baseline``.
    alpha, alpha_per_test, power : float
        Family level, per-comparison level (Bonferroni over treatment arms) and power.
    control_share : float
        Share of customers in control.
    n_treatments : int
        Number of treatment arms (each compared with control).
    n_control, n_per_treatment, n_total : int
        Customers needed (or given).
    """

    metric: str
    baseline: float
    sd: float
    mde_abs: float
    mde_rel: float
    alpha: float
    alpha_per_test: float
    power: float
    control_share: float
    n_treatments: int
    n_control: int
    n_per_treatment: int
    n_total: int

    def to_dict(self) -> dict:
        return asdict(self)


def _check(
    metric: str,
    baseline: float,
    sd: float | None,
    alpha: float,
    power: float,
    control_share: float,
    n_treatments: int,
) -> float:
    if metric not in ("conversion", "revenue"):
        raise ValueError(f"metric must be 'conversion' or 'revenue', got {metric!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not 0 < power < 1:
        raise ValueError(f"power must be in (0, 1), got {power}")
    if not 0 < control_share < 1:
        raise ValueError(f"control_share must be in (0, 1), got {control_share}")
    if n_treatments < 1:
        raise ValueError(f"n_treatments must be >= 1, got {n_treatments}")
    if not math.isfinite(baseline):
        raise ValueError(f"baseline must be a finite number, got {baseline}")
    if metric == "conversion":
        if not 0 < baseline < 1:
            raise ValueError(f"baseline conversion rate must be in (0, 1), got {baseline}")
        return math.sqrt(baseline * (1 - baseline))
    if sd is None or not 0 < sd < math.inf:
        raise ValueError(
            f"revenue metric needs a positive per-customer standard deviation sd, got {sd}"
        )
    return float(sd)


def _z(alpha_per_test: float, power: float) -> float:
    return float(stats.norm.ppf(1 - alpha_per_test / 2) + stats.norm.ppf(power))


def sample_size(
    baseline: float,
    mde: float,
    metric: MetricKind = "conversion",
    sd: float | None = None,
    relative: bool = True,
    alpha: float = 0.05,
    power: float = 0.8,
    control_share: float = 0.5,
    n_treatments: int = 1,
) -> Design:
    """Customers needed to detect an effect of size ``mde``.

    Parameters
    ----------
    baseline : float
        Control conversion rate (``metric="conversion"``) or mean revenue per customer.
    mde : float
        Smallest effect worth detecting; relative to ``baseline`` if ``relative`` (0.1 = +10%),
        else absolute (rate points or currency per customer). Positive.
    metric : {"conversion", "revenue"}
        Kind of metric.
    sd : float, optional
        Per-customer standard deviation of revenue (required for ``"revenue"``).
    relative : bool
        Whether ``mde`` is relative.
    alpha, power : float
        Two-sided family significance level and power.
    control_share : float
        Share of customers held out as control.
    n_treatments : int
        Treatment arms sharing ``1 - control_share`` equally.

    Returns
    -------
    Design
        With ``n_control``, ``n_per_treatment`` (rounded up) and ``n_total``.

    Examples
    --------
    >>> sample_size(0.05, 0.10).n_per_treatment  # 5% -> 5.5% conversion, 50/50
    31231
    """
    s_c = _check(metric, baseline, sd, alpha, power, control_share, n_treatments)
    if not 0 < mde < math.inf:
        raise ValueError(f"mde must be positive and finite, got {mde}")
    if relative and not baseline > 0:
        raise ValueError(
            f"a relative mde needs a positive baseline, got baseline {baseline}; "
            "give the effect in absolute units instead (relative=False, --absolute)"
        )
    delta = mde * baseline if relative else mde
    if metric == "conversion":
        p_t = baseline + delta
        if not 0 < p_t < 1:
            raise ValueError(f"treated conversion rate baseline + mde = {p_t} is outside (0, 1)")
        s_t = math.sqrt(p_t * (1 - p_t))
    else:
        s_t = s_c
    w_c = control_share
    w_t = (1 - control_share) / n_treatments
    a_test = alpha / n_treatments
    n_total = _z(a_test, power) ** 2 * (s_c**2 / w_c + s_t**2 / w_t) / delta**2
    n_control = math.ceil(w_c * n_total - 1e-9)
    n_treat = math.ceil(w_t * n_total - 1e-9)
    return Design(
        metric=metric,
        baseline=float(baseline),
        sd=s_c,
        mde_abs=float(delta),
        mde_rel=float(delta / baseline) if baseline else np.nan,
        alpha=alpha,
        alpha_per_test=a_test,
        power=power,
        control_share=control_share,
        n_treatments=n_treatments,
        n_control=n_control,
        n_per_treatment=n_treat,
        n_total=n_control + n_treatments * n_treat,
    )


def mde(
    n_total: int,
    baseline: float,
    metric: MetricKind = "conversion",
    sd: float | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    control_share: float = 0.5,
    n_treatments: int = 1,
) -> Design:
    """Smallest (positive) effect detectable with ``n_total`` customers.

    Parameters are those of :func:`sample_size`. For a conversion metric the treated rate's
    variance depends on the effect, so the MDE is found by root search.

    Returns
    -------
    Design
        ``mde_abs`` and ``mde_rel`` filled; the sizes are those implied by ``n_total``.
    """
    s_c = _check(metric, baseline, sd, alpha, power, control_share, n_treatments)
    if n_total < 4:
        raise ValueError(f"n_total must be at least 4, got {n_total}")
    w_c = control_share
    w_t = (1 - control_share) / n_treatments
    a_test = alpha / n_treatments
    z = _z(a_test, power)
    if metric == "revenue":
        delta = z * s_c * math.sqrt(1 / w_c + 1 / w_t) / math.sqrt(n_total)
    else:

        def gap(d: float) -> float:
            p_t = baseline + d
            return z * math.sqrt(s_c**2 / (w_c * n_total) + p_t * (1 - p_t) / (w_t * n_total)) - d

        upper = 1 - baseline - 1e-12
        if gap(upper) > 0:
            raise ValueError(
                f"n_total={n_total} is too small to detect any effect on a rate of {baseline}"
            )
        delta = float(optimize.brentq(gap, 1e-15, upper, xtol=1e-14))
    return Design(
        metric=metric,
        baseline=float(baseline),
        sd=s_c,
        mde_abs=float(delta),
        mde_rel=float(delta / baseline) if baseline else np.nan,
        alpha=alpha,
        alpha_per_test=a_test,
        power=power,
        control_share=control_share,
        n_treatments=n_treatments,
        n_control=int(round(w_c * n_total)),
        n_per_treatment=int(round(w_t * n_total)),
        n_total=int(n_total),
    )


def baseline_from_data(values) -> tuple[MetricKind, float, float]:
    """Estimate a design's inputs from historical per-customer values.

    Returns
    -------
    tuple
        ``(metric, baseline, sd)``: ``"conversion"`` when every value is 0 or 1, else
        ``"revenue"``; the mean and the standard deviation (``ddof=1``).
    """
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        name = getattr(values, "name", None)
        what = f"column {name!r}" if name is not None else "the values"
        raise ValueError(f"{what} is not numeric: cannot estimate a baseline from it") from None
    arr = arr[np.isfinite(arr)]
    if arr.size < 2:
        raise ValueError(f"need at least 2 finite values to estimate a baseline, got {arr.size}")
    kind: MetricKind = "conversion" if np.isin(arr, (0.0, 1.0)).all() else "revenue"
    return kind, float(arr.mean()), float(arr.std(ddof=1))
