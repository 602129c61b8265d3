"""Demographic features and the family life-cycle stage.

Demographics are a profile, not events: they carry no timestamp, so there is no cutoff
(the profile is taken as known at every cutoff). Bands are turned into numbers by their
mid-points; the life-cycle stage follows Wells & Gubar's family life cycle as far as the
fields allow.

Life-cycle rules (``age`` = mid-point of the age band)
-----------------------------------------------------
* ``full_nest_young_kids``: kids in the household, age < 45; ``full_nest_older_kids``:
  kids, age >= 45. The data has no kids' ages, so the adult's age band stands in for
  it: a household head aged 19-44 most likely has children under 18 at school age or
  younger, one aged 45+ teenagers or older.
* No kids and a couple (2+ adults, or married): ``couple_no_kids`` below 55,
  ``empty_nest`` from 55.
* No kids and single (1 adult and not married; or adults unknown and not married):
  ``young_single`` below 45, ``older_single`` from 45. Singles aged 45-54 count as
  ``older_single``: the young-single (bachelor) stage ends before the middle years, and
  a one-adult household of that age shops more like an older single than a young one.
* ``unknown``: no profile, or the age or the kids status (or, without kids, whether it is
  a couple) is missing.

Kids status comes from ``household_comp`` ('... Kids' / '... No Kids'), else from
``kids_count``; adults from ``household_comp`` ('1 Adult', '2 Adults'), else
``household_size - kids``.
"""

from __future__ import annotations

import logging
import re

import numpy as np
import pandas as pd

from features.contract import ContractError

logger = logging.getLogger(__name__)

STAGES = (
    "young_single",
    "couple_no_kids",
    "full_nest_young_kids",
    "full_nest_older_kids",
    "empty_nest",
    "older_single",
    "unknown",
)
DEMOGRAPHIC_COLUMNS = (
    "age_mid",
    "income_mid",
    "homeowner",
    "married",
    "household_size_n",
    "kids_n",
    "adults_n",
    "lifecycle_stage",
    "has_demographics",
)
YOUNG_BELOW = 45.0
OLD_FROM = 55.0

_NUM = r"(\d+(?:\.\d+)?)"


def band_mid(label, open_top=lambda a: a, under=lambda a: a / 2) -> float:
    """Mid-point of a band label: '25-34' -> 29.5, '65+' -> open_top(65), 'Under 15K' -> under(15).

    Thousands markers ('K'), currency signs and commas are ignored; a plain number is
    itself; anything else (None, 'Unknown') is NaN.
    """
    if label is None or (isinstance(label, float) and np.isnan(label)):
        return np.nan
    s = str(label).strip().lower().replace(",", "").replace("$", "").replace("k", "")
    if m := re.fullmatch(rf"{_NUM}\s*-\s*{_NUM}", s):
        return (float(m[1]) + float(m[2])) / 2
    if m := re.fullmatch(
        rf"{_NUM}\s*\+|(?:over|above)\s*{_NUM}|{_NUM}\s*(?:and|or)\s*(?:over|more|older)", s
    ):
        return float(open_top(float(next(g for g in m.groups() if g))))
    if m := re.fullmatch(rf"(?:under|below|less than|<)\s*{_NUM}", s):
        return float(under(float(m[1])))
    if m := re.fullmatch(_NUM, s):
        return float(m[1])
    return np.nan


def _map_unique(s: pd.Series, fn) -> np.ndarray:
    """Apply ``fn`` once per distinct label (profiles repeat a handful of labels)."""
    codes, uniq = pd.factorize(s.astype(object), use_na_sentinel=True)
    vals = np.array([fn(u) for u in uniq] + [fn(None)], dtype="float64")
    return vals[codes]  # code -1 (missing) picks the last entry, fn(None)


def _lower(x) -> str:
    return "" if x is None or (isinstance(x, float) and np.isnan(x)) else str(x).strip().lower()


def _homeowner(x) -> float:
    s = _lower(x)
    owner = "homeowner" in s or "owner" in s.split()  # 'Owner', 'Probable Owner'
    return 1.0 if owner else 0.0 if "renter" in s else np.nan


def _married(x) -> float:
    s = _lower(x)
    return (
        1.0
        if s == "married"
        else 0.0
        if s in ("unmarried", "single", "divorced", "widowed")
        else np.nan
    )


def _comp_adults(x) -> float:
    m = re.match(r"\s*(\d+)\s*adult", _lower(x))
    return float(m[1]) if m else np.nan


