"""Sources end to end: Complete Journey, the synthetic shop and its planted truth, the files source."""

from __future__ import annotations

import json
import time
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.contract import ContractError, is_return, validate
from features.sources import load_source
from features.sources.files import MAPPINGS_DIR, MappingError, load_files, stable_ids
from features.sources.synthetic import fingerprint, generate

ONLINE_RETAIL = Path("/work/shared/data/online_retail")
OR_ROWS = 541_909

# --------------------------------------------------------------------------- Complete Journey


def test_completejourney_end_to_end(cj_tables):
    s = cj_tables.summary()
    assert s["transactions"] == 1_469_307
    assert s["customers_with_purchases"] == 2_469
    assert s["customers"] == 801
    assert s["campaigns"] == 27
    assert any("placeholder products" in n for n in cj_tables.notes)
    assert cj_tables.transactions["timestamp"].min() >= pd.Timestamp("2017-01-01")
    assert cj_tables.transactions["basket_id"].dtype == "int64"


# --------------------------------------------------------------------------- synthetic: shape, determinism

SMALL = {"customers": 80, "products": 120, "days": 120, "seed": 3}


def test_synthetic_produces_every_canonical_table():
    t = validate(generate(**SMALL))
    assert t.present() == [
        "transactions",
        "customers",
        "products",
        "campaigns",
        "campaign_targets",
        "coupons",
        "redemptions",
    ]
    assert t.transactions["customer_id"].nunique() == 80
    assert set(t.products["brand"]) == {"National", "Private"}
    assert "KIDS/BABY" in set(t.products["department"])
    assert t.products["description"].notna().all()
    assert t.transactions["timestamp"].min() >= pd.Timestamp("2017-01-01")
    assert t.transactions["timestamp"].max() < pd.Timestamp("2017-01-01") + pd.Timedelta(days=120)
    ret = t.transactions[is_return(t.transactions)]
    assert len(ret) > 0 and (ret["quantity"] < 0).all() and (ret["sales_value"] < 0).all()
    assert len(t.redemptions) > 0 and (t.transactions["coupon_discount"] > 0).sum() == len(
        t.redemptions
    )


def test_synthetic_is_deterministic():
    a, b, c = generate(**SMALL), generate(**SMALL), generate(**{**SMALL, "seed": 4})
    for name, df in a.items():
        pd.testing.assert_frame_equal(df, getattr(b, name))
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(a) != fingerprint(c)
    assert not a.transactions[["customer_id", "product_id"]].equals(
        c.transactions[["customer_id", "product_id"]]
    )


def test_synthetic_lines_target():
    t0 = time.perf_counter()
    t = generate(lines=150_000, products=200, seed=5)
    assert abs(len(t.transactions) / 150_000 - 1) < 0.08
    assert time.perf_counter() - t0 < 20


def test_synthetic_argument_errors():
    with pytest.raises(ValueError, match="products must be at least 46"):
        generate(customers=10, products=20)
    with pytest.raises(ValueError, match="days must be at least 30"):
        generate(customers=10, days=10)


def test_load_source_synthetic_validates():
    t = load_source("synthetic", customers=30, products=60, days=60, seed=1)
    assert t.transactions["timestamp"].dtype == "datetime64[ns]"
    with pytest.raises(ValueError, match="unknown source 'nope'"):
        load_source("nope")


# --------------------------------------------------------------------------- synthetic: planted truth is in the data


def _day(ts: pd.Series) -> pd.Series:
    return ts.dt.normalize()


def test_staple_gaps_match_their_cycles(small_synth, small_synth_truth):
    tx = small_synth.transactions
    buys = (
        tx.loc[~is_return(tx), ["customer_id", "product_id"]]
        .assign(day=_day(tx["timestamp"]))
        .drop_duplicates()
    )
    m = buys.merge(small_synth_truth.staples, on=["customer_id", "product_id"]).sort_values(
        ["customer_id", "product_id", "day"]
    )
    m["gap"] = m.groupby(["customer_id", "product_id"])["day"].diff().dt.days
    g = m.groupby(["customer_id", "product_id"]).agg(
        med=("gap", "median"), cycle=("cycle_days", "first"), n=("gap", "count")
    )
    g = g[g["n"] >= 4]
    assert len(g) > 500
    err = (g["med"] - g["cycle"]).abs()
    assert err.median() <= 1.0
    assert (err <= 0.2 * g["cycle"]).mean() > 0.95
    # and the cycles differ between staples, so a model cannot get away with one number
    assert g.groupby("cycle")["med"].median().is_monotonic_increasing


