"""No feature reads anything at or after the cutoff; labels read nothing past their window.

Planted future events (lines at exactly the cutoff and later, a new customer, later
redemptions, a campaign that starts later) must change no feature value. The end-to-end
test on Complete Journey checks the same on real data: features computed on all of it
equal features computed on the data truncated at the cutoff.
"""

from __future__ import annotations

import pandas as pd
import pytest

from features.build import STEPS, build_all, read_features, write_features
from features.contract import Tables, validate
from features.customer import customer_features, customer_globals
from features.customer_product import customer_product_features, product_features
from features.labels import churn_labels, cross_sell_labels, next_purchase_labels, value_labels
from tests.features._factories import line, random_tables

CUTOFF = pd.Timestamp("2017-01-15")


def with_future(t: Tables, cutoff: pd.Timestamp) -> Tables:
    """``t`` plus events at or after ``cutoff`` only."""
    tx = t.transactions
    customers = sorted(tx["customer_id"].unique())[:10]
    future = [
        line(c, 5_000_000 + i, 1 + i % 7, cutoff + pd.Timedelta(hours=6 * i), 50.0 + i, store=9)
        for i, c in enumerate(customers)
    ]
    future.append(line(customers[0], 5_100_000, 3, cutoff, 99.0))  # exactly at the cutoff
    future.append(line(customers[1], 5_100_001, 3, cutoff + pd.Timedelta(days=2), -7.0, qty=-1.0))
    future.append(
        line(777, 5_100_002, 4, cutoff + pd.Timedelta(days=1), 12.0)
    )  # a brand-new customer
    campaigns = pd.concat(
        [
            t.campaigns,
            pd.DataFrame(
                {
                    "campaign_id": [99],
                    "campaign_type": ["A"],
                    "start_date": [cutoff],
                    "end_date": [cutoff + pd.Timedelta(days=30)],
                }
            ),
        ]
    )
    targets = pd.concat(
        [t.campaign_targets, pd.DataFrame({"campaign_id": 99, "customer_id": customers})]
    )
    coupons = pd.concat(
        [t.coupons, pd.DataFrame({"coupon_id": [999], "product_id": [1], "campaign_id": [99]})]
    )
    reds = pd.concat(
        [
            t.redemptions,
            pd.DataFrame(
                {
                    "customer_id": customers[:3],
                    "coupon_id": 999,
                    "campaign_id": 99,
                    "redemption_date": [
                        cutoff,
                        cutoff + pd.Timedelta(days=1),
                        cutoff + pd.Timedelta(days=3),
                    ],
                }
            ),
        ]
    )
    return validate(
        Tables(
            transactions=pd.concat([tx, pd.DataFrame(future)], ignore_index=True),
            customers=t.customers,
            products=t.products,
            campaigns=campaigns,
            campaign_targets=targets,
            coupons=coupons,
            redemptions=reds,
        )
    )


@pytest.fixture(scope="module")
def pair():
    t = random_tables(seed=5)
    return t, with_future(t, CUTOFF)


def assert_frames_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], obj=name)


def test_planted_future_changes_no_feature(pair):
    t, t_future = pair
    assert len(t_future.transactions) > len(t.transactions)
    assert_frames_equal(build_all(t, CUTOFF), build_all(t_future, CUTOFF))


def test_planted_future_changes_no_public_function(pair):
    t, tf = pair
    assert customer_globals(t, CUTOFF) == customer_globals(tf, CUTOFF)
    pd.testing.assert_frame_equal(customer_features(t, CUTOFF), customer_features(tf, CUTOFF))
    pd.testing.assert_frame_equal(
        customer_product_features(t, CUTOFF), customer_product_features(tf, CUTOFF)
    )
    pd.testing.assert_frame_equal(product_features(t, CUTOFF), product_features(tf, CUTOFF))


def test_the_future_does_change_features_later(pair):
    # guards the test above: the planted events are real and visible one day on
    t, tf = pair
    later = CUTOFF + pd.Timedelta(days=1, seconds=1)
    a, b = customer_features(t, later), customer_features(tf, later)
    assert not a["monetary"].equals(b["monetary"].reindex(a.index))
    assert b.loc[a.index, "campaigns_targeted"].sum() > a["campaigns_targeted"].sum()


