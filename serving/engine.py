"""The offer engine: the in-memory store + configuration -> offer lists and scores.

Shared by the HTTP service and the batch shopping lists, so both apply the same rules.
No I/O here: the store is already in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class OfferList:
    customer_id: int
    assignment: Assignment
    personalised: bool
    cold_start: bool
    day: date
    offers: list[Offer]


class OfferEngine:
    """Offer lists and scores from a loaded :class:`LookupStore`.

    ``store`` may be None (no store could be loaded; ``store_problem`` says why): the
    engine then reports itself not ready instead of failing.
    """

    def __init__(
        self, store: LookupStore | None, config: ServingConfig, store_problem: str | None = None
    ):
        self.store = store
        self.config = config
        self.store_problem = store_problem if store is None else None

    # ------------------------------------------------------------------ readiness

    def missing(self, endpoint: str | None = None) -> list[str]:
        """What is missing for ``endpoint`` (every endpoint if None), as sentences; empty when ready."""
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
        st, rules = self.store, self.config.rules
        a = assign(customer_id, experiment, self.config.experiments)
        day = day or st.as_of
        ordinal = day.toordinal()
        n = min(n, rules.max_n)
        cands = st.candidates.get(customer_id)
        cold = not cands
        if cold or a.policy == "popular":
            discount = rules.cold_start_discount if cold else rules.non_personalised_discount
            offers = popular_offers(
                st.popular,
                products=st.products,
                deals=st.deals,
                day=ordinal,
                rules=rules,
                n=n,
                basket=basket,
                discount=discount,
            )
            return OfferList(customer_id, a, False, cold, day, offers)
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
        return OfferList(customer_id, a, True, False, day, offers)

    def scores(self, customer_id: int) -> CustomerScores | None:
        return self.store.scores.get(customer_id)