def test_churners_stop_and_partial_churners_halve(small_synth, small_synth_truth):
    tx = small_synth.transactions
    last = tx.groupby("customer_id")["timestamp"].max()
    churn = small_synth_truth.churn_date
    assert len(churn) > 20
    assert (last.reindex(churn.index) < churn).all()
    # nobody else stops that early: active customers buy in the last month
    active = small_synth_truth.customers.query("lifecycle == 'active'")["customer_id"]
    assert (last.reindex(active) >= pd.Timestamp("2017-12-01")).mean() > 0.95

    pc = small_synth_truth.partial_churners
    assert len(pc) > 20
    x = tx.merge(pc.rename("date"), left_on="customer_id", right_index=True)
    win = pd.Timedelta(days=60)
    before = (
        x[(x["timestamp"] < x["date"]) & (x["timestamp"] >= x["date"] - win)]
        .groupby("customer_id")["sales_value"]
        .sum()
    )
    after = (
        x[(x["timestamp"] >= x["date"]) & (x["timestamp"] < x["date"] + win)]
        .groupby("customer_id")["sales_value"]
        .sum()
    )
    ratio = after.reindex(before.index, fill_value=0) / before
    assert (ratio < 0.5).mean() > 0.85
    assert (last.reindex(pc.index) > pc).mean() > 0.9  # they keep buying: not full churners


def test_new_customers_start_late(small_synth, small_synth_truth):
    first = small_synth.transactions.groupby("customer_id")["timestamp"].min()
    tc = small_synth_truth.customers.set_index("customer_id")
    new = tc[tc["lifecycle"] == "new"]
    assert len(new) > 10
    assert (first.reindex(new.index) >= new["start_date"]).all()
    assert (first.reindex(new.index) > pd.Timestamp("2017-01-31")).all()


def test_campaign_responders(small_synth, small_synth_truth):
    t, truth = small_synth, small_synth_truth
    red = t.redemptions.merge(t.campaigns, on="campaign_id")
    assert len(red) > 50
    assert red["customer_id"].isin(truth.responders).all()
    assert (
        (red["redemption_date"] >= red["start_date"]) & (red["redemption_date"] <= red["end_date"])
    ).all()
    targeted = red.merge(
        t.campaign_targets, on=["campaign_id", "customer_id"], how="left", indicator=True
    )
    assert (targeted["_merge"] == "both").all()
    # each redemption is a purchase of the coupon product that day, with a coupon discount
    lines = t.transactions[t.transactions["coupon_discount"] > 0].assign(
        day=lambda d: _day(d["timestamp"])
    )
    red = red.merge(t.coupons[["coupon_id", "product_id"]], on="coupon_id")
    hit = red.merge(
        lines,
        left_on=["customer_id", "product_id", "redemption_date"],
        right_on=["customer_id", "product_id", "day"],
    )
    assert len(hit) == len(red)
    # most responders redeem; targeted non-responders never do
    assert red["customer_id"].nunique() > 0.6 * len(truth.responders)
    assert not red["customer_id"].isin(truth.targeted.difference(truth.responders)).any()


