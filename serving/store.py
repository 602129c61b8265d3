"""The embedded lookup store of the offer service: one SQLite file, loaded into dicts.

:func:`build_store` writes the frames of :func:`serving.precompute.precompute` once (at
start-up or on ``tailor serve --rebuild``), atomically: the new file replaces the old one
only when complete. :func:`load_store` reads it into plain dicts keyed by customer and
product id, so answering a request is a few dictionary look-ups.

Tables
------
``meta(key, value)``: as_of, built_at, source, model_versions and missing (JSON).
``products(product_id, description, department, category, price)``.
``deals(coupon_id, campaign_id, product_id, start_day, end_day, discount, campaign_type)``
with days as proleptic ordinals (:meth:`datetime.date.toordinal`).
``candidates(customer_id, product_id, kind, rank, score, probability, reason, interval_days,
last_bought)``.
``scores(customer_id, churn_probability, partial_churn_probability, churn_reasons, ...)``.
``popular(rank, product_id, share)``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import tempfile
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd

from serving.rules import Candidate, Deal, Product

logger = logging.getLogger(__name__)

STORE_FILE = "store.sqlite"
SCHEMA_VERSION = "2"

TABLE_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "products": (
        ("product_id", "INTEGER PRIMARY KEY"),
        ("description", "TEXT"),
        ("department", "TEXT"),
        ("category", "TEXT"),
        ("price", "REAL"),
    ),
    "deals": (
        ("coupon_id", "INTEGER"),
        ("campaign_id", "INTEGER"),
        ("product_id", "INTEGER"),
        ("start_day", "INTEGER"),
        ("end_day", "INTEGER"),
        ("discount", "REAL"),
        ("campaign_type", "TEXT"),
    ),
    "candidates": (
        ("customer_id", "INTEGER"),
        ("product_id", "INTEGER"),
        ("kind", "TEXT"),
        ("rank", "INTEGER"),
        ("score", "REAL"),
        ("probability", "REAL"),
        ("reason", "TEXT"),
        ("interval_days", "REAL"),
        ("last_bought", "REAL"),
    ),
    "scores": (
        ("customer_id", "INTEGER PRIMARY KEY"),
        ("churn_probability", "REAL"),
        ("partial_churn_probability", "REAL"),
        ("churn_reasons", "TEXT"),
        ("expected_spend_90d", "REAL"),
        ("clv_1y", "REAL"),
        ("p_alive", "REAL"),
        ("tier", "TEXT"),
        ("grid_cell", "TEXT"),
        ("treatment", "TEXT"),
        ("lifecycle_stage", "TEXT"),
        ("rfm_segment", "TEXT"),
        ("recency_days", "REAL"),
        ("active", "INTEGER"),
    ),
    "popular": (("rank", "INTEGER"), ("product_id", "INTEGER"), ("share", "REAL")),
}
INDEXES = (
    "CREATE INDEX candidates_customer ON candidates(customer_id)",
    "CREATE INDEX deals_product ON deals(product_id)",
)


class StoreError(RuntimeError):
    """The lookup store is missing, incomplete or from another schema version."""


@dataclass(frozen=True, slots=True)
class CustomerScores:
    customer_id: int
    churn_probability: float | None = None
    partial_churn_probability: float | None = None
    churn_reasons: tuple[str, ...] = ()
    expected_spend_90d: float | None = None
    clv_1y: float | None = None
    p_alive: float | None = None
    tier: str | None = None
    grid_cell: str | None = None
    treatment: str | None = None
    lifecycle_stage: str | None = None
    rfm_segment: str | None = None
    recency_days: float | None = None
    active: bool = False


@dataclass
class LookupStore:
    """Everything the request path needs, in memory."""

    path: Path
    meta: dict
    products: dict[int, Product] = field(default_factory=dict)
    deals: dict[int, list[Deal]] = field(default_factory=dict)
    candidates: dict[int, list[Candidate]] = field(default_factory=dict)
    scores: dict[int, CustomerScores] = field(default_factory=dict)
    popular: list[tuple[int, float]] = field(default_factory=list)

    @property
    def as_of(self) -> date:
        return date.fromisoformat(self.meta["as_of"])

    @property
    def model_versions(self) -> dict[str, str | None]:
        return dict(self.meta.get("model_versions", {}))

    @property
    def missing(self) -> dict[str, str]:
        """Model families the store was built without, and why."""
        return dict(self.meta.get("missing", {}))


def store_path(serving_dir: str | Path) -> Path:
    return Path(serving_dir) / STORE_FILE


def _none(v):
    if v is None:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    if v is pd.NA or v is pd.NaT:
        return None
    if hasattr(v, "item"):  # numpy scalar
        return v.item()
    return v


def _rows(df: pd.DataFrame, columns: list[str]):
    present = [c for c in columns if c in df.columns]
    sub = df[present].astype(object).where(df[present].notna(), None)
    for tup in sub.itertuples(index=False, name=None):
        row = dict(zip(present, tup, strict=True))
        yield tuple(_none(row.get(c)) for c in columns)


def build_store(frames: dict[str, pd.DataFrame], path: str | Path, meta: dict) -> Path:
    """Write the precomputed ``frames`` and ``meta`` to a new SQLite store at ``path``, atomically.

    ``frames`` holds the tables named in :data:`TABLE_COLUMNS` (a missing one is written
    empty); ``meta`` must have ``as_of`` and may have ``model_versions``, ``missing`` and any
    other JSON-serialisable entries.
    """
    if "as_of" not in meta:
        raise StoreError("store meta needs 'as_of'")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        conn = sqlite3.connect(tmp)
        try:
            conn.execute("PRAGMA journal_mode=OFF")
            conn.execute("PRAGMA synchronous=OFF")
            conn.execute("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT)")
            for table, cols in TABLE_COLUMNS.items():
                conn.execute(f"CREATE TABLE {table}({', '.join(f'{c} {t}' for c, t in cols)})")
                df = frames.get(table)
                if df is None or df.empty:
                    continue
                names = [c for c, _ in cols]
                conn.executemany(
                    f"INSERT INTO {table} VALUES ({', '.join('?' * len(names))})", _rows(df, names)
                )
            for stmt in INDEXES:
                conn.execute(stmt)
            full_meta = {
                "schema_version": SCHEMA_VERSION,
                "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            full_meta.update(meta)
            conn.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [(k, json.dumps(v, default=str)) for k, v in full_meta.items()],
            )
            conn.commit()
        finally:
            conn.close()
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    logger.info("lookup store written to %s", path)
    return path


def read_meta(path: str | Path) -> dict:
    """The ``meta`` table of a store (raises :class:`StoreError` if there is no store)."""
    path = Path(path)
    if not path.exists():
        raise StoreError(
            f"no lookup store at {path}; start `tailor serve` (or `tailor serve --rebuild`) to build it"
        )
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        meta = {k: json.loads(v) for k, v in conn.execute("SELECT key, value FROM meta")}
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} is not a Tailor lookup store: {exc}") from exc
    finally:
        conn.close()
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise StoreError(
            f"{path} has store schema {meta.get('schema_version')!r}, expected {SCHEMA_VERSION}; rebuild it"
        )
    return meta


def load_store(path: str | Path) -> LookupStore:
    """Read the whole store into memory (:class:`StoreError` if it is missing or unreadable)."""
    path = Path(path)
    meta = read_meta(path)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        store = LookupStore(path=path, meta=meta)
        for pid, desc, dept, cat, price in conn.execute(
            "SELECT product_id, description, department, category, price FROM products"
        ):
            store.products[pid] = Product(pid, desc or "", dept, cat, float(price or 0.0))
        for cid, camp, pid, s, e, disc, ctype in conn.execute(
            "SELECT coupon_id, campaign_id, product_id, start_day, end_day, discount, campaign_type FROM deals"
        ):
            store.deals.setdefault(pid, []).append(Deal(cid, camp, s, e, disc, ctype))
        for cust, pid, kind, score, prob, reason, interval, last in conn.execute(
            "SELECT customer_id, product_id, kind, score, probability, reason, interval_days,"
            " last_bought FROM candidates ORDER BY customer_id, kind, rank"
        ):
            store.candidates.setdefault(cust, []).append(
                Candidate(pid, kind, float(score), float(prob), reason or "", interval, last)
            )
        names = [f.name for f in fields(CustomerScores)]
        for row in conn.execute(f"SELECT {', '.join(names)} FROM scores"):
            rec = dict(zip(names, row, strict=True))
            rec["churn_reasons"] = (
                tuple(json.loads(rec["churn_reasons"])) if rec["churn_reasons"] else ()
            )
            rec["active"] = bool(rec["active"])
            store.scores[rec["customer_id"]] = CustomerScores(**rec)
        store.popular = [
            (pid, float(share))
            for pid, share in conn.execute("SELECT product_id, share FROM popular ORDER BY rank")
        ]
    except (sqlite3.DatabaseError, TypeError, ValueError, KeyError) as exc:
        # a damaged or hand-edited store: the service starts not ready and says why
        raise StoreError(f"{path} cannot be read: {type(exc).__name__}: {exc}") from exc
    finally:
        conn.close()
    logger.info(
        "lookup store %s: %d customers with scores, %d with candidates, %d products, %d deals, as of %s",
        path,
        len(store.scores),
        len(store.candidates),
        len(store.products),
        sum(map(len, store.deals.values())),
        meta["as_of"],
    )
    return store


def forget_in_store(path: str | Path, customer_id: int) -> dict[str, int]:
    """Delete a customer's rows from the store file; returns the rows removed per table."""
    path = Path(path)
    if not path.exists():
        return {}
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA secure_delete=ON")
        out = {
            t: conn.execute(f"DELETE FROM {t} WHERE customer_id = ?", (int(customer_id),)).rowcount
            for t in ("candidates", "scores")
        }
        conn.commit()
        conn.execute("VACUUM")
    finally:
        conn.close()
    return out
