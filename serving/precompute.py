"""Batch precompute of everything the offer service looks up: candidates, scores, products, deals.

:func:`precompute` is a pure function of (tables, as_of, fitted models): it runs each
model family's ``predict_family`` as of ``as_of`` once for every customer and turns the
predictions into the frames :func:`serving.store.build_store` writes. Families missing
from ``models`` are skipped (their parts of the frames stay empty) so the store can be
built -- and the service can start and say what is missing -- before any model exists.

:func:`load_champions` fetches the ``champion`` version of each family from the MLflow
registry (pinned by version number, never "latest").
"""

from __future__ import annotations

import importlib
import json
import logging
import math
from collections.abc import Callable, Iterable
from datetime import date

import numpy as np
import pandas as pd

from features.contract import Tables, is_return
from serving.config import PrecomputeConfig
from serving.rules import DISCOVER, DISCOVER_REASON, REPLENISH, replenish_reason

logger = logging.getLogger(__name__)

FAMILIES = ("next_purchase", "cross_sell", "churn", "value")
#: Shelf prices come from the sale lines of this many days before as_of (all history if none).
PRICE_DAYS = 180
#: Departments that hold placeholder products, never offered.
PLACEHOLDER_DEPARTMENTS = ("UNKNOWN",)

PredictFn = Callable[[str, object, Tables, pd.Timestamp, int | None], pd.DataFrame]


def predict_with_family(
    family: str, model: object, tables: Tables, as_of: pd.Timestamp, k: int | None
) -> pd.DataFrame:
    """Call ``training.<family>.predict_family(model, tables, as_of[, k])``."""
    mod = importlib.import_module(f"training.{family}")
    if k is None:
        return mod.predict_family(model, tables, as_of)
    return mod.predict_family(model, tables, as_of, k=k)


def load_champions(
    families: Iterable[str] = FAMILIES,
) -> tuple[dict[str, object], dict[str, str], dict[str, str]]:
    """Load the champion of each family from the registry.

    Returns ``(models, versions, missing)``: fitted model objects and their registry
    versions by family, and for each family that could not be loaded, why.
    """
    from training import tracking

    models, versions, missing = {}, {}, {}
    for fam in families:
        try:
            model, version = tracking.load_champion(fam)
        except tracking.NoChampionError as exc:
            missing[fam] = str(exc)
            continue
        except Exception as exc:  # a broken artifact must not stop the service from starting
            logger.exception("could not load the champion of %s", fam)
            missing[fam] = f"champion of {fam} could not be loaded: {type(exc).__name__}: {exc}"
            continue
        models[fam], versions[fam] = model, str(version)
        logger.info("loaded %s champion: %s version %s", fam, tracking.model_name(fam), version)
    return models, versions, missing


# --------------------------------------------------------------------------- pieces


def _sale_lines(tables: Tables, as_of: pd.Timestamp) -> pd.DataFrame:
    tx = tables.transactions
    tx = tx[tx["timestamp"] < as_of]
    return tx[~is_return(tx) & (tx["quantity"] > 0)]


def product_frame(tables: Tables, as_of: pd.Timestamp) -> pd.DataFrame:
    """Products with description, department, category and a shelf price per unit.

    The price is the median of (paid + retail discount + coupon discount) / quantity over the
    sale lines of the last :data:`PRICE_DAYS` days before ``as_of`` (else all earlier
    lines), then the category median, else 0.
    """
    sales = _sale_lines(tables, as_of)
    unit = (sales["sales_value"] + sales["retail_discount"] + sales["coupon_discount"]) / sales[
        "quantity"
    ]
    recent = sales["timestamp"] >= as_of - pd.Timedelta(days=PRICE_DAYS)
    price = unit[recent].groupby(sales.loc[recent, "product_id"]).median()
    older = unit.groupby(sales["product_id"]).median()
    price = price.combine_first(older)
    if tables.products is not None:
        prods = tables.products
        desc = (
            prods["description"]
            if "description" in prods
            else pd.Series([None] * len(prods), index=prods.index)
        )
        out = pd.DataFrame(
            {
                "product_id": prods["product_id"].astype("int64").to_numpy(),
                "description": desc.fillna(prods["category"])
                .fillna(prods["department"])
                .fillna("")
                .astype(str)
                .to_numpy(),
                "department": prods["department"].to_numpy(),
                "category": prods["category"].to_numpy(),
            }
        )
    else:
        ids = np.sort(tables.transactions["product_id"].unique())
        out = pd.DataFrame(
            {
                "product_id": ids,
                "description": [f"Product {i}" for i in ids],
                "department": None,
                "category": None,
            }
        )
    out["price"] = out["product_id"].map(price)
    cat_median = out.groupby("category")["price"].transform("median")
    out["price"] = out["price"].fillna(cat_median).fillna(0.0).astype(float).round(2)
    out.loc[out["description"] == "", "description"] = out["product_id"].map(
        lambda i: f"Product {i}"
    )
    return out.reset_index(drop=True)


