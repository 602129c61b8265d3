"""Review findings: hand-made cases with known answers for defects fixed after review."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.contract import ContractError, Tables, validate
from features.demographics import demographic_features


def _tx(**over) -> pd.DataFrame:
    tx = pd.DataFrame(
        {
            "customer_id": [1, 2],
            "basket_id": [10, 20],
            "product_id": [100, 101],
            "store_id": [1, 1],
            "timestamp": ["2017-01-02 10:00", "2017-01-03 11:00"],
            "quantity": [1.0, 1.0],
            "sales_value": [2.5, 4.0],
            "retail_discount": [0.0, 0.0],
            "coupon_discount": [0.0, 0.0],
        }
    )
    for k, v in over.items():
        tx[k] = v
    return tx


@pytest.mark.parametrize(
    "ids",
    [
        pd.Series([2**63 + 5, 3], dtype="uint64"),  # e.g. read_csv of 19-20 digit ids
        pd.Series(["20000000000000000000", "30000000000000000000"], dtype=object),
        pd.Series([1e19, 3.0]),
        pd.Series([np.inf, 3.0]),
    ],
)
def test_ids_outside_int64_are_rejected_not_wrapped(ids):
    # Before the fix these became negative numbers or all collapsed to -2**63 (two distinct
    # customers merged into one) without a word.
    with pytest.raises(ContractError, match="int64 range") as exc:
        validate(Tables(_tx(customer_id=ids)))
    assert exc.value.table == "transactions" and exc.value.column == "customer_id"


def test_ids_at_the_int64_limits_are_kept():
    big = np.iinfo("int64").max
    t = validate(Tables(_tx(customer_id=pd.Series([big, 3], dtype="uint64"))))
    assert t.transactions["customer_id"].tolist() == [big, 3]
    t = validate(Tables(_tx(customer_id=pd.Series([str(big), "3"], dtype=object))))
    assert t.transactions["customer_id"].tolist() == [big, 3]


@pytest.mark.parametrize("column", ["quantity", "sales_value", "retail_discount"])
def test_infinite_amounts_are_rejected(column):
    # read_csv turns the text "inf" into a float infinity; it used to pass validation and
    # make every spend sum infinite.
    values = [1.0, np.inf]
    with pytest.raises(ContractError, match="infinite") as exc:
        validate(Tables(_tx(**{column: values})))
    assert exc.value.column == column


def test_return_with_positive_value_is_rejected():
    # A return (negative quantity) recorded with a positive sales value would count as
    # spend: features and labels sum net sales_value.
    with pytest.raises(ContractError, match="return") as exc:
        validate(Tables(_tx(quantity=[1.0, -1.0], sales_value=[2.5, 4.0])))
    assert exc.value.column == "sales_value"


def test_returns_with_negative_or_zero_value_are_still_fine():
    t = validate(Tables(_tx(quantity=[-1.0, -2.0], sales_value=[-2.5, 0.0])))
    assert len(t.transactions) == 2


def test_probable_owner_counts_as_homeowner():
    # The synthetic source writes 'Probable Owner' (Complete Journey 'Probable Homeowner');
    # the docstring counts 'probable' as such, but 'Probable Owner' came out NaN.
    customers = pd.DataFrame(
        {
            "customer_id": [1, 2, 3, 4],
            "home_ownership": ["Probable Owner", "Probable Homeowner", "Probable Renter", "Owner"],
        }
    )
    d = demographic_features(Tables(_tx(), customers=customers), customer_ids=[1, 2, 3, 4])
    assert d["homeowner"].tolist() == [1.0, 1.0, 0.0, 1.0]
