"""Batch shopping lists: every active customer's personalised offers with deals, for one date.

The same engine and rules as the HTTP service, run over all active customers (a purchase
within ``precompute.active_days`` of the store's as-of date). The exported files carry
pseudonyms (:mod:`serving.privacy`), never customer ids; each mailed list is logged as
exposures (with the real ids, in the internal event log) so campaign analysis sees it.
"""

from __future__ import annotations

import logging
import uuid
from datetime import date
from pathlib import Path

import pandas as pd

from serving.engine import OfferEngine
from serving.eventlog import EventLog, exposure_rows, now_iso
from serving.privacy import pseudonymise_frame

logger = logging.getLogger(__name__)

LIST_COLUMNS = [
    "customer_id",
    # the id a mailer sends back with POST /events; it never holds the customer id, as the
    # exported files carry only pseudonyms
    "request_id",
    "list_date",
    "experiment",
    "arm",
    "personalised",
    "cold_start",
    "rank",
    "product_id",
    "description",
    "department",
    "category",
    "kind",
    "score",
    "price",
    "discount",
    "expected_value",
    "coupon_id",
    "campaign_id",
    "deal_valid_to",
    "reason",
]

#: Model internals left out of the files that leave the team.
INTERNAL_COLUMNS = ("score", "expected_value")


def shopping_lists(
    engine: OfferEngine,
    day: date,
    n: int | None = None,
    experiment: str | None = None,
    customers=None,
) -> pd.DataFrame:
    """One row per (customer, offer) for ``customers`` (default: every active customer), by rank.

    Customer ids are real here: pseudonymise before the frame leaves the team.
    """
    st = engine.store
    n = n or engine.config.rules.default_n
    if customers is None:
        customers = sorted(c for c, s in st.scores.items() if s.active)
    cols: dict[str, list] = {c: [] for c in LIST_COLUMNS}
    batch = uuid.uuid4().hex[:12]
    for i, cid in enumerate(customers, start=1):
        lst = engine.offer_list(int(cid), n, day=day, experiment=experiment)
        a = lst.assignment
        rid = f"list-{batch}-{i}"
        for rank, o in enumerate(lst.offers, start=1):
            d = o.deal
            for k, v in (
                ("customer_id", int(cid)),
                ("request_id", rid),
                ("list_date", day),
                ("experiment", a.experiment),
                ("arm", a.arm),
                ("personalised", lst.personalised),
                ("cold_start", lst.cold_start),
                ("rank", rank),
                ("product_id", o.product_id),
                ("description", o.description),
                ("department", o.department),
                ("category", o.category),
                ("kind", o.kind),
                ("score", o.score),
                ("price", o.price),
                ("discount", round(o.discount, 4)),
                ("expected_value", round(o.expected_value, 4)),
                ("coupon_id", d.coupon_id if d else None),
                ("campaign_id", d.campaign_id if d else None),
                ("deal_valid_to", date.fromordinal(d.end) if d else None),
                ("reason", o.reason),
            ):
                cols[k].append(v)
    df = pd.DataFrame(cols)
    for c in ("coupon_id", "campaign_id"):
        df[c] = df[c].astype("Int64")
    return df


def log_lists(eventlog: EventLog, lists: pd.DataFrame) -> int:
    """Log every mailed list as exposures under the list's ``request_id`` (the one in the
    exported files, so events can name it); returns rows written."""
    if lists.empty:
        return 0
    ts, n = now_iso(), 0
    if "request_id" not in lists.columns:  # a frame built without shopping_lists
        batch = uuid.uuid4().hex[:12]
        lists = lists.assign(request_id=[f"list-{batch}-{c}" for c in lists["customer_id"]])
    for rid, g in lists.groupby("request_id", sort=False):
        rows = exposure_rows(
            rid,
            ts,
            int(g["customer_id"].iat[0]),
            g["experiment"].iat[0],
            g["arm"].iat[0],
            zip(g["product_id"], g["kind"], g["score"], g["discount"], strict=True),
        )
        eventlog.append_exposures(rows)
        n += len(rows)
    return n


def export_lists(
    lists: pd.DataFrame, out_dir: str | Path, day: date, key: str | None = None
) -> tuple[Path, Path]:
    """Write the lists with pseudonymised customers as Parquet and CSV; returns both paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    export = pseudonymise_frame(lists.drop(columns=list(INTERNAL_COLUMNS)), "customer_id", key)
    stem = out_dir / f"shopping_lists_{day.isoformat()}"
    pq, csv = stem.with_suffix(".parquet"), stem.with_suffix(".csv")
    export.to_parquet(pq, index=False)
    export.to_csv(csv, index=False)
    return pq, csv
