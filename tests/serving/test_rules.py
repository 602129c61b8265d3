"""Offer rules on hand-made cases (no HTTP, no store)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from serving.config import OfferRules, load_config
from serving.rules import (
    DISCOVER,
    REPLENISH,
    RETENTION,
    Candidate,
    Deal,
    Offer,
    Product,
    Profile,
    deal_on,
    discount_depth,
    eligible,
    expected_value,
    is_below_zero,
    needs_retention,
    popular_offers,
    rank_offers,
    replenish_reason,
    select_mix,
    value_at_risk,
)

RULES = load_config().rules
DAY = date(2017, 3, 1).toordinal()

PRODUCTS = {
    1: Product(1, "Milk", "DAIRY", "MILK", 3.0),
    2: Product(2, "Skim milk", "DAIRY", "MILK", 2.8),
    3: Product(3, "Choc milk", "DAIRY", "MILK", 2.0),
    4: Product(4, "Bread", "BAKERY", "BREAD", 2.5),
    5: Product(5, "Coffee", "GROCERY", "COFFEE", 8.0),
    6: Product(6, "Soap", "DRUG GM", "SOAP", 4.0),
    7: Product(7, "Bananas", "PRODUCE", "FRUIT", 1.0),
    8: Product(8, "Apples", "PRODUCE", "FRUIT", 2.0),
    9: Product(9, "Tea", "GROCERY", "TEA", 5.0),
}
DEALS = {
    5: [Deal(50, 1, DAY - 10, DAY + 10), Deal(51, 2, DAY - 30, DAY - 1)],
    9: [Deal(90, 3, DAY + 1, DAY + 20)],
}


def cand(pid, kind=REPLENISH, p=0.5, reason="r"):
    return Candidate(pid, kind, p, p, reason)


def offer(pid, kind, ev, cat):
    return Offer(pid, f"p{pid}", None, cat, kind, ev, ev, 1.0, 0.0, ev, None, "r")


# ----------------------------------------------------------------------------- deals


def test_deal_valid_only_inside_its_dates_inclusive():
    deals = [Deal(1, 1, 100, 110)]
    assert deal_on(deals, 99) is None
    assert deal_on(deals, 100).coupon_id == 1
    assert deal_on(deals, 110).coupon_id == 1
    assert deal_on(deals, 111) is None
    assert deal_on(None, 100) is None


def test_deal_prefers_deepest_discount_then_longest_running():
    deals = [Deal(1, 1, 0, 50, None), Deal(2, 1, 0, 80, None), Deal(3, 2, 0, 20, 0.3)]
    assert deal_on(deals, 10).coupon_id == 3
    assert deal_on(deals, 30).coupon_id == 2


# ----------------------------------------------------------------------------- value, discount, retention


@pytest.mark.parametrize(
    ("profile", "depth"),
    [
        (Profile("most_valuable", 500.0, 0.1), 0.20),
        (Profile("Most Valuable", 500.0, 0.1), 0.20),
        (Profile("most-growable", 200.0, 0.1), 0.15),
        (Profile("regular", 50.0, 0.1), 0.05),
        (Profile("below_zero", 10.0, 0.1), 0.0),
        (
            Profile("most_valuable", -3.0, 0.1),
            0.0,
        ),  # negative CLV is below zero whatever the tier says
        (Profile(None, None, None), 0.05),  # unknown tier: the default depth
        (Profile("some_new_tier", 50.0, 0.1), 0.05),
    ],
)
def test_discount_depth_is_tiered_by_value(profile, depth):
    assert discount_depth(profile, RULES) == pytest.approx(depth)


def test_deepest_discount_for_most_valuable():
    depths = {
        t: discount_depth(Profile(t, 100.0), RULES)
        for t in ("most_valuable", "most_growable", "regular", "below_zero")
    }
    assert depths["most_valuable"] == max(depths.values())
    assert depths["below_zero"] == 0.0


def test_retention_when_risk_times_value_is_high():
    assert value_at_risk(Profile("regular", 100.0, 0.5)) == pytest.approx(50.0)
    assert needs_retention(Profile("regular", 100.0, 0.5), RULES)  # 50 >= 25
    assert not needs_retention(Profile("regular", 100.0, 0.2), RULES)  # 20 < 25
    assert not needs_retention(Profile("below_zero", 1000.0, 0.9), RULES)
    assert not needs_retention(Profile("regular", None, 0.9), RULES)
    assert is_below_zero(Profile("regular", -1.0), RULES)


def test_expected_value_lift_and_discount():
    assert expected_value(0.5, 10.0, 0.0, False, RULES) == pytest.approx(5.0)
    assert expected_value(0.5, 10.0, 0.2, True, RULES) == pytest.approx(0.5 * 1.3 * 10 * 0.8)
    assert expected_value(0.9, 10.0, 0.0, True, RULES) == pytest.approx(
        10.0
    )  # probability capped at 1


# ----------------------------------------------------------------------------- eligibility and mix


def test_eligible_drops_basket_unknown_and_duplicates():
    cands = [cand(1), cand(4), cand(42), cand(5), cand(1, DISCOVER)]
    out = eligible(cands, PRODUCTS, basket=[4])
    assert [c.product_id for c in out] == [1, 5]


def test_select_mix_caps_categories_and_orders_by_expected_value():
    offers = [
        offer(1, REPLENISH, 5.0, "MILK"),
        offer(2, REPLENISH, 4.0, "MILK"),
        offer(3, REPLENISH, 3.0, "MILK"),
        offer(4, REPLENISH, 2.0, "BREAD"),
        offer(5, DISCOVER, 1.0, "COFFEE"),
        offer(7, DISCOVER, 0.5, "FRUIT"),
    ]
    out = select_mix(offers, 10, RULES)
    assert [o.product_id for o in out] == [
        1,
        2,
        4,
        5,
        7,
    ]  # third milk dropped: at most 2 per category
    assert [o.expected_value for o in out] == sorted((o.expected_value for o in out), reverse=True)


def test_select_mix_keeps_discover_share():
    rep = [offer(i, REPLENISH, 10.0 - i * 0.1, f"R{i}") for i in range(1, 11)]
    dis = [offer(100 + i, DISCOVER, 1.0 - i * 0.01, f"D{i}") for i in range(1, 11)]
    out = select_mix(rep + dis, 10, RULES)
    kinds = [o.kind for o in out]
    assert kinds.count(REPLENISH) == 6 and kinds.count(DISCOVER) == 4  # replenish_share 0.6


def test_select_mix_fills_from_other_kind_when_one_runs_short():
    rep = [offer(i, REPLENISH, 5.0, f"R{i}") for i in range(1, 10)]
    dis = [offer(100, DISCOVER, 1.0, "D")]
    out = select_mix(rep + dis, 8, RULES)
    assert len(out) == 8 and sum(o.kind == DISCOVER for o in out) == 1


def test_select_mix_respects_a_tighter_category_cap():
    rules = replace(RULES, max_per_category=1)
    offers = [
        offer(1, REPLENISH, 5.0, "MILK"),
        offer(2, DISCOVER, 4.0, "MILK"),
        offer(3, DISCOVER, 3.0, None),
        offer(4, DISCOVER, 2.0, None),
    ]
    out = select_mix(offers, 10, rules)
    assert [o.product_id for o in out] == [
        1,
        3,
        4,
    ]  # products without a category do not share a cap


# ----------------------------------------------------------------------------- full pipeline


def _rank(profile, basket=(), n=10, discounts=True, rules=RULES):
    cands = [
        cand(1, p=0.9, reason="usual"),
        cand(4, p=0.6),
        cand(5, p=0.3),
        cand(6, DISCOVER, 0.4),
        cand(9, DISCOVER, 0.4),
        cand(8, DISCOVER, 0.2),
        cand(77, DISCOVER, 0.9),
    ]
    return rank_offers(
        cands,
        products=PRODUCTS,
        deals=DEALS,
        day=DAY,
        profile=profile,
        rules=rules,
        n=n,
        basket=basket,
        discounts=discounts,
    )


def test_rank_offers_attaches_only_valid_deals_and_skips_basket_and_unknown():
    out = {o.product_id: o for o in _rank(Profile("regular", 50.0, 0.05), basket=[4])}
    assert 4 not in out and 77 not in out
    assert out[5].deal is not None and out[5].deal.coupon_id == 50  # deal 51 expired the day before
    assert out[9].deal is None  # its deal starts tomorrow
    assert out[1].deal is None


def test_rank_offers_discounts_deals_and_discoveries_but_not_plain_replenishment():
    out = {o.product_id: o for o in _rank(Profile("most_valuable", 500.0, 0.01))}
    assert out[5].discount == pytest.approx(0.20)  # replenish with a deal
    assert out[6].discount == pytest.approx(0.20)  # discover
    assert out[1].discount == 0.0  # replenish without deal: bought anyway


def test_below_zero_customers_get_no_discount_and_no_retention():
    out = _rank(Profile("below_zero", -50.0, 0.95))
    assert out and all(o.discount == 0.0 for o in out)
    assert all(o.kind != RETENTION for o in out)


def test_retention_incentive_for_valuable_customer_at_risk():
    out = _rank(Profile("most_valuable", 400.0, 0.5))  # 200 at risk
    ret = [o for o in out if o.kind == RETENTION]
    assert len(ret) == 1
    assert ret[0].product_id == 1  # the replenish item they are most likely to buy
    assert ret[0].discount == pytest.approx(RULES.retention_discount)
    assert "25% off" in ret[0].reason
    assert out[0].kind == RETENTION  # it protects 0.1 x 200 of spend: the top expected value


def test_no_discount_arm_has_no_discounts_and_no_retention():
    out = _rank(Profile("most_valuable", 400.0, 0.5), discounts=False)
    assert all(o.discount == 0.0 for o in out) and all(o.kind != RETENTION for o in out)
    assert any(o.deal is not None for o in out)  # manufacturer coupons stay attached


def test_rank_offers_length_and_order():
    out = _rank(Profile("regular", 50.0, 0.05), n=3)
    assert len(out) == 3
    assert out == sorted(out, key=lambda o: -o.expected_value)


def test_popular_offers_put_deals_first_and_cap_categories():
    popular = [(7, 0.9), (8, 0.8), (1, 0.7), (2, 0.6), (3, 0.5), (5, 0.4), (42, 0.3)]
    out = popular_offers(
        popular, products=PRODUCTS, deals=DEALS, day=DAY, rules=RULES, n=10, basket=[8]
    )
    ids = [o.product_id for o in out]
    assert ids[0] == 5 and out[0].deal is not None  # the only one with a valid deal
    assert 8 not in ids and 42 not in ids and 3 not in ids  # basket, unknown, third milk
    assert all(o.kind == DISCOVER for o in out)


def test_replenish_reason_text():
    assert replenish_reason(9.2, 12) == "usually buys every ~9 days; last bought 12 days ago"
    assert replenish_reason(float("nan"), 1.0) == "bought before; last bought 1 day ago"
    assert replenish_reason(None, None) == "bought before and due again"


def test_rules_default_constructible():
    assert OfferRules().max_n == 50


def test_a_coupon_amount_becomes_a_share_of_the_price():
    from serving.rules import coupon_share

    assert coupon_share(1.5, 3.0) == pytest.approx(0.5)
    assert coupon_share(2.0, 1.0) == 1.0  # never more than the price
    assert coupon_share(None, 3.0) is None and coupon_share(0.5, 0.0) is None
    # $1.50 off the $3 milk: 50% off, not 150%
    deals = {1: [Deal(70, 1, DAY - 5, DAY + 5, 1.5)]}
    cands = [cand(1, p=0.9), cand(4, p=0.6)]
    out = rank_offers(
        cands,
        products=PRODUCTS,
        deals=deals,
        day=DAY,
        profile=Profile("regular", 50.0, 0.05),
        rules=RULES,
        n=5,
    )
    milk = next(o for o in out if o.product_id == 1)
    assert milk.discount == pytest.approx(0.5) and 0 < milk.expected_value