def test_demographic_effects(small_synth):
    t = small_synth
    tx = t.transactions[~is_return(t.transactions)]
    prod = t.products.set_index("product_id")
    cust = t.customers.set_index("customer_id")
    assert 0.5 < len(cust) / tx["customer_id"].nunique() < 0.7
    d = tx[["customer_id", "basket_id"]].assign(
        kids=prod["department"].reindex(tx["product_id"]).to_numpy() == "KIDS/BABY",
        private=prod["brand"].reindex(tx["product_id"]).to_numpy() == "Private",
    )
    per = d.groupby("customer_id").agg(kids=("kids", "mean"), private=("private", "mean"))
    per = per.join(cust, how="inner")
    kid_share = per.groupby(per["kids_count"] != "0")["kids"].mean()
    assert kid_share[True] > 4 * kid_share[False]
    young = per.loc[per["age_band"].isin(["19-24", "25-34"]), "private"].mean()
    old = per.loc[per["age_band"].isin(["55-64", "65+"]), "private"].mean()
    assert young > 1.5 * old
    size = d.groupby(["customer_id", "basket_id"]).size().groupby("customer_id").mean()
    by_hh = (
        size.to_frame("items")
        .join(cust["household_size"], how="inner")
        .groupby("household_size")["items"]
        .mean()
    )
    assert by_hh.is_monotonic_increasing and by_hh["5+"] > 1.8 * by_hh["1"]


def test_segments_share_products_and_adopters_buy_new_products(small_synth, small_synth_truth):
    tx = small_synth.transactions
    truth = small_synth_truth
    seg = truth.segment
    # "customers like you": nearest neighbours by purchase profile are mostly of the same segment
    counts = pd.crosstab(tx["customer_id"], tx["product_id"]).astype(float)
    m = counts.to_numpy() / np.linalg.norm(counts.to_numpy(), axis=1, keepdims=True)
    sim = m @ m.T
    np.fill_diagonal(sim, -1.0)
    segs = seg.reindex(counts.index).to_numpy()
    top10 = np.argsort(-sim, axis=1)[:, :10]
    assert (segs[top10] == segs[:, None]).mean() > 0.7  # chance: 1 / 8
    same = segs[:, None] == segs[None, :]
    np.fill_diagonal(same, False)
    other = segs[:, None] != segs[None, :]
    assert sim[same].mean() > 1.5 * sim[other].mean()

    ad = truth.adoptions
    assert len(ad) > 30
    first = tx.groupby(["customer_id", "product_id"])["timestamp"].min().dt.normalize()
    got = first.reindex(pd.MultiIndex.from_frame(ad[["customer_id", "product_id"]])).to_numpy()
    assert (got == ad["date"].to_numpy()).all()
    # the adopted product is one that segment peers already bought before the adoption
    peers = tx.assign(segment=seg.reindex(tx["customer_id"]).to_numpy())
    early = ad.merge(truth.customers[["customer_id", "segment"]], on="customer_id").merge(
        peers[["segment", "product_id", "timestamp"]], on=["segment", "product_id"]
    )
    early = early[early["timestamp"] < early["date"]]
    assert early.groupby(["customer_id", "product_id"]).ngroups > 0.9 * len(ad)


# --------------------------------------------------------------------------- files: Online Retail


@pytest.fixture(scope="module")
def online_retail():
    raw = load_files(ONLINE_RETAIL, mapping="online_retail")
    return raw, validate(raw)


def _count(notes: list[str], phrase: str) -> int:
    line = next(n for n in notes if phrase in n)
    return int(line.split("excluded ")[1].split(" of ")[0].replace(",", ""))


def test_online_retail_import_counts(online_retail):
    raw, t = online_retail
    notes = t.notes
    assert f"transactions: {OR_ROWS:,} rows read from online_retail.parquet" in notes
    no_customer = _count(notes, "without a customer id")
    non_product = _count(notes, "that are not products")
    bad_price = _count(notes, "zero or negative unit price")
    assert (no_customer, non_product, bad_price) == (135_080, 1_916, 34)
    kept = len(t.transactions)
    assert kept == 404_879
    assert kept + no_customer + non_product + bad_price == OR_ROWS
    assert any("POST 1,196" in n and "M 465" in n for n in notes)
    s = t.summary()
    assert (s["customers"], s["products"], s["baskets"], s["returns"]) == (
        4_362,
        3_677,
        21_785,
        8_539,
    )


