"""The exposure/event log: exact schema, WAL, group commit, erasure."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import threading
import time

import pytest

from serving.eventlog import EventLog, exposure_rows, read_log


def _columns(path, table):
    conn = sqlite3.connect(path)
    try:
        return [(r[1], r[2]) for r in conn.execute(f"PRAGMA table_info({table})")]
    finally:
        conn.close()


def test_schema_is_exactly_the_agreed_one(tmp_path):
    log = EventLog(tmp_path / "log.sqlite")
    log.close()
    assert _columns(tmp_path / "log.sqlite", "exposures") == [
        ("request_id", "TEXT"),
        ("ts", "TEXT"),
        ("customer_id", "INTEGER"),
        ("experiment", "TEXT"),
        ("arm", "TEXT"),
        ("product_id", "INTEGER"),
        ("rank", "INTEGER"),
        ("kind", "TEXT"),
        ("score", "REAL"),
        ("discount", "REAL"),
    ]
    assert _columns(tmp_path / "log.sqlite", "events") == [
        ("event_id", "INTEGER"),
        ("request_id", "TEXT"),
        ("ts", "TEXT"),
        ("customer_id", "INTEGER"),
        ("product_id", "INTEGER"),
        ("type", "TEXT"),
        ("value", "REAL"),
    ]


@pytest.mark.parametrize("sync", ["NORMAL", "FULL"])
def test_wal_mode_and_sync_round_trip(tmp_path, sync):
    path = tmp_path / "log.sqlite"
    log = EventLog(path, synchronous=sync)
    assert log._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert log._conn.execute("PRAGMA synchronous").fetchone()[0] == {"NORMAL": 1, "FULL": 2}[sync]
    rows = exposure_rows(
        "r1",
        "2017-03-01T10:00:00.000+00:00",
        7,
        "default",
        "personalised",
        [(101, "replenish", 0.9, 0.0), (302, "discover", 0.3, 0.2)],
    )
    log.append_exposures(rows)
    eid = log.append_event("r1", 7, 101, "clicked")
    eid2 = log.append_event("r1", 7, 101, "purchased", 3.5)
    log.close()
    exp, ev = read_log(path)
    assert exp["rank"].tolist() == [1, 2] and exp["product_id"].tolist() == [101, 302]
    assert exp["discount"].tolist() == [0.0, 0.2]
    assert ev["event_id"].tolist() == [eid, eid2] and eid2 == eid + 1
    assert ev["value"].tolist()[1] == 3.5
    assert ev["ts"].str.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00").all()


def test_unknown_event_type_is_refused(tmp_path):
    log = EventLog(tmp_path / "log.sqlite")
    with pytest.raises(ValueError, match="unknown event type 'bought'"):
        log.append_event("r", 1, 1, "bought")
    log.close()


def test_group_commit_writes_every_acknowledged_row(tmp_path):
    path = tmp_path / "log.sqlite"
    log = EventLog(path, synchronous="FULL")
    assert log.group_commit

    async def main():
        async def one(i):
            rows = exposure_rows(
                f"r{i}", "t", i, "e", "a", [(j, "discover", 0.1, 0.0) for j in range(10)]
            )
            await log.append_exposures_async(rows)
            return await log.append_event_async(f"r{i}", i, 1, "viewed")

        return await asyncio.gather(*(one(i) for i in range(300)))

    ids = asyncio.run(main())
    assert len(set(ids)) == 300
    log.close()
    exp, ev = read_log(path)
    assert len(exp) == 3000 and exp.groupby("request_id").size().eq(10).all()
    assert sorted(ev["event_id"]) == sorted(ids)


def test_failed_commit_is_not_acknowledged(tmp_path):
    log = EventLog(tmp_path / "log.sqlite")
    log._conn.execute(
        "CREATE TRIGGER fail BEFORE INSERT ON exposures BEGIN SELECT RAISE(ABORT, 'simulated write failure'); END"
    )

    async def main():
        await log.append_exposures_async(
            exposure_rows("r", "t", 1, "e", "a", [(1, "discover", 0.1, 0.0)])
        )

    with pytest.raises(sqlite3.Error, match="simulated write failure"):
        asyncio.run(main())
    assert log.counts()["exposures"] == 0
    log.close()


def test_forget_removes_only_that_customer(tmp_path):
    log = EventLog(tmp_path / "log.sqlite")
    for c in (1, 2):
        log.append_exposures(
            exposure_rows(
                f"r{c}", "t", c, "e", "a", [(5, "discover", 0.1, 0.0), (6, "discover", 0.1, 0.0)]
            )
        )
        log.append_event(f"r{c}", c, 5, "clicked")
    assert log.forget(1) == {"exposures": 2, "events": 1}
    assert log.forget(1) == {"exposures": 0, "events": 0}
    assert log.counts() == {"exposures": 2, "events": 1}
    log.close()


def test_inline_async_writes_with_normal(tmp_path):
    log = EventLog(tmp_path / "log.sqlite")
    assert not log.group_commit

    async def main():
        await log.append_exposures_async(
            exposure_rows("r", "t", 1, "e", "a", [(1, "discover", 0.1, 0.0)])
        )
        return await log.append_event_async("r", 1, 1, "viewed")

    assert asyncio.run(main()) == 1
    assert log._thread is None and log.counts() == {"exposures": 1, "events": 1}
    log.close()


def test_journal_is_moved_exactly_once(tmp_path):
    path = tmp_path / "log.sqlite"
    log = EventLog(path, journal=True, flush_interval=60)  # only explicit flushes in this test

    async def write(i):
        await log.append_exposures_async(
            exposure_rows(
                f"r{i}", "t", i, "e", "a", [(7, "discover", 0.5, 0.1), (8, "replenish", 0.25, 0.0)]
            )
        )

    async def main():
        for i in range(5):
            await write(i)

    asyncio.run(main())
    assert read_log(path)[0].empty  # still in the journal
    log.flush()
    log.flush()  # nothing new: no duplicates
    exp = read_log(path)[0]
    assert len(exp) == 10 and exp["rank"].tolist() == [1, 2] * 5
    assert exp.iloc[0].tolist() == ["r0", "t", 0, "e", "a", 7, 1, "discover", 0.5, 0.1]
    asyncio.run(write(99))
    log.close()  # a clean stop moves the rest and removes the journal
    assert len(read_log(path)[0]) == 12
    assert list((tmp_path / "log.sqlite.journal").iterdir()) == []


def test_journal_of_a_dead_process_is_recovered(tmp_path):
    import json

    path = tmp_path / "log.sqlite"
    EventLog(path).close()
    d = tmp_path / "log.sqlite.journal"
    d.mkdir()
    rows = [
        [f"r{i}", "t", i, "e", "a", [[5, "discover", 0.1, 0.0]]] for i in range(3)
    ]  # journal lines
    orphan = d / "exposures-1-dead.jsonl"
    # two complete lines, then a line the crash cut short
    orphan.write_bytes(
        b"".join(json.dumps(r).encode() + b",\n" for r in rows[:2])
        + json.dumps(rows[2]).encode()[:20]
    )
    live = EventLog(path, journal=True, flush_interval=60)  # opening the log recovers the orphan
    exp = read_log(path)[0]
    assert exp["request_id"].tolist() == ["r0", "r1"]
    assert not orphan.exists()
    assert [p.name for p in d.iterdir()] == [
        live.journal.path.name
    ]  # its own journal is left alone
    live.close()


def test_forget_reaches_exposures_still_in_the_journal(tmp_path):
    path = tmp_path / "log.sqlite"
    log = EventLog(path, journal=True, flush_interval=60)

    async def main():
        for c in (1, 2):
            await log.append_exposures_async(
                exposure_rows(f"r{c}", "t", c, "e", "a", [(5, "discover", 0.1, 0.0)])
            )

    asyncio.run(main())
    # a second live process (another worker) with the customer in its journal file
    other = EventLog(path, journal=True, flush_interval=0.05)
    asyncio.run(
        other.append_exposures_async(exposure_rows("r3", "t", 1, "e", "a", [(6, "x", 0.1, 0.0)]))
    )
    before = {p.name for p in (tmp_path / "log.sqlite.journal").glob("*.jsonl")}
    assert log.forget(1) == {"exposures": 2, "events": 0}
    assert log.counts() == {"exposures": 1, "events": 0}
    # no journal file that held the customer is left on disk: both were replaced
    after = {p.name for p in (tmp_path / "log.sqlite.journal").glob("*.jsonl")}
    assert len(before) == 2 and len(after) == 2 and not before & after
    for f in (tmp_path / "log.sqlite.journal").glob("*.jsonl"):
        assert b'"r1"' not in f.read_bytes() and b'"r3"' not in f.read_bytes()
    # the fresh journals take new exposures and lose none
    asyncio.run(main())
    other.close()
    log.close()
    exp = read_log(path)[0]
    assert sorted(exp["request_id"]) == ["r1", "r2", "r2"]


def test_a_full_journal_is_replaced_by_a_fresh_file(tmp_path, monkeypatch):
    import serving.eventlog as ev

    monkeypatch.setattr(ev, "ROTATE_BYTES", 500)
    path = tmp_path / "log.sqlite"
    log = EventLog(path, journal=True, flush_interval=0.02)
    first = log.journal.path
    for i in range(20):  # ~70 bytes a line
        log.journal.append(exposure_rows(f"r{i}", "t", i, "e", "a", [(5, "d", 0.1, 0.0)]))
    deadline = time.monotonic() + 10
    while log.journal.path == first and time.monotonic() < deadline:
        time.sleep(0.02)
    assert log.journal.path != first and not first.exists()
    for i in range(20, 25):
        log.journal.append(exposure_rows(f"r{i}", "t", i, "e", "a", [(5, "d", 0.1, 0.0)]))
    log.close()
    exp = read_log(path)[0]
    assert exp["request_id"].tolist() == [f"r{i}" for i in range(25)]  # each once, in order


def test_journal_survives_non_finite_scores_and_malformed_lines(tmp_path):
    path = tmp_path / "log.sqlite"
    log = EventLog(path, journal=True, flush_interval=60)

    async def main():
        await log.append_list_async("r1", "t", 1, "e", "a", [(5, "discover", float("nan"), 0.0)])

    asyncio.run(main())
    with open(log.journal.path, "ab") as fh:
        fh.write(b"this is not json,\n")
    asyncio.run(log.append_list_async("r2", "t", 2, "e", "a", [(6, "replenish", 0.5, 0.1)]))
    log.flush()
    exp = read_log(path)[0]
    assert exp["request_id"].tolist() == ["r1", "r2"] and exp["score"].isna().tolist() == [
        True,
        False,
    ]
    log.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux's")
def test_journal_mover_runs_niced_without_renicing_the_process(tmp_path):
    from serving.eventlog import MOVER_NICE

    before = os.getpriority(os.PRIO_PROCESS, 0)
    log = EventLog(tmp_path / "events.sqlite", journal=True, flush_interval=0.05)
    try:
        tid = log.journal._thread.native_id
        deadline = time.monotonic() + 5
        while os.getpriority(os.PRIO_PROCESS, tid) != max(before, MOVER_NICE):
            assert time.monotonic() < deadline, "the mover thread was not niced"
            time.sleep(0.01)
        assert os.getpriority(os.PRIO_PROCESS, 0) == before  # the serving thread is untouched
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before
    finally:
        log.close()


def test_recovery_while_a_journal_is_being_created_loses_nothing(tmp_path, monkeypatch):
    """Another worker's start-up recovery runs between the journal's creation and its lock
    (the moment a crash-free race can hit): the new journal must survive and be moved."""
    import fcntl

    import serving.eventlog as el

    path = tmp_path / "log.sqlite"
    EventLog(path).close()  # the tables exist, as when a first worker has started
    real = fcntl.flock

    def flock_after_a_rival_recovery(fd, op):
        if op == fcntl.LOCK_EX:  # the journal's own blocking lock (recovery uses LOCK_NB)
            el.recover_journals(path)
        return real(fd, op)

    monkeypatch.setattr(el.fcntl, "flock", flock_after_a_rival_recovery)
    log = EventLog(path, journal=True, flush_interval=60)
    monkeypatch.setattr(el.fcntl, "flock", real)
    assert log.journal.path.exists()

    async def main():
        for c in (1, 2, 3):
            await log.append_exposures_async(
                exposure_rows(f"r{c}", "t", c, "e", "a", [(5, "discover", 0.1, 0.0)])
            )

    asyncio.run(main())
    log.flush()
    assert log.counts()["exposures"] == 3
    log.close()


def test_recovery_removes_only_stale_half_created_journals(tmp_path):
    from serving.eventlog import TMP_SUFFIX, journal_dir, recover_journals

    path = tmp_path / "log.sqlite"
    EventLog(path).close()
    d = journal_dir(path)
    d.mkdir(exist_ok=True)
    fresh, stale = d / f".a.jsonl.{TMP_SUFFIX}", d / f".b.jsonl.{TMP_SUFFIX}"
    fresh.write_bytes(b"")
    stale.write_bytes(b"")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    recover_journals(path)
    assert fresh.exists() and not stale.exists()
