"""Labels of the evaluation protocol on a hand-made shop with known answers."""

from __future__ import annotations

import logging

import pytest

from features.labels import churn_labels, cross_sell_labels, next_purchase_labels, value_labels
from tests.features._factories import CUTOFF, line, shop

AFTER = [
    line(1, 41, 1, "2017-03-01 00:00", 2.0),  # exactly at the cutoff: a label, not a feature
    line(1, 42, 6, "2017-03-05", -1.0, qty=-1.0),  # a return: never a purchase
    line(1, 43, 5, "2017-03-10", 1.0),  # new product and new category (CANDY)
    line(1, 44, 2, "2017-03-20", 3.0),  # known product, after the 14-day window
    line(2, 51, 3, "2017-03-16", 20.0),  # new to customer 2, day 15: cross-sell only
    line(4, 61, 1, "2017-03-02", 9.0),  # customer 4 has no history: never labelled
    line(3, 71, 4, "2017-03-03", 4.0),  # customer 3 only returned before: no history
    line(5, 81, 1, "2017-02-01", 8.0),  # customer 5: active, then nothing for 60 days
    line(5, 82, 1, "2017-05-29", 7.0),  # ... back inside the 90-day value window
    line(6, 91, 1, "2016-11-15", 6.0),  # customer 6: last seen > 90 days before the cutoff
    line(6, 92, 1, "2017-06-15", 5.0),  # after every window
]


@pytest.fixture(scope="module")
def t():
    return shop(AFTER)


def pairs(df, col):
    return list(zip(df["customer_id"], df[col], strict=True))


def test_next_purchase(t):
    got = next_purchase_labels(t, CUTOFF)
    assert list(got.columns) == ["customer_id", "product_id"]
    assert pairs(got, "product_id") == [(1, 1), (1, 5)]


def test_cross_sell_products_and_categories(t):
    assert pairs(cross_sell_labels(t, CUTOFF), "product_id") == [(1, 5), (2, 3)]
    cat = cross_sell_labels(t, CUTOFF, level="category")
    assert list(cat.columns) == ["customer_id", "category"]
    assert pairs(cat, "category") == [(1, "CANDY"), (2, "FRUIT")]
    # product 3 was new to customer 2 only 15 days in: a 14-day window misses it
    assert pairs(cross_sell_labels(t, CUTOFF, days=14), "product_id") == [(1, 5)]


def test_churn(t):
    c = churn_labels(t, CUTOFF)
    assert list(c.index) == [
        1,
        2,
        5,
    ]  # active in the 90 days before; 3 only returned, 6 too long ago
    assert c["churn"].tolist() == [0, 0, 1]
    assert c["spend_prev"].tolist() == pytest.approx([17.0, 15.0, 8.0])
    assert c["spend_next"].tolist() == pytest.approx([5.0, 20.0, 0.0])
    # 5 < 0.5 * 17 -> partial churn although customer 1 still buys
    assert c["partial_churn"].tolist() == [1, 0, 1]
    # with a 25% threshold it is not (5 >= 0.25 * 17)
    assert churn_labels(t, CUTOFF, partial_share=0.25)["partial_churn"].tolist() == [0, 0, 1]
    # a 14-day horizon: customer 2 first buys on day 15, too late
    short = churn_labels(t, CUTOFF, horizon=14)
    assert short["churn"].tolist() == [0, 1, 1]


def test_value(t):
    v = value_labels(t, CUTOFF)
    assert list(v.index) == [1, 2, 5, 6]
    assert v["spend_next"].tolist() == pytest.approx([5.0, 20.0, 7.0, 0.0])


def test_censored_window_is_logged(t, caplog):
    with caplog.at_level(logging.WARNING, logger="features.labels"):
        value_labels(t, "2017-06-01")
    assert "censored" in caplog.text


def test_bad_arguments():
    t = shop()
    with pytest.raises(ValueError, match="level must be 'product' or 'category'"):
        cross_sell_labels(t, CUTOFF, level="brand")
    with pytest.raises(ValueError, match="days must be a positive whole number"):
        next_purchase_labels(t, CUTOFF, days=0)
    with pytest.raises(ValueError, match="partial_share must be in"):
        churn_labels(t, CUTOFF, partial_share=1.5)
