"""Customer behaviour features as of a cutoff: RFM, rhythm, trend, baskets, needs, deals, campaigns, habits.

Pure functions of (tables, cutoff): only transactions with ``timestamp < cutoff``,
redemptions with ``redemption_date < cutoff`` and campaigns with ``start_date < cutoff``
are read. Values of a customer depend only on that customer's rows and on the global
statistics in ``globals_`` (RFM quintile edges, department list), which
:func:`customer_globals` computes once over all customers and callers pass explicitly
when they work on a subset.

Definitions
-----------
* Sale line: ``quantity > 0`` and ``sales_value >= 0``. A purchase basket holds at
  least one sale line; ``frequency`` counts purchase baskets.
* Spend (``monetary``, ``spend_*``): net ``sales_value`` of all lines, returns negative.
* Inter-purchase interval (``ipi_*``): calendar days between the customer's distinct
  purchase days (several baskets on one day are one visit).
* Windows are the last N days before the cutoff: ``spend_30d`` covers [T-30d, T),
  ``spend_prev_60d`` covers [T-120d, T-60d).
* ``spend_trend`` = (spend_60d + 10) / (spend_prev_60d + 10), negative spends floored at
  0: 1 = steady, above 1 growing. The prior (:data:`SPEND_TREND_PRIOR`) keeps small
  spends from giving huge ratios.
* Basket size is sale lines per basket; basket value is sale value per basket.
* Shares (``dept_share__*``, ``top_category_share`` = share of the customer's largest
  category, ``private_share`` among products with a known brand) are of sale value.
  ``discount_share`` / ``coupon_share``: retail / coupon discount over gross (paid +
  discounts); ``deal_line_share``: share of sale lines bought with any discount.
* Campaigns: ``campaigns_targeted`` counts campaigns started before the cutoff that
  targeted the customer (NaN without the campaigns table: targets cannot be dated);
  ``redemption_rate`` = targeted campaigns with a redemption / campaigns targeted.
* Habits per basket: ``store_loyalty`` (share in the customer's top store),
  ``weekend_share``, ``hour_mean``, ``dow_mode`` (0 = Monday; ties -> earliest day).
* ``return_value`` is the absolute value of returned lines.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from features._util import History, as_cutoff, private_label, safe_div, slug

logger = logging.getLogger(__name__)

#: Number of departments (largest global spend first) that get a ``dept_share__<dept>`` column.
TOP_DEPARTMENTS = 12
#: Added to both windows of ``spend_trend`` so small spends do not give huge ratios (currency units).
SPEND_TREND_PRIOR = 10.0
QUANTILES = (0.2, 0.4, 0.6, 0.8)
GLOBAL_KEYS = ("recency_edges", "frequency_edges", "monetary_edges", "departments")

#: RFM segment by (r_score, fm_score), both 1..5; fm_score = round-half-up mean of f and m.
#: Rows are r_score 1..5, columns fm_score 1..5 (the usual R x F grid of RFM practice).
_SEGMENT_GRID = (
    ("lost", "hibernating", "at_risk", "at_risk", "cant_lose"),
    ("hibernating", "hibernating", "at_risk", "at_risk", "at_risk"),
    ("about_to_sleep", "about_to_sleep", "need_attention", "loyal", "loyal"),
    ("promising", "potential", "potential", "loyal", "loyal"),
    ("new", "potential", "potential", "champions", "champions"),
)
SEGMENTS = tuple(sorted({s for row in _SEGMENT_GRID for s in row}))


# --------------------------------------------------------------------------- globals


def _rfm_base(hist: History) -> pd.DataFrame:
    """recency_days, frequency, monetary for customers with at least one purchase basket."""
    has = hist.frequency > 0
    last = hist.cust_b_last[has]
    monetary = np.bincount(hist.cust_code, weights=hist.value, minlength=hist.n_cust).astype(
        "float64", copy=False
    )
    return pd.DataFrame(
        {
            "recency_days": hist.b_days_before[last],
            "frequency": hist.frequency[has],
            "monetary": monetary[has],
        },
        index=pd.Index(hist.cust_ids[has], name="customer_id"),
    )


def _globals_from(hist: History, tables, base: pd.DataFrame) -> dict:
    def edges(col):
        if base.empty:
            return [float("nan")] * len(QUANTILES)
        return [float(x) for x in np.quantile(base[col].to_numpy("float64"), QUANTILES)]

    departments: list[str] = []
    dept = hist.product_attribute(tables.products, "department")
    if hist.n_lines and any(d is not None for d in dept):
        sale = hist.sale
        spend = pd.Series(hist.value[sale]).groupby(dept[hist.prod_code[sale]], dropna=True).sum()
        spend = spend[spend > 0].sort_values(ascending=False, kind="stable")
        departments = [str(d) for d in spend.index[:TOP_DEPARTMENTS]]
    return {
        "cutoff": str(hist.cutoff),
        "recency_edges": edges("recency_days"),
        "frequency_edges": edges("frequency"),
        "monetary_edges": edges("monetary"),
        "departments": departments,
    }


def customer_globals(tables, cutoff) -> dict:
    """Global statistics the customer features need, computed over all customers as of ``cutoff``.

    Parameters
    ----------
    tables : Tables
        Canonical tables.
    cutoff : timestamp-like
        As-of time; only events strictly before it are read.

    Returns
    -------
    dict
        JSON-serialisable: ``cutoff``, ``recency_edges``, ``frequency_edges``,
        ``monetary_edges`` (RFM quintile edges, 4 values each) and ``departments`` (the
        departments with a ``dept_share__`` column, largest spend first).
    """
    hist = History(tables, cutoff)
    return _globals_from(hist, tables, _rfm_base(hist))


def _check_globals(globals_: dict) -> None:
    if not isinstance(globals_, dict):
        raise TypeError(
            f"globals_ must be the dict returned by customer_globals, got {type(globals_).__name__}"
        )
    missing = [k for k in GLOBAL_KEYS if k not in globals_]
    if missing:
        raise ValueError(
            f"globals_ lacks {missing}; build it with customer_globals(tables, cutoff)"
        )
    for k in GLOBAL_KEYS[:3]:
        if len(globals_[k]) != len(QUANTILES):
            raise ValueError(
                f"globals_[{k!r}] must hold {len(QUANTILES)} quintile edges, got {len(globals_[k])}"
            )


# --------------------------------------------------------------------------- scores


def rfm_scores(base: pd.DataFrame, globals_: dict) -> pd.DataFrame:
    """r_score, f_score, m_score (1..5) and rfm_segment from global quintile edges.

    A value's score is 1 + the number of edges strictly below it (for recency, where
    lower is better, 5 minus that number): customers tied on an edge share the lower bin.
    """

    def bins(col, key):
        e = np.asarray(globals_[key], dtype="float64")
        return np.searchsorted(e, base[col].to_numpy("float64"), side="left")

    r = 5 - bins("recency_days", "recency_edges")
    f = 1 + bins("frequency", "frequency_edges")
    m = 1 + bins("monetary", "monetary_edges")
    fm = (f + m + 1) // 2
    grid = np.array(_SEGMENT_GRID, dtype=object)
    return pd.DataFrame(
        {
            "r_score": r.astype("int8"),
            "f_score": f.astype("int8"),
            "m_score": m.astype("int8"),
            "rfm_segment": grid[r - 1, fm - 1],
        },
        index=base.index,
    )


# --------------------------------------------------------------------------- features


def _window_sum(hist: History, weights: np.ndarray, mask: np.ndarray) -> np.ndarray:
    # float64 even when the window is empty (bincount of nothing is int64): one schema per cutoff
    out = np.bincount(hist.cust_code[mask], weights=weights[mask], minlength=hist.n_cust)
    return out.astype("float64", copy=False)


def _campaign_features(tables, cutoff: pd.Timestamp, ids: pd.Index) -> pd.DataFrame:
    """Campaign exposure and response; NaN where the tables needed are missing."""
    out = pd.DataFrame(index=ids, dtype="float64")
    for c in ("campaigns_targeted", "campaigns_redeemed", "coupons_redeemed", "redemption_rate"):
        out[c] = np.nan
    targeted = None
    if tables.campaign_targets is not None and tables.campaigns is not None:
        started = tables.campaigns.loc[tables.campaigns["start_date"] < cutoff, "campaign_id"]
        tg = tables.campaign_targets
        tg = tg[tg["campaign_id"].isin(started) & tg["customer_id"].isin(ids)]
        targeted = tg[["customer_id", "campaign_id"]].drop_duplicates()
        out["campaigns_targeted"] = (
            targeted.groupby("customer_id").size().reindex(ids, fill_value=0).astype("float64")
        )
    if tables.redemptions is not None:
        rd = tables.redemptions
        rd = rd[(rd["redemption_date"] < cutoff) & rd["customer_id"].isin(ids)]
        out["coupons_redeemed"] = (
            rd.groupby("customer_id").size().reindex(ids, fill_value=0).astype("float64")
        )
        red_c = rd[["customer_id", "campaign_id"]].drop_duplicates()
        out["campaigns_redeemed"] = (
            red_c.groupby("customer_id").size().reindex(ids, fill_value=0).astype("float64")
        )
        if targeted is not None:
            both = red_c.merge(targeted, on=["customer_id", "campaign_id"])
            hits = both.groupby("customer_id").size().reindex(ids, fill_value=0).to_numpy("float64")
            out["redemption_rate"] = safe_div(hits, out["campaigns_targeted"].to_numpy())
    return out


def _features(hist: History, tables, globals_: dict) -> pd.DataFrame:
    _check_globals(globals_)
    base = _rfm_base(hist)
    has = hist.frequency > 0
    ids = base.index
    n = hist.n_cust
    cols: dict[str, np.ndarray] = {}

    # rhythm: tenure, inter-purchase intervals over distinct purchase days, overdue
    first = hist.cust_b_start[has]
    cols["tenure_days"] = hist.b_days_before[first]
    day, bc = hist.b_day, hist.b_cust
    new_day = np.ones(len(day), dtype=bool)
    new_day[1:] = (day[1:] != day[:-1]) | (bc[1:] != bc[:-1])
    d_cust, d_day = bc[new_day], day[new_day]
    gap_ok = np.zeros(len(d_cust), dtype=bool)
    gap_ok[1:] = d_cust[1:] == d_cust[:-1]
    gaps = np.diff(d_day, prepend=0).astype("float64")[gap_ok]
    g_cust = d_cust[gap_ok]
    n_gaps = np.bincount(g_cust, minlength=n)
    ipi_mean = safe_div(np.bincount(g_cust, weights=gaps, minlength=n), n_gaps)
    dev2 = (gaps - ipi_mean[g_cust]) ** 2
    ipi_std = np.sqrt(
        safe_div(
            np.bincount(g_cust, weights=dev2, minlength=n), np.where(n_gaps >= 2, n_gaps - 1, 0)
        )
    )
    cols["ipi_mean"] = ipi_mean[has]
    cols["ipi_std"] = ipi_std[has]
    cols["overdue_ratio"] = safe_div(base["recency_days"].to_numpy(), cols["ipi_mean"])

    # spend windows and trend (net spend, returns included)
    db, val = hist.days_before, hist.value
    for days in (30, 60, 90):
        cols[f"spend_{days}d"] = _window_sum(hist, val, db <= days)[has]
    cols["spend_prev_60d"] = _window_sum(hist, val, (db > 60) & (db <= 120))[has]
    cols["spend_trend"] = (np.maximum(cols["spend_60d"], 0) + SPEND_TREND_PRIOR) / (
        np.maximum(cols["spend_prev_60d"], 0) + SPEND_TREND_PRIOR
    )
    cols["baskets_90d"] = np.bincount(bc, weights=hist.b_days_before <= 90, minlength=n).astype(
        "float64", copy=False
    )[has]

    # baskets
    freq = hist.frequency[has]
    cols["basket_size_mean"] = np.bincount(bc, weights=hist.b_lines, minlength=n)[has] / freq
    cols["basket_value_mean"] = np.bincount(bc, weights=hist.b_value, minlength=n)[has] / freq

    # needs: breadth, department shares, brand
    pairs = hist.pairs
    pc = pairs["cust"]
    cols["n_products"] = np.bincount(pc, minlength=n)[has].astype("float64")
    products = tables.products
    for attr, name in (("department", "n_departments"), ("category", "n_categories")):
        lab = hist.product_attribute(products, attr)
        if products is None or attr not in products.columns:
            cols[name] = np.full(len(ids), np.nan)
            continue
        code, labels = pd.factorize(lab)  # None -> -1
        k = max(len(labels), 1)
        pcode = code[pairs["prod"]]
        ok = pcode >= 0
        uniq, inv = np.unique(pc[ok] * k + pcode[ok], return_inverse=True)
        cols[name] = np.bincount(uniq // k, minlength=n)[has].astype("float64")
        if attr == "category":  # concentration: spend share of the customer's first category
            spend = np.bincount(inv, weights=pairs["value"][ok], minlength=len(uniq))
            top_cat = np.zeros(n)
            np.maximum.at(top_cat, uniq // k, spend)
            cols["top_category_share"] = top_cat

    sale = hist.sale
    s_cust, s_val, s_prod = hist.cust_code[sale], hist.value[sale], hist.prod_code[sale]
    sale_spend = np.bincount(s_cust, weights=s_val, minlength=n)
    if "top_category_share" in cols:
        cols["top_category_share"] = safe_div(cols["top_category_share"], sale_spend)[has]
    else:
        cols["top_category_share"] = np.full(len(ids), np.nan)
    dept = hist.product_attribute(products, "department")
    for d in globals_["departments"]:
        in_d = (dept == d)[s_prod]
        cols[f"dept_share__{slug(d)}"] = safe_div(
            np.bincount(s_cust[in_d], weights=s_val[in_d], minlength=n), sale_spend
        )[has]
    flag = private_label(hist.product_attribute(products, "brand"))[s_prod]
    known, private = ~np.isnan(flag), flag == 1.0
    cols["private_share"] = safe_div(
        np.bincount(s_cust[private], weights=s_val[private], minlength=n),
        np.bincount(s_cust[known], weights=s_val[known], minlength=n),
    )[has]

    # deal sensitivity: discounts over gross (paid + discounts) on sale lines
    rd, cd = hist.retail_disc[sale], hist.coupon_disc[sale]
    gross = sale_spend + np.bincount(s_cust, weights=rd + cd, minlength=n)
    cols["discount_share"] = safe_div(np.bincount(s_cust, weights=rd, minlength=n), gross)[has]
    cols["coupon_share"] = safe_div(np.bincount(s_cust, weights=cd, minlength=n), gross)[has]
    deal = (rd > 0) | (cd > 0)
    cols["deal_line_share"] = safe_div(
        np.bincount(s_cust[deal], minlength=n), np.bincount(s_cust, minlength=n)
    )[has]

    # store loyalty
    sk = bc * max(hist.n_stores, 1) + hist.b_store
    uk, cnt = np.unique(sk, return_counts=True)
    uk_cust = uk // max(hist.n_stores, 1)
    top = np.zeros(n, dtype="int64")
    np.maximum.at(top, uk_cust, cnt)
    cols["store_loyalty"] = top[has] / freq
    cols["n_stores"] = np.bincount(uk_cust, minlength=n)[has].astype("float64")

    # day-of-week and hour habits (per basket); 1970-01-01 was a Thursday (Monday = 0)
    dow = (day + 3) % 7
    cols["weekend_share"] = np.bincount(bc, weights=dow >= 5, minlength=n)[has] / freq
    hour = (hist.b_ts - day * (86_400 * 10**9)) / 3.6e12
    cols["hour_mean"] = np.bincount(bc, weights=hour, minlength=n)[has] / freq
    dow_counts = np.bincount(bc * 7 + dow, minlength=n * 7).reshape(n, 7)
    cols["dow_mode"] = dow_counts.argmax(axis=1)[has].astype("int8")

    # returns
    ret = hist.is_return
    cols["return_lines"] = np.bincount(hist.cust_code[ret], minlength=n)[has].astype("float64")
    # float64 even without any return (bincount of nothing is int64): one schema for any subset
    cols["return_value"] = _window_sum(hist, np.abs(val), ret)[has]

    out = pd.concat([base, rfm_scores(base, globals_), pd.DataFrame(cols, index=ids)], axis=1)
    out = out.join(_campaign_features(tables, hist.cutoff, ids))
    order = [
        "recency_days",
        "frequency",
        "monetary",
        "r_score",
        "f_score",
        "m_score",
        "rfm_segment",
        "tenure_days",
        "ipi_mean",
        "ipi_std",
        "overdue_ratio",
        "spend_30d",
        "spend_60d",
        "spend_prev_60d",
        "spend_90d",
        "spend_trend",
        "baskets_90d",
        "basket_size_mean",
        "basket_value_mean",
        "n_departments",
        "n_categories",
        "n_products",
    ]
    order += [c for c in out.columns if c.startswith("dept_share__")]
    order += [
        "top_category_share",
        "private_share",
        "discount_share",
        "coupon_share",
        "deal_line_share",
        "campaigns_targeted",
        "campaigns_redeemed",
        "coupons_redeemed",
        "redemption_rate",
        "store_loyalty",
        "n_stores",
        "weekend_share",
        "hour_mean",
        "dow_mode",
        "return_lines",
        "return_value",
    ]
    out = out[order]
    out["frequency"] = out["frequency"].astype("int64")
    out.attrs["cutoff"] = str(hist.cutoff)
    return out


def customer_features(tables, cutoff, globals_: dict | None = None) -> pd.DataFrame:
    """Behaviour features of every customer with at least one purchase before ``cutoff``.

    Parameters
    ----------
    tables : Tables
        Canonical tables (optionally only some customers' rows).
    cutoff : timestamp-like
        As-of time; nothing at or after it is read.
    globals_ : dict, optional
        From :func:`customer_globals` on all customers. If omitted it is computed from
        ``tables``; pass it explicitly whenever ``tables`` holds a subset of customers,
        so scores and department columns match the full run.

    Returns
    -------
    pd.DataFrame
        Indexed by ``customer_id`` (sorted); columns as defined in the module docstring.
        ``dept_share__<dept>`` names use :func:`features._util.slug` of the department.
    """
    cutoff = as_cutoff(cutoff)
    hist = History(tables, cutoff)
    if globals_ is None:
        globals_ = _globals_from(hist, tables, _rfm_base(hist))
    return _features(hist, tables, globals_)