def test_online_retail_returns_ids_and_invoices(online_retail):
    _, t = online_retail
    tx = t.transactions
    ret = tx[is_return(tx)]
    assert len(ret) == 8_539
    assert ret["basket_code"].str.startswith("C").all()
    assert (ret["quantity"] < 0).all() and (ret["sales_value"] < 0).all()
    assert not tx.loc[~is_return(tx), "basket_code"].str.startswith("C").any()
    # a basket (invoice) belongs to one customer
    assert tx.groupby("basket_id")["customer_id"].nunique().max() == 1
    # numeric codes keep their number; other codes get stable ids and keep the code
    assert (tx.loc[tx["basket_code"] == "536365", "basket_id"] == 536365).all()
    prod = t.products.set_index("product_code")
    assert prod.loc["22556", "product_id"] == 22556
    heart = prod.loc["85123A"]
    assert (
        heart["product_id"] >= 2**62
        and heart["description"] == "WHITE HANGING HEART T-LIGHT HOLDER"
    )
    assert heart["product_id"] == stable_ids(pd.Series(["85123A"]))[0].iloc[0]
    assert not prod.index.isin(["POST", "M", "C2", "DOT", "BANK CHARGES"]).any()
    assert t.customers.set_index("customer_id").loc[12347, "region"] == "Iceland"
    assert tx["store_id"].nunique() == 37
    assert tx["timestamp"].min() == pd.Timestamp("2010-12-01 08:26")


def test_online_retail_csv_export_with_date_format(tmp_path, online_retail):
    """The original CSV layout ('12/1/2010 8:26' dates) through the same mapping gives the same lines."""
    df = pd.read_parquet(ONLINE_RETAIL / "online_retail.parquet").iloc[:3000]
    df["InvoiceDate"] = df["InvoiceDate"].dt.strftime("%-m/%-d/%Y %-H:%M")
    df.to_csv(tmp_path / "Online Retail.csv", index=False)
    mapping = tomllib.loads((MAPPINGS_DIR / "online_retail.toml").read_text())
    mapping["transactions"]["file"] = "Online Retail.csv"
    (tmp_path / "map.json").write_text(json.dumps(mapping))
    t = validate(load_files(tmp_path, tmp_path / "map.json"))
    assert t.transactions["timestamp"].iloc[0] == pd.Timestamp("2010-12-01 08:26")
    _, full = online_retail
    cols = [
        "customer_id",
        "basket_id",
        "product_id",
        "store_id",
        "timestamp",
        "quantity",
        "sales_value",
    ]
    expected = full.transactions[full.transactions["basket_code"].isin(set(df["InvoiceNo"]))]
    pd.testing.assert_frame_equal(t.transactions[cols], expected[cols].reset_index(drop=True))


# --------------------------------------------------------------------------- files: canonical layout and errors


def _sales_csv(path: Path) -> None:
    pd.DataFrame(
        {
            "Cust": ["A1", "A1", "B2", None, "B2"],
            "Ticket": ["T1", "T1", "T2", "T3", "R9"],
            "Sku": ["100", "X-1", "100", "100", "X-1"],
            "When": [
                "03/01/2017 10:00",
                "03/01/2017 10:00",
                "04/01/2017 09:00",
                "05/01/2017 12:00",
                "06/01/2017 12:00",
            ],
            "Qty": [1, 2, 1, 1, 1],
            "Price": [2.0, 0.0, 2.0, 2.0, 3.5],
        }
    ).to_csv(path / "sales.csv", index=False)


MAPPING = {
    "transactions": {
        "file": "sales.csv",
        "customer_id": "Cust",
        "basket_id": "Ticket",
        "product_id": "Sku",
        "timestamp": {"column": "When", "format": "%d/%m/%Y %H:%M"},
        "quantity": "Qty",
        "unit_price": "Price",
        "sales_value": {"multiply": ["Qty", "Price"]},
        "store_id": 3,
        "rules": {"cancellation_prefix": "R", "exclude_nonpositive_price": True},
    },
    "products": {"from": "transactions", "product_id": "Sku", "description": {"value": "item"}},
}


