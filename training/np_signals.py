"""Extra next-purchase ranker features from the sales history before a cutoff.

Every function reads only :func:`training.np_history.sales_before` rows (distinct
customer x basket x product purchases strictly before the cutoff, with the basket time)
and returns one row per requested (customer, product) pair, in the order given:

* recency counts: baskets holding the product in the last 7 / 14 / 28 / 60 days, the
  same as a share of the customer's baskets in those days, and the product's share of
  the customer's baskets weighted by basket position (``r ** baskets back``) and by time;
* repurchase timing: the chance that the next purchase falls in the label window given
  the days since the last one, from the product's pooled repurchase intervals over all
  customers (``prod_hazard``) and from the customer's own intervals shrunk towards it
  (``cp_hazard``), and the z-score of the days since the last purchase;
* product trend: the product's baskets in the last 7 / 14 days and the ratio of the
  last 14 days to the 14 before (holiday ramps);
* category: how often and how recently the customer bought the product's product type
  and category, and the product's share of those purchases.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

RECENCY_FEATURES = [
    "cp_n7",
    "cp_n14",
    "cp_n28",
    "cp_n60",
    "cp_share14",
    "cp_share28",
    "cp_bdecay70",
    "cp_bdecay90",
    "cp_tdecay30",
]
TIMING_FEATURES = ["prod_hazard", "cp_hazard", "cp_overdue_z"]
TREND_FEATURES = ["prod_n7", "prod_n14", "prod_trend14"]
CATEGORY_FEATURES = [
    "pt_count",
    "pt_days_since",
    "pt_n28",
    "cp_pt_share",
    "cat_count",
    "cat_days_since",
    "cp_cat_share",
]
SIGNAL_FEATURES = RECENCY_FEATURES + TIMING_FEATURES + TREND_FEATURES + CATEGORY_FEATURES

#: Prior weight (in intervals) of the product's hazard in the customer's own hazard.
HAZARD_PRIOR = 2.0
#: Days are capped here in the interval tables (a longer gap counts as this long).
MAX_DAYS = 400


def _days(sales: pd.DataFrame, cutoff: pd.Timestamp) -> np.ndarray:
    return (cutoff - sales["timestamp"]).to_numpy() / np.timedelta64(1, "D")


def _pair_index(frame: pd.DataFrame, pairs: pd.DataFrame) -> np.ndarray:
    """Row of each of ``pairs`` in ``frame`` (both keyed by customer_id, product_id), -1 if absent."""
    key = pd.MultiIndex.from_frame(frame[["customer_id", "product_id"]])
    return key.get_indexer(pd.MultiIndex.from_frame(pairs[["customer_id", "product_id"]]))


def _take(values: np.ndarray, idx: np.ndarray, fill=0.0) -> np.ndarray:
    out = np.full(len(idx), fill, dtype=float)
    ok = idx >= 0
    out[ok] = values[idx[ok]]
    return out


def signal_features(
    sales: pd.DataFrame,
    cutoff,
    pairs: pd.DataFrame,
    products: pd.DataFrame | None = None,
    window_days: int = 14,
) -> pd.DataFrame:
    """:data:`SIGNAL_FEATURES` of ``pairs`` (columns customer_id, product_id), in their order.

    Parameters
    ----------
    sales : pd.DataFrame
        :func:`training.np_history.sales_before` at ``cutoff`` (every customer: the
        product statistics pool all of them).
    products : pd.DataFrame, optional
        The products table (``product_id``, ``product_type``, ``category``); without it
        the category features are NaN.
    """
    cutoff = pd.Timestamp(cutoff)
    pairs = pairs[["customer_id", "product_id"]].reset_index(drop=True)
    out = pd.DataFrame(index=pairs.index)
    if sales.empty:
        for c in SIGNAL_FEATURES:
            out[c] = np.nan
        return out.astype("float32")
    days = _days(sales, cutoff)
    cust = sales["customer_id"].to_numpy()
    prod = sales["product_id"].to_numpy()

    # ---- the customer's baskets, newest first
    b = sales.drop_duplicates("basket_id")[["customer_id", "basket_id", "timestamp"]]
    b = b.sort_values(["customer_id", "timestamp", "basket_id"], kind="stable")
    b_days = _days(b, cutoff)
    n_b = b.groupby("customer_id", sort=False)["basket_id"].transform("size").to_numpy()
    back = n_b - 1 - b.groupby("customer_id", sort=False).cumcount().to_numpy()
    bw = pd.DataFrame(
        {
            "customer_id": b["customer_id"].to_numpy(),
            "w70": 0.7**back,
            "w90": 0.9**back,
            "wt": np.exp(-b_days / 30.0),
            "n14": b_days <= 14,
            "n28": b_days <= 28,
        }
    )
    cust_tot = bw.groupby("customer_id").sum()
    back_of = pd.Series(back, index=b["basket_id"].to_numpy())
    line_back = back_of.reindex(sales["basket_id"].to_numpy()).to_numpy()

    lines = pd.DataFrame(
        {
            "customer_id": cust,
            "product_id": prod,
            "n7": days <= 7,
            "n14": days <= 14,
            "n28": days <= 28,
            "n60": days <= 60,
            "w70": 0.7**line_back,
            "w90": 0.9**line_back,
            "wt": np.exp(-days / 30.0),
            "cnt": 1,
        }
    )
    cp = lines.groupby(["customer_id", "product_id"], sort=True).sum().reset_index()
    idx = _pair_index(cp, pairs)
    tot = cust_tot.reindex(pairs["customer_id"].to_numpy())
    for d in (7, 14, 28, 60):
        out[f"cp_n{d}"] = _take(cp[f"n{d}"].to_numpy(dtype=float), idx)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["cp_share14"] = out["cp_n14"] / tot["n14"].to_numpy().clip(min=1)
        out["cp_share28"] = out["cp_n28"] / tot["n28"].to_numpy().clip(min=1)
        out["cp_bdecay70"] = _take(cp["w70"].to_numpy(), idx) / tot["w70"].to_numpy()
        out["cp_bdecay90"] = _take(cp["w90"].to_numpy(), idx) / tot["w90"].to_numpy()
        out["cp_tdecay30"] = _take(cp["wt"].to_numpy(), idx) / tot["wt"].to_numpy()

    # ---- repurchase timing from intervals between distinct purchase days
    day = np.floor(days).astype("int64")
    cpd = pd.DataFrame({"customer_id": cust, "product_id": prod, "day": day}).drop_duplicates()
    cpd = cpd.sort_values(["customer_id", "product_id", "day"], ascending=[True, True, False])
    same = (cpd["customer_id"].to_numpy()[1:] == cpd["customer_id"].to_numpy()[:-1]) & (
        cpd["product_id"].to_numpy()[1:] == cpd["product_id"].to_numpy()[:-1]
    )
    gap = cpd["day"].to_numpy()[:-1] - cpd["day"].to_numpy()[1:]  # newer minus older, in days
    iv = pd.DataFrame(
        {
            "customer_id": cpd["customer_id"].to_numpy()[1:][same],
            "product_id": cpd["product_id"].to_numpy()[1:][same],
            "gap": np.minimum(gap[same], MAX_DAYS),
        }
    )
    last_day = cpd.groupby(["customer_id", "product_id"], sort=True)["day"].min().reset_index()
    since = _take(last_day["day"].to_numpy(dtype=float), _pair_index(last_day, pairs), np.nan)

    # product hazard: pooled intervals, P(gap in (d, d + W] | gap > d)
    pid = np.sort(np.unique(iv["product_id"].to_numpy()))
    pk = np.searchsorted(pid, iv["product_id"].to_numpy()) * (MAX_DAYS + 2) + iv["gap"].to_numpy()
    pk = np.sort(pk)
    qp = np.searchsorted(pid, pairs["product_id"].to_numpy())
    qp = np.clip(qp, 0, max(len(pid) - 1, 0))
    has = (len(pid) > 0) & np.isfinite(since)
    if len(pid):
        has &= pid[qp] == pairs["product_id"].to_numpy()
    d = np.where(np.isfinite(since), np.minimum(since, MAX_DAYS), 0).astype("int64")
    base = qp * (MAX_DAYS + 2)
    end = np.searchsorted(pk, base + MAX_DAYS + 1, side="right")
    gt = end - np.searchsorted(pk, base + d, side="right")
    inw = np.searchsorted(pk, base + np.minimum(d + window_days, MAX_DAYS + 1), side="right")
    inw = inw - np.searchsorted(pk, base + d, side="right")
    gt, inw = np.where(has, gt, 0), np.where(has, inw, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        prod_h = np.where(gt > 0, (inw + 0.5) / (gt + 1.0), np.nan)
    out["prod_hazard"] = prod_h

    # the customer's own intervals, shrunk towards the product's hazard
    pi = _pair_index(pairs, iv)  # interval -> requested pair
    keep = pi >= 0
    d_iv = d[pi[keep]]
    g = iv["gap"].to_numpy()[keep]
    own_gt = np.bincount(pi[keep], weights=g > d_iv, minlength=len(pairs))
    own_in = np.bincount(
        pi[keep], weights=(g > d_iv) & (g <= d_iv + window_days), minlength=len(pairs)
    )
    prior = np.where(np.isfinite(prod_h), prod_h, 0.0)
    cp_h = (own_in + HAZARD_PRIOR * prior) / (own_gt + HAZARD_PRIOR)
    out["cp_hazard"] = np.where(np.isfinite(since), cp_h, np.nan)
    n_iv = np.bincount(pi[keep], minlength=len(pairs)).astype(float)
    s1 = np.bincount(pi[keep], weights=g, minlength=len(pairs))
    s2 = np.bincount(pi[keep], weights=g.astype(float) ** 2, minlength=len(pairs))
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = s1 / n_iv
        std = np.sqrt(np.maximum(s2 / n_iv - mean**2, 0))
        out["cp_overdue_z"] = np.where(n_iv >= 2, (since - mean) / (std + 1.0), np.nan)

    # ---- product trend (every customer)
    pl = pd.DataFrame({"product_id": prod, "n7": days <= 7, "n14": days <= 14})
    pl["p14"] = (days > 14) & (days <= 28)
    pt = pl.groupby("product_id").sum()
    pt = pt.reindex(pairs["product_id"].to_numpy()).fillna(0)
    out["prod_n7"] = pt["n7"].to_numpy(dtype=float)
    out["prod_n14"] = pt["n14"].to_numpy(dtype=float)
    out["prod_trend14"] = (pt["n14"].to_numpy() + 1.0) / (pt["p14"].to_numpy() + 1.0)

    # ---- category of the product
    if products is None or not {"product_type", "category"} <= set(products.columns):
        for c in CATEGORY_FEATURES:
            out[c] = np.nan
        return out.astype("float32")
    ref = products.drop_duplicates("product_id").set_index("product_id")
    for level, prefix in (("product_type", "pt"), ("category", "cat")):
        codes = pd.Series(
            pd.factorize(ref[level].astype(str))[0], index=ref.index
        )  # NaN types become the string "nan": one more level
        sc = codes.reindex(prod).fillna(-1).to_numpy(dtype="int64")
        g = pd.DataFrame(
            {
                "customer_id": cust,
                "code": sc,
                "basket_id": sales["basket_id"].to_numpy(),
                "days": days,
            }
        ).drop_duplicates(["customer_id", "code", "basket_id"])
        g["n28"] = g["days"] <= 28
        agg = g.groupby(["customer_id", "code"], sort=True).agg(
            count=("basket_id", "size"), since=("days", "min"), n28=("n28", "sum")
        )
        qc = codes.reindex(pairs["product_id"].to_numpy()).fillna(-1).to_numpy(dtype="int64")
        key = pd.MultiIndex.from_arrays([pairs["customer_id"].to_numpy(), qc])
        j = agg.index.get_indexer(key)
        cnt = _take(agg["count"].to_numpy(dtype=float), j)
        out[f"{prefix}_count"] = cnt
        out[f"{prefix}_days_since"] = _take(agg["since"].to_numpy(dtype=float), j, np.nan)
        if prefix == "pt":
            out["pt_n28"] = _take(agg["n28"].to_numpy(dtype=float), j)
        cp_count = _take(cp["cnt"].to_numpy(dtype=float), idx)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[f"cp_{prefix}_share"] = np.where(cnt > 0, cp_count / cnt, np.nan)
    return out[SIGNAL_FEATURES].astype("float32")
