"""The offer engine: the in-memory store + configuration -> offer lists and scores.

Shared by the HTTP service and the batch shopping lists, so both apply the same rules.
No I/O here: the store is already in memory.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from serving.config import ServingConfig
from serving.experiments import Assignment, assign
from serving.rules import Offer, Profile, popular_offers, rank_offers
from serving.store import CustomerScores, LookupStore

logger = logging.getLogger(__name__)

#: Families each endpoint needs.
NEEDS = {
    "offers": ("next_purchase", "cross_sell", "churn", "value"),
    "scores": ("churn", "value"),
}


@dataclass(slots=True)
class OfferList:
    customer_id: int
    assignment: Assignment
    personalised: bool
    cold_start: bool
    day: date
    offers: tuple[Offer, ...]
    #: the offers' JSON, filled in once by the HTTP service (the list itself never changes)
    payload: bytes | None = field(default=None, compare=False, repr=False)
    #: ``[[product_id, kind, score, discount], ...]`` as JSON, for the exposure log
    exposures: bytes | None = field(default=None, compare=False, repr=False)


class OfferEngine:
    """Offer lists and scores from a loaded :class:`LookupStore`.

    ``store`` may be None (no store could be loaded; ``store_problem`` says why): the
    engine then reports itself not ready instead of failing.
    """

    def __init__(
        self,
        store: LookupStore | None,
        config: ServingConfig,
        store_problem: str | None = None,
        cache_size: int = 50_000,
    ):
        self.store = store
        self.config = config
        self.store_problem = store_problem if store is None else None
        # Offer lists are a pure function of (customer, n, day, basket, arm) over a read-only store,
        # so answers are memoised: a repeat request is one dictionary look-up.
        self.cache_size = cache_size
        self._cache: dict[tuple, OfferList] = {}
        self._missing: dict[str | None, list[str]] = {}  # the store never changes: compute once

    # ------------------------------------------------------------------ readiness

    def missing(self, endpoint: str | None = None) -> list[str]:
        """What is missing for ``endpoint`` (every endpoint if None), as sentences; empty when ready."""
        hit = self._missing.get(endpoint)
        if hit is None:
            hit = self._missing[endpoint] = self._find_missing(endpoint)
        return list(hit)

    def _find_missing(self, endpoint: str | None) -> list[str]:
        if self.store is None:
            return [self.store_problem or "the lookup store is not loaded"]
        families = (
            NEEDS[endpoint]
            if endpoint
            else tuple(dict.fromkeys(f for fs in NEEDS.values() for f in fs))
        )
        gone = self.store.missing
        return [f"model {f}: {gone[f]}" for f in families if f in gone]

    # ------------------------------------------------------------------ offers

    def profile(self, s: CustomerScores | None) -> Profile:
        if s is None:
            return Profile()
        return Profile(tier=s.tier, clv_1y=s.clv_1y, churn_probability=s.churn_probability)

    def offer_list(
        self,
        customer_id: int,
        n: int,
        day: date | None = None,
        basket: Iterable[int] = (),
        experiment: str | None = None,
    ) -> OfferList:
        """The ranked offers of one customer (raises UnknownExperimentError for an unknown experiment)."""
        day = day or self.store.as_of
        basket = tuple(sorted(set(basket))) if basket else ()
        key = (customer_id, n, day, basket, experiment)  # the arm is a function of these too
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        a = assign(customer_id, experiment, self.config.experiments)
        out = self._offer_list(customer_id, n, day, basket, a)
        if len(self._cache) >= self.cache_size:
            del self._cache[next(iter(self._cache))]  # the oldest entry
        self._cache[key] = out
        return out

    def _offer_list(
        self, customer_id: int, n: int, day: date, basket: tuple[int, ...], a: Assignment
    ) -> OfferList:
        st, rules = self.store, self.config.rules
        ordinal = day.toordinal()
        n = min(n, rules.max_n)
        cands = st.candidates.get(customer_id)
        cold = not cands

        def popular(discount: float) -> tuple:
            return tuple(
                popular_offers(
                    st.popular,
                    products=st.products,
                    deals=st.deals,
                    day=ordinal,
                    rules=rules,
                    n=n,
                    basket=basket,
                    discount=discount,
                )
            )

        if cold or a.policy == "popular":
            discount = rules.cold_start_discount if cold else rules.non_personalised_discount
            return OfferList(customer_id, a, False, cold, day, popular(discount))
        offers = rank_offers(
            cands,
            products=st.products,
            deals=st.deals,
            day=ordinal,
            profile=self.profile(st.scores.get(customer_id)),
            rules=rules,
            n=n,
            basket=basket,
            discounts=a.policy == "personalised",
        )
        if not offers and n > 0:
            # every candidate is already in the basket: popular items, not an empty list
            return OfferList(
                customer_id, a, False, False, day, popular(rules.non_personalised_discount)
            )
        return OfferList(customer_id, a, True, False, day, tuple(offers))

    def prewarm(
        self, n: int | None = None, day: date | None = None, limit_seconds: float = 20.0
    ) -> int:
        """Compute the default offer list (default experiment, no basket) of every known customer in advance.

        Returns how many lists were computed (stops after ``limit_seconds``).
        """
        if self.store is None or self.missing("offers"):
            return 0
        n = n or self.config.rules.default_n
        deadline = time.perf_counter() + limit_seconds
        done = 0
        for cid in self.store.candidates:
            if done >= self.cache_size or time.perf_counter() > deadline:
                break
            self.offer_list(cid, n, day=day)
            done += 1
        return done

    def scores(self, customer_id: int) -> CustomerScores | None:
        return self.store.scores.get(customer_id)
