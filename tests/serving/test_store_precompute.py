"""Precompute with stand-in models on a tiny planted shop, and the SQLite lookup store."""

from __future__ import annotations

import json
import sqlite3
from datetime import date

import pandas as pd
import pytest

from serving.precompute import (
    candidate_frame,
    deal_frame,
    precompute,
    product_frame,
    to_probability,
)
from serving.rules import DISCOVER, DISCOVER_REASON, REPLENISH
from serving.store import StoreError, build_store, forget_in_store, load_store, read_meta
from tests.serving.conftest import AS_OF, StandIn, stand_in_models, stand_in_predict


def test_candidates_kinds_and_reasons(tiny_frames):
    c = tiny_frames["candidates"]
    c1 = c[c["customer_id"] == 1].set_index("product_id")
    # 101 bought every 7 days, last on day 49 (Feb 19) -> 10 days before Mar 1
    assert c1.loc[101, "kind"] == REPLENISH
    assert c1.loc[101, "reason"] == "usually buys every ~7 days; last bought 10 days ago"
    assert c1.loc[201, "reason"] == "usually buys every ~14 days; last bought 17 days ago"
    assert (
        c1.loc[302, "kind"] == DISCOVER
        and c1.loc[302, "reason"] == "coffee drinkers like you buy this"
    )
    assert c1.loc[102, "reason"] == DISCOVER_REASON
    # cross-sell of a product the customer already buys (101) is not a discovery: the replenish row wins
    assert (c[(c["customer_id"] == 1) & (c["product_id"] == 101)]["kind"] == [REPLENISH]).all()
    assert not c.duplicated(["customer_id", "product_id"]).any()
    assert (
        c.groupby(["customer_id", "kind"])["rank"]
        .apply(lambda r: list(r) == list(range(1, len(r) + 1)))
        .all()
    )


def test_scores_merge_every_source(tiny_frames):
    s = tiny_frames["scores"].set_index("customer_id")
    assert sorted(s.index) == [1, 2, 3, 4, 5, 6]  # customers with history before AS_OF (7 has none)
    assert s.loc[2, "churn_probability"] == 0.6 and json.loads(s.loc[2, "churn_reasons"]) == [
        "visits less often",
        "spend down 40%",
    ]
    assert s.loc[6, "tier"] == "below_zero" and s.loc[1, "treatment"] == "reward"
    assert s.loc[1, "rfm_segment"] and s.loc[1, "active"] == 1


def test_products_prices_and_deals(tiny_tables):
    prods = product_frame(tiny_tables, AS_OF).set_index("product_id")
    assert prods.loc[101, "price"] == 3.0 and prods.loc[501, "price"] == pytest.approx(
        1.2
    )  # median shelf price
    assert prods.loc[202, "price"] == pytest.approx(
        2.5
    )  # bought only after AS_OF: its category median
    deals = deal_frame(tiny_tables).set_index("coupon_id")
    assert (
        deals.loc[11, "start_day"] == date(2017, 2, 20).toordinal()
        and deals.loc[11, "end_day"] == date(2017, 3, 10).toordinal()
    )
    assert deals.loc[21, "campaign_type"] == "Type B"


def test_popular_excludes_placeholders_and_future(tiny_frames):
    pop = tiny_frames["popular"]
    assert pop.iloc[0]["product_id"] == 501  # bought by five of six shoppers
    assert 999 not in set(pop["product_id"]) and 202 not in set(pop["product_id"])


def test_placeholders_and_unscored_products_are_never_candidates(tmp_path, tiny_tables):
    # customer 1 bought the placeholder 999 (department UNKNOWN); a model lists it, and a
    # product it could not score (NaN)
    np_ = pd.DataFrame(
        {
            "customer_id": [1, 1, 1],
            "product_id": [999, 101, 201],
            "rank": [1, 2, 3],
            "score": [0.9, 0.5, float("nan")],
        }
    )
    cs = pd.DataFrame({"customer_id": [2], "product_id": [999], "rank": [1], "score": [0.3]})
    c = candidate_frame(tiny_tables, AS_OF, np_, cs)
    assert c["product_id"].tolist() == [101] and c["rank"].tolist() == [1]
    frames = precompute(
        tiny_tables,
        AS_OF,
        {"next_purchase": StandIn(np_), "cross_sell": StandIn(cs)},
        predict=stand_in_predict,
    )
    build_store(frames, tmp_path / "s.sqlite", {"as_of": "2017-03-01"})
    store = load_store(tmp_path / "s.sqlite")  # a NaN score used to fail here (float(None))
    assert [c.product_id for c in store.candidates[1]] == [101]
    assert 999 not in {c.product_id for cands in store.candidates.values() for c in cands}
    # a store damaged by hand is a StoreError (the service starts not ready), not a TypeError
    with sqlite3.connect(tmp_path / "s.sqlite") as conn:
        conn.execute("UPDATE candidates SET score = NULL")
    with pytest.raises(StoreError, match="cannot be read"):
        load_store(tmp_path / "s.sqlite")


