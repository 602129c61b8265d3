"""A/B (and A/B/n) campaign analysis: lifts with confidence intervals, CUPED, SRM, Holm, ROI.

One row per customer goes in (arm, outcome metrics, optionally a pre-period covariate, a
discount amount and an exposure date); :func:`analyze` returns an :class:`AnalysisResult`
whose ``table`` has one row per (arm, metric, adjustment).

Metric names
------------
A metric is a numeric column (``conversion``: a 0/1 rate; ``spend``: revenue per customer)
or a ratio of two columns written ``"num/den"`` (``"spend/visit"``: spend per visitor),
analysed as ``sum(num) / sum(den)`` per arm with the delta method, since the customer (the
unit of randomisation) is not the unit of the ratio.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from campaigns import stats as st

logger = logging.getLogger(__name__)

DATE_COLUMNS = ("date", "first_exposure", "first_exposure_date")

TABLE_COLUMNS = [
    "arm",
    "metric",
    "kind",
    "adjustment",
    "is_control",
    "n",
    "mean",
    "mean_ci_low",
    "mean_ci_high",
    "control_mean",
    "abs_lift",
    "abs_se",
    "abs_ci_low",
    "abs_ci_high",
    "rel_lift",
    "rel_ci_low",
    "rel_ci_high",
    "p_value",
    "p_value_holm",
    "significant",
    "variance_reduction",
    "theta",
]


class CampaignDataError(ValueError):
    """The input table cannot be analysed as asked (missing column, unknown arm, ...)."""


@dataclass
class AnalysisResult:
    """Everything :func:`analyze` found.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per (arm, metric, adjustment) with the columns in ``TABLE_COLUMNS``.
        ``adjustment`` is ``"none"`` (plain Welch / delta method) or ``"cuped"``. Control rows
        carry ``n``, ``mean`` and its interval only. ``p_value_holm`` is Holm-adjusted over the
        treatment arms, per metric and adjustment; ``significant`` uses it.
    srm : campaigns.stats.SRMResult
        Sample-ratio-mismatch check of the arm sizes.
    economics : pandas.DataFrame or None
        Per treatment arm: incremental revenue, discount cost, contact cost, incremental margin
        and ROI (None without a revenue column).
    over_time : pandas.DataFrame or None
        Cumulative mean per (date, arm, metric) and, for treatment arms, the cumulative
        absolute lift with its interval (None without a date column).
    """

    table: pd.DataFrame
    srm: st.SRMResult
    arm_column: str
    control: str
    arms: list[str]
    metrics: list[str]
    covariate: str | None
    alpha: float
    economics: pd.DataFrame | None = None
    over_time: pd.DataFrame | None = None
    cuped: dict[str, dict[str, float]] = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def lift(self, arm: str, metric: str, adjustment: str = "none") -> pd.Series:
        """The table row for one treatment arm and metric."""
        t = self.table
        rows = t[(t["arm"] == arm) & (t["metric"] == metric) & (t["adjustment"] == adjustment)]
        if rows.empty:
            raise KeyError(f"no row for arm={arm!r}, metric={metric!r}, adjustment={adjustment!r}")
        return rows.iloc[0]

    def to_dict(self) -> dict:
        """JSON-ready summary: per arm and metric n, mean, lift, CI and p-value."""
        arms: dict[str, dict] = {}
        for arm in self.arms:
            rows = self.table[self.table["arm"] == arm]
            entry: dict = {
                "is_control": arm == self.control,
                "n": int(rows["n"].iloc[0]),
                "metrics": {},
            }
            for metric in self.metrics:
                r = rows[(rows["metric"] == metric) & (rows["adjustment"] == "none")].iloc[0]
                m = {
                    "kind": r["kind"],
                    "n": int(r["n"]),
                    "mean": _num(r["mean"]),
                    "mean_ci": [_num(r["mean_ci_low"]), _num(r["mean_ci_high"])],
                }
                if arm != self.control:
                    m.update(_lift_dict(r))
                    cu = rows[(rows["metric"] == metric) & (rows["adjustment"] == "cuped")]
                    if not cu.empty:
                        c = cu.iloc[0]
                        m["cuped"] = _lift_dict(c) | {
                            "variance_reduction": _num(c["variance_reduction"]),
                            "theta": _num(c["theta"]),
                        }
                entry["metrics"][metric] = m
            arms[arm] = entry
        out = {
            "arm_column": self.arm_column,
            "control": self.control,
            "metrics": list(self.metrics),
            "covariate": self.covariate,
            "alpha": self.alpha,
            "confidence": 1 - self.alpha,
            "srm": self.srm.to_dict(),
            "arms": arms,
            "settings": self.settings,
            "notes": list(self.notes),
        }
        if self.cuped:
            out["cuped"] = self.cuped
        if self.economics is not None:
            out["economics"] = _records(self.economics.set_index("arm"))
        return out


def _num(x) -> float | None:
    """Float for JSON (NaN -> None)."""
    if x is None:
        return None
    x = float(x)
    return x if np.isfinite(x) else None


def _records(frame: pd.DataFrame) -> dict:
    return {
        str(idx): {
            k: _num(v) if isinstance(v, float | int | np.number) else v for k, v in row.items()
        }
        for idx, row in frame.iterrows()
    }


def _lift_dict(r: pd.Series) -> dict:
    return {
        "control_mean": _num(r["control_mean"]),
        "lift": _num(r["abs_lift"]),
        "ci": [_num(r["abs_ci_low"]), _num(r["abs_ci_high"])],
        "relative_lift": _num(r["rel_lift"]),
        "relative_ci": [_num(r["rel_ci_low"]), _num(r["rel_ci_high"])],
        "p_value": _num(r["p_value"]),
        "p_value_holm": _num(r["p_value_holm"]),
        "significant": bool(r["significant"]) if pd.notna(r["significant"]) else None,
    }


def parse_metrics(metrics: str | Sequence[str]) -> list[str]:
    """Split ``"visit,conversion,spend/visit"`` into metric names (order kept, no repeats)."""
    items = metrics.split(",") if isinstance(metrics, str) else list(metrics)
    out: list[str] = []
    for m in items:
        m = str(m).strip()
        if m and m not in out:
            out.append(m)
    if not out:
        raise CampaignDataError(
            "no metric given: pass at least one metric column, e.g. 'conversion,spend'"
        )
    return out


def _numeric(df: pd.DataFrame, col: str, role: str) -> np.ndarray:
    s = df[col]
    if s.dtype == bool:
        s = s.astype(float)
    if not pd.api.types.is_numeric_dtype(s):
        conv = pd.to_numeric(s, errors="coerce")
        bad = conv.isna() & s.notna()
        if bad.any():
            example = s[bad].iloc[0]
            raise CampaignDataError(
                f"{role} column {col!r} is not numeric: {int(bad.sum())} values such as {example!r} are not numbers"
            )
        s = conv
    n_missing = int(s.isna().sum())
    if n_missing:
        raise CampaignDataError(
            f"{role} column {col!r} has {n_missing} missing values; fill them (e.g. 0 for no purchase) or drop those rows"
        )
    arr = s.to_numpy(dtype=float)
    if not np.isfinite(arr).all():
        raise CampaignDataError(f"{role} column {col!r} has infinite values")
    return arr


def _kind(values: np.ndarray) -> str:
    return "rate" if np.isin(values, (0.0, 1.0)).all() else "mean"


def parse_allocation(
    allocation: str | Sequence[float] | Mapping[str, float] | None, arms: list[str]
) -> dict[str, float] | None:
    """Planned allocation as ``{arm: share}``.

    Accepts a mapping, a sequence of shares in the order of ``arms`` (control first, then the
    treatment arms sorted by name), or a string ``"0.5,0.5"`` / ``"No E-Mail=0.5,Mens=0.25"``.
    Shares are normalised to sum to 1.
    """
    if allocation is None:
        return None
    if isinstance(allocation, str):
        parts = [p.strip() for p in allocation.split(",") if p.strip()]
        if all("=" in p for p in parts):
            allocation = {p.split("=", 1)[0].strip(): _share(p.split("=", 1)[1]) for p in parts}
        elif any("=" in p for p in parts):
            raise CampaignDataError(f"allocation {allocation!r} mixes 'arm=share' and bare shares")
        else:
            allocation = [_share(p) for p in parts]
    if isinstance(allocation, Mapping):
        unknown = [k for k in allocation if k not in arms]
        missing = [a for a in arms if a not in allocation]
        if unknown or missing:
            raise CampaignDataError(
                f"allocation names {sorted(map(str, allocation))} do not match the arms {arms}"
                f" (unknown: {unknown}, missing: {missing})"
            )
        shares = [float(allocation[a]) for a in arms]
    else:
        shares = [float(x) for x in allocation]
        if len(shares) != len(arms):
            raise CampaignDataError(
                f"allocation has {len(shares)} shares but there are {len(arms)} arms, in this order: {arms}"
            )
    if any(not np.isfinite(s) or s <= 0 for s in shares):
        raise CampaignDataError(f"allocation shares must be positive numbers, got {shares}")
    total = sum(shares)
    return {a: s / total for a, s in zip(arms, shares, strict=True)}


def _share(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise CampaignDataError(f"allocation share {text!r} is not a number") from None


def analyze(
    df: pd.DataFrame,
    arm: str,
    control: str,
    metrics: str | Sequence[str],
    covariate: str | None = None,
    alpha: float = 0.05,
    cost_per_contact: float = 0.0,
    margin: float | None = None,
    discount_col: str | None = None,
    revenue_col: str | None = None,
    allocation: str | Sequence[float] | Mapping[str, float] | None = None,
    date_col: str | None = None,
    srm_threshold: float = st.SRM_THRESHOLD,
) -> AnalysisResult:
    """Analyse a randomised campaign, one row per customer.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per randomised customer.
    arm : str
        Column holding the arm name (values are compared as strings).
    control : str
        Name of the control arm.
    metrics : str or sequence of str
        Metric columns (``"visit,conversion,spend"``); ``"num/den"`` for a ratio metric.
    covariate : str, optional
        Pre-period covariate for CUPED (e.g. past spend). Adds ``adjustment="cuped"`` rows
        for every non-ratio metric.
    alpha : float
        Two-sided level: intervals are ``1 - alpha``.
    cost_per_contact : float
        Cost of contacting one treated customer (mailing, SMS, ...).
    margin : float, optional
        Gross margin rate on revenue; needed for incremental margin and ROI.
    discount_col : str, optional
        Per-customer discount amount paid (a cost).
    revenue_col : str, optional
        Per-customer revenue for the economics (default: ``"spend"`` when present).
    allocation : str, sequence or mapping, optional
        Planned split for the SRM check (default: equal); see :func:`parse_allocation`.
    date_col : str, optional
        Exposure date for the over-time view (default: the first of ``DATE_COLUMNS`` present).
    srm_threshold : float
        SRM flag when the chi-square p-value is below this.

    Returns
    -------
    AnalysisResult

    Raises
    ------
    CampaignDataError
        Missing columns, unknown control arm, a single arm, non-numeric or missing metric values.
    """
    if not 0 < alpha < 1:
        raise CampaignDataError(f"alpha must be in (0, 1), got {alpha}")
    if cost_per_contact < 0:
        raise CampaignDataError(f"cost_per_contact must be >= 0, got {cost_per_contact}")
    if margin is not None and not 0 <= margin <= 1:
        raise CampaignDataError(f"margin is a rate in [0, 1], got {margin}")
    metric_list = parse_metrics(metrics)
    for col, role in [
        *((part, f"metric {m!r}") for m in metric_list for part in m.split("/")),
        (discount_col, "discount column"),
        (revenue_col, "revenue column"),
    ]:
        if col and col == arm:
            raise CampaignDataError(
                f"{role} names the arm column {arm!r}: the arm says which group a customer is"
                " in, it cannot also be an outcome or an amount"
            )
    needed: dict[str, str] = {arm: "arm"}
    for m in metric_list:
        for part in m.split("/") if "/" in m else [m]:
            needed.setdefault(part, f"metric {m!r}")
    if "/" in "".join(metric_list):
        bad = [m for m in metric_list if "/" in m and (m.count("/") != 1 or "" in m.split("/"))]
        if bad:
            raise CampaignDataError(f"ratio metrics are written 'numerator/denominator', got {bad}")
    if covariate:
        outcome_cols = {part for m in metric_list for part in m.split("/")}
        if covariate in outcome_cols:
            raise CampaignDataError(
                f"covariate {covariate!r} is also a metric: the covariate must be a pre-period"
                " column (measured before the campaign, e.g. past spend), not the metric itself"
            )
        if covariate == arm:
            raise CampaignDataError(f"covariate {covariate!r} is the arm column")
        needed.setdefault(covariate, "covariate")
    if discount_col:
        needed.setdefault(discount_col, "discount")
    if revenue_col:
        needed.setdefault(revenue_col, "revenue")
    missing = [f"{c!r} ({role})" for c, role in needed.items() if c not in df.columns]
    if missing:
        raise CampaignDataError(
            f"missing column(s) {', '.join(missing)}; the input has columns {list(map(str, df.columns))}"
        )
    if df[arm].isna().any():
        raise CampaignDataError(
            f"arm column {arm!r} has {int(df[arm].isna().sum())} missing values"
        )
    arm_values = df[arm].astype(str).to_numpy()
    present = sorted(set(arm_values))
    control = str(control)
    if control not in present:
        raise CampaignDataError(
            f"control arm {control!r} not found in column {arm!r}; arms are {present}"
        )
    if isinstance(df[arm].dtype, pd.CategoricalDtype):
        empty = sorted({str(c) for c in df[arm].cat.categories} - set(present))
    else:
        empty = []
    treatments = [a for a in present if a != control]
    if not treatments:
        raise CampaignDataError(
            f"column {arm!r} holds only the control arm {control!r}: nothing to compare"
        )
    arms = [control, *treatments]
    masks = {a: arm_values == a for a in arms}
    small = [a for a in arms if masks[a].sum() < 2]
    if small:
        raise CampaignDataError(f"arm(s) {small} have fewer than 2 customers")

    notes: list[str] = []
    amounts = {
        c for c in (revenue_col or ("spend" if "spend" in df.columns else None), discount_col) if c
    } | set(df.attrs.get("amounts", ()))
    if empty:
        notes.append(
            f"arm(s) {empty} of column {arm!r} have no customers (categories without rows):"
            " they are left out of the lifts and of the sample-ratio check; if customers were"
            " assigned to them, the experiment lost them all"
        )
    counts = {a: int(masks[a].sum()) for a in arms}
    shares = parse_allocation(allocation, arms)
    srm = st.srm_test(counts, shares, threshold=srm_threshold)
    if srm.flagged:
        logger.warning("%s", srm.message())
        notes.append(srm.message())

    if "n_arms" in df.columns:
        switched = int((pd.to_numeric(df["n_arms"], errors="coerce") > 1).sum())
        if switched:
            notes.append(
                f"{switched} customers were exposed in more than one arm; each is analysed in their first arm"
                " (intention to treat), which dilutes the lift"
            )

    values: dict[str, np.ndarray] = {}
    for col, role in needed.items():
        if role != "arm":
            values[col] = _numeric(df, col, role)
    x = values[covariate] if covariate else None

    rows: list[dict] = []
    cuped_info: dict[str, dict[str, float]] = {}
    for metric in metric_list:
        if "/" in metric:
            num_col, den_col = metric.split("/")
            num, den = values[num_col], values[den_col]
            rows.extend(_ratio_rows(metric, num, den, arms, masks, control, alpha))
            zero = [a for a in arms if den[masks[a]].sum() == 0]
            if zero:
                notes.append(
                    f"ratio {metric!r}: the denominator {den_col!r} sums to 0 in arm(s) {zero},"
                    " so the ratio is undefined there and its lift, interval and p-value are not"
                    " computed"
                )
            continue
        y = values[metric]
        # an amount of money is a mean even when every value is 0 or 1 (e.g. no spend yet)
        kind = "mean" if metric in amounts else _kind(y)
        rows.extend(_mean_rows(metric, kind, "none", y, arms, masks, control, alpha, notes=notes))
        if x is not None:
            y_adj, theta = st.cuped_adjust(y, x)
            corr = float(np.corrcoef(y, x)[0, 1]) if y.std() > 0 and x.std() > 0 else 0.0
            cuped_info[metric] = {
                "theta": theta,
                "corr": corr,
                "expected_variance_reduction": corr**2,
            }
            cu_rows = _mean_rows(
                metric, kind, "cuped", y_adj, arms, masks, control, alpha, raw=y, notes=notes
            )
            raw_rows = {
                r["arm"]: r for r in rows if r["metric"] == metric and r["adjustment"] == "none"
            }
            for r in cu_rows:
                raw_se = raw_rows[r["arm"]]["abs_se"]
                r["variance_reduction"] = 1 - (r["abs_se"] / raw_se) ** 2 if raw_se > 0 else np.nan
                r["theta"] = theta
            rows.extend(cu_rows)

    table = pd.DataFrame(rows)
    for col in TABLE_COLUMNS:
        if col not in table:
            table[col] = np.nan
    table = table[TABLE_COLUMNS]
    treat = ~table["is_control"]
    for (_, _), idx in table[treat].groupby(["metric", "adjustment"]).groups.items():
        table.loc[idx, "p_value_holm"] = st.holm(table.loc[idx, "p_value"].to_numpy())
    table["significant"] = pd.Series(
        [
            bool(p < alpha) if not ctl and np.isfinite(p) else None
            for p, ctl in zip(table["p_value_holm"], table["is_control"], strict=True)
        ],
        index=table.index,
        dtype=object,
    )

    if revenue_col is None and "spend" in df.columns:
        try:
            values.setdefault("spend", _numeric(df, "spend", "revenue"))
            revenue_col = "spend"
        except CampaignDataError as exc:
            notes.append(f"economics skipped: {exc}")
    economics = None
    if revenue_col is not None:
        disc = values[discount_col] if discount_col else None
        economics = _economics(
            values[revenue_col], disc, arms, masks, control, alpha, cost_per_contact, margin
        )
        if margin is None:
            notes.append(
                "margin rate not given: incremental margin and ROI are not computed (pass margin=0.3 for 30%)"
            )
        else:
            costs = zip(economics["arm"], economics["total_cost"], strict=True)
            free = [str(a) for a, c in costs if not c > 0]
            if free:
                notes.append(
                    f"ROI is not computed for arm(s) {free}: their cost is not positive (no cost per"
                    " contact, no incremental discount), so ROI = margin / cost is undefined; the"
                    " incremental margin is the campaign's return"
                )
    elif margin is not None or discount_col or cost_per_contact:
        notes.append("no revenue column: economics (incremental revenue, margin, ROI) skipped")

    if date_col is None:
        date_col = next((c for c in DATE_COLUMNS if c in df.columns), None)
    elif date_col not in df.columns:
        raise CampaignDataError(
            f"date column {date_col!r} not found; the input has columns {list(map(str, df.columns))}"
        )
    over_time = None
    if date_col is not None:
        plain = [m for m in metric_list if "/" not in m]
        over_time = cumulative_over_time(
            df, arm_values, values, plain, date_col, arms, control, alpha
        )

    return AnalysisResult(
        table=table,
        srm=srm,
        arm_column=arm,
        control=control,
        arms=arms,
        metrics=metric_list,
        covariate=covariate,
        alpha=alpha,
        economics=economics,
        over_time=over_time,
        cuped=cuped_info,
        settings={
            "cost_per_contact": cost_per_contact,
            "margin": margin,
            "discount_column": discount_col,
            "revenue_column": revenue_col,
            "date_column": date_col,
            "srm_threshold": srm_threshold,
        },
        notes=notes,
    )


def _mean_rows(
    metric: str,
    kind: str,
    adjustment: str,
    y: np.ndarray,
    arms: list[str],
    masks: dict[str, np.ndarray],
    control: str,
    alpha: float,
    raw: np.ndarray | None = None,
    notes: list[str] | None = None,
) -> list[dict]:
    raw = y if raw is None else raw
    binary = None if kind == "rate" else False  # an amount is never tested as a rate
    rows = []
    yc = y[masks[control]]
    raw_c = raw[masks[control]]
    for a in arms:
        ra = raw[masks[a]]
        lo, hi = st.mean_interval(ra, alpha, binary=binary)
        row = {
            "arm": a,
            "metric": metric,
            "kind": kind,
            "adjustment": adjustment,
            "is_control": a == control,
            "n": int(ra.size),
            "mean": float(ra.mean()),
            "mean_ci_low": lo,
            "mean_ci_high": hi,
            "control_mean": float(raw_c.mean()),
        }
        if a == control:
            if adjustment == "none":
                rows.append(row)
            continue
        cmp = st.compare_means(y[masks[a]], yc, alpha, binary=binary)
        row.update(_lift_cols(cmp))
        rows.append(row)
        note = _method_note(metric, a, adjustment, cmp["method"])
        if note and notes is not None:
            notes.append(note)
    return rows


def _method_note(metric: str, arm: str, adjustment: str, method: str) -> str | None:
    """A note for a lift not computed with the Welch test (see :func:`campaigns.stats.compare_means`)."""
    what = f"{metric!r}, arm {arm!r}" + ("" if adjustment == "none" else f" ({adjustment})")
    if method == "exact":
        return (
            f"{what}: fewer than {st.EXACT_MIN_COUNT} successes or failures in an arm, so the"
            " p-value is Fisher's exact test and the interval Newcombe's score interval"
        )
    if method == "none":
        return (
            f"{what}: both arms are constant, so the lift has no standard error;"
            " its p-value and interval are not computed"
        )
    return None


def _ratio_rows(
    metric: str,
    num: np.ndarray,
    den: np.ndarray,
    arms: list[str],
    masks: dict[str, np.ndarray],
    control: str,
    alpha: float,
) -> list[dict]:
    from scipy import stats as sps

    z = float(sps.norm.ppf(1 - alpha / 2))
    mc = masks[control]
    r_c, _ = st.ratio_estimate(num[mc], den[mc])
    rows = []
    for a in arms:
        m = masks[a]
        r, se = st.ratio_estimate(num[m], den[m])
        row = {
            "arm": a,
            "metric": metric,
            "kind": "ratio",
            "adjustment": "none",
            "is_control": a == control,
            "n": int(m.sum()),
            "mean": r,
            "mean_ci_low": r - z * se,
            "mean_ci_high": r + z * se,
            "control_mean": r_c,
        }
        if a != control:
            row.update(_lift_cols(st.compare_ratios(num[m], den[m], num[mc], den[mc], alpha)))
        rows.append(row)
    return rows


def _lift_cols(cmp: dict) -> dict:
    return {
        "abs_lift": cmp["diff"],
        "abs_se": cmp["se"],
        "abs_ci_low": cmp["ci_low"],
        "abs_ci_high": cmp["ci_high"],
        "rel_lift": cmp["rel"],
        "rel_ci_low": cmp["rel_ci_low"],
        "rel_ci_high": cmp["rel_ci_high"],
        "p_value": cmp["p_value"],
    }


def _economics(
    revenue: np.ndarray,
    discount: np.ndarray | None,
    arms: list[str],
    masks: dict[str, np.ndarray],
    control: str,
    alpha: float,
    cost_per_contact: float,
    margin: float | None,
) -> pd.DataFrame:
    """Money per treatment arm, scaled to the arm's customers.

    Revenue is taken before the campaign's discount, which is counted as a cost. The discount
    cost is incremental (arm mean minus control mean, times the arm's customers): it equals the
    arm's total discount when control gets none, and it still charges discounts handed to
    customers who would have bought anyway. Margin per customer is
    ``margin * revenue - discount``; its lift gets a Welch interval, so the incremental margin's
    interval includes the uncertainty of both revenue and discount.
    """
    mc = masks[control]
    disc = np.zeros_like(revenue) if discount is None else discount
    rows = []
    for a in arms[1:]:
        m = masks[a]
        n = int(m.sum())
        rev = st.compare_means(revenue[m], revenue[mc], alpha, binary=False)
        d = (
            st.compare_means(disc[m], disc[mc], alpha, binary=False)
            if discount is not None
            else None
        )
        contact = cost_per_contact * n
        discount_cost = d["diff"] * n if d is not None else 0.0
        row = {
            "arm": a,
            "n": n,
            "revenue_per_customer_lift": rev["diff"],
            "incremental_revenue": rev["diff"] * n,
            "incremental_revenue_ci_low": rev["ci_low"] * n,
            "incremental_revenue_ci_high": rev["ci_high"] * n,
            "discount_cost": discount_cost,
            "contact_cost": contact,
            "total_cost": discount_cost + contact,
            "margin_rate": np.nan if margin is None else margin,
            "incremental_margin": np.nan,
            "incremental_margin_ci_low": np.nan,
            "incremental_margin_ci_high": np.nan,
            "roi": np.nan,
        }
        if margin is not None:
            value = margin * revenue - disc
            mv = st.compare_means(value[m], value[mc], alpha, binary=False)
            row["incremental_margin"] = mv["diff"] * n - contact
            row["incremental_margin_ci_low"] = mv["ci_low"] * n - contact
            row["incremental_margin_ci_high"] = mv["ci_high"] * n - contact
            cost = discount_cost + contact
            # ROI = what the campaign earned net of its costs, per unit of cost.
            row["roi"] = row["incremental_margin"] / cost if cost > 0 else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def cumulative_over_time(
    df: pd.DataFrame,
    arm_values: np.ndarray,
    values: dict[str, np.ndarray],
    metrics: list[str],
    date_col: str,
    arms: list[str],
    control: str,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Cumulative mean per arm by exposure date, and cumulative lift vs control with its CI.

    Returns
    -------
    pandas.DataFrame
        Columns ``date, arm, metric, n, mean, abs_lift, ci_low, ci_high`` (lift columns NaN for
        control and while an arm has fewer than 2 customers).
    """
    dates = pd.to_datetime(df[date_col], errors="coerce", utc=True)
    if dates.isna().all():
        raise CampaignDataError(f"date column {date_col!r} holds no parseable dates")
    day = dates.dt.tz_convert(None).dt.normalize().to_numpy()
    all_days = np.sort(pd.unique(day[~pd.isna(day)]))
    out = []
    for metric in metrics:
        y = values[metric]
        frame = pd.DataFrame({"day": day, "arm": arm_values, "y": y, "y2": y * y})
        g = (
            frame.dropna(subset=["day"])
            .groupby(["arm", "day"])
            .agg(n=("y", "size"), s=("y", "sum"), s2=("y2", "sum"))
        )
        cum = {}
        for a in arms:
            ga = (
                g.loc[a]
                if a in g.index.get_level_values(0)
                else pd.DataFrame(columns=["n", "s", "s2"], dtype=float)
            )
            ga = ga.reindex(all_days, fill_value=0).cumsum()
            cum[a] = ga
        c = cum[control]
        for a in arms:
            ga = cum[a]
            for d, (n, s, s2) in zip(
                all_days, ga[["n", "s", "s2"]].to_numpy(dtype=float), strict=True
            ):
                rec = {
                    "date": pd.Timestamp(d),
                    "arm": a,
                    "metric": metric,
                    "n": int(n),
                    "mean": s / n if n else np.nan,
                }
                rec.update({"abs_lift": np.nan, "ci_low": np.nan, "ci_high": np.nan})
                nc, sc, s2c = c.loc[d, ["n", "s", "s2"]].to_numpy(dtype=float)
                if a != control and n >= 2 and nc >= 2:
                    mt, mc_ = s / n, sc / nc
                    vt = max(s2 - n * mt * mt, 0.0) / (n - 1)
                    vc = max(s2c - nc * mc_ * mc_, 0.0) / (nc - 1)
                    w = st.welch_from_moments(mt, vt, int(n), mc_, vc, int(nc), alpha)
                    rec.update(
                        {"abs_lift": w["diff"], "ci_low": w["ci_low"], "ci_high": w["ci_high"]}
                    )
                out.append(rec)
    return pd.DataFrame(out)
