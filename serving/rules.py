"""Offer rules as plain functions: eligibility, deals, discount depth, retention, mix, ranking.

Nothing here knows about HTTP, SQLite or models: the service (and the batch lists) pass
in the precomputed candidates of one customer, the product and deal lookups, the day and
the basket, and get the ranked offers back. Thresholds come from
:class:`serving.config.OfferRules` (``serving/rules.toml``).

Vocabulary
----------
* candidate: a product the models suggest for a customer -- ``replenish`` (bought before,
  due again) or ``discover`` (new to the customer, bought by customers like them).
* deal: a manufacturer coupon valid during its campaign's dates (``start <= day <= end``,
  days as proleptic ordinals, :meth:`datetime.date.toordinal`). Its ``discount`` is an
  amount off the price (currency, as every discount of the data contract); an offer turns it
  into a share of the product's price, at most 1 (:func:`coupon_share`).
* discount depth: the share taken off the price, tiered by the customer's value tier.
* expected value: purchase probability (raised by ``deal_lift`` when a deal or discount
  is attached) x price x (1 - discount); retention offers add a share of the spend they
  protect. Offers are ordered by it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from serving.config import OfferRules, tier_key

REPLENISH, DISCOVER, RETENTION = "replenish", "discover", "retention"
KINDS = (REPLENISH, DISCOVER, RETENTION)
DISCOVER_REASON = "households like yours buy this"
POPULAR_REASON = "popular with shoppers right now"
POPULAR_DEAL_REASON = "popular with shoppers right now, and on offer"


@dataclass(frozen=True, slots=True)
class Product:
    product_id: int
    description: str
    department: str | None
    category: str | None
    price: float


@dataclass(frozen=True, slots=True)
class Deal:
    coupon_id: int
    campaign_id: int
    start: int
    end: int
    discount: float | None = None
    campaign_type: str | None = None


@dataclass(frozen=True, slots=True)
class Candidate:
    """A precomputed offer candidate. A replenish candidate also keeps its purchase rhythm
    (``interval_days``) and the day of its last purchase (``last_bought``, a proleptic
    ordinal with the time of day as a fraction), so its reason can count the days to the
    date the offers are for rather than to the store's as-of date."""

    product_id: int
    kind: str
    score: float
    probability: float
    reason: str
    interval_days: float | None = None
    last_bought: float | None = None

    def reason_on(self, day: int) -> str:
        """The reason as of ``day`` (proleptic ordinal)."""
        if self.last_bought is None or self.kind != REPLENISH:
            return self.reason
        return replenish_reason(self.interval_days, day - self.last_bought)


@dataclass(frozen=True, slots=True)
class Profile:
    """What the rules need to know about a customer's value and risk."""

    tier: str | None = None
    clv_1y: float | None = None
    churn_probability: float | None = None


@dataclass(frozen=True, slots=True)
class Offer:
    product_id: int
    description: str
    department: str | None
    category: str | None
    kind: str
    score: float
    probability: float
    price: float
    discount: float
    expected_value: float
    deal: Deal | None
    reason: str


# --------------------------------------------------------------------------- reasons


def _days(x: float) -> str:
    d = int(round(x))
    return "1 day" if d == 1 else f"{d} days"


def replenish_reason(interval_days: float | None, days_since: float | None) -> str:
    """A short human reason for a replenishment offer.

    >>> replenish_reason(9.2, 12)
    'usually buys every ~9 days; last bought 12 days ago'
    """
    known_interval = (
        interval_days is not None and math.isfinite(interval_days) and interval_days > 0
    )
    known_since = days_since is not None and math.isfinite(days_since) and days_since >= 0
    if known_interval and known_since:
        return f"usually buys every ~{_days(interval_days)}; last bought {_days(days_since)} ago"
    if known_since:
        return f"bought before; last bought {_days(days_since)} ago"
    if known_interval:
        return f"usually buys every ~{_days(interval_days)}"
    return "bought before and due again"


def retention_reason(discount: float) -> str:
    return (
        f"a thank-you to keep you with us: {round(discount * 100)}% off something you buy regularly"
    )


# --------------------------------------------------------------------------- deals and discounts


def deal_on(deals: Sequence[Deal] | None, day: int) -> Deal | None:
    """The deal valid on ``day`` (start <= day <= end); the deepest known discount, then the longest-running."""
    best = None
    for d in deals or ():
        if d.start <= day <= d.end:
            if best is None or ((d.discount or 0.0), d.end) > ((best.discount or 0.0), best.end):
                best = d
    return best


