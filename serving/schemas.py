"""Request and response models of the offer service (pydantic; BentoML builds the OpenAPI page from them)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: Ids are stored as SQLite INTEGER (signed 64-bit).
MAX_ID = 2**63 - 1
#: A date in a request is exactly ``YYYY-MM-DD`` (ASCII digits).
DATE_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
#: Ids are JSON integers: strict, so ``true``, ``"1"`` and ``1.0`` are refused, not coerced.
CustomerId = Annotated[
    int,
    Field(
        ge=0, le=MAX_ID, strict=True, description="the customer's (household's) id", examples=[1]
    ),
]
ProductId = Annotated[int, Field(ge=0, le=MAX_ID, strict=True, description="a product id")]
Kind = Literal["replenish", "discover", "retention"]
EventType = Literal["viewed", "clicked", "redeemed", "purchased"]


class OfferContext(BaseModel):
    """Where and when the offers will be shown (all optional)."""

    model_config = ConfigDict(extra="forbid")

    channel: str | None = Field(
        None, max_length=64, description="e.g. app, web, mail, store", examples=["app"]
    )
    date: dt.date | None = Field(
        None,
        description="the day the offers are for (deals must be valid on it); default: the store's as-of date",
    )
    store_id: int | None = Field(
        None, ge=0, le=MAX_ID, strict=True, description="the store the customer is in"
    )
    basket: list[ProductId] = Field(
        default_factory=list,
        max_length=500,
        description="product ids already in the current basket (never offered)",
    )

    @field_validator("date", mode="before")
    @classmethod
    def _date_is_text(cls, v):
        # pydantic would read a number, or text of digits ("1514764800", "20171228"), as a Unix
        # time and text with a time of day as a datetime; a date is written 2017-03-01
        if isinstance(v, int | float) or (isinstance(v, str) and not DATE_TEXT.fullmatch(v)):
            raise ValueError(f"give the date as YYYY-MM-DD, not {v!r}")
        return v


class OffersRequest(BaseModel):
    """Ask for a customer's ranked offers."""

    model_config = ConfigDict(extra="forbid")

    customer_id: CustomerId
    n: int | None = Field(
        None,
        ge=1,
        le=1000,
        strict=True,
        description="how many offers; default and maximum from rules.toml (offers.default_n, "
        "offers.max_n: 10 and 50 as shipped)",
    )
    context: OfferContext | None = None
    experiment: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="experiment name from rules.toml; default: the default experiment",
    )


class DealOut(BaseModel):
    coupon_id: int
    campaign_id: int
    campaign_type: str | None = None
    valid_from: dt.date
    valid_to: dt.date


class OfferOut(BaseModel):
    rank: int = Field(description="1 = best")
    product_id: int
    description: str
    department: str | None = None
    category: str | None = None
    kind: Kind
    score: float = Field(description="the model's score (probability-like)")
    price: float = Field(description="shelf price per unit")
    discount: float = Field(description="discount depth offered, a share of the price (0..1)")
    expected_value: float = Field(
        description="expected revenue of showing the offer; a personalised list is ordered by "
        "it, a non-personalised one (cold start, control, popular arms) has the items with a deal "
        "first, then by popularity"
    )
    deal: DealOut | None = Field(None, description="a coupon valid on the date, with its campaign")
    reason: str = Field(description="a short human reason")


class OffersResponse(BaseModel):
    request_id: str = Field(description="id of this response; send it back with /events")
    customer_id: int
    experiment: str
    arm: str = Field(description="experiment arm, or universal_control")
    personalised: bool = Field(
        description="false for popular items: cold start, control and popular arms, and a "
        "known customer whose candidates are all in the basket"
    )
    cold_start: bool = Field(
        description="true when the customer is unknown or has no history: popular items with deals"
    )
    date: dt.date
    offers: list[OfferOut]


class ScoresRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: CustomerId


class ScoresResponse(BaseModel):
    request_id: str
    customer_id: int
    as_of: dt.date = Field(description="the scores are predictions as of this date")
    churn_probability: float | None = Field(None, description="P(no purchase in the next 60 days)")
    partial_churn_probability: float | None = Field(
        None, description="P(spend in the next 60 days below half the last 60)"
    )
    churn_reasons: list[str] = Field(
        default_factory=list, description="top reasons behind the churn risk"
    )
    expected_spend_90d: float | None = None
    clv_1y: float | None = Field(None, description="customer lifetime value over one year")
    p_alive: float | None = None
    value_tier: str | None = None
    grid_cell: str | None = Field(
        None, description="cell of the value x trend 9-grid, e.g. mid/stable"
    )
    treatment: str | None = Field(None, description="the treatment of that grid cell")
    lifecycle_stage: str | None = None
    rfm_segment: str | None = None
    model_versions: dict[str, str | None] = Field(
        default_factory=dict, description="registry versions the scores come from"
    )


class EventRequest(BaseModel):
    """A customer's response to an offer."""

    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$",
        description="the request_id of the /offers response (or of a mailed list's row)",
    )
    customer_id: CustomerId
    product_id: ProductId
    type: EventType
    value: float | None = Field(
        None,
        ge=0,
        le=1e9,
        allow_inf_nan=False,
        strict=True,
        description="e.g. the purchase amount (>= 0; a refund is not an event)",
    )


class EventResponse(BaseModel):
    event_id: int
    request_id: str
    status: Literal["logged"] = "logged"


class ErrorResponse(BaseModel):
    error: str
    request_id: str | None = None
    missing: list[str] | None = None
