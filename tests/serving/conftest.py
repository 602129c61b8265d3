"""Shared fixtures of the serving tests: a tiny shop with planted habits and stand-in models.

The stand-in models are fakes of our own model families (not of an external system): each
holds the prediction frame it returns, so the service can be tested before, and
independently of, the real families.
"""

from __future__ import annotations

import os

import pandas as pd
import pytest

from features.contract import Tables, validate

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")

AS_OF = pd.Timestamp("2017-03-01")
DAY0 = pd.Timestamp("2017-01-01")
# product id -> (category, department, description)
PRODUCTS = {
    101: ("MILK", "DAIRY", "Whole Milk (1 GAL)"),
    102: ("MILK", "DAIRY", "Skim Milk (1 GAL)"),
    103: ("MILK", "DAIRY", "Chocolate Milk"),
    201: ("BREAD", "BAKERY", "White Bread"),
    202: ("BREAD", "BAKERY", "Rye Bread"),
    301: ("COFFEE", "GROCERY", "Ground Coffee"),
    302: ("COFFEE", "GROCERY", "Coffee Beans"),
    401: ("SOAP", "DRUG GM", "Hand Soap"),
    402: ("SOAP", "DRUG GM", "Dish Soap"),
    501: ("FRUIT", "PRODUCE", "Bananas"),
    502: ("FRUIT", "PRODUCE", "Apples"),
    999: (None, "UNKNOWN", "Unknown product"),
}


def make_tables() -> Tables:
    """Six customers over two months. Planted: customer 1 buys milk 101 every 7 days and bread
    201 every 14 days; customer 2 buys coffee 301 every 10 days; customers 3-6 buy bananas
    501 often (the most popular item); customer 7 has a profile but no purchases."""
    rows = []
    basket = 1

    def buy(cust, day, items):
        nonlocal basket
        for pid, price in items:
            rows.append(
                (
                    cust,
                    basket,
                    pid,
                    1,
                    DAY0 + pd.Timedelta(days=day, hours=10),
                    1.0,
                    price,
                    0.0,
                    0.0,
                )
            )
        basket += 1

    for d in range(0, 56, 7):
        buy(1, d, [(101, 3.0), (501, 1.0)] + ([(201, 2.5)] if d % 14 == 0 else []))
    for d in range(2, 58, 10):
        buy(2, d, [(301, 8.0), (402, 4.0)])
    for c in (3, 4, 5, 6):
        for d in range(c, 58, 5):
            buy(c, d, [(501, 1.2), (502, 2.0)] + ([(102, 2.8)] if c % 2 else []))
    buy(6, 100, [(202, 3.0)])  # after AS_OF: must never leak into as-of frames
    tx = pd.DataFrame(
        rows,
        columns=[
            "customer_id",
            "basket_id",
            "product_id",
            "store_id",
            "timestamp",
            "quantity",
            "sales_value",
            "retail_discount",
            "coupon_discount",
        ],
    )
    products = pd.DataFrame(
        [
            (pid, dept, cat, None, "National", None, None, desc)
            for pid, (cat, dept, desc) in PRODUCTS.items()
        ],
        columns=[
            "product_id",
            "department",
            "category",
            "product_type",
            "brand",
            "manufacturer_id",
            "package_size",
            "description",
        ],
    )
    campaigns = pd.DataFrame(
        {
            "campaign_id": [1, 2],
            "campaign_type": ["Type A", "Type B"],
            "start_date": pd.to_datetime(["2017-02-20", "2017-04-01"]),
            "end_date": pd.to_datetime(["2017-03-10", "2017-04-30"]),
        }
    )
    coupons = pd.DataFrame(
        {
            "coupon_id": [11, 12, 13, 21],
            "product_id": [101, 302, 502, 202],
            "campaign_id": [1, 1, 1, 2],
        }
    )
    customers = pd.DataFrame(
        {
            "customer_id": [1, 2, 7],
            "age_band": ["25-34", "65+", "35-44"],
            "income_band": None,
            "home_ownership": None,
            "marital_status": ["Married", "Unmarried", None],
            "household_size": ["3", "1", None],
            "household_comp": None,
            "kids_count": ["1", "0", None],
            "region": None,
        }
    )
    return validate(
        Tables(
            transactions=tx,
            products=products,
            campaigns=campaigns,
            coupons=coupons,
            customers=customers,
        )
    )


class StandIn:
    """A stand-in fitted model of one family: returns the frame it was given."""

    def __init__(self, frame: pd.DataFrame):
        self.frame = frame

    def predict(self, k):
        if k is None or "rank" not in self.frame:
            return self.frame.copy()
        return self.frame[self.frame["rank"] <= k].copy()


def stand_in_predict(family, model, tables, as_of, k):
    assert pd.Timestamp(as_of) == AS_OF
    return model.predict(k)


def stand_in_models() -> dict[str, StandIn]:
    np_ = pd.DataFrame(
        {
            "customer_id": [1, 1, 1, 2, 2, 3, 3, 6],
            "product_id": [101, 201, 501, 301, 402, 501, 102, 502],
            "rank": [1, 2, 3, 1, 2, 1, 2, 1],
            "score": [0.9, 0.6, 0.5, 0.8, 0.4, 0.7, 0.3, 0.6],
        }
    )
    cs = pd.DataFrame(
        {
            "customer_id": [1, 1, 1, 1, 2, 2, 3, 6],
            "product_id": [302, 102, 101, 402, 302, 502, 301, 302],
            "rank": [1, 2, 3, 4, 1, 2, 1, 1],
            "score": [0.35, 0.3, 0.2, 0.1, 0.5, 0.2, 0.4, 0.3],
            "reason": ["coffee drinkers like you buy this", None, "", None, None, None, None, None],
        }
    )
    churn = pd.DataFrame(
        {
            "customer_id": [1, 2, 3, 4, 5, 6],
            "churn_probability": [0.1, 0.6, 0.2, 0.3, 0.3, 0.9],
            "partial_churn_probability": [0.2, 0.7, 0.3, 0.4, 0.4, 0.95],
            "reasons": [
                ["buys regularly"],
                ["visits less often", "spend down 40%"],
                [],
                [],
                [],
                ["no visit for 50 days"],
            ],
        }
    )
    value = pd.DataFrame(
        {
            "customer_id": [1, 2, 3, 4, 5, 6],
            "expected_spend_90d": [120.0, 80.0, 40.0, 30.0, 35.0, -5.0],
            "clv_1y": [480.0, 300.0, 150.0, 100.0, 120.0, -20.0],
            "p_alive": [0.95, 0.6, 0.8, 0.7, 0.7, 0.2],
            "tier": [
                "most_valuable",
                "most_growable",
                "regular",
                "regular",
                "regular",
                "below_zero",
            ],
            "grid_cell": ["high/low", "high/high", "mid/low", "low/mid", "low/mid", "low/high"],
            "treatment": ["reward", "retain", "grow", "maintain", "maintain", "no incentive"],
        }
    )
    return {
        "next_purchase": StandIn(np_),
        "cross_sell": StandIn(cs),
        "churn": StandIn(churn),
        "value": StandIn(value),
    }


@pytest.fixture(scope="session")
def tiny_tables() -> Tables:
    return make_tables()


@pytest.fixture(scope="session")
def tiny_frames(tiny_tables):
    from serving.precompute import precompute

    return precompute(tiny_tables, AS_OF, stand_in_models(), predict=stand_in_predict)