def deal_frame(tables: Tables) -> pd.DataFrame:
    """Coupons with the dates they are valid (their own, else their campaign's) as day ordinals."""
    cols = [
        "coupon_id",
        "campaign_id",
        "product_id",
        "start_day",
        "end_day",
        "discount",
        "campaign_type",
    ]
    if tables.coupons is None or tables.coupons.empty:
        return pd.DataFrame(columns=cols)
    cp = tables.coupons.copy()
    if tables.campaigns is not None:
        camp = tables.campaigns[["campaign_id", "campaign_type", "start_date", "end_date"]].rename(
            columns={"start_date": "c_start", "end_date": "c_end"}
        )
        cp = cp.merge(camp, on="campaign_id", how="left")
    else:
        cp["c_start"], cp["c_end"], cp["campaign_type"] = pd.NaT, pd.NaT, None
    start = cp["start_date"] if "start_date" in cp else pd.Series(pd.NaT, index=cp.index)
    end = cp["end_date"] if "end_date" in cp else pd.Series(pd.NaT, index=cp.index)
    start, end = start.fillna(cp["c_start"]), end.fillna(cp["c_end"])
    ok = start.notna() & end.notna()
    if (~ok).any():
        logger.warning(
            "%d coupons have no validity dates (no campaign dates either); they are not offered",
            int((~ok).sum()),
        )
    cp, start, end = cp[ok], start[ok], end[ok]
    return pd.DataFrame(
        {
            "coupon_id": cp["coupon_id"].astype("int64").to_numpy(),
            "campaign_id": cp["campaign_id"].astype("int64").to_numpy(),
            "product_id": cp["product_id"].astype("int64").to_numpy(),
            "start_day": [d.toordinal() for d in start.dt.date],
            "end_day": [d.toordinal() for d in end.dt.date],
            "discount": cp["discount"].to_numpy() if "discount" in cp else None,
            "campaign_type": cp["campaign_type"].to_numpy(),
        }
    )


def placeholder_products(tables: Tables) -> np.ndarray:
    """Ids of the products in :data:`PLACEHOLDER_DEPARTMENTS` (none without a products table)."""
    products = tables.products
    if products is None or "department" not in products:
        return np.empty(0, dtype="int64")
    bad = products["department"].isin(PLACEHOLDER_DEPARTMENTS)
    return products.loc[bad, "product_id"].to_numpy()


def popular_frame(tables: Tables, as_of: pd.Timestamp, days: int, k: int) -> pd.DataFrame:
    """The ``k`` products bought by the largest share of the shoppers of the last ``days`` days."""
    sales = _sale_lines(tables, as_of)
    window = sales[sales["timestamp"] >= as_of - pd.Timedelta(days=days)]
    if window.empty:
        window = sales
    shoppers = max(1, window["customer_id"].nunique())
    buyers = window.groupby("product_id")["customer_id"].nunique()
    buyers = (
        buyers.drop(placeholder_products(tables), errors="ignore")
        .sort_values(ascending=False, kind="stable")
        .head(k)
    )
    return pd.DataFrame(
        {
            "rank": np.arange(1, len(buyers) + 1),
            "product_id": buyers.index.astype("int64"),
            "share": (buyers / shoppers).to_numpy(),
        }
    )


def to_probability(score: pd.Series) -> pd.Series:
    """Scores as purchase probabilities: kept if all lie in [0, 1], else min-max scaled into [0.01, 0.5]."""
    s = pd.to_numeric(score, errors="coerce").astype(float)
    if s.empty:
        return s
    if s.min() >= 0 and s.max() <= 1:
        return s.fillna(0.0)
    lo, hi = s.min(), s.max()
    span = hi - lo if hi > lo else 1.0
    return (0.01 + 0.49 * (s - lo) / span).fillna(0.01)


