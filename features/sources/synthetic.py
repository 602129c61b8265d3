"""Synthetic shop with planted habits, at any scale.

:func:`generate` returns the canonical tables; :func:`generate_with_truth` also returns the
:class:`SyntheticTruth` that was planted, so tests can check that features and models
recover it. Everything is vectorised with numpy (no Python loop over customers or
baskets): 10 million line items take well under two minutes.

What is planted
---------------
* **Staples**: each customer buys 2-6 products on a repeat cycle (7-35 days, jitter of
  about a tenth of the cycle), e.g. milk every ~7 days.
* **Needs**: per customer department preferences (Dirichlet around the customer's
  segment profile); within a department, products are chosen by popularity boosted for
  the segment's signature products, so customers of the same latent segment share
  products ("customers like you").
* **Demographics** (known for about 60% of customers in ``customers``, but acting on
  everybody): households with kids buy much more from ``KIDS/BABY``; larger households
  have bigger baskets; young customers favour private-label brands, older ones national.
* **Visits**: a Poisson process per customer (gamma-distributed rates).
* **Life cycle**: new customers start part-way through; *churners* buy nothing after
  their churn date; *partial churners* keep buying after their date, but at a quarter of
  the visit rate, half the basket size and a quarter of their staple trips (spend drops
  by far more than half).
* **Campaigns**: a known subset of customers is targeted; among them, *responders*
  redeem one or a few coupons (1 + Poisson(0.7)) per campaign they are targeted by, buying the coupon product during
  the campaign (line with ``coupon_discount``). Non-responders never redeem.
* **Cross-sell**: about a quarter of customers adopt a signature product of their
  segment part-way through the year (never bought before, then bought on a cycle).
* **Returns**: about 0.15% of lines are returned 1-10 days later (negative quantity and
  value, own basket).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from features.contract import Tables

logger = logging.getLogger(__name__)

#: Departments and their categories, with the department's share of line items.
DEPARTMENTS: dict[str, tuple[float, tuple[str, ...]]] = {
    "GROCERY": (
        0.34,
        (
            "SOFT DRINKS",
            "BAG SNACKS",
            "CEREAL",
            "PASTA",
            "CANNED VEGETABLES",
            "COFFEE",
            "CHEESE",
            "FLUID MILK PRODUCTS",
            "EGGS",
            "YOGURT",
        ),
    ),
    "PRODUCE": (0.12, ("VEGETABLES", "TROPICAL FRUIT", "SALAD MIX", "POTATOES", "APPLES")),
    "MEAT": (0.08, ("BEEF", "CHICKEN", "PORK")),
    "DELI": (0.06, ("DELI MEATS", "DELI CHEESES", "PREPARED FOOD")),
    "PASTRY": (0.07, ("BREAD", "CAKES", "COOKIES")),
    "DRUG GM": (0.08, ("VITAMINS", "COLD AND FLU", "HAIR CARE", "ORAL HYGIENE")),
    "KIDS/BABY": (0.05, ("BABY FOOD", "DIAPERS", "BABY WIPES", "KIDS SNACKS")),
    "SEAFOOD": (0.02, ("FROZEN SEAFOOD", "FRESH FISH")),
    "FROZEN": (0.06, ("FROZEN PIZZA", "ICE CREAM", "FROZEN MEALS")),
    "HOUSEHOLD": (0.05, ("PAPER TOWELS", "LAUNDRY", "DISH DETERGENT")),
    "PET": (0.03, ("DOG FOOD", "CAT FOOD", "CAT LITTER")),
    "BEVERAGE": (0.04, ("BEERS/ALES", "WINE", "WATER")),
}
KIDS_DEPARTMENT = "KIDS/BABY"
AGE_BANDS = ("19-24", "25-34", "35-44", "45-54", "55-64", "65+")
AGE_P = (0.06, 0.18, 0.24, 0.28, 0.12, 0.12)
#: Age band -> age group (0 young, 1 middle, 2 older); the group shifts brand choice.
AGE_GROUP = (0, 0, 1, 1, 2, 2)
KIDS_P_BY_AGE = (0.25, 0.5, 0.6, 0.35, 0.08, 0.03)
INCOME_BANDS = (
    "Under 15K",
    "15-24K",
    "25-34K",
    "35-49K",
    "50-74K",
    "75-99K",
    "100-124K",
    "125-149K",
    "150-174K",
    "175-199K",
    "200-249K",
    "250K+",
)
INCOME_P = (0.06, 0.08, 0.1, 0.17, 0.22, 0.13, 0.08, 0.05, 0.04, 0.03, 0.02, 0.02)
HOME = ("Homeowner", "Renter", "Probable Owner", "Probable Renter", "Unknown")
HOME_P = (0.55, 0.15, 0.1, 0.1, 0.1)
REGIONS = ("North", "South", "East", "West", "Central")
CAMPAIGN_TYPES = ("Type A", "Type B", "Type C")
LIFECYCLE = ("active", "new", "declining", "churned")
PACKAGE_SIZES = ("8 OZ", "12 OZ", "16 OZ", "32 OZ", "1 LB", "2 LB", "1 GA", "6 PK", "12 PK", "")


@dataclass(frozen=True)
class SyntheticConfig:
    """Knobs of the generator (defaults give a Complete-Journey-like shop).

    Rates are per day, shares are fractions of customers unless said otherwise.
    """

    segments: int = 8
    visit_rate: float = 0.13
    visit_rate_shape: float = 2.0
    basket_items: float = 6.5
    staples_min: int = 2
    staples_max: int = 6
    staple_cycles: tuple[int, ...] = (7, 7, 10, 14, 14, 21, 28, 35)
    staple_jitter: float = 0.1
    #: a staple trip within this share of its cycle of a regular visit happens on that visit
    snap_share: float = 0.2
    signature_share: float = 0.04
    signature_boost: float = 10.0
    dept_concentration: float = 20.0
    kids_factor: float = 4.0
    no_kids_factor: float = 0.15
    private_share: float = 0.3
    private_factor_by_age: tuple[float, float, float] = (2.0, 1.0, 0.45)
    demographics_share: float = 0.6
    new_share: float = 0.12
    churn_share: float = 0.12
    partial_share: float = 0.10
    partial_visit_factor: float = 0.25
    partial_basket_factor: float = 0.5
    partial_staple_keep: float = 0.25
    adopt_share: float = 0.25
    targetable_share: float = 0.45
    target_prob: float = 0.6
    responder_share: float = 0.4
    campaigns_per_year: int = 12
    coupons_per_campaign: int = 12
    retail_discount_share: float = 0.2
    return_share: float = 0.0015
    home_store_share: float = 0.85
    customers_per_store: int = 150


@dataclass
class SyntheticTruth:
    """What was planted in a synthetic shop.

    Attributes
    ----------
    customers : DataFrame
        One row per customer (``customer_id``): ``segment``, ``lifecycle`` (active, new,
        declining, churned), ``start_date``, ``churn_date`` (NaT unless churned),
        ``partial_churn_date`` (NaT unless declining), ``visit_rate`` (per day),
        ``basket_items`` (mean random items per basket), ``targeted``, ``responder``,
        ``has_profile`` (row in the ``customers`` table), the latent demographics
        (``age_band``, ``household_size`` as int, ``kids`` as int, ...) and
        ``family_stage``.
    staples : DataFrame
        ``customer_id, product_id, cycle_days, first_date``.
    adoptions : DataFrame
        ``customer_id, product_id, date, cycle_days``: a product of the customer's segment
        first bought on ``date``, never before.
    department_weights : DataFrame
        Customers x departments: each customer's share of random items per department.
    segment_products : DataFrame
        ``segment, product_id``: the signature products of each segment.
    config : dict
        The :class:`SyntheticConfig` and arguments used.
    """

    customers: pd.DataFrame
    staples: pd.DataFrame
    adoptions: pd.DataFrame
    department_weights: pd.DataFrame
    segment_products: pd.DataFrame
    config: dict = field(default_factory=dict)

    @property
    def churn_date(self) -> pd.Series:
        """Churn date per churned customer (index ``customer_id``)."""
        c = self.customers
        return c.loc[c["churn_date"].notna()].set_index("customer_id")["churn_date"]

    @property
    def partial_churners(self) -> pd.Series:
        """Date spend drops, per partial churner (index ``customer_id``)."""
        c = self.customers
        return c.loc[c["partial_churn_date"].notna()].set_index("customer_id")["partial_churn_date"]

    @property
    def responders(self) -> pd.Index:
        return pd.Index(self.customers.loc[self.customers["responder"], "customer_id"])

    @property
    def targeted(self) -> pd.Index:
        return pd.Index(self.customers.loc[self.customers["targeted"], "customer_id"])

    @property
    def segment(self) -> pd.Series:
        return self.customers.set_index("customer_id")["segment"]

    @property
    def lifecycle(self) -> pd.Series:
        return self.customers.set_index("customer_id")["lifecycle"]


# --------------------------------------------------------------------------- helpers


def _flat_cdf(weights: np.ndarray, seg_of_col: np.ndarray, n_seg: int) -> np.ndarray:
    """Row-wise CDFs restarting at each segment of columns, flattened and offset.

    ``weights`` is rows x columns, columns grouped in contiguous segments
    (``seg_of_col`` non-decreasing). The value for row r, column j is
    ``r * n_seg + seg_of_col[j] + cdf_within_segment``; the array is non-decreasing, so
    one :func:`numpy.searchsorted` with target ``r * n_seg + segment + u`` samples every
    query at once.
    """
    rows, cols = weights.shape
    cs = np.cumsum(weights, axis=1)
    starts = np.searchsorted(seg_of_col, np.arange(n_seg))
    ends = np.append(starts[1:], cols)
    before = np.where(starts > 0, cs[:, np.maximum(starts - 1, 0)], 0.0)  # rows x n_seg
    total = cs[:, ends - 1] - before
    within = (cs - before[:, seg_of_col]) / total[:, seg_of_col]
    within[:, ends - 1] = 1.0  # exact, so a target d + u (u < 1) never spills into d + 1
    return (
        within + seg_of_col[None, :] + (np.arange(rows, dtype=np.float64) * n_seg)[:, None]
    ).ravel()


def _sample(
    flat: np.ndarray, row: np.ndarray, seg: np.ndarray, n_seg: int, ncols: int, u: np.ndarray
) -> np.ndarray:
    """Column index drawn from row ``row``'s distribution restricted to segment ``seg``."""
    target = row.astype(np.float64) * n_seg + seg + u
    idx = np.searchsorted(flat, target, side="right")
    return (idx - row.astype(np.int64) * ncols).astype(np.int32)


