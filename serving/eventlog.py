"""The durable exposure and event log (SQLite in WAL mode) read by the campaign analysis.

Schema (kept exactly; the campaign analysis reads it)::

    exposures(request_id TEXT, ts TEXT, customer_id INTEGER, experiment TEXT, arm TEXT,
              product_id INTEGER, rank INTEGER, kind TEXT, score REAL, discount REAL)
    events(event_id INTEGER PRIMARY KEY, request_id TEXT, ts TEXT, customer_id INTEGER,
           product_id INTEGER, type TEXT, value REAL)

``ts`` is ISO 8601 in UTC with milliseconds. One served offer list is one transaction of
``n`` exposure rows.

Durability: a write is acknowledged only after its transaction has committed. With
``synchronous=NORMAL`` (the default) the commit has been written to the WAL file with
``write()``, so it survives the server process being killed (SIGKILL, OOM killer,
segfault); only an operating-system crash or power cut before the next checkpoint can lose
it. ``synchronous=FULL`` also fsyncs every commit. The service writes through one writer
thread per process that commits whatever is queued in one transaction (group commit), so
an fsync per commit costs latency but not throughput.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

logger = logging.getLogger(__name__)

EVENT_TYPES = ("viewed", "clicked", "redeemed", "purchased")
EXPOSURE_COLUMNS = (
    "request_id",
    "ts",
    "customer_id",
    "experiment",
    "arm",
    "product_id",
    "rank",
    "kind",
    "score",
    "discount",
)
EVENT_COLUMNS = ("event_id", "request_id", "ts", "customer_id", "product_id", "type", "value")

SCHEMA = """
CREATE TABLE IF NOT EXISTS exposures(
    request_id TEXT, ts TEXT, customer_id INTEGER, experiment TEXT, arm TEXT,
    product_id INTEGER, rank INTEGER, kind TEXT, score REAL, discount REAL);
CREATE TABLE IF NOT EXISTS events(
    event_id INTEGER PRIMARY KEY, request_id TEXT, ts TEXT, customer_id INTEGER,
    product_id INTEGER, type TEXT, value REAL);
CREATE INDEX IF NOT EXISTS exposures_customer ON exposures(customer_id);
CREATE INDEX IF NOT EXISTS exposures_request ON exposures(request_id);
CREATE INDEX IF NOT EXISTS events_customer ON events(customer_id);
"""
_INSERT_EXPOSURE = f"INSERT INTO exposures({', '.join(EXPOSURE_COLUMNS)}) VALUES ({', '.join('?' * len(EXPOSURE_COLUMNS))})"
_INSERT_EVENT = "INSERT INTO events(request_id, ts, customer_id, product_id, type, value) VALUES (?, ?, ?, ?, ?, ?)"
_MAX_BATCH = 1024
_STOP = object()


def now_iso() -> str:
    """Current time as ISO 8601 UTC with milliseconds (the log's ``ts``)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def connect(
    path: str | Path, synchronous: str = "NORMAL", busy_timeout_ms: int = 5000
) -> sqlite3.Connection:
    """Open (and create) the log in WAL mode with the given ``synchronous`` level."""
    synchronous = synchronous.upper()
    if synchronous not in ("NORMAL", "FULL"):
        raise ValueError(f"synchronous must be NORMAL or FULL, got {synchronous!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_ms / 1000
    )
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise RuntimeError(f"could not put the event log {path} in WAL mode (got {mode!r})")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.executescript(SCHEMA)
    return conn


def exposure_rows(
    request_id: str,
    ts: str,
    customer_id: int,
    experiment: str,
    arm: str,
    offers: Iterable[tuple[int, str, float, float]],
) -> list[tuple]:
    """Rows for one served list: ``offers`` is ``(product_id, kind, score, discount)`` in rank order."""
    return [
        (
            request_id,
            ts,
            int(customer_id),
            experiment,
            arm,
            int(pid),
            rank,
            kind,
            float(score),
            float(discount),
        )
        for rank, (pid, kind, score, discount) in enumerate(offers, start=1)
    ]