def coupon_share(amount: float | None, price: float) -> float | None:
    """A coupon's amount off as a share of ``price`` (capped at 1); None when unknown."""
    if amount is None or not math.isfinite(amount) or amount <= 0 or not price > 0:
        return None
    return min(1.0, amount / price)


def is_below_zero(profile: Profile, rules: OfferRules) -> bool:
    """Below-zero customers cost more in discounts than they earn: their tier says so, or a negative CLV."""
    if profile.tier is not None and tier_key(profile.tier) in rules.below_zero_tiers:
        return True
    return profile.clv_1y is not None and profile.clv_1y < 0


def discount_depth(profile: Profile, rules: OfferRules) -> float:
    """Discount depth by value tier: the configured depth of the tier, none for below-zero customers."""
    if is_below_zero(profile, rules):
        return 0.0
    if profile.tier is None:
        return rules.discount_default
    return rules.discount_by_tier.get(tier_key(profile.tier), rules.discount_default)


def value_at_risk(profile: Profile) -> float:
    """Churn probability x 1-year CLV (0 when either is unknown or the CLV is negative)."""
    if profile.churn_probability is None or profile.clv_1y is None:
        return 0.0
    return max(0.0, profile.churn_probability) * max(0.0, profile.clv_1y)


def needs_retention(profile: Profile, rules: OfferRules) -> bool:
    """A retention incentive when churn risk x value is high -- never for below-zero customers."""
    return (
        not is_below_zero(profile, rules)
        and value_at_risk(profile) >= rules.retention_min_value_at_risk
    )


def expected_value(
    probability: float, price: float, discount: float, lifted: bool, rules: OfferRules
) -> float:
    """Expected revenue of showing an offer: P(buy) x price x (1 - discount), P raised by deals."""
    p = probability * (1.0 + rules.deal_lift) if lifted else probability
    return min(1.0, max(0.0, p)) * max(0.0, price) * (1.0 - discount)


# --------------------------------------------------------------------------- eligibility and mix


def eligible(
    candidates: Iterable[Candidate], products: Mapping[int, Product], basket: Iterable[int] = ()
) -> list[Candidate]:
    """Candidates of known products, not already in the current basket, each product once (first wins)."""
    seen = set(basket)
    out = []
    for c in candidates:
        if c.product_id in seen or c.product_id not in products:
            continue
        seen.add(c.product_id)
        out.append(c)
    return out


def _category_key(o: Offer) -> str:
    # products without a category do not share a cap with each other
    return o.category if o.category else f"#{o.product_id}"


def select_mix(offers: Sequence[Offer], n: int, rules: OfferRules) -> list[Offer]:
    """Pick at most ``n`` offers: retention first, then a replenish/discover mix, capped per category.

    The mix targets ``round(n * replenish_share)`` replenish (retention counts as replenish)
    and the rest discover offers; when one kind runs short the other fills in. No category
    appears more than ``max_per_category`` times, so a list can come out shorter than ``n``.
    The result is ordered by expected value, highest first.
    """
    if n <= 0:
        return []
    ranked = sorted(offers, key=lambda o: (o.kind != RETENTION, -o.expected_value, o.product_id))
    quota = {REPLENISH: int(round(n * rules.replenish_share))}
    quota[DISCOVER] = n - quota[REPLENISH]
    per_cat: dict[str, int] = {}
    taken: dict[str, int] = {REPLENISH: 0, DISCOVER: 0}
    chosen: list[Offer] = []
    chosen_ids: set[int] = set()
    for respect_quota in (True, False):
        for o in ranked:
            if len(chosen) >= n:
                break
            if o.product_id in chosen_ids:
                continue
            cat = _category_key(o)
            if per_cat.get(cat, 0) >= rules.max_per_category:
                continue
            kind = DISCOVER if o.kind == DISCOVER else REPLENISH
            if respect_quota and o.kind != RETENTION and taken[kind] >= quota[kind]:
                continue
            chosen.append(o)
            chosen_ids.add(o.product_id)
            per_cat[cat] = per_cat.get(cat, 0) + 1
            taken[kind] += 1
    chosen.sort(key=lambda o: (-o.expected_value, o.product_id))
    return chosen


# --------------------------------------------------------------------------- the pipelines


