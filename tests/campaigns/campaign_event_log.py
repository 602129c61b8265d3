"""A small SQLite event log in the serving layout, with known per-customer answers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

EXPOSURES = [
    # request_id, ts, customer_id, experiment, arm, product_id, rank, kind, score, discount
    ("r1", "2024-01-01T10:00:00+00:00", 1, "exp1", "control", 100, 1, "remind", 0.9, 0.0),
    ("r2", "2024-01-01T09:00:00+00:00", 2, "exp1", "offer", 100, 1, "remind", 0.8, 2.0),
    ("r2", "2024-01-01T09:00:00+00:00", 2, "exp1", "offer", 101, 2, "discover", 0.7, 1.5),
    ("r3", "2024-01-02T08:00:00+00:00", 3, "exp1", "offer", 101, 1, "discover", 0.6, 1.5),
    ("r4", "2024-01-03T08:00:00+00:00", 4, "exp1", "control", 100, 1, "remind", 0.5, 0.0),
    ("r4b", "2024-01-04T08:00:00+00:00", 4, "exp1", "offer", 100, 1, "remind", 0.5, 3.0),
    ("r5", "2024-02-01T08:00:00+00:00", 1, "exp2", "B", 102, 1, "remind", 0.4, 0.5),
]
EVENTS = [
    # event_id, request_id, ts, customer_id, product_id, type, value
    (1, None, "2023-12-31T12:00:00+00:00", 1, 100, "purchased", 99.0),  # before exposure: ignored
    (
        2,
        None,
        "2024-01-02T12:00:00+00:00",
        1,
        100,
        "purchased",
        20.0,
    ),  # control purchase, no request
    (3, "r2", "2024-01-01T09:05:00+00:00", 2, 100, "clicked", None),
    (4, "r2", "2024-01-01T09:10:00+00:00", 2, 100, "redeemed", 2.0),
    (5, "r2", "2024-01-01T09:10:00+00:00", 2, 100, "purchased", 10.0),
    (6, "r3", "2024-01-02T08:01:00+00:00", 3, 101, "viewed", None),
    (7, None, "2024-01-03T10:00:00+00:00", 3, 101, "redeemed", 1.5),  # matched on customer+product
    (8, "r4b", "2024-01-04T08:30:00+00:00", 4, 100, "clicked", None),
    (
        9,
        None,
        "2024-02-02T08:00:00+00:00",
        1,
        102,
        "purchased",
        5.0,
    ),  # after both experiments' exposures
    (10, None, "2024-01-05T08:00:00+00:00", 99, 100, "purchased", 7.0),  # never exposed
]


def make_event_log(path: Path, exposures=EXPOSURES, events=EVENTS) -> Path:
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute(
        "CREATE TABLE exposures(request_id TEXT, ts TEXT, customer_id INTEGER, experiment TEXT, arm TEXT,"
        " product_id INTEGER, rank INTEGER, kind TEXT, score REAL, discount REAL)"
    )
    con.execute(
        "CREATE TABLE events(event_id INTEGER, request_id TEXT, ts TEXT, customer_id INTEGER,"
        " product_id INTEGER, type TEXT, value REAL)"
    )
    con.executemany("INSERT INTO exposures VALUES (?,?,?,?,?,?,?,?,?,?)", exposures)
    con.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?)", events)
    con.commit()
    con.close()
    return path
