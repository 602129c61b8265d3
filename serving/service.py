"""The Tailor offer service (BentoML 1.4): ``bentoml serve serving.service:Tailor``.

A thin shell: at start-up it opens the event log and reads the precomputed lookup store
(built by ``tailor serve`` from the ``champion`` version of each model family) into memory
(in a background thread with the default single worker, answering 503 "still loading"
until it is in);
each request is a few dictionary look-ups plus the plain-function rules of
:mod:`serving.rules`, and one append to the event log.

Endpoints: ``POST /offers``, ``POST /scores``, ``POST /events``; ``GET /healthz`` (alive),
``GET /readyz`` (models and store loaded, else 503 saying what is missing), and the
OpenAPI page BentoML serves at ``/`` (spec at ``/docs.json``).

Paths come from :func:`features.config.get_settings` (``serving_dir``), the rules from
``serving/rules.toml`` (``TAILOR_RULES``), the BentoML settings from
:mod:`serving.bento_config` (``TAILOR_BENTO_CONFIG``); ``TAILOR_API_TOKEN`` turns on
bearer-token auth.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import date

import bentoml
from pydantic import TypeAdapter
from starlette.responses import JSONResponse, Response

from features.config import get_settings
from serving.bento_config import (
    exit_with_parent,
    freeze_startup_heap,
    quiet_client_errors,
    service_config,
)
from serving.config import load_config
from serving.engine import OfferEngine, OfferList
from serving.eventlog import EventLog, now_iso, offers_json
from serving.experiments import UnknownExperimentError
from serving.middleware import TailorMiddleware, current_request_id
from serving.rules import Offer
from serving.schemas import (
    DealOut,
    EventRequest,
    EventResponse,
    OfferOut,
    OffersRequest,
    OffersResponse,
    ScoresRequest,
    ScoresResponse,
)
from serving.store import StoreError, load_store, store_path

logger = logging.getLogger(__name__)
quiet_client_errors()

EVENTLOG_FILE = "events.sqlite"
#: What /readyz and the APIs say while the store is read (a probe gets a 503, not a hang).
STORE_LOADING = "the lookup store is still loading"


def _error(status: int, message: str, rid: str, **extra) -> JSONResponse:
    return JSONResponse(
        {"error": message, "request_id": rid, **extra},
        status_code=status,
        headers={"x-request-id": rid},
    )


_OFFERS_JSON = TypeAdapter(list[OfferOut])


def _offer_out(rank: int, o: Offer) -> OfferOut:
    d = o.deal
    deal = None
    if d is not None:
        deal = DealOut(
            coupon_id=d.coupon_id,
            campaign_id=d.campaign_id,
            campaign_type=d.campaign_type,
            valid_from=date.fromordinal(d.start),
            valid_to=date.fromordinal(d.end),
        )
    return OfferOut(
        rank=rank,
        product_id=o.product_id,
        description=o.description,
        department=o.department,
        category=o.category,
        kind=o.kind,
        score=round(o.score, 6),
        price=o.price,
        discount=round(o.discount, 4),
        expected_value=round(o.expected_value, 4),
        deal=deal,
        reason=o.reason,
    )


def offers_payload(lst: OfferList) -> bytes:
    """The JSON of a list's offers, validated against :class:`OfferOut`; computed once per cached list."""
    if lst.payload is None:
        lst.payload = _OFFERS_JSON.dump_json(
            [_offer_out(i, o) for i, o in enumerate(lst.offers, start=1)]
        )
    return lst.payload


def offers_response(rid: str, customer_id: int, lst: OfferList) -> Response:
    """An :class:`OffersResponse` as JSON: the per-request fields, then the cached offers."""
    a = lst.assignment
    head = json.dumps(
        {
            "request_id": rid,
            "customer_id": customer_id,
            "experiment": a.experiment,
            "arm": a.arm,
            "personalised": lst.personalised,
            "cold_start": lst.cold_start,
            "date": lst.day.isoformat(),
        },
        separators=(",", ":"),
    ).encode()
    return Response(
        head[:-1] + b',"offers":' + offers_payload(lst) + b"}", media_type="application/json"
    )


SERVICE_CONFIG = service_config()
WORKERS = SERVICE_CONFIG.get("workers", 1)  # 1 by default; "cpu_count" or N for more