def _history_pairs(tables: Tables, as_of: pd.Timestamp, pairs: pd.DataFrame) -> pd.DataFrame:
    """cp_days_since and cp_interval_mean of the given (customer, product) pairs."""
    from features.customer_product import customer_product_features

    ids = pairs["customer_id"].unique()
    cp = customer_product_features(tables, as_of, customer_ids=ids)
    return cp[["customer_id", "product_id", "cp_days_since", "cp_interval_mean"]]


def candidate_frame(
    tables: Tables,
    as_of: pd.Timestamp,
    next_purchase: pd.DataFrame | None,
    cross_sell: pd.DataFrame | None,
) -> pd.DataFrame:
    """Replenish and discover candidates with purchase probabilities and human reasons."""
    cols = [
        "customer_id",
        "product_id",
        "kind",
        "rank",
        "score",
        "probability",
        "reason",
        "interval_days",
        "last_bought",
    ]
    parts = []
    bought = None
    if next_purchase is not None and len(next_purchase):
        np_ = next_purchase.copy()
        hist = _history_pairs(tables, as_of, np_)
        np_ = np_.drop(
            columns=[c for c in ("cp_days_since", "cp_interval_mean") if c in np_]
        ).merge(hist, on=["customer_id", "product_id"], how="left")
        bought = hist[["customer_id", "product_id"]]
        seen = np_["cp_days_since"].notna()
        np_["kind"] = np.where(seen, REPLENISH, DISCOVER)
        np_["reason"] = [
            replenish_reason(_f(i), _f(d)) if s else DISCOVER_REASON
            for i, d, s in zip(np_["cp_interval_mean"], np_["cp_days_since"], seen, strict=True)
        ]
        # so a later request date can say how long ago, counted to that date
        np_["interval_days"] = np_["cp_interval_mean"].where(seen).astype("float64")
        np_["last_bought"] = as_of.toordinal() - np_["cp_days_since"].where(seen).astype("float64")
        np_["probability"] = to_probability(np_["score"])
        parts.append(np_)
    if cross_sell is not None and len(cross_sell):
        cs = cross_sell.copy()
        if bought is not None:  # cross-sell is for products new to the customer
            key = pd.MultiIndex.from_frame(bought)
            cs = cs[~pd.MultiIndex.from_frame(cs[["customer_id", "product_id"]]).isin(key)]
        cs["kind"] = DISCOVER
        if "reason" in cs:
            cs["reason"] = [
                r if isinstance(r, str) and r.strip() else DISCOVER_REASON for r in cs["reason"]
            ]
        else:
            cs["reason"] = DISCOVER_REASON
        cs["probability"] = to_probability(cs["score"])
        parts.append(cs)
    if not parts:
        return pd.DataFrame(columns=cols)
    out = pd.concat(
        [p.reindex(columns=[c for c in cols if c != "rank"]) for p in parts], ignore_index=True
    )
    out["score"] = pd.to_numeric(out["score"], errors="coerce").astype(float)
    unscored = out["score"].isna()
    if unscored.any():  # a model that could not score a product does not offer it
        logger.warning("dropping %d candidates without a model score", int(unscored.sum()))
        out = out[~unscored]
    placeholders = placeholder_products(tables)
    out = out[~out["product_id"].isin(placeholders)]
    out["customer_id"] = out["customer_id"].astype("int64")
    out["product_id"] = out["product_id"].astype("int64")
    # one row per (customer, product): replenish wins, then the higher probability
    out["_order"] = (out["kind"] != REPLENISH).astype(int)
    out = out.sort_values(
        ["customer_id", "_order", "probability"], ascending=[True, True, False], kind="stable"
    )
    out = out.drop_duplicates(["customer_id", "product_id"]).drop(columns="_order")
    out["rank"] = out.groupby(["customer_id", "kind"]).cumcount() + 1
    return out[cols].reset_index(drop=True)


