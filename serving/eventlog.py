"""The durable exposure and event log (SQLite in WAL mode) read by the campaign analysis.

Schema (kept exactly; the campaign analysis reads it)::

    exposures(request_id TEXT, ts TEXT, customer_id INTEGER, experiment TEXT, arm TEXT,
              product_id INTEGER, rank INTEGER, kind TEXT, score REAL, discount REAL)
    events(event_id INTEGER PRIMARY KEY, request_id TEXT, ts TEXT, customer_id INTEGER,
           product_id INTEGER, type TEXT, value REAL)

``ts`` is ISO 8601 in UTC with milliseconds. One served offer list is one transaction of
``n`` exposure rows. The tables have no secondary indexes: every commit then writes one
page per table, and the readers (campaign analysis, erasure) scan anyway.

Durability: a write is acknowledged only once it is durable against the death of the
server process (SIGKILL, OOM killer, segfault).

* ``synchronous=NORMAL`` (default). Events are committed inline (the commit has been
  ``write()``-n to the WAL before it returns). Exposures -- ten rows per request, the hot
  path -- go first to an append-only *journal* file of the worker process
  (``<log>.journal/exposures-<pid>-<id>.jsonl``), one ``write()`` of one JSON array
  ``[request_id, ts, customer_id, experiment, arm, [[product_id, kind, score, discount], ...]]``
  and ``",\n"`` per response (~20 us, against ~70 us median and several ms at the 99th percentile for a
  SQLite commit on this machine, whose tail comes from WAL growth and checkpoints). Once
  ``write()`` returns the line is in the kernel's page cache: it survives the process.
  A background thread moves new journal lines into the ``exposures`` table every
  ``flush_interval`` seconds, in one transaction that also records how far the journal
  was moved (table ``journal_progress``), so each line lands exactly once. A journal
  left by a dead process is moved by the next process that opens the log (the service at
  start-up, ``tailor forget``), found by a free ``flock``. Readers of the table therefore
  lag the service by at most ``flush_interval`` (zero once it has stopped). A journal is
  replaced by a fresh file at 64 MB, and on request of ``forget`` (erasure), so moved lines
  do not pile up on disk.
  What is lost on an OS crash or power cut: the last commits and journal lines not yet
  flushed to disk by the kernel.
* ``synchronous=FULL`` also fsyncs every commit (about 5 ms here), for power-cut
  durability; then both kinds of writes go through one writer thread per process that
  commits whatever is queued in one transaction (group commit), so the fsync costs
  latency but not throughput.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import math
import os
import queue
import sqlite3
import sys
import threading
import time
import uuid
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
CREATE TABLE IF NOT EXISTS journal_progress(journal TEXT PRIMARY KEY, moved INTEGER);
"""
#: Moves a JSON array of journal lines into the table, in SQLite's C code. A line is one served
#: list: ``[request_id, ts, customer_id, experiment, arm, [[product_id, kind, score, discount], ...]]``
#: with the offers in rank order.
_MOVE_JOURNAL = (
    # the line's own fields are extracted once per line (a materialised CTE), not once per offer
    "WITH lines AS MATERIALIZED (SELECT json_extract(value, '$[0]') AS rid, json_extract(value, '$[1]') AS ts, "
    "json_extract(value, '$[2]') AS cid, json_extract(value, '$[3]') AS exp, json_extract(value, '$[4]') AS arm, "
    "json_extract(value, '$[5]') AS offers FROM json_each(?)) "
    f"INSERT INTO exposures({', '.join(EXPOSURE_COLUMNS)}) "
    "SELECT rid, ts, cid, exp, arm, json_extract(o.value, '$[0]'), o.key + 1, json_extract(o.value, '$[1]'), "
    "json_extract(o.value, '$[2]'), json_extract(o.value, '$[3]') FROM lines, json_each(lines.offers) AS o"
)
JOURNAL_SUFFIX = ".journal"
_INSERT_EXPOSURE = f"INSERT INTO exposures({', '.join(EXPOSURE_COLUMNS)}) VALUES ({', '.join('?' * len(EXPOSURE_COLUMNS))})"
_INSERT_EVENT = "INSERT INTO events(request_id, ts, customer_id, product_id, type, value) VALUES (?, ?, ?, ?, ?, ?)"
_MAX_BATCH = 1024
# SQLite allows 32766 bound parameters per statement; 10 per row
_MAX_ROWS_PER_STATEMENT = 1000
_MULTI_INSERT: dict[int, str] = {}