@bentoml.service(**SERVICE_CONFIG)
class Tailor:
    """Personalised offers and customer scores from precomputed model outputs."""

    def __init__(self) -> None:
        exit_with_parent()  # a worker must not outlive a SIGKILLed server (see bento_config)
        settings = get_settings()
        self.config = load_config()
        self.eventlog = EventLog(
            settings.serving_dir / EVENTLOG_FILE,
            self.config.eventlog.synchronous,
            self.config.eventlog.busy_timeout_ms,
            journal=True,
            flush_interval=self.config.eventlog.journal_flush_seconds,
        )
        self.engine = OfferEngine(None, self.config, STORE_LOADING)
        self._loaded = threading.Event()
        path = store_path(settings.serving_dir)
        if WORKERS != 1:
            # Several workers share the listening socket, and the kernel hands connections
            # only to those that accept: a worker that reads its store before it accepts
            # never answers 503 for a ready sibling (after a restart of one, say).
            self._load(path)
            return
        # BentoML builds the service before its worker takes any request, so with one worker
        # reading a large store here left /healthz and /readyz unanswered for the whole load
        # (a liveness probe with a short timeout would kill the worker). The store is read in
        # a thread instead: until it is in, the engine is one without a store that says so.
        threading.Thread(
            target=self._load, args=(path,), name="tailor-store-loader", daemon=True
        ).start()

    def _load(self, path) -> None:
        try:
            try:
                store, problem = load_store(path), None
            except StoreError as exc:
                store, problem = None, str(exc)
                logger.warning("starting without a lookup store: %s", exc)
            except Exception as exc:  # an unreadable store must not kill the worker either
                logger.exception("could not read the lookup store %s", path)
                store, problem = None, f"the lookup store could not be read ({type(exc).__name__})"
            engine = OfferEngine(store, self.config, problem)
            if store is not None:
                logger.info("serving models %s as of %s", store.model_versions, store.as_of)
                t0 = time.perf_counter()
                warmed = engine.prewarm()
                logger.info(
                    "precomputed %d default offer lists in %.1f s",
                    warmed,
                    time.perf_counter() - t0,
                )
            for why in engine.missing():
                logger.warning("not ready: %s", why)
            self.engine = engine  # one assignment: a request sees the old engine or the new one
            # the store is a large, read-only heap: keep the cyclic GC from walking it again and again
            freeze_startup_heap()
        finally:
            self._loaded.set()

    def wait_loaded(self, timeout: float | None = None) -> bool:
        """Block until the store has been read (or found missing); False on timeout."""
        return self._loaded.wait(timeout)

    # ------------------------------------------------------------------ readiness (used by the middleware)

    def readiness(self) -> tuple[bool, dict]:
        engine = self.engine  # read once: the loader may swap it in between
        missing, st = engine.missing(), engine.store
        body = {
            "ready": not missing,
            "missing": missing,
            "model_versions": st.model_versions if st is not None else {},
            "as_of": st.meta["as_of"] if st is not None else None,
            "customers": len(st.scores) if st is not None else 0,
        }
        return not missing, body

    def _unavailable(self, endpoint: str, rid: str) -> JSONResponse | None:
        missing = self.engine.missing(endpoint)
        if not missing:
            return None
        return _error(
            503, f"/{endpoint} is unavailable: " + "; ".join(missing), rid, missing=missing
        )

    #: How far from the store's as-of date an offer date may be (a typo like 2999 is refused).
    MAX_DAYS_FROM_AS_OF = 366

    def _bad_offer_request(self, n, day) -> tuple[tuple[str, ...], str] | None:
        """``(field path, message)`` when n or the date is outside what the rules allow."""
        max_n = self.engine.config.rules.max_n
        if n is not None and n > max_n:
            return ("n",), f"n={n} is more than offers.max_n ({max_n}) in rules.toml"
        as_of = self.engine.store.as_of
        if day is not None and abs((day - as_of).days) > self.MAX_DAYS_FROM_AS_OF:
            return ("context", "date"), (
                f"date {day} is more than {self.MAX_DAYS_FROM_AS_OF} days from the store's "
                f"as-of date {as_of}"
            )
        return None

    # ------------------------------------------------------------------ APIs

    @bentoml.api(route="/offers")
    async def offers(self, request: OffersRequest, /) -> OffersResponse:
        """Ranked offers for a customer: replenish, discover and retention, with deals and reasons."""
        rid = current_request_id()
        if (resp := self._unavailable("offers", rid)) is not None:
            return resp
        try:
            ctx = request.context
            n, day = request.n, ctx.date if ctx else None
            if (bad := self._bad_offer_request(n, day)) is not None:
                field, msg = bad
                return _error(
                    400, msg, rid, detail=[{"loc": [*field], "msg": msg, "type": "value_error"}]
                )
            try:
                lst = self.engine.offer_list(
                    request.customer_id,
                    n if n is not None else self.engine.config.rules.default_n,
                    day=day,
                    basket=ctx.basket if ctx else (),
                    experiment=request.experiment,
                )
            except UnknownExperimentError as exc:
                return _error(
                    400,
                    str(exc),
                    rid,
                    detail=[{"loc": ["experiment"], "msg": str(exc), "type": "value_error"}],
                )
            a = lst.assignment
            if lst.exposures is None:
                lst.exposures = offers_json(
                    (o.product_id, o.kind, o.score, o.discount) for o in lst.offers
                )
            await self.eventlog.append_list_async(
                rid,
                now_iso(),
                request.customer_id,
                a.experiment,
                a.arm,
                [(o.product_id, o.kind, o.score, o.discount) for o in lst.offers]
                if self.eventlog.journal is None
                else (),
                lst.exposures,
            )
            # the body is an OffersResponse (the declared type, documented in the OpenAPI page),
            # assembled from cached JSON: a repeat customer costs no model building
            return offers_response(rid, request.customer_id, lst)
        except Exception:
            logger.exception("POST /offers failed (request %s)", rid)
            return _error(500, "internal error while building offers", rid)

    @bentoml.api(route="/scores")
    async def scores(self, request: ScoresRequest, /) -> ScoresResponse:
        """Churn and partial-churn risk with reasons, expected spend, CLV, value tier, 9-grid cell, segments."""
        rid = current_request_id()
        if (resp := self._unavailable("scores", rid)) is not None:
            return resp
        try:
            s = self.engine.scores(request.customer_id)
            st = self.engine.store
            if s is None:
                return _error(
                    404,
                    f"customer {request.customer_id} has no purchase history as of {st.as_of}: no scores",
                    rid,
                )
            return ScoresResponse(
                request_id=rid,
                customer_id=s.customer_id,
                as_of=st.as_of,
                churn_probability=s.churn_probability,
                partial_churn_probability=s.partial_churn_probability,
                churn_reasons=list(s.churn_reasons),
                expected_spend_90d=s.expected_spend_90d,
                clv_1y=s.clv_1y,
                p_alive=s.p_alive,
                value_tier=s.tier,
                grid_cell=s.grid_cell,
                treatment=s.treatment,
                lifecycle_stage=s.lifecycle_stage,
                rfm_segment=s.rfm_segment,
                model_versions=st.model_versions,
            )
        except Exception:
            logger.exception("POST /scores failed (request %s)", rid)
            return _error(500, "internal error while reading scores", rid)

    @bentoml.api(route="/events")
    async def events(self, request: EventRequest, /) -> EventResponse:
        """Log a customer's response to an offer (viewed, clicked, redeemed, purchased)."""
        rid = current_request_id()
        try:
            eid = await self.eventlog.append_event_async(
                request.request_id,
                request.customer_id,
                request.product_id,
                request.type,
                request.value,
            )
        except Exception:
            logger.exception("POST /events failed (request %s)", rid)
            return _error(500, "internal error while logging the event", rid)
        return EventResponse(event_id=eid, request_id=request.request_id)

    @bentoml.on_shutdown
    def close(self) -> None:
        self.eventlog.close()


def _readiness() -> tuple[bool, dict]:
    try:
        svc = bentoml.get_current_service()
    except bentoml.exceptions.BentoMLException:
        return False, {"ready": False, "missing": ["the service is still starting"]}
    return svc.readiness()


Tailor.add_asgi_middleware(
    TailorMiddleware, readiness=_readiness, openapi=lambda: Tailor.openapi_spec.asdict()
)
