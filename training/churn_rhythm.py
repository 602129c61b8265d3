"""Visit-regularity, trend and recent-activity features for the churn model.

Computed here from the canonical tables, as of a cutoff ``T`` (only events strictly
before ``T`` are read), for the rows of :func:`training.churn.model_features`:

* weekly visit days over the last 4 / 8 / 26 weeks (``visits_{w}w``) and the share of
  those weeks with a visit (``visit_weeks_{w}w``), per observed week (a cutoff with less
  data than the window divides by the weeks it has);
* least-squares slopes of weekly visit days and weekly net spend over the last 13 weeks
  (``visit_slope_13w``, ``spend_slope_13w``) and the same relative to the customer's level
  (``*_rel_13w``), the median weekly spend (``weekly_spend_median_13w``) and visits of the
  last 4 weeks vs the last 13 (``visits_4w_vs_13w``);
* the distribution of the gaps between visit days: median and 90th percentile, the
  current open gap (days since the last visit) over each of them, its z-score against the
  gap mean and deviation (``recency_z``), the share of gaps of 60 days or more, how many
  past gaps were at least as long as the open one (``gaps_ge_recency``) and, among those,
  the share that went on for 60 more days (``gap_survival_60``, smoothed): the customer's
  own empirical chance of staying away for the churn window;
* median basket value overall and over the last 60 days, and its trend vs the 60 days
  before (``basket_median_trend``);
* categories bought in the last 60 days and their trend vs the 60 days before;
* coupons redeemed, coupon discount and campaigns started in the last 60 days.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features._util import days_back, observed_weeks_before
from features.contract import Tables

DAY = pd.Timedelta(days=1)
WEEKS = 26
#: Trend and "recent" windows (days).
RECENT_DAYS = 60
#: Smoothing of ``gap_survival_60``: (longer + a) / (at_least + b).
SURVIVAL_PRIOR = (0.1, 1.0)

RHYTHM_COLUMNS = (
    "visit_weeks_4w",
    "visits_4w",
    "visit_weeks_8w",
    "visits_8w",
    "visit_weeks_26w",
    "visits_26w",
    "visit_slope_13w",
    "spend_slope_13w",
    "spend_slope_rel_13w",
    "visit_slope_rel_13w",
    "weekly_spend_median_13w",
    "visits_4w_vs_13w",
    "gap_median",
    "gap_p90",
    "recency_over_median_gap",
    "recency_over_p90_gap",
    "recency_z",
    "gap_survival_60",
    "gaps_ge_recency",
    "share_gaps_over_60",
    "basket_median_all",
    "basket_median_60d",
    "basket_median_trend",
    "categories_60d",
    "categories_trend",
    "coupons_redeemed_60d",
    "coupon_disc_60d",
    "campaigns_started_60d",
)


def _slope(m: np.ndarray) -> np.ndarray:
    """Least-squares slope per row over the columns (column 0 = oldest)."""
    x = np.arange(m.shape[1]) - (m.shape[1] - 1) / 2
    return (m * x).sum(axis=1) / (x**2).sum()


def _per_customer(values: pd.Series, codes: np.ndarray, n: int, fill=0.0) -> np.ndarray:
    return values.groupby(codes).sum().reindex(range(n), fill_value=fill).to_numpy("float64")


def rhythm_features(
    tables: Tables, cutoff, customer_ids, horizon_days: int = RECENT_DAYS, data_start=None
) -> pd.DataFrame:
    """The features listed in the module docstring, indexed by ``customer_ids``, float64.

    ``horizon_days`` is the churn window of ``gap_survival_60`` (named for the protocol's 60).
    ``data_start`` is when the data begin, which sets the weeks observed before ``cutoff``: a
    global statistic, to pass when ``tables`` hold only some customers (default: the first
    transaction in ``tables``). With it, a customer's row does not depend on the others.
    """
    cutoff = pd.Timestamp(cutoff)
    ids = pd.Index(customer_ids, name="customer_id")
    n = len(ids)
    all_tx = tables.transactions
    observed_weeks = max(observed_weeks_before(all_tx, cutoff, data_start), 1)
    tx = all_tx[all_tx["timestamp"] < cutoff]
    code = ids.get_indexer(tx["customer_id"].to_numpy())
    keep = code >= 0
    tx, code = tx[keep], code[keep]
    age = ((cutoff - tx["timestamp"]) / DAY).to_numpy()
    day = days_back(age)  # 0 = [T - 1 day, T): day < N is the last N days
    week = day // 7
    value = tx["sales_value"].to_numpy("float64")
    sale = ((tx["quantity"] > 0) & (tx["sales_value"] >= 0)).to_numpy()
    out: dict[str, np.ndarray] = {}

    # weekly visit days and weekly net spend, newest week first
    vd = pd.DataFrame({"c": code[sale], "d": day[sale]}).drop_duplicates()
    vdc, vdd = vd["c"].to_numpy(), vd["d"].to_numpy()
    visits = np.zeros((n, WEEKS))
    w_ok = vdd // 7 < WEEKS
    np.add.at(visits, (vdc[w_ok], vdd[w_ok] // 7), 1.0)
    spend = np.zeros((n, WEEKS))
    s_ok = week < WEEKS
    np.add.at(spend, (code[s_ok], week[s_ok]), value[s_ok])
    for w in (4, 8, 26):
        ww = min(w, observed_weeks)
        out[f"visit_weeks_{w}w"] = (visits[:, :ww] > 0).sum(axis=1) / ww
        out[f"visits_{w}w"] = visits[:, :ww].sum(axis=1) / ww
    v13, s13 = visits[:, :13][:, ::-1], spend[:, :13][:, ::-1]
    out["visit_slope_13w"] = _slope(v13)
    out["spend_slope_13w"] = _slope(s13)
    out["spend_slope_rel_13w"] = out["spend_slope_13w"] / (np.abs(s13.mean(axis=1)) + 5.0)
    out["visit_slope_rel_13w"] = out["visit_slope_13w"] / (v13.mean(axis=1) + 0.1)
    out["weekly_spend_median_13w"] = np.median(s13, axis=1)
    out["visits_4w_vs_13w"] = (visits[:, :4].sum(axis=1) / 4 + 0.05) / (
        visits[:, :13].sum(axis=1) / 13 + 0.05
    )

    # gaps between visit days (oldest first per customer)
    order = np.lexsort((-vdd, vdc))
    gc, gd = vdc[order], vdd[order]
    same = np.zeros(len(gc), dtype=bool)
    same[1:] = gc[1:] == gc[:-1]
    gaps = pd.DataFrame({"c": gc[same], "gap": (gd[:-1] - gd[1:])[same[1:]].astype("float64")})
    last_day = np.full(n, np.nan)
    np.fmin.at(last_day, vdc, vdd.astype("float64"))
    recency = last_day + 0.5
    by = gaps.groupby("c")["gap"]
    # (columns named even when no customer has two visit days)
    q = by.quantile([0.5, 0.9]).unstack().reindex(index=range(n), columns=[0.5, 0.9])
    med, p90 = q[0.5].to_numpy(), q[0.9].to_numpy()
    out["gap_median"] = med
    out["gap_p90"] = p90
    out["recency_over_median_gap"] = recency / np.maximum(med, 1.0)
    out["recency_over_p90_gap"] = recency / np.maximum(p90, 1.0)
    mu = by.mean().reindex(range(n)).to_numpy()
    sd = by.std().reindex(range(n)).to_numpy()
    out["recency_z"] = (recency - mu) / np.maximum(sd, 1.0)
    g_rec = recency[gaps["c"].to_numpy()]
    g = gaps["gap"].to_numpy()
    gcode = gaps["c"].to_numpy()
    at_least = np.bincount(gcode, weights=g >= g_rec, minlength=n)
    longer = np.bincount(gcode, weights=g >= g_rec + horizon_days, minlength=n)
    a, b = SURVIVAL_PRIOR
    out["gap_survival_60"] = (longer + a) / (at_least + b)
    out["gaps_ge_recency"] = at_least
    n_gaps = np.bincount(gcode, minlength=n)
    out["share_gaps_over_60"] = np.bincount(
        gcode, weights=g >= horizon_days, minlength=n
    ) / np.maximum(n_gaps, 1)

    # basket value: median overall, recent, trend
    bk = (
        pd.DataFrame({"c": code, "b": tx["basket_id"].to_numpy(), "d": day, "v": value})
        .groupby("b", sort=False)
        .agg(c=("c", "first"), d=("d", "min"), v=("v", "sum"))
    )
    recent_b = bk["d"] < RECENT_DAYS
    prev_b = (bk["d"] >= RECENT_DAYS) & (bk["d"] < 2 * RECENT_DAYS)
    med_all = bk.groupby("c")["v"].median().reindex(range(n))
    med_recent = bk[recent_b].groupby("c")["v"].median().reindex(range(n))
    med_prev = bk[prev_b].groupby("c")["v"].median().reindex(range(n))
    out["basket_median_all"] = med_all.to_numpy()
    out["basket_median_60d"] = med_recent.to_numpy()
    out["basket_median_trend"] = ((med_recent + 5.0) / (med_prev + 5.0)).to_numpy()

    # category breadth, recent vs before
    out["categories_60d"] = np.full(n, np.nan)
    out["categories_trend"] = np.full(n, np.nan)
    products = tables.products
    if products is not None and "category" in products.columns:
        win = sale & (day < 2 * RECENT_DAYS)
        cat_of = products.drop_duplicates("product_id").set_index("product_id")["category"]
        cat = pd.Series(tx["product_id"].to_numpy()[win]).map(cat_of).to_numpy()
        cc = pd.DataFrame({"c": code[win], "cat": cat, "recent": day[win] < RECENT_DAYS})
        cc = cc.dropna(subset=["cat"]).drop_duplicates()
        now = cc[cc["recent"]].groupby("c").size().reindex(range(n), fill_value=0)
        before = cc[~cc["recent"]].groupby("c").size().reindex(range(n), fill_value=0)
        out["categories_60d"] = now.to_numpy("float64")
        out["categories_trend"] = ((now + 1.0) / (before + 1.0)).to_numpy("float64")

    # coupons and campaigns of the last 60 days
    recent = day < RECENT_DAYS
    out["coupon_disc_60d"] = np.bincount(
        code[recent], weights=np.abs(tx["coupon_discount"].to_numpy("float64")[recent]), minlength=n
    )
    out["coupons_redeemed_60d"] = np.full(n, np.nan)
    if tables.redemptions is not None:
        rd = tables.redemptions
        rd = rd[
            (rd["redemption_date"] < cutoff) & (rd["redemption_date"] >= cutoff - RECENT_DAYS * DAY)
        ]
        out["coupons_redeemed_60d"] = (
            rd.groupby("customer_id").size().reindex(ids, fill_value=0).to_numpy("float64")
        )
    out["campaigns_started_60d"] = np.full(n, np.nan)
    if tables.campaigns is not None and tables.campaign_targets is not None:
        c = tables.campaigns
        new = c.loc[
            (c["start_date"] < cutoff) & (c["start_date"] >= cutoff - RECENT_DAYS * DAY),
            "campaign_id",
        ]
        tg = tables.campaign_targets
        out["campaigns_started_60d"] = (
            tg[tg["campaign_id"].isin(new)]
            .groupby("customer_id")
            .size()
            .reindex(ids, fill_value=0)
            .to_numpy("float64")
        )
    return pd.DataFrame({k: out[k] for k in RHYTHM_COLUMNS}, index=ids).astype("float64")