def test_files_mapping_recipes(tmp_path):
    _sales_csv(tmp_path)
    t = validate(load_files(tmp_path, MAPPING))
    tx = t.transactions
    assert len(tx) == 3  # one line without customer, one sold at price 0
    assert tx["timestamp"].tolist() == [
        pd.Timestamp("2017-01-03 10:00"),
        pd.Timestamp("2017-01-04 09:00"),
        pd.Timestamp("2017-01-06 12:00"),
    ]
    assert tx["store_id"].eq(3).all()
    assert tx["sales_value"].tolist() == [2.0, 2.0, -3.5]  # R9 is a cancellation: a return
    assert tx["quantity"].tolist() == [1.0, 1.0, -1.0]
    assert set(t.products["product_code"]) == {"100", "X-1"}
    assert t.products.set_index("product_code").loc["100", "product_id"] == 100
    assert "transactions: excluded 1 of 5 lines without a customer id" in t.notes
    assert (
        "transactions: excluded 1 of 5 lines sold at a zero or negative unit price (not returns)"
        in t.notes
    )
    assert any("no retail_discount in the mapping; set to 0.0" in n for n in t.notes)


def test_files_canonical_directory(tmp_path):
    tx = pd.DataFrame(
        {
            "customer_id": [1, 2],
            "basket_id": [5, 6],
            "product_id": [9, 9],
            "timestamp": ["2017-02-01 10:00", "2017-02-02 11:00"],
            "quantity": [1, 1],
            "sales_value": [1.5, 1.5],
        }
    )
    tx.to_csv(tmp_path / "transactions.csv", index=False)
    pd.DataFrame(
        {
            "product_id": [9],
            "department": ["DAIRY"],
            "category": ["MILK"],
            "product_type": [None],
            "brand": ["National"],
            "manufacturer_id": [1],
            "package_size": [None],
        }
    ).to_parquet(tmp_path / "products.parquet")
    t = load_source("files", path=tmp_path)
    assert t.present() == ["transactions", "products"]
    assert t.transactions["store_id"].eq(0).all() and t.transactions["coupon_discount"].eq(0).all()
    assert sum("set to" in n for n in t.notes) == 3


def test_files_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no data directory at"):
        load_files(tmp_path / "missing")
    with pytest.raises(
        FileNotFoundError,
        match=r"holds no transactions.csv or transactions.parquet \(data files there: none\)",
    ):
        load_files(tmp_path)
    _sales_csv(tmp_path)
    with pytest.raises(
        FileNotFoundError, match=r"holds no transactions.csv .*data files there: sales.csv"
    ):
        load_files(tmp_path)
    with pytest.raises(FileNotFoundError, match="mapping file .*nope.toml not found"):
        load_files(tmp_path, tmp_path / "nope.toml")

    def broken(**changes):
        m = json.loads(json.dumps(MAPPING))
        m["transactions"].update(changes)
        return m

    with pytest.raises(
        FileNotFoundError,
        match=r"\[transactions\]: file 'sales_2017.csv' not found in .*files there: sales.csv",
    ):
        load_files(tmp_path, broken(file="sales_2017.csv"))
    with pytest.raises(
        MappingError,
        match=r"\[transactions\] customer_id: column 'CustID' not in sales.csv; columns: \['Cust'",
    ):
        load_files(tmp_path, broken(customer_id="CustID"))
    with pytest.raises(
        MappingError, match=r"\[transactions\] sales_value: column 'UnitPrice' not in sales.csv"
    ):
        load_files(tmp_path, broken(sales_value={"multiply": ["Qty", "UnitPrice"]}))
    with pytest.raises(
        MappingError, match=r"\[products\] description: column 'Desc' not in sales.csv"
    ):
        m = broken()
        m["products"]["description"] = "Desc"
        load_files(tmp_path, m)
    with pytest.raises(MappingError, match=r"\[transactions\]: unknown column 'custmer_id'"):
        load_files(tmp_path, broken(custmer_id="Cust"))
    m = broken()
    del m["transactions"]["quantity"]
    with pytest.raises(
        MappingError, match=r"does not say where the required column 'quantity' comes from"
    ):
        load_files(tmp_path, m)
    with pytest.raises(
        MappingError, match=r"timestamp: 5 values of 'When' do not match format '%Y-%m-%d'"
    ):
        load_files(tmp_path, broken(timestamp={"column": "When", "format": "%Y-%m-%d"}))
    m = broken()
    del m["transactions"]["unit_price"]
    with pytest.raises(MappingError, match="exclude_nonpositive_price: needs 'unit_price'"):
        load_files(tmp_path, m)
    with pytest.raises(MappingError, match=r"unknown rule\(s\) \['drop_everything'\]"):
        load_files(tmp_path, broken(rules={"drop_everything": True}))
    with pytest.raises(MappingError, match=r"\[loyalty\]: unknown table"):
        load_files(tmp_path, {**MAPPING, "loyalty": {"file": "sales.csv"}})