def _multi_insert(n: int) -> str:
    sql = _MULTI_INSERT.get(n)
    if sql is None:
        one = f"({', '.join('?' * len(EXPOSURE_COLUMNS))})"
        sql = _MULTI_INSERT[n] = (
            f"INSERT INTO exposures({', '.join(EXPOSURE_COLUMNS)}) VALUES {', '.join([one] * n)}"
        )
    return sql


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


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def offers_json(offers: Iterable[tuple[int, str, float, float]]) -> bytes:
    """``[[product_id, kind, score, discount], ...]`` as JSON (non-finite numbers as null)."""
    return json.dumps(
        [[int(p), k, _finite(float(s)), _finite(float(d))] for p, k, s, d in offers],
        separators=(",", ":"),
    ).encode()


# --------------------------------------------------------------------------- the exposure journal


def journal_dir(log_path: str | Path) -> Path:
    return Path(str(log_path) + JOURNAL_SUFFIX)


def move_journal(conn: sqlite3.Connection, path: Path) -> int:
    """Move the complete lines of one journal file not yet moved into ``exposures``; returns the lines moved."""
    row = conn.execute(
        "SELECT moved FROM journal_progress WHERE journal = ?", (path.name,)
    ).fetchone()
    start = row[0] if row else 0
    try:
        with open(path, "rb") as fh:
            fh.seek(start)
            data = fh.read()
    except FileNotFoundError:
        return 0
    end = data.rfind(b"\n") + 1  # a line cut short by a crash has no newline yet
    if end == 0:
        return 0
    # lines end with ",\n", so the chunk is already the inside of a JSON array: no splitting
    # and joining in Python (this thread holds the GIL for as little as possible)
    chunk = data[:end]
    n_lines = chunk.count(b"\n")
    payload = "[" + chunk.rstrip(b",\n").decode("utf-8", "replace") + "]"
    conn.execute("BEGIN IMMEDIATE")
    try:
        try:
            conn.execute(_MOVE_JOURNAL, (payload,))
        except sqlite3.Error:
            # a malformed line must not block the journal forever: move the others, log it
            for i, line in enumerate(chunk.split(b"\n")[:-1]):
                try:
                    conn.execute(
                        _MOVE_JOURNAL, ("[" + line.rstrip(b",").decode("utf-8", "replace") + "]",)
                    )
                except sqlite3.Error as exc:
                    logger.error(
                        "skipping malformed line %d of exposure journal %s: %s", i, path, exc
                    )
        conn.execute(
            "INSERT OR REPLACE INTO journal_progress(journal, moved) VALUES (?, ?)",
            (path.name, start + end),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return n_lines


def _forget_journal(conn: sqlite3.Connection, path: Path) -> None:
    path.unlink(missing_ok=True)
    conn.execute("DELETE FROM journal_progress WHERE journal = ?", (path.name,))


#: Journals are created as ``.<name>.<TMP_SUFFIX>`` and renamed once locked.
TMP_SUFFIX = "creating"
STALE_TMP_SECONDS = 60.0


def recover_journals(log_path: str | Path, conn: sqlite3.Connection | None = None) -> int:
    """Move and delete the journals of processes that are gone (their ``flock`` is free); returns lines moved."""
    d = journal_dir(log_path)
    if not d.exists():
        return 0
    own = conn is None
    conn = conn or connect(log_path)
    moved = 0
    try:
        for path in sorted(d.glob("*.jsonl")):
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live process owns it
                moved += move_journal(conn, path)
                _forget_journal(conn, path)
            finally:
                os.close(fd)
        for tmp in d.glob(f".*.{TMP_SUFFIX}"):  # left by a crash between create and rename
            try:
                if time.time() - tmp.stat().st_mtime > STALE_TMP_SECONDS:
                    tmp.unlink()
            except FileNotFoundError:
                pass
        known = {p.name for p in d.glob("*.jsonl")}
        for (name,) in conn.execute("SELECT journal FROM journal_progress").fetchall():
            if name not in known:
                conn.execute("DELETE FROM journal_progress WHERE journal = ?", (name,))
    finally:
        if own:
            conn.close()
    if moved:
        logger.info(
            "moved %d exposure journal lines left by stopped processes into %s", moved, log_path
        )
    return moved


#: Scheduling niceness of the thread that moves journals into the table. The move is a burst of
#: SQLite work (about 3 us per exposure row, plus WAL checkpoints) that would otherwise take CPU
#: from the thread serving requests once per flush -- the 99th-percentile latency at saturation.
#: Niced, it runs on idle CPU; under full load readers of the table lag a little more, nothing is lost.
MOVER_NICE = 19


def lower_thread_priority(nice: int) -> bool:
    """Give the calling thread (not the process) niceness ``nice``; Linux only, True if done.

    On Linux ``setpriority(PRIO_PROCESS, tid)`` applies to one thread; elsewhere it would renice
    the whole process, so nothing is done.
    """
    if not nice or not sys.platform.startswith("linux"):
        return False
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, max(os.getpriority(os.PRIO_PROCESS, tid), nice))
    except OSError as exc:  # e.g. forbidden by a seccomp profile: only slower, not wrong
        logger.debug("could not lower the priority of thread %s: %s", threading.get_ident(), exc)
        return False
    return True


