"""Small hand-made canonical tables for feature tests.

``line(customer, basket, product, when, value)`` rows go through :func:`make_tables`,
which fills the optional columns and validates the result against the data contract.
"""

from __future__ import annotations

import pandas as pd

from features.contract import Tables, validate


def line(
    customer, basket, product, when, value=1.0, qty=1.0, store=1, retail=0.0, coupon=0.0
) -> dict:
    """One line item; ``when`` is anything ``pd.Timestamp`` accepts."""
    return {
        "customer_id": customer,
        "basket_id": basket,
        "product_id": product,
        "store_id": store,
        "timestamp": pd.Timestamp(when),
        "quantity": qty,
        "sales_value": value,
        "retail_discount": retail,
        "coupon_discount": coupon,
    }


def products_frame(spec: dict) -> pd.DataFrame:
    """``{product_id: (department, category, brand)}`` -> a products table."""
    rows = [
        {
            "product_id": pid,
            "department": d,
            "category": c,
            "product_type": None,
            "brand": b,
            "manufacturer_id": 1,
            "package_size": None,
        }
        for pid, (d, c, b) in spec.items()
    ]
    return pd.DataFrame(rows)


def customers_frame(rows: list[dict]) -> pd.DataFrame:
    """Profiles; missing fields are None."""
    cols = [
        "customer_id",
        "age_band",
        "income_band",
        "home_ownership",
        "marital_status",
        "household_size",
        "household_comp",
        "kids_count",
        "region",
    ]
    return pd.DataFrame([{c: r.get(c) for c in cols} for r in rows], columns=cols)


def make_tables(
    lines: list[dict],
    products: dict | pd.DataFrame | None = None,
    customers: list[dict] | None = None,
    campaigns: list[tuple] | None = None,
    targets: list[tuple] | None = None,
    coupons: list[tuple] | None = None,
    redemptions: list[tuple] | None = None,
    check: bool = True,
) -> Tables:
    """Canonical tables from a few rows.

    campaigns: (campaign_id, start, end); targets: (campaign_id, customer_id);
    coupons: (coupon_id, product_id, campaign_id); redemptions: (customer_id, coupon_id,
    campaign_id, date).
    """
    if isinstance(products, dict):
        products = products_frame(products)
    t = Tables(
        transactions=pd.DataFrame(lines),
        products=products,
        customers=customers_frame(customers) if customers is not None else None,
        campaigns=None
        if campaigns is None
        else pd.DataFrame(
            [
                {
                    "campaign_id": c,
                    "campaign_type": "A",
                    "start_date": pd.Timestamp(s),
                    "end_date": pd.Timestamp(e),
                }
                for c, s, e in campaigns
            ]
        ),
        campaign_targets=None
        if targets is None
        else pd.DataFrame(targets, columns=["campaign_id", "customer_id"]),
        coupons=None
        if coupons is None
        else pd.DataFrame(coupons, columns=["coupon_id", "product_id", "campaign_id"]),
        redemptions=None
        if redemptions is None
        else pd.DataFrame(
            [
                {
                    "customer_id": c,
                    "coupon_id": k,
                    "campaign_id": m,
                    "redemption_date": pd.Timestamp(d),
                }
                for c, k, m, d in redemptions
            ]
        ),
    )
    return validate(t) if check else t


# --------------------------------------------------------------------------- shared scenarios

CUTOFF = pd.Timestamp("2017-03-01")

SHOP_PRODUCTS = {
    1: ("GROCERY", "MILK", "National"),
    2: ("GROCERY", "BREAD", "Private"),
    3: ("PRODUCE", "FRUIT", "National"),
    4: ("DRUG GM", "SOAP", "Private"),
    5: ("GROCERY", "CANDY", "National"),  # in the catalogue, never sold before the cutoff
    6: ("DRUG GM", "SOAP", "National"),
}


def shop_lines() -> list[dict]:
    """Customer 1: four purchase baskets and a return; customer 2: one basket; customer 3: a return only.

    Every known answer in the tests is worked out from these rows (cutoff 2017-03-01).
    """
    return [
        # customer 1
        line(1, 11, 1, "2017-01-01 10:00", 2.0, retail=0.5),  # Sunday
        line(1, 11, 2, "2017-01-01 10:00", 3.0, coupon=0.5),
        line(1, 12, 1, "2017-01-11 12:00", 2.0),  # Wednesday
        line(1, 12, 3, "2017-01-11 12:00", 5.0),
        line(1, 13, 1, "2017-02-20 14:00", 2.0, store=2),  # Monday
        line(1, 13, 4, "2017-02-20 14:00", 4.0, retail=1.0, store=2),
        line(1, 14, 3, "2017-02-20 16:00", 2.0),  # same day, second basket
        line(1, 15, 2, "2017-02-25 09:00", -3.0, qty=-1.0),  # a return, alone in its basket
        # customer 2: one basket with product 1 on two lines
        line(2, 21, 1, "2017-02-27 08:30", 10.0, store=3),
        line(2, 21, 1, "2017-02-27 08:30", 5.0, qty=2.0, store=3),
        # customer 3: only a return
        line(3, 31, 1, "2017-02-10 09:00", -2.0, qty=-1.0),
    ]