def _comp_kids(x) -> float:
    s = _lower(x)
    return 0.0 if "no kid" in s else 1.0 if "kid" in s else np.nan


def _profile_features(c: pd.DataFrame) -> pd.DataFrame:
    def col(name):
        return c[name] if name in c.columns else pd.Series(None, index=c.index, dtype=object)

    age = _map_unique(
        col("age_band"), lambda x: band_mid(x, open_top=lambda a: a + 5, under=lambda a: a - 3)
    )
    income = _map_unique(col("income_band"), lambda x: band_mid(x, open_top=lambda a: a * 1.1))
    size = _map_unique(col("household_size"), band_mid)
    kids_n = _map_unique(col("kids_count"), lambda x: 0.0 if _lower(x) == "none" else band_mid(x))
    comp_kids = _map_unique(col("household_comp"), _comp_kids)
    comp_adults = _map_unique(col("household_comp"), _comp_adults)
    married = _map_unique(col("marital_status"), _married)

    kids_n = np.where(np.isnan(kids_n) & (comp_kids == 0), 0.0, kids_n)
    has_kids = np.where(
        np.isnan(comp_kids), np.where(np.isnan(kids_n), np.nan, kids_n > 0), comp_kids
    )
    adults = np.where(np.isnan(comp_adults), size - kids_n, comp_adults)
    adults = np.where(adults >= 1, adults, np.nan)  # size - kids can be 0 or negative on bad rows
    couple = np.select(
        [(adults >= 2) | (married == 1), (adults == 1) | (np.isnan(adults) & (married == 0))],
        [1.0, 0.0],
        np.nan,
    )
    young, old = age < YOUNG_BELOW, age >= OLD_FROM
    stage = np.select(
        [
            np.isnan(age) | np.isnan(has_kids),
            (has_kids == 1) & young,
            has_kids == 1,
            np.isnan(couple),
            (couple == 1) & ~old,
            couple == 1,
            young,
        ],
        [
            "unknown",
            "full_nest_young_kids",
            "full_nest_older_kids",
            "unknown",
            "couple_no_kids",
            "empty_nest",
            "young_single",
        ],
        "older_single",
    )
    return pd.DataFrame(
        {
            "age_mid": age,
            "income_mid": income,
            "homeowner": _map_unique(col("home_ownership"), _homeowner),
            "married": married,
            "household_size_n": size,
            "kids_n": kids_n,
            "adults_n": adults,
            "lifecycle_stage": stage.astype(object),
            "has_demographics": 1,
        },
        index=pd.Index(c["customer_id"].to_numpy(), name="customer_id"),
    )


def demographic_features(tables, customer_ids=None) -> pd.DataFrame:
    """Numeric demographics and the family life-cycle stage of each customer.

    Parameters
    ----------
    tables : Tables
        Canonical tables; ``customers`` may be missing (everyone is then ``unknown``).
    customer_ids : array-like, optional
        Customers wanted (rows in this order). Default: everyone with a profile or a
        transaction, sorted.

    Returns
    -------
    pd.DataFrame
        Indexed by ``customer_id``: ``age_mid``, ``income_mid`` (thousands), ``homeowner``
        (1 owner / 0 renter, 'probable' counted as such / NaN), ``married`` (1/0/NaN),
        ``household_size_n``, ``kids_n``, ``adults_n``, ``lifecycle_stage`` (one of
        :data:`STAGES`), ``has_demographics`` (0/1). Customers without a profile get NaN
        numerics and ``unknown``.
    """
    c = tables.customers
    if c is not None and "customer_id" not in c.columns:
        raise ContractError(
            "customers", "customer_id", f"missing column; columns present: {list(c.columns)}"
        )
    if customer_ids is None:
        ids = pd.Index(tables.transactions["customer_id"].unique())
        if c is not None:
            ids = ids.union(pd.Index(c["customer_id"]))
        ids = ids.sort_values()
    else:
        ids = pd.Index(customer_ids)
    ids = pd.Index(np.asarray(ids, dtype="int64"), name="customer_id")
    if c is None or c.empty:
        prof = _profile_features(pd.DataFrame({"customer_id": np.zeros(0, dtype="int64")}))
    else:
        prof = _profile_features(c[c["customer_id"].isin(ids)])
    out = prof.reindex(ids)
    out["lifecycle_stage"] = out["lifecycle_stage"].fillna("unknown").astype(object)
    out["has_demographics"] = out["has_demographics"].fillna(0).astype("int8")
    return out