def _ranks_within(counts: np.ndarray) -> np.ndarray:
    """0..n-1 within each group for groups of the given sizes laid end to end."""
    total = int(counts.sum())
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(total, dtype=np.int64) - starts


def _cycle_events(rng, start: np.ndarray, end: np.ndarray, cycle: np.ndarray, jitter: float):
    """Event days of repeat cycles: first in [start, start + cycle), then every ~cycle until end.

    Returns (row index per event, day per event).
    """
    phase = np.floor(rng.random(len(start)) * cycle).astype(np.int64)
    first = start + phase
    k = np.where(end > first, np.ceil((end - first) / cycle), 0).astype(np.int64)
    rows = np.repeat(np.arange(len(start)), k)
    step = _ranks_within(k)
    sd = np.maximum(1.0, jitter * cycle[rows])
    day = (
        first[rows]
        + step * cycle[rows]
        + np.rint(rng.normal(0.0, 1.0, len(rows)) * sd).astype(np.int64)
    )
    keep = (day >= start[rows]) & (day < end[rows])
    return rows[keep], day[keep], first


def _labels(values: tuple[str, ...], idx: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=object)[idx]


# --------------------------------------------------------------------------- simulation


def _catalogue(rng, n_products: int, cfg: SyntheticConfig):
    depts = list(DEPARTMENTS)
    cat_names, cat_dept, cat_w = [], [], []
    for d, (share, cats) in enumerate(DEPARTMENTS.values()):
        for c in cats:
            cat_names.append(c)
            cat_dept.append(d)
            cat_w.append(share / len(cats))
    n_cat = len(cat_names)
    if n_products < n_cat:
        raise ValueError(f"products must be at least {n_cat} (one per category), got {n_products}")
    cat_w = np.asarray(cat_w) / np.sum(cat_w)
    cat = np.concatenate([np.arange(n_cat), rng.choice(n_cat, n_products - n_cat, p=cat_w)])
    cat = np.sort(cat)  # products ordered by category, hence by department
    dept = np.asarray(cat_dept)[cat]
    private = rng.random(n_products) < cfg.private_share
    popularity = rng.lognormal(0.0, 1.0, n_products)
    price = np.round(np.exp(rng.normal(1.0, 0.55, n_products)), 2) + 0.09
    national_mfr = rng.integers(2, 2 + max(5, n_products // 8), n_products)
    manufacturer = np.where(private, 1, national_mfr)
    pack = rng.integers(0, len(PACKAGE_SIZES), n_products)
    product_id = 100_001 + np.arange(n_products, dtype=np.int64)
    brand = np.where(private, "Private", "National").astype(object)
    cat_arr = np.asarray(cat_names, dtype=object)[cat]
    dept_arr = np.asarray(depts, dtype=object)[dept]
    desc = (
        pd.Series(cat_arr).str.title()
        + " "
        + pd.Series(brand)
        + " #"
        + pd.Series(np.arange(n_products) + 1).astype(str)
    )
    products = pd.DataFrame(
        {
            "product_id": product_id,
            "department": dept_arr,
            "category": cat_arr,
            "product_type": pd.Series(cat_arr).str.title().values,
            "brand": brand,
            "manufacturer_id": manufacturer.astype("int64"),
            "package_size": _labels(PACKAGE_SIZES, pack),
            "description": desc.values,
        }
    )
    return products, dept, private, popularity, price


def _demographics(rng, n: int):
    age = rng.choice(len(AGE_BANDS), n, p=AGE_P)
    married = rng.random(n) < np.where(np.asarray(AGE_GROUP)[age] == 0, 0.35, 0.6)
    adults = np.where(married, 2, 1 + (rng.random(n) < 0.25))
    has_kids = rng.random(n) < np.asarray(KIDS_P_BY_AGE)[age]
    kids = np.where(has_kids, rng.choice([1, 2, 3], n, p=[0.45, 0.35, 0.2]), 0)
    size = np.minimum(adults + kids, 5)
    comp = np.where(adults == 1, "1 Adult", "2 Adults").astype(object) + np.where(
        kids > 0, " Kids", " No Kids"
    ).astype(object)
    group = np.asarray(AGE_GROUP)[age]
    stage = np.select(
        [kids > 0, (group == 0) & (adults == 1), group == 0, group == 2],
        ["family with kids", "young single", "young couple", "older household"],
        "middle-aged no kids",
    ).astype(object)
    return {
        "age_band": _labels(AGE_BANDS, age),
        "age_group": group,
        "income_band": _labels(INCOME_BANDS, rng.choice(len(INCOME_BANDS), n, p=INCOME_P)),
        "home_ownership": _labels(HOME, rng.choice(len(HOME), n, p=HOME_P)),
        "marital_status": np.where(married, "Married", "Unmarried").astype(object),
        "household_size": size,
        "household_comp": comp,
        "kids": kids,
        "region": _labels(REGIONS, rng.integers(0, len(REGIONS), n)),
        "family_stage": stage,
    }


def _simulate(
    n_cust: int, n_prod: int, days: int, seed: int, cfg: SyntheticConfig, lines_only: bool = False
):
    """Draw everything. Returns a dict of arrays / frames (see :func:`generate_with_truth`)."""
    rng = np.random.default_rng(seed)
    C, D = n_cust, days
    products, dept_of_p, private, popularity, price = _catalogue(rng, n_prod, cfg)
    n_dept = len(DEPARTMENTS)
    kids_d = list(DEPARTMENTS).index(KIDS_DEPARTMENT)
    S = max(1, cfg.segments)

    # --- customers: demographics, segment, rates, life cycle
    demo = _demographics(rng, C)
    seg = rng.integers(0, S, C)
    base_dept = np.asarray([v[0] for v in DEPARTMENTS.values()])
    seg_profile = rng.dirichlet(base_dept * 30.0, S)
    dept_w = np.empty((C, n_dept))
    # Dirichlet per customer as normalised gammas (vectorised over customers)
    dept_w[:] = rng.gamma(seg_profile[seg] * cfg.dept_concentration + 1e-3)
    dept_w[:, kids_d] *= np.where(demo["kids"] > 0, cfg.kids_factor, cfg.no_kids_factor)
    dept_w /= dept_w.sum(axis=1, keepdims=True)
    visit_rate = rng.gamma(cfg.visit_rate_shape, cfg.visit_rate / cfg.visit_rate_shape, C)
    basket_items = rng.gamma(4.0, cfg.basket_items / 4.0, C) * (
        0.55 + 0.25 * demo["household_size"]
    )

    start = np.zeros(C, dtype=np.int64)
    is_new = rng.random(C) < cfg.new_share
    start[is_new] = rng.integers(
        min(30, D // 4), max(min(30, D // 4) + 1, int(0.6 * D)), int(is_new.sum())
    )
    kind = rng.random(C)
    churned = kind < cfg.churn_share
    declining = (kind >= cfg.churn_share) & (kind < cfg.churn_share + cfg.partial_share)
    lo = np.maximum(start + 30, int(0.35 * D))
    churn_day = np.where(
        churned, lo + np.floor(rng.random(C) * np.maximum(1, int(0.85 * D) - lo)), D
    ).astype(np.int64)
    churn_day = np.minimum(churn_day, D)
    churned &= churn_day < D
    end = np.where(churned, churn_day, D).astype(np.int64)
    pdate = np.where(
        declining, lo + np.floor(rng.random(C) * np.maximum(1, int(0.8 * D) - lo)), D
    ).astype(np.int64)
    declining &= pdate < D
    pdate = np.where(declining, pdate, end)

    # --- product choice: per (segment, age group) weights over products, by department
    n_sig = max(3, int(round(cfg.signature_share * n_prod)))
    sig = np.stack(
        [rng.choice(n_prod, n_sig, replace=False) for _ in range(S)]
    )  # S x n_sig, S is small
    boost = np.ones((S, n_prod))
    np.put_along_axis(boost, sig, cfg.signature_boost, axis=1)
    pf = np.asarray(cfg.private_factor_by_age)
    brand_f = np.where(private[None, :], pf[:, None], 1.0)  # 3 x P
    w = (popularity[None, None, :] * boost[:, None, :] * brand_f[None, :, :]).reshape(S * 3, n_prod)
    flat_prod = _flat_cdf(w, dept_of_p, n_dept)
    flat_dept = _flat_cdf(dept_w, np.zeros(n_dept, dtype=np.int64), 1)
    group = (seg * 3 + demo["age_group"]).astype(np.int64)

    def draw(cust: np.ndarray) -> np.ndarray:
        d = _sample(
            flat_dept, cust, np.zeros(len(cust), np.int64), 1, n_dept, rng.random(len(cust))
        )
        return _sample(flat_prod, group[cust], d, n_dept, n_prod, rng.random(len(cust)))

    # --- visits: Poisson process before and after the partial-churn date
    n1 = rng.poisson(visit_rate * (pdate - start))
    n2 = rng.poisson(visit_rate * cfg.partial_visit_factor * (end - pdate))
    v1 = np.repeat(np.arange(C), n1)
    v2 = np.repeat(np.arange(C), n2)
    v_day = np.concatenate(
        [
            start[v1] + np.floor(rng.random(len(v1)) * (pdate - start)[v1]).astype(np.int64),
            pdate[v2] + np.floor(rng.random(len(v2)) * (end - pdate)[v2]).astype(np.int64),
        ]
    )
    v_c = np.concatenate([v1, v2])

    v_key = np.sort(v_c.astype(np.int64) * D + v_day)
    del v_c, v_day, v1, v2

    def snap(c: np.ndarray, day: np.ndarray, tol: np.ndarray, v_key: np.ndarray) -> np.ndarray:
        """Move a planned trip onto the customer's nearest regular visit within ``tol`` days."""
        key = c.astype(np.int64) * D + day
        i = np.searchsorted(v_key, key)
        best = np.full(len(key), np.iinfo(np.int64).max)
        for cand in (np.minimum(i, len(v_key) - 1), np.maximum(i - 1, 0)):
            if not len(v_key):
                break
            vk = v_key[cand]
            d = vk - key
            ok = (vk // D == c) & (np.abs(d) <= tol) & (np.abs(d) < np.abs(best))
            best = np.where(ok, d, best)
        return np.where(best != np.iinfo(np.int64).max, day + best, day)

    # --- staples
    n_st = rng.integers(cfg.staples_min, cfg.staples_max + 1, C)
    st_c = np.repeat(np.arange(C), n_st)
    st_p = draw(st_c)
    st_key = np.unique(st_c.astype(np.int64) * n_prod + st_p)  # sorted, unique (customer, product)
    st_c, st_p = (st_key // n_prod).astype(np.int64), (st_key % n_prod).astype(np.int32)
    st_cycle = rng.choice(np.asarray(cfg.staple_cycles), len(st_c)).astype(np.int64)
    rows, st_day, st_first = _cycle_events(rng, start[st_c], end[st_c], st_cycle, cfg.staple_jitter)
    ev_c, ev_p = st_c[rows], st_p[rows]
    st_day = snap(ev_c, st_day, np.rint(cfg.snap_share * st_cycle[rows]).astype(np.int64), v_key)
    after = st_day >= pdate[ev_c]
    keep = ~after | (rng.random(len(rows)) < cfg.partial_staple_keep)
    staple_ev = (ev_c[keep], st_day[keep], ev_p[keep])

    # --- adoptions: a signature product of the segment, not a staple, bought on a cycle from a date on
    adopt = rng.random(C) < cfg.adopt_share
    a_lo = np.maximum(start, int(0.3 * D))
    a_hi = np.minimum(end - 14, int(0.8 * D))
    adopt &= a_hi > a_lo
    a_c = np.flatnonzero(adopt)
    a_p = sig[seg[a_c], rng.integers(0, n_sig, len(a_c))].astype(np.int32)
    clash = np.isin(a_c.astype(np.int64) * n_prod + a_p, st_key)
    a_c, a_p = a_c[~clash], a_p[~clash]
    a_day = (a_lo[a_c] + np.floor(rng.random(len(a_c)) * (a_hi[a_c] - a_lo[a_c]))).astype(np.int64)
    a_cycle = rng.choice(np.asarray([7, 10, 14, 21]), len(a_c)).astype(np.int64)
    # the first purchase is on the adoption day itself
    rows = np.repeat(np.arange(len(a_c)), np.ceil((end[a_c] - a_day) / a_cycle).astype(np.int64))
    step = _ranks_within(np.bincount(rows, minlength=len(a_c)))
    ad_day = a_day[rows] + step * a_cycle[rows]
    ad_day[step > 0] += np.rint(
        rng.normal(0, 1, int((step > 0).sum())) * np.maximum(1, 0.1 * a_cycle[rows][step > 0])
    ).astype(np.int64)
    keep = (ad_day >= a_day[rows]) & (ad_day < end[a_c][rows])
    adopt_ev = (a_c[rows][keep], ad_day[keep], a_p[rows][keep])
    adopt_prod = np.full(C, -1, np.int64)
    adopt_prod[a_c] = a_p
    adopt_day = np.zeros(C, np.int64)
    adopt_day[a_c] = a_day

    def pre_adoption(c: np.ndarray, p: np.ndarray, day: np.ndarray) -> np.ndarray:
        return (adopt_prod[c] == p) & (day < adopt_day[c])

    def is_staple(c: np.ndarray, p: np.ndarray) -> np.ndarray:
        q = c.astype(np.int64) * n_prod + p
        return st_key[np.minimum(np.searchsorted(st_key, q), len(st_key) - 1)] == q

    # --- campaigns, coupons, targets, redemptions
    n_camp = max(1, int(round(cfg.campaigns_per_year * D / 365)))
    dur = rng.integers(28, 57, n_camp)
    c_start = np.sort(rng.integers(0, max(1, D - 28), n_camp))
    c_end = np.minimum(c_start + dur, D - 1)
    c_type = rng.choice(len(CAMPAIGN_TYPES), n_camp, p=[0.5, 0.3, 0.2])
    n_cp = cfg.coupons_per_campaign
    national = np.flatnonzero(~private)
    pool = national if len(national) >= n_cp else np.arange(n_prod)
    pw = popularity[pool] / popularity[pool].sum()
    cp_prod = np.concatenate([rng.choice(pool, n_cp, replace=False, p=pw) for _ in range(n_camp)])
    cp_camp = np.repeat(np.arange(n_camp), n_cp)
    cp_disc = rng.choice(np.asarray([0.5, 0.75, 1.0, 1.5, 2.0]), len(cp_prod))
    targetable = rng.random(C) < cfg.targetable_share
    responder = targetable & (rng.random(C) < cfg.responder_share)
    tmask = (
        (rng.random((n_camp, C)) < cfg.target_prob)
        & targetable[None, :]
        & (start < c_end[:, None])
        & (end > c_start[:, None])
    )
    t_camp, t_c = np.nonzero(tmask)
    r = responder[t_c]
    r_camp, r_c = t_camp[r], t_c[r]
    n_red = 1 + rng.poisson(0.7, len(r_c))
    rows = np.repeat(np.arange(len(r_c)), n_red)
    rc, rk = r_c[rows], r_camp[rows]
    lo_d = np.maximum(c_start[rk], start[rc])
    hi_d = np.minimum(c_end[rk], end[rc] - 1)
    ok = hi_d >= lo_d
    rc, rk, lo_d, hi_d = rc[ok], rk[ok], lo_d[ok], hi_d[ok]
    r_day = lo_d + np.floor(rng.random(len(rc)) * (hi_d - lo_d + 1)).astype(np.int64)
    r_cp = rk * n_cp + rng.integers(0, n_cp, len(rc))
    _, first_idx = np.unique(rc.astype(np.int64) * len(cp_prod) + r_cp, return_index=True)
    sel = np.sort(first_idx)
    rc, rk, r_day, r_cp = rc[sel], rk[sel], r_day[sel], r_cp[sel]
    ok = ~pre_adoption(rc, cp_prod[r_cp], r_day) & ~is_staple(rc, cp_prod[r_cp])
    rc, rk, r_day, r_cp = rc[ok], rk[ok], r_day[ok], r_cp[ok]
    red_ev = (rc, r_day, cp_prod[r_cp].astype(np.int32))

    # --- baskets: one per (customer, day) with any event
    fixed_c = np.concatenate([staple_ev[0], adopt_ev[0], red_ev[0]]).astype(np.int64)
    fixed_day = np.concatenate([staple_ev[1], adopt_ev[1], red_ev[1]]).astype(np.int64)
    fixed_p = np.concatenate([staple_ev[2], adopt_ev[2], red_ev[2]]).astype(np.int32)
    fixed_cp = np.concatenate([np.full(len(staple_ev[0]) + len(adopt_ev[0]), -1), r_cp]).astype(
        np.int64
    )
    bkeys = np.unique(np.concatenate([fixed_c * D + fixed_day, v_key]))
    del v_key
    nb = len(bkeys)
    b_c = (bkeys // D).astype(np.int64)
    b_day = (bkeys % D).astype(np.int64)
    fixed_b = np.searchsorted(bkeys, fixed_c * D + fixed_day)
    has_line = np.bincount(fixed_b, minlength=nb) > 0
    mu = basket_items[b_c] * np.where(b_day >= pdate[b_c], cfg.partial_basket_factor, 1.0)
    n_rand = rng.poisson(mu)
    n_rand = np.where(has_line, n_rand, np.maximum(n_rand, 1))
    rand_b = np.repeat(np.arange(nb), n_rand)
    rand_c = b_c[rand_b]
    rand_p = draw(rand_c)
    # staples are bought on their cycle only, and an adopted product not before its date
    ok = ~is_staple(rand_c, rand_p) & ~pre_adoption(rand_c, rand_p, b_day[rand_b])
    rand_b, rand_c, rand_p = rand_b[ok], rand_c[ok], rand_p[ok]
    if lines_only:
        return {"lines": len(fixed_b) + len(rand_b), "customers": C}

    line_b = np.concatenate([fixed_b, rand_b]).astype(np.int64)
    line_p = np.concatenate([fixed_p, rand_p]).astype(np.int64)
    line_cp = np.concatenate([fixed_cp, np.full(len(rand_b), -1)])
    del rand_b, rand_c, rand_p, fixed_b, fixed_p, fixed_cp
    n_lines = len(line_b)
    qty = rng.geometric(0.85, n_lines).astype(np.float64)
    gross = qty * price[line_p]
    rdisc = np.where(
        rng.random(n_lines) < cfg.retail_discount_share,
        np.round(gross * rng.uniform(0.1, 0.4, n_lines), 2),
        0.0,
    )
    is_red = line_cp >= 0
    cdisc = np.zeros(n_lines)
    cdisc[is_red] = np.minimum(cp_disc[line_cp[is_red]], np.round(gross[is_red] - rdisc[is_red], 2))
    sales = np.round(gross - rdisc - cdisc, 2)
    del gross

    # --- returns: a few random lines handed back 1-10 days later, in a basket of their own
    cand = np.flatnonzero(~is_red & (rng.random(n_lines) < cfg.return_share))
    ret_day = b_day[line_b[cand]] + rng.integers(1, 11, len(cand))
    ok = ret_day < end[b_c[line_b[cand]]]  # nothing after a churn date or the end of the data
    cand, ret_day = cand[ok], ret_day[ok]

    # --- stores and times
    n_stores = max(3, C // cfg.customers_per_store)
    home = rng.integers(0, n_stores, C)
    b_store = np.where(
        rng.random(nb) < cfg.home_store_share, home[b_c], rng.integers(0, n_stores, nb)
    )
    b_sec = rng.integers(7 * 3600, 22 * 3600, nb)
    n_ret = len(cand)
    r_sec = rng.integers(7 * 3600, 22 * 3600, n_ret)

    return {
        "C": C,
        "D": D,
        "products": products,
        "demo": demo,
        "seg": seg,
        "dept_w": dept_w,
        "visit_rate": visit_rate,
        "basket_items": basket_items,
        "start": start,
        "end": end,
        "churned": churned,
        "declining": declining,
        "pdate": pdate,
        "is_new": is_new,
        "st": (st_c, st_p, st_cycle, st_first),
        "adopt": (a_c, a_p, a_day, a_cycle),
        "sig": sig,
        "camp": (c_start, c_end, c_type),
        "coupons": (cp_prod, cp_camp, cp_disc),
        "targets": (t_camp, t_c),
        "targetable": targetable,
        "responder": responder,
        "red": (rc, rk, r_day, r_cp),
        "baskets": (b_c, b_day, b_store, b_sec),
        "lines": (line_b, line_p, qty, sales, rdisc, cdisc),
        "returns": (cand, ret_day, r_sec),
        "seed": seed,
    }


def _assemble(
    sim: dict, start_date: pd.Timestamp, cfg: SyntheticConfig
) -> tuple[Tables, SyntheticTruth]:
    C, D = sim["C"], sim["D"]
    products = sim["products"]
    pid = products["product_id"].to_numpy()
    cust_id = np.arange(1, C + 1, dtype=np.int64)
    t0 = start_date.value  # ns
    day_ns = 86_400 * 10**9

    b_c, b_day, b_store, b_sec = sim["baskets"]
    line_b, line_p, qty, sales, rdisc, cdisc = sim["lines"]
    cand, ret_day, r_sec = sim["returns"]
    nb = len(b_c)
    n_ret = len(cand)
    # order: by basket (i.e. customer, then day); returns appended, each in its own basket
    order = np.argsort(line_b, kind="stable")
    ret_b = line_b[cand]
    lb = line_b[order]
    ts_basket = t0 + b_day * day_ns + b_sec * 10**9
    ts = np.concatenate([ts_basket[lb], t0 + ret_day * day_ns + r_sec * 10**9])
    tx = pd.DataFrame(
        {
            "customer_id": cust_id[np.concatenate([b_c[lb], b_c[ret_b]])],
            "basket_id": np.concatenate([lb, nb + np.arange(n_ret)]) + 1,
            "product_id": pid[np.concatenate([line_p[order], line_p[cand]])],
            "store_id": np.concatenate([b_store[lb], b_store[ret_b]]).astype(np.int64) + 1,
            "timestamp": ts.astype("datetime64[ns]"),
            "quantity": np.concatenate([qty[order], -qty[cand]]),
            "sales_value": np.concatenate([sales[order], -sales[cand]]),
            "retail_discount": np.concatenate([rdisc[order], np.zeros(n_ret)]),
            "coupon_discount": np.concatenate([cdisc[order], np.zeros(n_ret)]),
        },
        copy=False,
    )
    del order, lb

    demo = sim["demo"]
    has_profile = np.random.default_rng([sim["seed"], 1]).random(C) < cfg.demographics_share
    kids = demo["kids"]
    size = demo["household_size"]
    customers = pd.DataFrame(
        {
            "customer_id": cust_id,
            "age_band": demo["age_band"],
            "income_band": demo["income_band"],
            "home_ownership": demo["home_ownership"],
            "marital_status": demo["marital_status"],
            "household_size": np.where(size >= 5, "5+", size.astype(str)).astype(object),
            "household_comp": demo["household_comp"],
            "kids_count": np.where(kids >= 3, "3+", kids.astype(str)).astype(object),
            "region": demo["region"],
        }
    )[has_profile].reset_index(drop=True)

    c_start, c_end, c_type = sim["camp"]
    day = np.timedelta64(1, "D")
    t0d = np.datetime64(start_date.normalize().to_datetime64(), "ns")
    campaigns = pd.DataFrame(
        {
            "campaign_id": np.arange(1, len(c_start) + 1, dtype=np.int64),
            "campaign_type": _labels(CAMPAIGN_TYPES, c_type),
            "start_date": t0d + c_start * day,
            "end_date": t0d + c_end * day,
        }
    )
    cp_prod, cp_camp, cp_disc = sim["coupons"]
    coupons = pd.DataFrame(
        {
            "coupon_id": np.arange(1, len(cp_prod) + 1, dtype=np.int64),
            "product_id": pid[cp_prod],
            "campaign_id": cp_camp.astype(np.int64) + 1,
            "discount": cp_disc,
            "start_date": t0d + c_start[cp_camp] * day,
            "end_date": t0d + c_end[cp_camp] * day,
        }
    )
    t_camp, t_c = sim["targets"]
    targets = pd.DataFrame(
        {"campaign_id": t_camp.astype(np.int64) + 1, "customer_id": cust_id[t_c]}
    )
    rc, rk, r_day, r_cp = sim["red"]
    redemptions = (
        pd.DataFrame(
            {
                "customer_id": cust_id[rc],
                "coupon_id": r_cp.astype(np.int64) + 1,
                "campaign_id": rk.astype(np.int64) + 1,
                "redemption_date": t0d + r_day * day,
            }
        )
        .sort_values(["redemption_date", "customer_id"], kind="stable")
        .reset_index(drop=True)
    )
    # Targets of customers who never bought anything and have no profile would break the contract.
    known = pd.Index(tx["customer_id"].unique()).union(pd.Index(customers["customer_id"]))
    n_t = len(targets)
    targets = targets[targets["customer_id"].isin(known)].reset_index(drop=True)

    notes = [
        f"synthetic: seed {sim['seed']}, {C:,} customers, {len(products):,} products, {D} days from "
        f"{start_date.date()}; {len(tx):,} line items ({n_ret:,} returns), {nb + n_ret:,} baskets",
        f"customers: demographics for {len(customers):,} of {C:,} customers",
    ]
    if len(targets) < n_t:
        notes.append(
            f"campaign_targets: {n_t - len(targets):,} targets of customers with no purchases and no profile left out"
        )
    tables = Tables(
        transactions=tx,
        customers=customers,
        products=products,
        campaigns=campaigns,
        campaign_targets=targets,
        coupons=coupons,
        redemptions=redemptions,
        notes=notes,
    )

    # ---- truth
    start, end, pdate = sim["start"], sim["end"], sim["pdate"]
    churned, declining, is_new = sim["churned"], sim["declining"], sim["is_new"]
    lifecycle = np.select(
        [churned, declining, is_new], ["churned", "declining", "new"], "active"
    ).astype(object)
    nat = np.datetime64("NaT", "ns")
    tc = pd.DataFrame(
        {
            "customer_id": cust_id,
            "segment": sim["seg"].astype(np.int64),
            "lifecycle": lifecycle,
            "start_date": t0d + start * day,
            "churn_date": np.where(churned, t0d + np.minimum(end, D) * day, nat),
            "partial_churn_date": np.where(declining, t0d + np.minimum(pdate, D) * day, nat),
            "visit_rate": sim["visit_rate"],
            "basket_items": sim["basket_items"],
            "targeted": sim["targetable"] & np.isin(np.arange(C), t_c),
            "responder": sim["responder"],
            "has_profile": has_profile,
            "age_band": demo["age_band"],
            "income_band": demo["income_band"],
            "marital_status": demo["marital_status"],
            "household_size": size.astype(np.int64),
            "kids": kids.astype(np.int64),
            "household_comp": demo["household_comp"],
            "region": demo["region"],
            "family_stage": demo["family_stage"],
        }
    )
    st_c, st_p, st_cycle, st_first = sim["st"]
    staples = pd.DataFrame(
        {
            "customer_id": cust_id[st_c],
            "product_id": pid[st_p],
            "cycle_days": st_cycle,
            "first_date": t0d + st_first * day,
        }
    )
    a_c, a_p, a_day, a_cycle = sim["adopt"]
    adoptions = pd.DataFrame(
        {
            "customer_id": cust_id[a_c],
            "product_id": pid[a_p],
            "date": t0d + a_day * day,
            "cycle_days": a_cycle,
        }
    )
    dw = pd.DataFrame(sim["dept_w"], columns=list(DEPARTMENTS))
    dw.insert(0, "customer_id", cust_id)
    sig = sim["sig"]
    segp = pd.DataFrame(
        {
            "segment": np.repeat(np.arange(sig.shape[0]), sig.shape[1]),
            "product_id": pid[sig.ravel()],
        }
    )
    truth = SyntheticTruth(
        customers=tc,
        staples=staples,
        adoptions=adoptions,
        department_weights=dw,
        segment_products=segp,
        config={},
    )
    return tables, truth


def _customers_for_lines(
    lines: int, products: int, days: int, seed: int, cfg: SyntheticConfig
) -> int:
    """Customers needed for about ``lines`` line items, from a pilot run with the same settings."""
    pilot, n = 500, 0
    while True:  # a small pilot first, then one as big as needed (up to 4,000) for a tight estimate
        per = max(
            _simulate(pilot, products, days, seed, cfg, lines_only=True)["lines"] / pilot, 1e-9
        )
        n = max(1, int(round(lines / per)))
        if n <= pilot or pilot >= 4000:
            break
        pilot = min(n, 4000)
    logger.info(
        "synthetic: %.1f lines per customer in the pilot -> %d customers for %d lines",
        per,
        n,
        lines,
    )
    return n


def generate_with_truth(
    customers: int = 2000,
    products: int = 1000,
    days: int = 365,
    seed: int = 0,
    lines: int | None = None,
    start: str | pd.Timestamp = "2017-01-01",
    config: SyntheticConfig | None = None,
) -> tuple[Tables, SyntheticTruth]:
    """Generate a synthetic shop and the habits planted in it.

    Parameters
    ----------
    customers, products : int
        Size of the shop. ``products`` must be at least the number of categories (46).
    days : int
        Length of the period; the data cover ``[start, start + days)``.
    seed : int
        Same seed, same arguments -> identical tables.
    lines : int, optional
        Target number of line items; when given, ``customers`` is ignored and set so the
        output has about that many lines (within a few per cent).
    start : str or Timestamp
        First day (default 2017-01-01, like Complete Journey).
    config : SyntheticConfig, optional
        Generator knobs; defaults give a Complete-Journey-like shop.

    Returns
    -------
    (Tables, SyntheticTruth)
        Tables not yet validated (call :func:`features.contract.validate`).
    """
    cfg = config or SyntheticConfig()
    if days < 30:
        raise ValueError(f"days must be at least 30, got {days}")
    if customers < 1 and lines is None:
        raise ValueError(f"customers must be positive, got {customers}")
    if lines is not None:
        if lines < 1:
            raise ValueError(f"lines must be positive, got {lines}")
        customers = _customers_for_lines(int(lines), products, days, seed, cfg)
    start_ts = pd.Timestamp(start).normalize()
    sim = _simulate(int(customers), int(products), int(days), int(seed), cfg)
    tables, truth = _assemble(sim, start_ts, cfg)
    truth.config = {
        "customers": int(customers),
        "products": int(products),
        "days": int(days),
        "seed": int(seed),
        "lines": lines,
        "start": str(start_ts.date()),
        **asdict(cfg),
    }
    logger.info("synthetic shop: %s", tables.notes[0])
    return tables, truth


def generate(
    customers: int = 2000,
    products: int = 1000,
    days: int = 365,
    seed: int = 0,
    lines: int | None = None,
    start: str | pd.Timestamp = "2017-01-01",
    config: SyntheticConfig | None = None,
) -> Tables:
    """Generate a synthetic shop (see :func:`generate_with_truth` for the arguments)."""
    return generate_with_truth(customers, products, days, seed, lines, start, config)[0]


def fingerprint(tables: Tables) -> str:
    """A short hash of every table's content, to compare generated shops cheaply."""
    return tables.fingerprint()


__all__ = ["SyntheticConfig", "SyntheticTruth", "fingerprint", "generate", "generate_with_truth"]
