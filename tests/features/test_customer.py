"""Customer behaviour features: known answers on the hand-made shop, scores, per-customer invariance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.contract import ContractError
from features.customer import SEGMENTS, customer_features, customer_globals, rfm_scores
from tests.features._factories import CUTOFF, line, make_tables, random_tables, shop

H = 1 / 24


@pytest.fixture(scope="module")
def feats():
    return customer_features(shop(), CUTOFF)


def test_index_is_customers_with_a_purchase(feats):
    # customer 3 only returned something: no purchase, no row
    assert list(feats.index) == [1, 2]
    assert feats.index.name == "customer_id"


def test_rfm_values_and_rhythm(feats):
    c1, c2 = feats.loc[1], feats.loc[2]
    assert c1.frequency == 4  # the return-only basket is not a purchase
    assert c1.monetary == pytest.approx(17.0)  # net of the 3.0 return
    assert c1.recency_days == pytest.approx(8 + 8 * H)  # last purchase 2017-02-20 16:00
    assert c1.tenure_days == pytest.approx(59 - 10 * H)
    # distinct purchase days Jan 1, Jan 11, Feb 20: gaps 10 and 40
    assert c1.ipi_mean == pytest.approx(25.0)
    assert c1.ipi_std == pytest.approx(np.std([10, 40], ddof=1))
    assert c1.overdue_ratio == pytest.approx((8 + 8 * H) / 25)
    assert c2.frequency == 1 and c2.monetary == pytest.approx(15.0)
    assert c2.recency_days == pytest.approx(1 + 15.5 * H)
    assert np.isnan(c2.ipi_mean) and np.isnan(c2.ipi_std) and np.isnan(c2.overdue_ratio)


def test_spend_windows_and_trend(feats):
    c1 = feats.loc[1]
    assert c1.spend_30d == pytest.approx(6 + 2 - 3)
    assert c1.spend_60d == pytest.approx(17.0)
    assert c1.spend_90d == pytest.approx(17.0)
    assert c1.spend_prev_60d == 0.0
    assert c1.spend_trend == pytest.approx((17 + 10) / (0 + 10))
    assert c1.baskets_90d == 4


def test_baskets_breadth_and_needs(feats):
    c1 = feats.loc[1]
    assert c1.basket_size_mean == pytest.approx(7 / 4)
    assert c1.basket_value_mean == pytest.approx(20 / 4)
    assert (c1.n_departments, c1.n_categories, c1.n_products) == (3, 4, 4)
    assert c1.dept_share__grocery == pytest.approx(9 / 20)
    assert c1.dept_share__produce == pytest.approx(7 / 20)
    assert c1.dept_share__drug_gm == pytest.approx(4 / 20)
    assert c1.private_share == pytest.approx(7 / 20)
    assert c1.discount_share == pytest.approx(1.5 / 22)
    assert c1.coupon_share == pytest.approx(0.5 / 22)
    assert c1.deal_line_share == pytest.approx(3 / 7)
    assert c1.top_category_share == pytest.approx(7 / 20)  # FRUIT
    c2 = feats.loc[2]
    assert c2.basket_size_mean == 2 and c2.dept_share__grocery == 1.0 and c2.private_share == 0.0


def test_private_share_reads_brands_as_the_contract_names_them():
    # case and spaces ignored; a brand outside national/private is unknown, not national
    products = {
        1: ("GROCERY", "A", " PRIVATE "),
        2: ("GROCERY", "B", "National"),
        3: ("GROCERY", "C", "Acme"),
        4: ("GROCERY", "D", None),
    }
    lines = [line(1, 1, p, "2017-02-01", v) for p, v in ((1, 3.0), (2, 1.0), (3, 50.0), (4, 20.0))]
    f = customer_features(make_tables(lines, products), CUTOFF)
    assert f.loc[1, "private_share"] == pytest.approx(3 / 4)


def test_campaigns_only_started_before_cutoff(feats):
    c1, c2 = feats.loc[1], feats.loc[2]
    # campaign 3 starts after the cutoff and its redemption is after it too
    assert (c1.campaigns_targeted, c1.campaigns_redeemed, c1.coupons_redeemed) == (2, 1, 2)
    assert c1.redemption_rate == pytest.approx(0.5)
    assert (
        c2.campaigns_targeted,
        c2.campaigns_redeemed,
        c2.coupons_redeemed,
        c2.redemption_rate,
    ) == (1, 0, 0, 0)


def test_store_and_time_habits(feats):
    c1 = feats.loc[1]
    assert c1.store_loyalty == pytest.approx(3 / 4) and c1.n_stores == 2
    assert c1.weekend_share == pytest.approx(1 / 4)  # 2017-01-01 was a Sunday
    assert c1.hour_mean == pytest.approx((10 + 12 + 14 + 16) / 4)
    assert c1.dow_mode == 0  # two Monday baskets
    assert c1.return_lines == 1 and c1.return_value == pytest.approx(3.0)


def test_columns_follow_the_api(feats):
    expected = {
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
        "private_share",
        "discount_share",
        "coupon_share",
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
    }
    assert expected <= set(feats.columns)
    assert {c for c in feats.columns if c.startswith("dept_share__")} == {
        "dept_share__grocery",
        "dept_share__produce",
        "dept_share__drug_gm",
    }


def test_rfm_scores_from_given_edges():
    base = pd.DataFrame(
        {
            "recency_days": [8.3, 1.6, 0.5, 30.0, 5.0],
            "frequency": [4, 1, 20, 1, 2],
            "monetary": [17.0, 10.0, 100.0, 1.0, 10.0],
        }
    )
    g = {
        "recency_edges": [1, 2, 5, 10],
        "frequency_edges": [1, 2, 4, 8],
        "monetary_edges": [5, 10, 20, 40],
    }
    s = rfm_scores(base, g)
    assert s.r_score.tolist() == [
        2,
        4,
        5,
        1,
        3,
    ]  # value tied with an edge (5.0) takes the better side
    assert s.f_score.tolist() == [3, 1, 5, 1, 2]
    assert s.m_score.tolist() == [3, 2, 5, 1, 2]
    assert s.rfm_segment.tolist() == ["at_risk", "potential", "champions", "lost", "about_to_sleep"]
    assert set(s.rfm_segment) <= set(SEGMENTS)


def test_globals_are_quintiles_and_top_departments():
    t = random_tables(seed=1)
    g = customer_globals(t, "2017-03-01")
    f = customer_features(t, "2017-03-01", g)
    assert g["recency_edges"] == pytest.approx(np.quantile(f.recency_days, [0.2, 0.4, 0.6, 0.8]))
    assert g["monetary_edges"] == pytest.approx(np.quantile(f.monetary, [0.2, 0.4, 0.6, 0.8]))
    assert set(g["departments"]) == {"GROCERY", "PRODUCE", "DRUG GM", "MEAT", "DELI"}
    # roughly a fifth of the customers per score
    assert f.m_score.value_counts().max() <= len(f) * 0.3
    assert g["cutoff"] == "2017-03-01 00:00:00"


def test_same_rows_for_a_subset_given_the_globals():
    t = random_tables(seed=2)
    cutoff = "2017-02-15"
    g = customer_globals(t, cutoff)
    full = customer_features(t, cutoff, g)
    some = [3, 7, 8, 21, 30]
    part = customer_features(t.subset_customers(some), cutoff, g)
    assert list(part.index) == some
    pd.testing.assert_frame_equal(part, full.loc[some], check_exact=False, rtol=1e-12)
    # without the globals the scores would be computed on the subset: they can differ
    alone = customer_features(t.subset_customers(some), cutoff)
    assert not alone[["r_score", "f_score", "m_score"]].equals(
        full.loc[some, ["r_score", "f_score", "m_score"]]
    )


def test_degrades_without_optional_tables():
    lines = [line(1, 1, 1, "2017-01-02", 3.0), line(1, 2, 2, "2017-01-09", 4.0)]
    f = customer_features(make_tables(lines), CUTOFF)
    assert f.loc[1, "frequency"] == 2 and f.loc[1, "ipi_mean"] == 7
    for c in (
        "n_departments",
        "n_categories",
        "private_share",
        "campaigns_targeted",
        "coupons_redeemed",
    ):
        assert np.isnan(f.loc[1, c]), c
    assert not any(c.startswith("dept_share__") for c in f.columns)


def test_bad_inputs_are_named():
    t = shop()
    with pytest.raises(ValueError, match="cutoff 'soon' is not a date"):
        customer_features(t, "soon")
    with pytest.raises(ValueError, match=r"globals_ lacks \['departments'\]"):
        customer_features(
            t,
            CUTOFF,
            {
                "recency_edges": [1, 2, 3, 4],
                "frequency_edges": [1, 2, 3, 4],
                "monetary_edges": [1, 2, 3, 4],
            },
        )
    t.transactions = t.transactions.drop(columns=["store_id"])
    with pytest.raises(ContractError, match="transactions.*store_id"):
        customer_features(t, CUTOFF)


def test_no_history_gives_an_empty_frame():
    f = customer_features(shop(), "2016-06-01")
    assert f.empty and "recency_days" in f.columns


def test_spend_windows_are_float_even_when_empty():
    # all history in early January: nothing in the 60 days before [T - 120, T - 60) at 2017-03-01
    lines = [line(1, 1, 1, "2017-01-02", 3.0), line(1, 2, 2, "2017-01-09", 4.0)]
    f = customer_features(make_tables(lines), "2017-03-01")
    for c in ("spend_30d", "spend_60d", "spend_90d", "spend_prev_60d"):
        assert f[c].dtype == np.float64, c
    assert f.loc[1, "spend_prev_60d"] == 0.0 and f.loc[1, "spend_90d"] == 7.0