class EventLog:
    """Append-only exposure and event log.

    Parameters
    ----------
    path : the SQLite file (created with its tables if missing).
    synchronous : ``"NORMAL"`` or ``"FULL"`` (see the module docstring).
    busy_timeout_ms : how long a writer waits for another process's write lock.

    The ``append_*`` methods write synchronously in the caller's thread; the ``*_async``
    methods queue the write for the writer thread and resolve when it has committed.
    """

    def __init__(self, path: str | Path, synchronous: str = "NORMAL", busy_timeout_ms: int = 5000):
        self.path = Path(path)
        self.synchronous = synchronous.upper()
        self.busy_timeout_ms = busy_timeout_ms
        self._conn = connect(self.path, self.synchronous, busy_timeout_ms)
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ synchronous writes

    def append_exposures(self, rows: Sequence[tuple]) -> None:
        """Write the exposure rows of one response in one transaction."""
        if not rows:
            return
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(_INSERT_EXPOSURE, rows)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def append_event(
        self,
        request_id: str,
        customer_id: int,
        product_id: int,
        type: str,
        value: float | None = None,
        ts: str | None = None,
    ) -> int:
        """Write one event; returns its ``event_id``."""
        if type not in EVENT_TYPES:
            raise ValueError(
                f"unknown event type {type!r}; expected one of {', '.join(EVENT_TYPES)}"
            )
        with self._lock:
            cur = self._conn.execute(
                _INSERT_EVENT,
                (request_id, ts or now_iso(), int(customer_id), int(product_id), type, value),
            )
            return int(cur.lastrowid)

    # ------------------------------------------------------------------ group commit

    def _ensure_writer(self) -> queue.SimpleQueue:
        if self._thread is None or not self._thread.is_alive():
            self._queue = queue.SimpleQueue()
            self._thread = threading.Thread(
                target=self._writer, name="eventlog-writer", daemon=True
            )
            self._thread.start()
        return self._queue

    def _writer(self) -> None:
        q = self._queue
        conn = connect(self.path, self.synchronous, self.busy_timeout_ms)
        try:
            while True:
                job = q.get()
                if job is _STOP:
                    return
                batch = [job]
                stop = False
                while len(batch) < _MAX_BATCH:
                    try:
                        nxt = q.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is _STOP:
                        stop = True
                        break
                    batch.append(nxt)
                self._commit(conn, batch)
                if stop:
                    return
        finally:
            conn.close()

    @staticmethod
    def _commit(conn: sqlite3.Connection, batch: list) -> None:
        results = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for kind, payload, _fut, _loop in batch:
                    if kind == "exposures":
                        conn.executemany(_INSERT_EXPOSURE, payload)
                        results.append(len(payload))
                    else:
                        results.append(int(conn.execute(_INSERT_EVENT, payload).lastrowid))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except Exception as exc:  # nothing in the batch is acknowledged
            logger.exception("event log write of %d jobs failed", len(batch))
            for _kind, _payload, fut, loop in batch:
                loop.call_soon_threadsafe(_set_exception, fut, exc)
            return
        for (_kind, _payload, fut, loop), res in zip(batch, results, strict=True):
            loop.call_soon_threadsafe(_set_result, fut, res)

    async def append_exposures_async(self, rows: Sequence[tuple]) -> None:
        """Queue one response's exposures; returns once they are committed."""
        if not rows:
            return
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._ensure_writer().put(("exposures", rows, fut, loop))
        await fut

    async def append_event_async(
        self,
        request_id: str,
        customer_id: int,
        product_id: int,
        type: str,
        value: float | None = None,
        ts: str | None = None,
    ) -> int:
        """Queue one event; returns its ``event_id`` once committed."""
        if type not in EVENT_TYPES:
            raise ValueError(
                f"unknown event type {type!r}; expected one of {', '.join(EVENT_TYPES)}"
            )
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        payload = (request_id, ts or now_iso(), int(customer_id), int(product_id), type, value)
        self._ensure_writer().put(("event", payload, fut, loop))
        return await fut

    # ------------------------------------------------------------------ reading, erasing, closing

    def read_exposures(self) -> pd.DataFrame:
        with self._lock:
            return pd.read_sql_query(
                f"SELECT {', '.join(EXPOSURE_COLUMNS)} FROM exposures ORDER BY rowid", self._conn
            )

    def read_events(self) -> pd.DataFrame:
        with self._lock:
            return pd.read_sql_query(
                f"SELECT {', '.join(EVENT_COLUMNS)} FROM events ORDER BY event_id", self._conn
            )

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {
                t: int(self._conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0])
                for t in ("exposures", "events")
            }

    def forget(self, customer_id: int) -> dict[str, int]:
        """Delete every exposure and event of a customer; returns the rows removed per table."""
        out = {}
        with self._lock:
            # overwrite the deleted content instead of leaving it in free pages
            self._conn.execute("PRAGMA secure_delete=ON")
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for table in ("exposures", "events"):
                    out[table] = self._conn.execute(
                        f"DELETE FROM {table} WHERE customer_id = ?", (int(customer_id),)
                    ).rowcount
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            # the deleted rows must not linger in the WAL or free pages
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return out

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout=10)
        self._thread = None
        with self._lock:
            self._conn.close()


def _set_result(fut: asyncio.Future, value) -> None:
    if not fut.done():
        fut.set_result(value)


def _set_exception(fut: asyncio.Future, exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


def read_log(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(exposures, events)`` of the log at ``path`` (read-only helper for analysis)."""
    conn = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)
    try:
        exp = pd.read_sql_query(
            f"SELECT {', '.join(EXPOSURE_COLUMNS)} FROM exposures ORDER BY rowid", conn
        )
        ev = pd.read_sql_query(
            f"SELECT {', '.join(EVENT_COLUMNS)} FROM events ORDER BY event_id", conn
        )
    finally:
        conn.close()
    return exp, ev