#: A journal whose lines have all been moved is replaced by a fresh file once it holds this many
#: bytes, so a long-running worker's journal does not grow without bound (~200 bytes a request).
ROTATE_BYTES = 64 << 20
#: A file in the journal folder whose content changes to ask every live journal to rotate
#: (move its lines, delete its file, start a new one): erasure must not leave a customer's
#: exposures in a journal file.
ROTATE_REQUEST = ".rotate"


def _open_journal(d: Path) -> tuple[Path, int]:
    """A new journal file of this process in ``d``, locked; returns its path and descriptor."""
    path = d / f"exposures-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
    # created under a name recovery ignores, locked, then renamed: a journal is never seen
    # unlocked, so another process's recovery cannot take it for a dead one and delete it
    tmp = d / f".{path.name}.{TMP_SUFFIX}"
    fd = os.open(tmp, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)  # marks the journal as owned by a live process
    os.rename(tmp, path)
    return path, fd


def _rotate_token(d: Path) -> str:
    try:
        return (d / ROTATE_REQUEST).read_text()
    except FileNotFoundError:
        return ""


def rotate_journals(
    log_path: str | Path, timeout: float = 10.0, exclude: Iterable[str] = ()
) -> bool:
    """Ask live processes to rotate their journals and wait until every journal file present now
    (but ``exclude``) is gone, i.e. moved into the table and deleted; True if done in time."""
    d = journal_dir(log_path)
    if not d.exists():
        return True
    before = {p.name for p in d.glob("*.jsonl")} - set(exclude)
    tmp = d / f"{ROTATE_REQUEST}.{uuid.uuid4().hex[:8]}"
    tmp.write_text(uuid.uuid4().hex)
    os.replace(tmp, d / ROTATE_REQUEST)
    deadline = time.monotonic() + timeout
    while True:
        left = before & {p.name for p in d.glob("*.jsonl")}
        if not left:
            return True
        if time.monotonic() > deadline:
            logger.warning("journals not rotated after %.0f s: %s", timeout, sorted(left))
            return False
        time.sleep(0.05)


