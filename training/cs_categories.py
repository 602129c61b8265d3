"""Cross-sell at the category level: categories a customer never bought and is likely to try.

DESIGN.md's cross-sell protocol covers "products (and categories)": at a cutoff ``T`` the
category truth of a customer is the set of product categories bought in ``[T, T + 28 d)``
that the customer never bought from before ``T``
(:func:`features.labels.cross_sell_labels` with ``level="category"``).

Rather than a second code path, the category level runs the product-level machinery on
*category tables* (:func:`category_tables`): every line item's product is replaced by its
category (an integer id), and the products table holds one row per category. The
re-ranker, its signals and the baselines (popularity, item-kNN, ALS) then rank categories
exactly as they rank products, with the same no-leakage training scheme.
:func:`category_lists` turns the result back into category names.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from features.contract import Tables

logger = logging.getLogger(__name__)

#: Prefix of the category-level metrics in the cross-sell evaluation table.
METRIC_PREFIX = "category_"


def has_categories(tables: Tables) -> bool:
    """Whether ``tables`` has a products table with at least one category."""
    p = tables.products
    return p is not None and "category" in p.columns and bool(p["category"].notna().any())


def category_tables(tables: Tables) -> Tables:
    """``tables`` at the category level: transactions, customers and one "product" per category.

    Category ids are ``1..n`` in the sorted order of the category names; the products table
    keeps the name in ``category``, ``product_type`` and ``description`` and the most
    common department of the category's products. Lines of products without a category are
    left out (as the category-level labels leave them out). Campaign and coupon tables are
    not carried over (the cross-sell rankers do not read them).

    Raises
    ------
    ValueError
        Without a products table holding at least one category.
    """
    if not has_categories(tables):
        raise ValueError("category-level cross-sell needs a products table with categories")
    prod = tables.products
    prod = prod[prod["category"].notna()]
    names = np.sort(prod["category"].astype(str).unique())
    cat_id = pd.Series(np.arange(1, len(names) + 1, dtype="int64"), index=names)
    prod_cat = cat_id.reindex(prod["category"].astype(str)).to_numpy()  # each product's id
    pid_to_cat = pd.Series(prod_cat, index=prod["product_id"])
    tx = tables.transactions
    mapped = tx["product_id"].map(pid_to_cat)
    keep = mapped.notna().to_numpy()
    ctx = tx.loc[keep].copy()
    ctx["product_id"] = mapped[keep].astype("int64").to_numpy()
    if "department" in prod.columns:
        dept = (
            prod.assign(cid=prod_cat)
            .groupby("cid")["department"]
            .agg(lambda s: s.mode().iloc[0] if s.notna().any() else None)
        )
    else:
        dept = pd.Series(dtype=object)
    products = pd.DataFrame(
        {
            "product_id": cat_id.to_numpy(),
            "department": dept.reindex(cat_id.to_numpy()).to_numpy(dtype=object),
            "category": names.astype(object),
            "product_type": names.astype(object),
            "brand": None,
            "manufacturer_id": pd.array([pd.NA] * len(names), dtype="Int64"),
            "package_size": None,
            "description": pd.Series(names).str.title().to_numpy(dtype=object),
        }
    )
    dropped = int((~keep).sum())
    notes = [
        f"category level: {len(names):,} categories; {dropped:,} line items of products "
        "without a category left out"
    ]
    logger.debug("%s", notes[0])
    return Tables(transactions=ctx, customers=tables.customers, products=products, notes=notes)


def category_lists(recs: pd.DataFrame, ctables: Tables) -> pd.DataFrame:
    """Recommendations made on :func:`category_tables` with the category name instead of its id.

    ``recs`` has ``product_id`` (a category id); the result has ``category`` in its place.
    """
    names = ctables.products.set_index("product_id")["category"]
    out = recs.copy()
    out.insert(
        out.columns.get_loc("product_id"), "category", names.reindex(out["product_id"]).to_numpy()
    )
    return out.drop(columns="product_id")