def _f(x) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _reasons_json(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "[]"
    if isinstance(v, str):
        parts = (
            [p.strip() for p in v.split(";") if p.strip()]
            if not v.startswith("[")
            else json.loads(v)
        )
        return json.dumps([str(p) for p in parts])
    return json.dumps([str(p) for p in list(v)])


def score_frame(
    tables: Tables,
    as_of: pd.Timestamp,
    churn: pd.DataFrame | None,
    value: pd.DataFrame | None,
    active_days: int,
) -> pd.DataFrame:
    """One row per customer with history: churn, value, RFM segment, life-cycle stage, activity."""
    from features.customer import customer_features

    cf = customer_features(tables, as_of)
    out = pd.DataFrame(
        {
            "customer_id": cf.index.astype("int64"),
            "rfm_segment": cf["rfm_segment"].to_numpy(),
            "recency_days": cf["recency_days"].to_numpy(),
        }
    )
    out["active"] = (out["recency_days"] <= active_days).astype(int)
    try:
        from features.demographics import demographic_features

        demo = demographic_features(tables, customer_ids=out["customer_id"])
        out["lifecycle_stage"] = out["customer_id"].map(demo["lifecycle_stage"]).fillna("unknown")
    except ImportError:
        logger.warning("features.demographics is not available; life-cycle stage is 'unknown'")
        out["lifecycle_stage"] = "unknown"
    if churn is not None and len(churn):
        c = churn.drop_duplicates("customer_id").set_index("customer_id")
        for col in ("churn_probability", "partial_churn_probability"):
            if col in c:
                out[col] = out["customer_id"].map(c[col])
        if "reasons" in c:
            out["churn_reasons"] = out["customer_id"].map(c["reasons"]).map(_reasons_json)
    if value is not None and len(value):
        v = value.drop_duplicates("customer_id").set_index("customer_id")
        for col in ("expected_spend_90d", "clv_1y", "p_alive", "tier", "grid_cell", "treatment"):
            if col in v:
                out[col] = out["customer_id"].map(v[col])
        for col in ("tier", "grid_cell", "treatment"):
            if col in out:
                out[col] = out[col].map(
                    lambda x: (
                        None if x is None or (isinstance(x, float) and math.isnan(x)) else str(x)
                    )
                )
    return out


def precompute(
    tables: Tables,
    as_of,
    models: dict[str, object],
    config: PrecomputeConfig | None = None,
    predict: PredictFn | None = None,
    exclude_customers: Iterable[int] = (),
) -> dict[str, pd.DataFrame]:
    """Everything the offer service looks up, as of ``as_of``.

    Parameters
    ----------
    tables : canonical tables (only events before ``as_of`` are used).
    as_of : the date the predictions are made for.
    models : fitted model objects by family (``next_purchase``, ``cross_sell``, ``churn``,
        ``value``); missing families are skipped.
    config : candidate depth, activity window and cold-start settings.
    predict : ``predict(family, model, tables, as_of, k)`` -> prediction frame; by default
        the family module's ``predict_family``.
    exclude_customers : customers erased with ``tailor forget``: left out of every frame.

    Returns
    -------
    dict of DataFrames: ``products``, ``deals``, ``popular``, ``candidates``, ``scores``.
    """
    config = config or PrecomputeConfig()
    predict = predict or predict_with_family
    as_of = pd.Timestamp(as_of).normalize()
    unknown = set(models) - set(FAMILIES)
    if unknown:
        raise ValueError(
            f"unknown model families {sorted(unknown)}; expected {', '.join(FAMILIES)}"
        )
    preds: dict[str, pd.DataFrame | None] = {}
    ks = {
        "next_purchase": config.replenish_k,
        "cross_sell": config.discover_k,
        "churn": None,
        "value": None,
    }
    for fam in FAMILIES:
        if fam not in models:
            preds[fam] = None
            continue
        df = predict(fam, models[fam], tables, as_of, ks[fam])
        if "customer_id" not in df:
            raise ValueError(
                f"{fam} predictions have no customer_id column (columns: {list(df.columns)})"
            )
        if fam in ("next_purchase", "cross_sell"):
            missing = {"product_id", "score"} - set(df.columns)
            if missing:
                raise ValueError(f"{fam} predictions lack columns {sorted(missing)}")
        preds[fam] = df
        logger.info(
            "%s: %d prediction rows for %d customers", fam, len(df), df["customer_id"].nunique()
        )
    products = product_frame(tables, as_of)
    frames = {
        "products": products,
        "deals": deal_frame(tables),
        "popular": popular_frame(tables, as_of, config.popular_days, config.popular_k),
        "candidates": candidate_frame(tables, as_of, preds["next_purchase"], preds["cross_sell"]),
        "scores": score_frame(tables, as_of, preds["churn"], preds["value"], config.active_days),
    }
    drop = set(int(c) for c in exclude_customers)
    if drop:
        for name in ("candidates", "scores"):
            frames[name] = frames[name][~frames[name]["customer_id"].isin(drop)].reset_index(
                drop=True
            )
    return frames


def as_of_date(as_of) -> date:
    return pd.Timestamp(as_of).date()