class ExposureJournal:
    """This process's append-only exposure journal and the thread that moves it into SQLite.

    The file is replaced by a fresh one (:meth:`rotate`) when it reaches :data:`ROTATE_BYTES`
    or when :func:`rotate_journals` asks for it.
    """

    def __init__(
        self,
        log_path: str | Path,
        synchronous: str = "NORMAL",
        busy_timeout_ms: int = 5000,
        flush_interval: float = 0.25,
        nice: int = MOVER_NICE,
    ):
        self.log_path = Path(log_path)
        self.flush_interval = flush_interval
        self.nice = nice
        d = journal_dir(self.log_path)
        d.mkdir(parents=True, exist_ok=True)
        self._token = _rotate_token(d)  # requests made before this journal existed are met
        self.path, self._fd = _open_journal(d)
        self._conn = connect(self.log_path, synchronous, busy_timeout_ms)
        self._move_lock = threading.Lock()
        self._append_lock = threading.Lock()  # held only by a write and by the swap in rotate
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="exposure-journal", daemon=True)
        self._thread.start()

    def append(self, rows: Sequence[tuple]) -> None:
        """Journal the exposure rows of one response (same request, in rank order)."""
        if not rows:
            return
        r0 = rows[0]
        offers = json.dumps(
            [[r[5], r[7], r[8], r[9]] for r in rows], separators=(",", ":")
        ).encode()
        self.append_list(r0[0], r0[1], r0[2], r0[3], r0[4], offers)

    def append_list(
        self,
        request_id: str,
        ts: str,
        customer_id: int,
        experiment: str,
        arm: str,
        offers_json: bytes,
    ) -> None:
        """One ``write()`` of one line: durable against the process dying once it returns.

        ``offers_json`` is the JSON array ``[[product_id, kind, score, discount], ...]`` in rank
        order (the service caches it per offer list).
        """
        head = json.dumps(
            [request_id, ts, int(customer_id), experiment, arm], separators=(",", ":")
        ).encode()
        line = head[:-1] + b"," + offers_json + b"],\n"
        with self._append_lock:
            n = os.write(self._fd, line)
        if n != len(line):  # regular files do not write short except when the disk is full
            raise OSError(
                f"short write to the exposure journal {self.path} ({n} of {len(line)} bytes)"
            )

    def flush(self) -> int:
        """Move what is in the journal into the table now; returns lines moved."""
        with self._move_lock:
            return move_journal(self._conn, self.path)

    def rotate(self) -> int:
        """Write to a fresh journal file from now on; move the old one's lines and delete it.

        Returns the lines moved. If the move fails the old file is left, unlocked, for the
        recovery of the next process that opens the log.
        """
        with self._move_lock:
            path, fd = _open_journal(self.path.parent)
            with self._append_lock:
                old_path, old_fd = self.path, self._fd
                self.path, self._fd = path, fd
            try:
                n = move_journal(self._conn, old_path)
                _forget_journal(self._conn, old_path)
            finally:
                os.close(old_fd)
        return n

    def _rotation_due(self) -> bool:
        token = _rotate_token(self.path.parent)
        if token != self._token:
            self._token = token
            return True
        with self._move_lock:
            return os.fstat(self._fd).st_size >= ROTATE_BYTES

    def _run(self) -> None:
        lower_thread_priority(self.nice)
        while not self._stop.wait(self.flush_interval):
            try:
                self.flush()
                if self._rotation_due():
                    self.rotate()
            except Exception:  # keep the lines in the journal; the next round or restart moves them
                logger.exception("moving the exposure journal %s failed", self.path)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        with self._move_lock:
            move_journal(self._conn, self.path)
            _forget_journal(self._conn, self.path)
            os.close(self._fd)
            self._conn.close()


