"""The data contract: every error it raises, returns kept, atomic saves, round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.contract import ContractError, Tables, is_return, load_tables, save_tables, validate


def tiny() -> Tables:
    """Two customers, three baskets, one return; every optional table present and valid."""
    tx = pd.DataFrame(
        {
            "customer_id": [1, 1, 2, 2, 2],
            "basket_id": [10, 10, 20, 21, 22],
            "product_id": [100, 101, 100, 102, 100],
            "store_id": [7, 7, 7, 8, 7],
            "timestamp": [
                "2017-01-02 10:00",
                "2017-01-02 10:00",
                "2017-01-03 09:30",
                "2017-01-09 18:00",
                "2017-01-10 12:00",
            ],
            "quantity": [1, 2, 1, 1, -1],
            "sales_value": [2.5, 3.0, 2.5, 4.0, -2.5],
            "retail_discount": [0.0, 0.5, 0.0, 0.0, 0.0],
            "coupon_discount": [0.0, 0.0, 0.0, 1.0, 0.0],
        }
    )
    products = pd.DataFrame(
        {
            "product_id": [100, 101, 102],
            "department": ["DAIRY", "BAKERY", "GROCERY"],
            "category": ["MILK", "BREAD", "COFFEE"],
            "product_type": ["WHOLE MILK", "WHITE BREAD", None],
            "brand": ["National", "Private", "National"],
            "manufacturer_id": [5, 1, None],
            "package_size": ["1 GA", None, "12 OZ"],
            "description": ["Whole milk", "White bread", "Coffee"],
        }
    )
    customers = pd.DataFrame(
        {
            "customer_id": [1, 3],
            "age_band": ["25-34", None],
            "income_band": ["50-74K", None],
            "home_ownership": ["Renter", None],
            "marital_status": ["Married", None],
            "household_size": ["2", "1"],
            "household_comp": ["2 Adults No Kids", None],
            "kids_count": ["0", None],
            "region": [None, "North"],
        }
    )
    campaigns = pd.DataFrame(
        {
            "campaign_id": [1],
            "campaign_type": ["Type A"],
            "start_date": ["2017-01-01"],
            "end_date": ["2017-01-31"],
        }
    )
    targets = pd.DataFrame({"campaign_id": [1, 1], "customer_id": [2, 3]})
    coupons = pd.DataFrame(
        {"coupon_id": [900], "product_id": [102], "campaign_id": [1], "discount": [1.0]}
    )
    redemptions = pd.DataFrame(
        {
            "customer_id": [2],
            "coupon_id": [900],
            "campaign_id": [1],
            "redemption_date": ["2017-01-09"],
        }
    )
    return Tables(
        tx, customers, products, campaigns, targets, coupons, redemptions, notes=["tiny shop"]
    )


def with_table(t: Tables, **changes) -> Tables:
    out = Tables(**{**t.__dict__})
    for k, v in changes.items():
        setattr(out, k, v)
    return out


# --------------------------------------------------------------------------- valid input


def test_valid_tables_are_coerced_to_canonical_dtypes():
    canon = validate(tiny())
    tx = canon.transactions
    assert [str(d) for d in tx.dtypes] == ["int64"] * 4 + ["datetime64[ns]"] + ["float64"] * 4
    assert tx["timestamp"].iloc[3] == pd.Timestamp("2017-01-09 18:00")
    assert str(canon.products["manufacturer_id"].dtype) == "Int64"
    assert canon.products["product_type"].iloc[2] is None
    assert canon.redemptions["redemption_date"].dtype == "datetime64[ns]"
    assert canon.notes == ["tiny shop"]


def test_returns_are_kept_and_flagged():
    canon = validate(tiny())
    assert len(canon.transactions) == 5
    flags = is_return(canon.transactions)
    assert flags.tolist() == [False, False, False, False, True]
    assert canon.summary()["returns"] == 1


def test_extra_columns_are_kept_after_the_canonical_ones():
    t = tiny()
    t.transactions["basket_code"] = ["a", "a", "b", "c", "d"]
    tx = validate(t).transactions
    assert list(tx.columns)[-1] == "basket_code"
    assert tx["basket_code"].tolist() == ["a", "a", "b", "c", "d"]


def test_timezone_aware_timestamps_become_naive():
    t = tiny()
    t.transactions["timestamp"] = pd.to_datetime(t.transactions["timestamp"]).dt.tz_localize("UTC")
    tx = validate(t).transactions
    assert tx["timestamp"].dt.tz is None
    assert tx["timestamp"].iloc[0] == pd.Timestamp("2017-01-02 10:00")


# --------------------------------------------------------------------------- every error


def test_missing_required_column():
    t = tiny()
    t.transactions = t.transactions.drop(columns=["store_id"])
    with pytest.raises(
        ContractError,
        match=r"table 'transactions', column 'store_id': missing required column\(s\) \['store_id'\]",
    ) as err:
        validate(t)
    assert err.value.table == "transactions" and err.value.column == "store_id"


def test_missing_required_column_in_an_optional_table():
    t = tiny()
    t.products = t.products.drop(columns=["brand"])
    with pytest.raises(
        ContractError, match=r"table 'products', column 'brand': missing required column"
    ):
        validate(t)


def test_wrong_type_text_in_an_id_column():
    t = tiny()
    t.transactions["customer_id"] = ["1", "1", "2", "two", "2"]
    with pytest.raises(
        ContractError,
        match=r"column 'customer_id': wrong type: expected int, got non-numeric values",
    ) as err:
        validate(t)
    assert err.value.rows.iloc[:, 0].tolist() == ["two"]


def test_wrong_type_fractional_ids():
    t = tiny()
    t.transactions["product_id"] = [100, 101, 100, 102.5, 100]
    with pytest.raises(
        ContractError, match=r"column 'product_id': wrong type: expected integer ids, got fractions"
    ):
        validate(t)


def test_wrong_type_booleans():
    t = tiny()
    t.transactions["quantity"] = [True, True, True, True, False]
    with pytest.raises(
        ContractError, match=r"column 'quantity': wrong type: expected float, got bool"
    ):
        validate(t)


def test_wrong_type_text_in_a_numeric_column():
    t = tiny()
    t.transactions["sales_value"] = ["2.5", "3.0", "2,50", "4.0", "-2.5"]
    with pytest.raises(
        ContractError, match=r"column 'sales_value': wrong type: expected float, got non-numeric"
    ) as err:
        validate(t)
    assert err.value.rows.iloc[:, 0].tolist() == ["2,50"]


def test_unparseable_timestamp():
    t = tiny()
    t.transactions.loc[2, "timestamp"] = "yesterday-ish"
    with pytest.raises(ContractError, match=r"column 'timestamp': unparseable timestamp") as err:
        validate(t)
    assert "yesterday-ish" in str(err.value)


def test_nan_price():
    t = tiny()
    t.transactions.loc[1, "sales_value"] = np.nan
    with pytest.raises(
        ContractError,
        match=r"column 'sales_value': 1 missing values \(NaN/null\) in a required column",
    ):
        validate(t)


def test_missing_id_in_a_nullable_integer_column():
    t = tiny()
    t.transactions["customer_id"] = pd.array([1, 1, None, 2, 2], dtype="Int64")
    with pytest.raises(ContractError, match=r"column 'customer_id': 1 missing values"):
        validate(t)


def test_negative_price_on_a_sale():
    t = tiny()
    t.transactions.loc[0, "sales_value"] = -2.5  # quantity stays +1: not a return
    with pytest.raises(
        ContractError, match=r"column 'sales_value': negative price on a line that is not a return"
    ) as err:
        validate(t)
    assert len(err.value.rows) == 1


def test_negative_discount_on_a_sale():
    t = tiny()
    t.transactions.loc[0, "retail_discount"] = -0.3
    with pytest.raises(
        ContractError, match=r"column 'retail_discount': negative discount on a sale"
    ):
        validate(t)


def test_basket_shared_by_two_customers():
    t = tiny()
    t.transactions.loc[2, "basket_id"] = 10  # customer 2's line in customer 1's basket
    with pytest.raises(
        ContractError, match=r"column 'basket_id': basket ids shared by several customers"
    ):
        validate(t)


def test_no_transactions():
    with pytest.raises(
        ContractError, match=r"table 'transactions': the transactions table is required"
    ):
        validate(Tables(transactions=None))
    t = tiny()
    t.transactions = t.transactions.iloc[:0]
    with pytest.raises(ContractError, match=r"no rows: at least one line item is required"):
        validate(t)


@pytest.mark.parametrize(
    ("table", "key", "message"),
    [
        (
            "products",
            "product_id",
            r"table 'products', column 'product_id': duplicate ids: 1 rows repeat a key",
        ),
        ("customers", "customer_id", r"table 'customers', column 'customer_id': duplicate ids"),
        ("campaigns", "campaign_id", r"table 'campaigns', column 'campaign_id': duplicate ids"),
    ],
)
def test_duplicate_ids(table, key, message):
    t = tiny()
    df = getattr(t, table)
    setattr(t, table, pd.concat([df, df.iloc[[0]]], ignore_index=True))
    with pytest.raises(ContractError, match=message) as err:
        validate(t)
    assert err.value.rows[key].nunique() == 1 and len(err.value.rows) == 2


def test_line_items_with_unknown_product():
    t = tiny()
    t.transactions.loc[1, "product_id"] = 999
    with pytest.raises(
        ContractError,
        match=r"column 'product_id': line items whose product is not in the products table",
    ) as err:
        validate(t)
    assert err.value.rows["product_id"].tolist() == [999]


def test_coupons_for_unknown_product():
    t = tiny()
    t.coupons.loc[0, "product_id"] = 555
    with pytest.raises(
        ContractError,
        match=r"table 'coupons', column 'product_id': coupons for products not in the products table",
    ):
        validate(t)


def test_redemptions_with_unknown_customer():
    t = tiny()
    t.redemptions.loc[0, "customer_id"] = 42  # no purchases, no profile
    with pytest.raises(
        ContractError,
        match=r"table 'redemptions', column 'customer_id': rows whose customer is unknown",
    ):
        validate(t)


def test_targets_of_a_customer_with_only_a_profile_are_fine():
    canon = validate(tiny())  # customer 3 has a profile but no purchases, and is targeted
    assert 3 in set(canon.campaign_targets["customer_id"])


def test_rows_with_unknown_campaign_or_coupon():
    t = tiny()
    t.campaign_targets.loc[0, "campaign_id"] = 8
    with pytest.raises(
        ContractError,
        match=r"table 'campaign_targets', column 'campaign_id': rows whose campaign is not in the campaigns table",
    ):
        validate(t)
    t = tiny()
    t.redemptions.loc[0, "coupon_id"] = 901
    with pytest.raises(
        ContractError,
        match=r"table 'redemptions', column 'coupon_id': redemptions of coupons not in the coupons table",
    ):
        validate(t)


def test_campaign_ending_before_it_starts():
    t = tiny()
    t.campaigns.loc[0, "end_date"] = "2016-12-01"
    with pytest.raises(
        ContractError, match=r"table 'campaigns', column 'end_date': campaign ends before it starts"
    ):
        validate(t)


# --------------------------------------------------------------------------- storage


def test_round_trip_save_load(tmp_path):
    canon = validate(tiny())
    out = save_tables(canon, tmp_path / "shop", extra_manifest={"source": "tiny"})
    back = load_tables(out)
    assert back.present() == canon.present()
    for name, df in canon.items():
        pd.testing.assert_frame_equal(getattr(back, name), df, check_dtype=True)
    assert back.notes == ["tiny shop"]


def test_failed_save_leaves_the_previous_good_data(tmp_path):
    target = tmp_path / "shop"
    save_tables(tiny(), target)
    bad = tiny()
    bad.transactions.loc[0, "product_id"] = 999
    bad.transactions.loc[:, "sales_value"] = 0.0
    with pytest.raises(
        ContractError, match="line items whose product is not in the products table"
    ):
        save_tables(bad, target)
    back = load_tables(target)
    pd.testing.assert_frame_equal(back.transactions, validate(tiny()).transactions)
    # no half-written sibling directories are left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shop"]


def test_saving_twice_replaces_the_data(tmp_path):
    target = tmp_path / "shop"
    save_tables(tiny(), target)
    smaller = tiny()
    smaller.transactions = smaller.transactions.iloc[:3]  # customer 2 keeps a purchase (targeted)
    save_tables(smaller, target)
    assert len(load_tables(target).transactions) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shop"]


def test_load_tables_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no data directory"):
        load_tables(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        FileNotFoundError, match="holds no transactions.parquet or transactions.csv"
    ):
        load_tables(tmp_path / "empty")


# --------------------------------------------------------------------------- helpers on Tables


def test_before_is_strict_and_subset_keeps_reference_tables():
    canon = validate(tiny())
    early = canon.before("2017-01-09 18:00")
    assert early.transactions["timestamp"].max() < pd.Timestamp("2017-01-09 18:00")
    assert len(early.transactions) == 3
    assert len(early.redemptions) == 1  # redeemed on 2017-01-09 00:00
    sub = canon.subset_customers([2])
    assert set(sub.transactions["customer_id"]) == {2}
    assert len(sub.products) == 3 and len(sub.campaigns) == 1


def test_timestamps_with_offsets_become_naive_utc():
    from features.contract import conform

    df = pd.DataFrame(
        {
            "campaign_id": [1, 2],
            "campaign_type": ["A", "B"],
            "start_date": ["2017-01-01T00:00:00+01:00", "2017-01-02 10:00"],
            "end_date": ["2017-02-01", "2017-03-01"],
        }
    )
    out = conform("campaigns", df)
    assert out["start_date"].tolist() == [
        pd.Timestamp("2016-12-31 23:00"),
        pd.Timestamp("2017-01-02 10:00"),
    ]


def test_epoch_numbers_are_not_silently_read_as_timestamps():
    from features.contract import conform

    df = pd.DataFrame(
        {
            "campaign_id": [1],
            "campaign_type": ["A"],
            "start_date": [1483228800],
            "end_date": ["2017-03-01"],
        }
    )
    with pytest.raises(ContractError, match="campaigns.*start_date.*numbers where a timestamp"):
        conform("campaigns", df)


def test_save_recovers_data_left_aside_by_an_interrupted_save(tmp_path):
    from features.contract import Tables, load_tables, save_tables

    tx = pd.DataFrame(
        {
            "customer_id": [1],
            "basket_id": [1],
            "product_id": [1],
            "store_id": [1],
            "timestamp": pd.to_datetime(["2017-01-01"]),
            "quantity": [1.0],
            "sales_value": [1.0],
            "retail_discount": [0.0],
            "coupon_discount": [0.0],
        }
    )
    target = tmp_path / "src"
    save_tables(Tables(transactions=tx), target)
    target.rename(tmp_path / ".src.old")  # as if a save died between its two renames
    bad = tx.assign(sales_value=[-1.0])
    with pytest.raises(ContractError):
        save_tables(Tables(transactions=bad), target)
    assert load_tables(target).transactions["sales_value"].tolist() == [1.0]


def _campaign_starts(values):
    from features.contract import conform

    n = len(values)
    df = pd.DataFrame(
        {
            "campaign_id": list(range(1, n + 1)),
            "campaign_type": ["A"] * n,
            "start_date": values,
            "end_date": ["2017-12-31"] * n,
        }
    )
    return conform("campaigns", df)["start_date"].dt.strftime("%Y-%m-%d").tolist()


def test_numeric_dates_are_read_one_way_for_the_whole_column():
    # one day-first row (13/02) settles the column: 05/03 is 5 March, not 3 May
    assert _campaign_starts(["01/02/2017", "13/02/2017", "05/03/2017", "25/03/2017"]) == [
        "2017-02-01",
        "2017-02-13",
        "2017-03-05",
        "2017-03-25",
    ]
    assert _campaign_starts(["02/13/2017", "01/02/2017"]) == ["2017-02-13", "2017-01-02"]
    assert _campaign_starts(["01/01/2017", "2017-03-04"]) == ["2017-01-01", "2017-03-04"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["01/02/2017", "05/03/2017"], "ambiguous"),
        (["13/02/2017", "02/13/2017"], "day-first in some rows and month-first in others"),
    ],
)
def test_numeric_dates_that_cannot_be_read_safely(values, message):
    with pytest.raises(ContractError, match=message):
        _campaign_starts(values)