def shop(extra_lines: list[dict] | None = None, **kw) -> Tables:
    """The hand-made shop with campaigns: 1 (Jan), 2 (from Feb 15), 3 (starts after the cutoff)."""
    defaults = dict(
        products=SHOP_PRODUCTS,
        campaigns=[
            (1, "2017-01-05", "2017-02-05"),
            (2, "2017-02-15", "2017-03-20"),
            (3, "2017-03-10", "2017-04-10"),
        ],
        targets=[(1, 1), (2, 1), (3, 1), (1, 2)],
        coupons=[(100, 1, 1), (101, 2, 1), (102, 3, 3)],
        redemptions=[
            (1, 100, 1, "2017-01-20"),
            (1, 101, 1, "2017-01-21"),
            (1, 102, 3, "2017-03-12"),
        ],
    )
    defaults.update(kw)
    return make_tables(shop_lines() + (extra_lines or []), **defaults)


def random_tables(
    seed: int = 0,
    customers: int = 40,
    products: int = 60,
    baskets: int = 600,
    start: str = "2016-09-01",
    days: int = 240,
    with_returns: bool = True,
) -> Tables:
    """A small random shop (fixed seed) with every optional table, for invariance tests."""
    import numpy as np

    rng = np.random.default_rng(seed)
    cust = rng.integers(1, customers + 1, baskets)
    when = pd.Timestamp(start) + pd.to_timedelta(rng.uniform(0, days, baskets), unit="D")
    store = rng.integers(1, 4, baskets)
    rows = []
    for b in range(baskets):
        n = int(rng.integers(1, 6))
        for p in rng.choice(products, n, replace=True) + 1:
            qty = float(rng.integers(1, 3))
            val = round(float(rng.uniform(0.5, 9.0)) * qty, 2)
            rows.append(
                line(
                    int(cust[b]),
                    1000 + b,
                    int(p),
                    when[b].round("min"),
                    val,
                    qty=qty,
                    store=int(store[b]),
                    retail=round(val * float(rng.uniform(0, 0.3)), 2) * (rng.random() < 0.4),
                    coupon=0.5 * (rng.random() < 0.05),
                )
            )
            if with_returns and rng.random() < 0.02:
                rows.append(
                    line(
                        int(cust[b]),
                        900_000 + b,
                        int(p),
                        when[b] + pd.Timedelta(days=3),
                        -val,
                        qty=-qty,
                    )
                )
    depts = ["GROCERY", "PRODUCE", "DRUG GM", "MEAT", "DELI"]
    prods = {
        p: (depts[p % 5], f"CAT{p % 11}", "Private" if p % 4 == 0 else "National")
        for p in range(1, products + 1)
    }
    camp_start = pd.Timestamp(start)
    campaigns = [
        (c, camp_start + pd.Timedelta(days=30 * c), camp_start + pd.Timedelta(days=30 * c + 40))
        for c in range(1, 8)
    ]
    targets = sorted(
        {
            (int(c), int(k))
            for c, k in zip(
                rng.integers(1, 8, 120), rng.integers(1, customers + 1, 120), strict=True
            )
        }
    )
    coupons = [(500 + c, int(rng.integers(1, products + 1)), c) for c in range(1, 8)]
    reds = []
    for c, k in targets:
        if rng.random() < 0.3:
            reds.append(
                (k, 500 + c, c, camp_start + pd.Timedelta(days=30 * c + int(rng.integers(0, 40))))
            )
    ages = ["19-24", "25-34", "35-44", "45-54", "55-64", "65+", None]
    comps = ["1 Adult Kids", "1 Adult No Kids", "2 Adults Kids", "2 Adults No Kids", None]
    profiles = []
    for k in range(1, customers + 1, 2):
        comp = comps[int(rng.integers(0, 5))]
        kids = (
            None if comp is None else ("0" if "No Kids" in comp else str(int(rng.integers(1, 4))))
        )
        profiles.append(
            {
                "customer_id": k,
                "age_band": ages[int(rng.integers(0, 7))],
                "household_comp": comp,
                "kids_count": kids,
                "marital_status": ["Married", "Unmarried", None][int(rng.integers(0, 3))],
                "income_band": "50-74K",
                "home_ownership": "Homeowner",
                "household_size": "2",
            }
        )
    return make_tables(
        rows,
        products=prods,
        customers=profiles,
        campaigns=campaigns,
        targets=targets,
        coupons=coupons,
        redemptions=reds,
    )