def test_stable_ids():
    ids, hashed = stable_ids(pd.Series(["536365", " 85123A", "85123a", "007", None, ""]))
    assert hashed
    assert ids.iloc[0] == 536365
    assert ids.iloc[1] >= 2**62 and ids.iloc[1] != ids.iloc[2]  # codes are case sensitive
    assert (
        ids.iloc[1] == stable_ids(pd.Series(["85123A"]))[0].iloc[0]
    )  # same code, same id, any file
    assert ids.iloc[3] >= 2**62  # leading zeros are kept apart from 7
    assert ids.iloc[4:].isna().all()
    floats, hashed = stable_ids(pd.Series([17850.0, np.nan]))
    assert not hashed and floats.iloc[0] == 17850 and floats.isna().iloc[1]
    with pytest.raises(MappingError, match="ids with fractions"):
        stable_ids(pd.Series([1.5]))


def test_a_mapped_source_that_breaks_the_contract_is_rejected(tmp_path):
    _sales_csv(tmp_path)
    m = json.loads(json.dumps(MAPPING))
    m["transactions"]["basket_id"] = "Sku"  # one "basket" per product, shared by customers
    with pytest.raises(ContractError, match="basket ids shared by several customers"):
        load_source("files", path=tmp_path, mapping=m)


@pytest.mark.slow
def test_ten_million_lines_within_two_minutes_and_4_gb():
    """The issue's hard requirement, measured in a fresh process by the benchmark."""
    import subprocess
    import sys

    bench = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_synthetic.py"
    out = subprocess.run(
        [sys.executable, str(bench), "--lines", "10000000", "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert abs(result["lines"] / 10_000_000 - 1) < 0.03
    assert result["generate_seconds"] < 120
    assert result["generate_peak_mb"] < 4096


def test_files_keep_the_shops_own_codes_on_the_transactions(tmp_path):
    """Text codes become hashed ids; the codes stay on the lines, so outputs can be joined
    back to the shop's own customer and product codes (with or without a profile)."""
    _sales_csv(tmp_path)
    m = json.loads(json.dumps(MAPPING))
    del m["products"]
    tx = validate(load_files(tmp_path, m)).transactions
    assert tx["customer_code"].tolist() == ["A1", "B2", "B2"]
    assert tx["product_code"].tolist() == ["100", "100", "X-1"]
    assert tx["customer_id"].tolist() == stable_ids(pd.Series(["A1", "B2", "B2"]))[0].tolist()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("sales.csv", b"", r"sales.csv: the file is empty \(not even a header row\)"),
        ("sales.csv", "Cust,Ticket\n£1,T1\n".encode("latin-1"), r"sales.csv: not UTF-8 text"),
        ("sales.parquet", b"Cust,Ticket\nA1,T1\n", r"sales.parquet: not a readable Parquet file"),
    ],
)
def test_files_that_cannot_be_read_are_named(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    m = json.loads(json.dumps(MAPPING))
    m["transactions"]["file"] = name
    with pytest.raises(MappingError, match=message):
        load_files(tmp_path, m)
    (tmp_path / name).rename(tmp_path / name.replace("sales", "transactions"))
    with pytest.raises(MappingError, match=message.replace("sales", "transactions")):
        load_files(tmp_path)  # the canonical layout
