"""Customer x product features and product globals: known answers, subsets, dtypes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.customer_product import (
    CP_COLUMNS,
    PRODUCT_COLUMNS,
    customer_product_features,
    product_features,
)
from tests.features._factories import CUTOFF, line, make_tables, random_tables, shop

H = 1 / 24


@pytest.fixture(scope="module")
def cp():
    return customer_product_features(shop(), CUTOFF).set_index(["customer_id", "product_id"])


def test_pairs_are_sale_lines_only(cp):
    # customer 1 returned product 2 but had bought it; customer 3 only returned: no pair
    assert list(cp.index) == [(1, 1), (1, 2), (1, 3), (1, 4), (2, 1)]


def test_repeat_product_known_answers(cp):
    r = cp.loc[(1, 1)]  # bought Jan 1 10:00, Jan 11 12:00, Feb 20 14:00; customer baskets 11..14
    assert r.cp_count == 3
    assert r.cp_basket_share == pytest.approx(3 / 4)
    assert r.cp_days_since == pytest.approx(8 + 10 * H)
    assert r.cp_baskets_since == 1  # basket 14 (same day, later) came after
    assert r.cp_interval_mean == pytest.approx(25.0)
    assert r.cp_interval_std == pytest.approx(np.std([10, 40], ddof=1), rel=1e-6)
    assert r.cp_overdue == pytest.approx((8 + 10 * H) / 25, rel=1e-6)
    assert (r.cp_count_30d, r.cp_count_90d) == (1, 3)
    assert r.cp_trend == pytest.approx(3 / 4 - 3 / 4, abs=1e-7)
    assert r.cp_price_mean == pytest.approx(2.0)
    assert r.cp_discount_share == pytest.approx(0.5 / 6.5, rel=1e-6)
    assert r.cp_first_days == pytest.approx(59 - 10 * H, rel=1e-6)


def test_single_and_two_purchase_products(cp):
    p2 = cp.loc[(1, 2)]
    assert p2.cp_count == 1 and p2.cp_baskets_since == 3
    assert np.isnan(p2.cp_interval_mean) and np.isnan(p2.cp_overdue)
    assert p2.cp_price_mean == pytest.approx(3.0)  # the return is not a price paid
    assert p2.cp_discount_share == pytest.approx(0.5 / 3.5, rel=1e-6)
    p3 = cp.loc[(1, 3)]  # Jan 11 and Feb 20 (latest basket)
    assert p3.cp_count == 2 and p3.cp_baskets_since == 0
    assert p3.cp_interval_mean == 40 and np.isnan(p3.cp_interval_std)
    assert p3.cp_price_mean == pytest.approx(3.5)
    assert cp.loc[(1, 4)].cp_discount_share == pytest.approx(0.2)


def test_two_lines_in_one_basket_count_once(cp):
    r = cp.loc[(2, 1)]
    assert r.cp_count == 1 and r.cp_basket_share == 1.0
    assert r.cp_price_mean == pytest.approx(15 / 3)
    assert r.cp_days_since == pytest.approx(1 + 15.5 * H, rel=1e-6)


def test_columns_and_compact_dtypes():
    f = customer_product_features(shop(), CUTOFF)
    assert tuple(f.columns) == CP_COLUMNS
    assert f["customer_id"].dtype == "int64" and f["product_id"].dtype == "int64"
    assert f["cp_count"].dtype == "int32" and f["cp_days_since"].dtype == "float32"


def test_product_globals_known_answers():
    pf = product_features(shop(), CUTOFF)
    assert tuple(pf.columns) == PRODUCT_COLUMNS
    assert list(pf.index) == [1, 2, 3, 4, 5, 6]  # the whole catalogue
    p1 = pf.loc[1]
    assert (p1.prod_buyers, p1.prod_baskets, p1.prod_popularity_30d) == (2, 4, 2)
    assert p1.prod_repurchase_rate == pytest.approx(0.5)
    assert p1.prod_cycle_median == pytest.approx(25.0)  # customer 2 has no cycle yet
    assert p1.prod_price_mean == pytest.approx((6 + 15) / (3 + 3))
    assert (p1.department, p1.category) == ("GROCERY", "MILK")
    p5 = pf.loc[5]  # never sold
    assert p5.prod_buyers == 0 and np.isnan(p5.prod_repurchase_rate) and p5.category == "CANDY"
    assert pf.loc[2, "prod_repurchase_rate"] == 0 and np.isnan(pf.loc[2, "prod_cycle_median"])


def test_cycle_median_over_buyers():
    # three customers buying product 7 every 2, 4 and 10 days
    lines = []
    for c, step in ((1, 2), (2, 4), (3, 10)):
        for k in range(3):
            lines.append(
                line(c, c * 100 + k, 7, pd.Timestamp("2017-01-01") + pd.Timedelta(days=step * k))
            )
    pf = product_features(make_tables(lines), "2017-02-01")
    assert pf.loc[7, "prod_cycle_median"] == 4
    assert pf.loc[7, "prod_repurchase_rate"] == 1.0
    assert pf.loc[7, "department"] is None  # no products table


def test_same_rows_for_a_subset():
    t = random_tables(seed=3)
    full = customer_product_features(t, "2017-02-01")
    some = [2, 5, 11, 40]
    part = customer_product_features(t, "2017-02-01", customer_ids=some)
    expect = full[full["customer_id"].isin(some)].reset_index(drop=True)
    pd.testing.assert_frame_equal(part, expect)
    also = customer_product_features(t.subset_customers(some), "2017-02-01")
    pd.testing.assert_frame_equal(also, expect)


def test_trend_sees_recent_change():
    # bought product 1 in every basket until 100 days before the cutoff, then never (4 recent baskets)
    lines = [line(1, k, 1, pd.Timestamp("2016-10-01") + pd.Timedelta(days=7 * k)) for k in range(8)]
    lines += [
        line(1, 100 + k, 2, pd.Timestamp("2017-02-01") + pd.Timedelta(days=5 * k)) for k in range(4)
    ]
    cp = customer_product_features(make_tables(lines), CUTOFF).set_index("product_id")
    assert cp.loc[1, "cp_trend"] == pytest.approx(0 - 8 / 12)
    assert cp.loc[2, "cp_trend"] == pytest.approx(1 - 4 / 12)
    assert cp.loc[1, "cp_baskets_since"] == 4