def test_missing_families_and_forgotten_customers(tiny_tables):
    models = stand_in_models()
    frames = precompute(
        tiny_tables,
        AS_OF,
        {"churn": models["churn"]},
        predict=stand_in_predict,
        exclude_customers=[2],
    )
    assert frames["candidates"].empty
    assert 2 not in set(frames["scores"]["customer_id"])
    assert "tier" not in frames["scores"]
    with pytest.raises(ValueError, match="unknown model families"):
        precompute(tiny_tables, AS_OF, {"nxt": None}, predict=stand_in_predict)


def test_to_probability():
    assert to_probability(pd.Series([0.2, 0.9])).tolist() == [0.2, 0.9]
    assert to_probability(pd.Series([-1.0, 3.0])).tolist() == pytest.approx([0.01, 0.5])


def test_store_round_trip(tmp_path, tiny_frames):
    path = tmp_path / "store.sqlite"
    build_store(
        tiny_frames,
        path,
        {"as_of": "2017-03-01", "model_versions": {"churn": "3"}, "missing": {"value": "none"}},
    )
    st = load_store(path)
    assert (
        st.as_of == date(2017, 3, 1)
        and st.model_versions == {"churn": "3"}
        and st.missing == {"value": "none"}
    )
    assert st.products[101].description == "Whole Milk (1 GAL)" and st.products[101].price == 3.0
    assert [d.coupon_id for d in st.deals[101]] == [11]
    kinds = [c.kind for c in st.candidates[1]]
    assert kinds == sorted(kinds)  # grouped by kind, each in rank order
    assert st.scores[2].churn_reasons == ("visits less often", "spend down 40%")
    assert st.scores[6].tier == "below_zero" and st.scores[1].active is True
    assert st.popular[0][0] == 501


def test_replenish_reasons_count_the_days_to_the_date_asked_for(tmp_path, tiny_frames):
    from datetime import timedelta

    from serving.config import load_config
    from serving.engine import OfferEngine

    path = build_store(tiny_frames, tmp_path / "store.sqlite", {"as_of": "2017-03-01"})
    engine = OfferEngine(load_store(path), load_config())

    def reasons(day):
        got = engine.offer_list(1, 10, day=day).offers
        return {o.product_id: o.reason for o in got if o.kind == REPLENISH}

    # 201 bought every 14 days, last 17 days before the store's as-of date ...
    on_as_of = reasons(date(2017, 3, 1))
    assert on_as_of[201] == "usually buys every ~14 days; last bought 17 days ago"
    # ... and 24 days before a list for a week later (the text used to stay at 17)
    later = reasons(date(2017, 3, 1) + timedelta(days=7))
    assert later[201] == "usually buys every ~14 days; last bought 24 days ago"
    # a date before the last purchase drops the count rather than print a negative one
    assert reasons(date(2017, 2, 1))[201] == "usually buys every ~14 days"


def test_store_is_replaced_atomically_and_checked(tmp_path, tiny_frames):
    path = tmp_path / "store.sqlite"
    with pytest.raises(StoreError, match="no lookup store at"):
        read_meta(path)
    build_store(tiny_frames, path, {"as_of": "2017-03-01"})
    build_store({}, path, {"as_of": "2017-04-01"})  # an empty rebuild replaces the old file whole
    st = load_store(path)
    assert st.as_of == date(2017, 4, 1) and not st.candidates and not st.products
    assert [p.name for p in tmp_path.iterdir()] == ["store.sqlite"]  # no temp files left
    with pytest.raises(StoreError, match="needs 'as_of'"):
        build_store({}, path, {})
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '\"0\"' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="expected 2; rebuild it"):
        load_store(path)


def test_forget_in_store(tmp_path, tiny_frames):
    path = tmp_path / "store.sqlite"
    build_store(tiny_frames, path, {"as_of": "2017-03-01"})
    n = int((tiny_frames["candidates"]["customer_id"] == 1).sum())
    assert forget_in_store(path, 1) == {"candidates": n, "scores": 1}
    st = load_store(path)
    assert 1 not in st.candidates and 1 not in st.scores and 2 in st.scores
    assert b"coffee drinkers like you" not in path.read_bytes()  # erased, not just unlinked
