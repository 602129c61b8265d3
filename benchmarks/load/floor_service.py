"""The framework floor: a trivial BentoML service returning a constant list of 10 offers.

Same BentoML settings as the offer service (:func:`serving.bento_config.service_config`,
so ``TAILOR_BENTO_CONFIG`` applies to both), the same frozen startup heap
(:func:`serving.bento_config.freeze_startup_heap`) and the same request/response models, so the
difference between the two is the offer service's own work.
Serve with ``bentoml serve floor_service:Floor --working-dir benchmarks/load``.
"""

from __future__ import annotations

import datetime as dt

import bentoml

from serving.bento_config import freeze_startup_heap, service_config
from serving.schemas import OfferOut, OffersRequest, OffersResponse

OFFERS = [
    OfferOut(
        rank=i + 1,
        product_id=1000 + i,
        description=f"Product {i}",
        department="GROCERY",
        category=f"CAT{i}",
        kind="replenish" if i % 2 else "discover",
        score=1 / (i + 1),
        price=2.5,
        discount=0.1,
        expected_value=1 / (i + 1),
        deal=None,
        reason="usually buys every ~9 days; last bought 12 days ago",
    )
    for i in range(10)
]
DAY = dt.date(2018, 1, 2)


@bentoml.service(**service_config())
class Floor:
    def __init__(self) -> None:
        freeze_startup_heap()  # as the offer service does at the end of its setup

    @bentoml.api(route="/offers")
    async def offers(self, request: OffersRequest, /) -> OffersResponse:
        return OffersResponse(
            request_id="0" * 32,
            customer_id=request.customer_id,
            experiment="default",
            arm="personalised",
            personalised=True,
            cold_start=False,
            date=DAY,
            offers=OFFERS,
        )