def test_labels_ignore_events_after_their_window(pair):
    t, _ = pair
    tx = t.transactions
    late = CUTOFF + pd.Timedelta(days=200)
    far = validate(
        Tables(
            **{
                **t.__dict__,
                "transactions": pd.concat(
                    [
                        tx,
                        pd.DataFrame(
                            [
                                line(c, 6_000_000 + c, 2, late, 5.0)
                                for c in tx["customer_id"].unique()
                            ]
                        ),
                    ],
                    ignore_index=True,
                ),
            }
        )
    )
    for fn in (next_purchase_labels, cross_sell_labels):
        pd.testing.assert_frame_equal(fn(t, CUTOFF), fn(far, CUTOFF))
    pd.testing.assert_frame_equal(churn_labels(t, CUTOFF), churn_labels(far, CUTOFF))
    pd.testing.assert_frame_equal(value_labels(t, CUTOFF), value_labels(far, CUTOFF))


def test_build_all_matches_public_functions_and_reports_steps(pair, tmp_path):
    t, _ = pair
    seen = []
    frames = build_all(t, CUTOFF, progress=seen.append)
    assert tuple(seen) == STEPS
    g = customer_globals(t, CUTOFF)
    assert frames["customers"].attrs["globals"] == g
    pd.testing.assert_frame_equal(frames["customers"], customer_features(t, CUTOFF, g))
    pd.testing.assert_frame_equal(frames["customer_product"], customer_product_features(t, CUTOFF))
    pd.testing.assert_frame_equal(frames["products"], product_features(t, CUTOFF))
    out = write_features(frames, tmp_path / "features")
    back = read_features(out)
    assert back["customers"].attrs["cutoff"] == str(CUTOFF)
    assert back["customers"].attrs["globals"] == g
    assert_frames_equal(frames, back)
    manifest = (out / "manifest.json").read_text()
    assert f'"rows": {len(frames["customer_product"])}' in manifest


@pytest.fixture(scope="module")
def cj():
    from features.sources import load_source

    return load_source("completejourney")


def test_completejourney_end_to_end(cj):
    """Real data: features on everything == features on the data cut at the cutoff; labels sane."""
    cutoff = pd.Timestamp("2017-10-02")
    full = build_all(cj, cutoff)
    cut = cj.before(cutoff)
    started = cut.campaigns["start_date"] < cutoff
    cut.campaigns = cut.campaigns[started]
    cut.campaign_targets = cut.campaign_targets[
        cut.campaign_targets["campaign_id"].isin(cut.campaigns["campaign_id"])
    ]
    assert len(cut.transactions) < len(cj.transactions)
    assert_frames_equal(full, build_all(cut, cutoff))

    cust = full["customers"]
    assert 2_000 < len(cust) <= 2_469
    assert cust["frequency"].min() >= 1 and (cust["recency_days"] > 0).all()
    assert cust["recency_days"].le(cust["tenure_days"]).all()
    assert (
        cust[[c for c in cust.columns if c.startswith("dept_share__")]]
        .sum(axis=1)
        .le(1 + 1e-9)
        .all()
    )
    assert full["demographics"]["has_demographics"].sum() == 801
    assert (full["demographics"]["lifecycle_stage"] != "unknown").sum() > 700
    cp = full["customer_product"]
    assert 500_000 < len(cp) < 1_000_000
    assert cp.groupby("customer_id").size().reindex(cust.index).eq(cust["n_products"]).all()

    nxt = next_purchase_labels(cj, cutoff)
    assert nxt["customer_id"].isin(cust.index).all() and nxt["customer_id"].nunique() > 1_000
    xs = cross_sell_labels(cj, cutoff)
    known = xs.merge(cp, on=["customer_id", "product_id"])
    assert known.empty  # cross-sell products are never ones the customer bought before
    churn = churn_labels(cj, cutoff)
    assert (
        0.02 < churn["churn"].mean() < 0.3 and churn["partial_churn"].mean() > churn["churn"].mean()
    )
    value = value_labels(cj, pd.Timestamp("2017-07-03"))
    assert (value["spend_next"] > 0).mean() > 0.8