class EventLog:
    """Append-only exposure and event log.

    Parameters
    ----------
    path : the SQLite file (created with its tables if missing).
    synchronous : ``"NORMAL"`` or ``"FULL"`` (see the module docstring).
    busy_timeout_ms : how long a writer waits for another process's write lock.

    group_commit : whether the ``*_async`` methods hand writes to the writer thread (default:
        only with ``FULL``, where a commit waits for an fsync) or write inline.
    journal : with ``NORMAL`` and no group commit, ``append_exposures_async`` writes to this
        process's exposure journal (see the module docstring). The service turns it on.
    flush_interval : seconds between moves of the journal into the table.

    The ``append_*`` methods write synchronously in the caller's thread; the ``*_async``
    methods return once the write has committed.
    """

    def __init__(
        self,
        path: str | Path,
        synchronous: str = "NORMAL",
        busy_timeout_ms: int = 5000,
        group_commit: bool | None = None,
        journal: bool = False,
        flush_interval: float = 0.25,
    ):
        self.path = Path(path)
        self.synchronous = synchronous.upper()
        #: the async methods queue for the writer thread (True) or write inline (False)
        self.group_commit = self.synchronous == "FULL" if group_commit is None else group_commit
        self.busy_timeout_ms = busy_timeout_ms
        self._conn = connect(self.path, self.synchronous, busy_timeout_ms)
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue | None = None
        self._thread: threading.Thread | None = None
        recover_journals(self.path, self._conn)
        self.journal: ExposureJournal | None = None
        if journal and not self.group_commit:
            # checkpoints run on the journal thread's connection, never in a request
            self._conn.execute("PRAGMA wal_autocheckpoint=0")
            self.journal = ExposureJournal(
                self.path, self.synchronous, busy_timeout_ms, flush_interval
            )

    # ------------------------------------------------------------------ synchronous writes

    def append_exposures(self, rows: Sequence[tuple]) -> None:
        """Write the exposure rows of one response in one transaction (one multi-row INSERT)."""
        if not rows:
            return
        if len(rows) > _MAX_ROWS_PER_STATEMENT:
            with self._lock:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    self._conn.executemany(_INSERT_EXPOSURE, rows)
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
            return
        sql = _multi_insert(len(rows))
        params = [v for row in rows for v in row]
        with self._lock:
            self._conn.execute(sql, params)  # a single statement is its own transaction

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
        """Write one response's exposures; returns once they are durable (journal or commit)."""
        if not rows:
            return
        if self.journal is not None:
            return self.journal.append(rows)
        if not self.group_commit:
            return self.append_exposures(rows)
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
        """Write one event; returns its ``event_id`` once committed."""
        if not self.group_commit:
            return self.append_event(request_id, customer_id, product_id, type, value, ts)
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

    async def append_list_async(
        self,
        request_id: str,
        ts: str,
        customer_id: int,
        experiment: str,
        arm: str,
        offers: Sequence[tuple[int, str, float, float]],
        encoded: bytes | None = None,
    ) -> None:
        """Log one served list: ``offers`` is ``(product_id, kind, score, discount)`` in rank order.

        ``encoded``, the same as :func:`offers_json` made it, saves encoding it again (the
        service caches it per offer list).
        """
        if self.journal is not None:
            if encoded is None:
                encoded = offers_json(offers)
            return self.journal.append_list(request_id, ts, customer_id, experiment, arm, encoded)
        await self.append_exposures_async(
            exposure_rows(request_id, ts, customer_id, experiment, arm, offers)
        )

    def flush(self) -> None:
        """Move this process's journal into the table now (readers otherwise lag by ``flush_interval``)."""
        if self.journal is not None:
            self.journal.flush()

    def read_exposures(self) -> pd.DataFrame:
        self.flush()
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
        self.flush()
        with self._lock:
            return {
                t: int(self._conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0])
                for t in ("exposures", "events")
            }

    def forget(self, customer_id: int) -> dict[str, int]:
        """Delete every exposure and event of a customer; returns the rows removed per table.

        Journals are moved into the table and their files deleted first (this process's, dead
        processes', and live ones', which are asked to rotate and waited for), so no exposure
        of the customer is left behind in a journal file.
        """
        own: tuple[str, ...] = ()
        if self.journal is not None:
            self.journal.rotate()
            own = (self.journal.path.name,)
        recover_journals(self.path)
        rotate_journals(self.path, exclude=own)
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
        if self.journal is not None:
            self.journal.close()
            self.journal = None
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
