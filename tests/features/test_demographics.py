"""Demographic features and the family life-cycle stage."""

from __future__ import annotations

import numpy as np
import pytest

from features.demographics import STAGES, band_mid, demographic_features
from tests.features._factories import line, make_tables


def profile(cid, age, comp, kids, married=None, size=None, income="50-74K", home="Homeowner"):
    return {
        "customer_id": cid,
        "age_band": age,
        "household_comp": comp,
        "kids_count": kids,
        "marital_status": married,
        "household_size": size,
        "income_band": income,
        "home_ownership": home,
    }


CASES = [
    # (profile, expected stage)
    (profile(1, "25-34", "1 Adult No Kids", "0", "Unmarried", "1"), "young_single"),
    (profile(2, "19-24", "2 Adults No Kids", "0", None, "2"), "couple_no_kids"),
    (profile(3, "45-54", "2 Adults No Kids", "0", "Married", "2"), "couple_no_kids"),
    (profile(4, "35-44", "2 Adults Kids", "2", "Married", "4"), "full_nest_young_kids"),
    (profile(5, "25-34", "1 Adult Kids", "1", "Unmarried", "2"), "full_nest_young_kids"),
    (profile(6, "45-54", "2 Adults Kids", "3+", "Married", "5+"), "full_nest_older_kids"),
    (profile(7, "55-64", "1 Adult Kids", "1", "Married", "2"), "full_nest_older_kids"),
    (profile(8, "55-64", "2 Adults No Kids", "0", "Married", "2"), "empty_nest"),
    (profile(9, "65+", "2 Adults No Kids", "0", None, "2"), "empty_nest"),
    (profile(10, "65+", "1 Adult No Kids", "0", "Unmarried", "1"), "older_single"),
    (
        profile(11, "45-54", "1 Adult No Kids", "0", "Unmarried", "1"),
        "older_single",
    ),  # documented choice
    (profile(12, None, "2 Adults Kids", "1"), "unknown"),  # no age
    (profile(13, "35-44", None, None, "Married"), "unknown"),  # kids status unknown
    # no household_comp: kids from kids_count, adults from size - kids, or marriage
    (profile(14, "35-44", None, "0", None, "2"), "couple_no_kids"),
    (profile(15, "65+", None, "None", "Married"), "empty_nest"),
    (profile(16, "25-34", None, "0", "Unmarried"), "young_single"),
    (profile(17, "25-34", None, "0", None), "unknown"),  # single or couple? cannot tell
    (profile(18, "19-24", None, "2"), "full_nest_young_kids"),
]


@pytest.fixture(scope="module")
def demo():
    lines = [line(c, c, 1, "2017-01-02") for c in (1, 2, 99)]
    t = make_tables(lines, customers=[p for p, _ in CASES])
    return demographic_features(t)


def test_lifecycle_stages(demo):
    got = demo["lifecycle_stage"].to_dict()
    for p, stage in CASES:
        assert got[p["customer_id"]] == stage, p
    assert set(demo["lifecycle_stage"]) <= set(STAGES)


def test_numbers_from_bands(demo):
    r = demo.loc[6]
    assert (r.age_mid, r.income_mid, r.homeowner, r.married) == (49.5, 62.0, 1.0, 1.0)
    assert (r.household_size_n, r.kids_n, r.adults_n, r.has_demographics) == (5, 3, 2, 1)
    assert demo.loc[10, "age_mid"] == 70
    assert demo.loc[14, "adults_n"] == 2  # size 2 - 0 kids
    assert demo.loc[15, "kids_n"] == 0


def test_customer_without_profile_is_unknown(demo):
    # 99 has transactions only
    r = demo.loc[99]
    assert r.lifecycle_stage == "unknown" and r.has_demographics == 0
    assert np.isnan(r.age_mid) and np.isnan(r.kids_n)
    assert demo.index.is_monotonic_increasing and demo.index.name == "customer_id"


def test_requested_ids_in_order_and_no_customers_table():
    t = make_tables([line(1, 1, 1, "2017-01-02"), line(2, 2, 1, "2017-01-03")])
    d = demographic_features(t, customer_ids=[2, 1, 7])
    assert list(d.index) == [2, 1, 7]
    assert (d["lifecycle_stage"] == "unknown").all() and (d["has_demographics"] == 0).all()
    assert d["age_mid"].isna().all()


@pytest.mark.parametrize(
    "label, expected",
    [
        ("19-24", 21.5),
        ("Under 15K", 7.5),
        ("250K+", 275.0),
        ("100-124K", 112.0),
        ("5+", 5.0),
        ("3", 3.0),
        ("$35,000-$49,999", 42499.5),
        (None, np.nan),
        ("Unknown", np.nan),
    ],
)
def test_band_mid(label, expected):
    got = band_mid(label, open_top=lambda a: a * 1.1 if a > 100 else a)
    assert (np.isnan(got) and np.isnan(expected)) or got == pytest.approx(expected)


def test_homeowner_and_marital_codes():
    rows = [
        profile(1, "25-34", "1 Adult No Kids", "0", "Unmarried", "1", home="Probable Renter"),
        profile(2, "25-34", "1 Adult No Kids", "0", "Married", "1", home="Probable Homeowner"),
        profile(3, "25-34", "1 Adult No Kids", "0", "Unknown", "1", home="Unknown"),
    ]
    d = demographic_features(make_tables([line(1, 1, 1, "2017-01-02")], customers=rows))
    assert d["homeowner"].tolist()[:2] == [0.0, 1.0] and np.isnan(d.loc[3, "homeowner"])
    assert d["married"].tolist()[:2] == [0.0, 1.0] and np.isnan(d.loc[3, "married"])
    # 1 adult but married: counted as a couple (spouse away) -> couple_no_kids at 25-34
    assert d.loc[2, "lifecycle_stage"] == "couple_no_kids"