def make_offer(
    c: Candidate,
    product: Product,
    deal: Deal | None,
    discount: float,
    rules: OfferRules,
    extra_value: float = 0.0,
    kind: str | None = None,
    reason: str | None = None,
    day: int | None = None,
) -> Offer:
    """The offer of candidate ``c``; its reason is ``reason``, else the candidate's as of ``day``."""
    lifted = deal is not None or discount > 0
    ev = expected_value(c.probability, product.price, discount, lifted, rules) + extra_value
    return Offer(
        product_id=c.product_id,
        description=product.description,
        department=product.department,
        category=product.category,
        kind=kind or c.kind,
        score=c.score,
        probability=c.probability,
        price=product.price,
        discount=discount,
        expected_value=ev,
        deal=deal,
        reason=reason or (c.reason if day is None else c.reason_on(day)),
    )


def rank_offers(
    candidates: Sequence[Candidate],
    *,
    products: Mapping[int, Product],
    deals: Mapping[int, Sequence[Deal]],
    day: int,
    profile: Profile,
    rules: OfferRules,
    n: int,
    basket: Iterable[int] = (),
    discounts: bool = True,
) -> list[Offer]:
    """The personalised offer list of one customer.

    Parameters
    ----------
    candidates : the customer's precomputed replenish and discover candidates.
    products, deals : lookups by product id (deals: every coupon of the product).
    day : the date the offers are for, as a proleptic ordinal (deals must be valid on it).
    profile : value tier, CLV and churn probability of the customer.
    rules : thresholds from ``rules.toml``.
    n : list length wanted (the list may be shorter when the rules leave fewer).
    basket : product ids already in the current basket (never offered).
    discounts : False for arms that test offers without personalised discounts
        (no tiered depth, no retention incentive; coupons stay attached).
    """
    pool = eligible(candidates, products, basket)
    depth = discount_depth(profile, rules) if discounts else 0.0
    offers = []
    for c in pool:
        deal = deal_on(deals.get(c.product_id), day)
        d = (
            depth
            if (deal is not None or c.kind == DISCOVER or rules.discount_replenish_without_deal)
            else 0.0
        )
        share = coupon_share(deal.discount, products[c.product_id].price) if deal else None
        if share is not None and discounts:
            d = max(d, share) if not is_below_zero(profile, rules) else 0.0
        offers.append(make_offer(c, products[c.product_id], deal, d, rules, day=day))
    if discounts and needs_retention(profile, rules):
        replenish = [o for o in offers if o.kind == REPLENISH]
        if replenish:
            best = max(replenish, key=lambda o: (o.probability, -o.product_id))
            d = max(rules.retention_discount, best.discount)
            bonus = rules.retention_protected_value_share * value_at_risk(profile)
            cand = next(c for c in pool if c.product_id == best.product_id)
            retention = make_offer(
                cand,
                products[best.product_id],
                best.deal,
                d,
                rules,
                extra_value=bonus,
                kind=RETENTION,
                reason=retention_reason(d),
            )
            offers = [retention if o.product_id == best.product_id else o for o in offers]
    return select_mix(offers, n, rules)


def popular_offers(
    popular: Sequence[tuple[int, float]],
    *,
    products: Mapping[int, Product],
    deals: Mapping[int, Sequence[Deal]],
    day: int,
    rules: OfferRules,
    n: int,
    basket: Iterable[int] = (),
    discount: float = 0.0,
) -> list[Offer]:
    """Non-personalised offers (cold start, universal control, "popular" arms): the same for everyone.

    ``popular`` is ``(product_id, share of recent shoppers who bought it)``, most popular first.
    Items with a deal valid on ``day`` come first, in popularity order, then the others;
    the category cap applies; every offer is a ``discover`` offer.
    """
    basket = set(basket)
    with_deal, without = [], []
    for pid, share in popular:
        if pid in basket or pid not in products:
            continue
        deal = deal_on(deals.get(pid), day)
        (with_deal if deal is not None else without).append((pid, share, deal))
    chosen: list[Offer] = []
    per_cat: dict[str, int] = {}
    for pid, share, deal in with_deal + without:
        if len(chosen) >= n:
            break
        product = products[pid]
        reason = POPULAR_DEAL_REASON if deal is not None else POPULAR_REASON
        c = Candidate(pid, DISCOVER, share, share, reason)
        o = make_offer(c, product, deal, discount, rules)
        cat = _category_key(o)
        if per_cat.get(cat, 0) >= rules.max_per_category:
            continue
        per_cat[cat] = per_cat.get(cat, 0) + 1
        chosen.append(o)
    return chosen
