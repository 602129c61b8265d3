"""Inputs for campaign analysis: CSV / Parquet tables and the serving event log (SQLite).

The event log written by the offer service has two tables::

    exposures(request_id, ts, customer_id, experiment, arm, product_id, rank, kind, score, discount)
    events(event_id, request_id, ts, customer_id, product_id, type, value)
        -- type in viewed | clicked | redeemed | purchased

:func:`read_event_log` turns it into one row per (experiment, customer), the unit of
randomisation, ready for :func:`campaigns.analysis.analyze`.

Exposures the service wrote to its append-only journal (``<log>.journal/*.jsonl``, see
:mod:`serving.eventlog`) but had not yet moved into the ``exposures`` table -- left there when
the server was killed -- are read from the journal too, without modifying the log.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from contextlib import closing
from pathlib import Path

import numpy as np
import pandas as pd

from campaigns.analysis import CampaignDataError
from serving.eventlog import EXPOSURE_COLUMNS, journal_dir

logger = logging.getLogger(__name__)

EVENT_LOG_SUFFIXES = (".sqlite", ".sqlite3", ".db")
TABLE_SUFFIXES = (".csv", ".parquet", ".pq")
EVENT_LOG_METRICS = ("click", "conversion", "spend")

_EXPOSURE_COLUMNS = ("request_id", "ts", "customer_id", "experiment", "arm")
_EVENT_COLUMNS = ("request_id", "ts", "customer_id", "type")


def is_event_log(path: str | Path) -> bool:
    """Whether ``path`` names an SQLite event log (by suffix)."""
    return Path(path).suffix.lower() in EVENT_LOG_SUFFIXES


def read_input(
    path: str | Path, experiment: str | None = None, window_days: float | None = None
) -> pd.DataFrame:
    """Read a per-customer table (CSV / Parquet) or an event log (``.sqlite``/``.db``).

    Parameters
    ----------
    path : str or Path
        Input file.
    experiment : str, optional
        Keep only this experiment. Required for an event log holding several experiments;
        for a table it filters on an ``experiment`` column.
    window_days : float, optional
        Event log only: count outcomes within this many days of a customer's first exposure.

    Returns
    -------
    pandas.DataFrame
        One row per customer.

    Raises
    ------
    CampaignDataError
        Unknown file type, missing file, several experiments without ``experiment``.
    """
    path = Path(path)
    if not path.is_file():
        raise CampaignDataError(f"input file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if window_days is not None and suffix not in EVENT_LOG_SUFFIXES:
        raise CampaignDataError(
            f"a window (--window-days) applies to an event log only; {path.name!r} is a table"
            " whose outcomes are already counted"
        )
    if suffix in EVENT_LOG_SUFFIXES:
        df = read_event_log(path, experiment=experiment, window_days=window_days)
        found = sorted(df["experiment"].unique())
        if len(found) > 1:
            raise CampaignDataError(
                f"the event log holds {len(found)} experiments {found}: pick one with --experiment"
            )
        return df
    if suffix == ".csv":
        df = pd.read_csv(path)
    elif suffix in (".parquet", ".pq"):
        df = pd.read_parquet(path)
    else:
        raise CampaignDataError(
            f"cannot read {path.name!r}: expected one of {TABLE_SUFFIXES + EVENT_LOG_SUFFIXES}"
        )
    if experiment is not None:
        if "experiment" not in df.columns:
            raise CampaignDataError(
                f"--experiment given but {path.name!r} has no 'experiment' column"
            )
        present = sorted(df["experiment"].astype(str).unique())
        df = df[df["experiment"].astype(str) == experiment]
        if df.empty:
            raise CampaignDataError(
                f"experiment {experiment!r} not in {path.name!r}; experiments are {present}"
            )
    return df


def _connect(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise CampaignDataError(f"event log {str(path)!r} does not exist")
    # mode=rw: never create an empty database by accident; only SELECTs are run.
    return sqlite3.connect(f"file:{path.absolute()}?mode=rw", uri=True)


def _columns(con: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in con.execute(f"PRAGMA table_info({table})").fetchall()]


def journal_exposures(
    path: str | Path, moved: dict[str, int] | None = None
) -> tuple[pd.DataFrame, int]:
    """Exposure rows still in the service's journal next to the log at ``path`` (read only).

    A journal line is one served list, ``[request_id, ts, customer_id, experiment, arm,
    [[product_id, kind, score, discount], ...]]`` followed by ``",\n"``, offers in rank order
    (:meth:`serving.eventlog.ExposureJournal.append_list`). The first ``moved[name]`` bytes of
    a journal file are already in the ``exposures`` table (table ``journal_progress``), so only
    the rest is read: each line counts exactly once. A last line without its newline (cut short
    by a crash) is ignored, as the service's own recovery does.

    Parameters
    ----------
    path : str or Path
        The SQLite event log.
    moved : dict, optional
        Bytes already moved per journal file name (default: none).

    Returns
    -------
    tuple
        ``(rows, n_lines)``: the exposure rows (columns of the ``exposures`` table) and the
        number of journal lines they came from.
    """
    moved = moved or {}
    d = journal_dir(path)
    rows: list[tuple] = []
    n_lines = n_bad = 0
    for file in sorted(d.glob("*.jsonl")) if d.is_dir() else []:
        try:
            with open(file, "rb") as fh:
                fh.seek(moved.get(file.name, 0))
                data = fh.read()
        except FileNotFoundError:  # moved and deleted meanwhile
            continue
        end = data.rfind(b"\n") + 1
        for line in data[:end].split(b"\n")[:-1]:
            try:
                rid, ts, cid, exp, arm, offers = json.loads(line.rstrip(b",").decode("utf-8"))
                new = [
                    (rid, ts, cid, exp, arm, o[0], rank, o[1], o[2], o[3])
                    for rank, o in enumerate(offers, start=1)
                ]
            except (ValueError, TypeError, IndexError):
                n_bad += 1
                continue
            rows.extend(new)
            n_lines += 1
    if n_bad:
        logger.warning("skipped %d malformed lines of the exposure journal %s", n_bad, d)
    return pd.DataFrame(rows, columns=list(EXPOSURE_COLUMNS)), n_lines


def _journal_progress(con: sqlite3.Connection, tables: set[str]) -> dict[str, int]:
    if "journal_progress" not in tables:
        return {}
    return {
        str(name): int(n)
        for name, n in con.execute("SELECT journal, moved FROM journal_progress").fetchall()
    }


def _parse_ts(s: pd.Series) -> pd.Series:
    return pd.to_datetime(s, utc=True, format="ISO8601", errors="coerce").dt.tz_convert(None)


def read_event_log(
    path: str | Path, experiment: str | None = None, window_days: float | None = None
) -> pd.DataFrame:
    """One row per (experiment, customer) from the serving event log.

    A customer's arm is the arm of their first exposure in the experiment (intention to
    treat); customers seen in several arms are kept in the first and counted in ``n_arms``.
    An event counts for (experiment, customer) when it is that customer's and either happens
    at or after their first exposure, or carries a ``request_id`` the experiment exposed. This
    also credits control customers' purchases made without any offer request.

    Parameters
    ----------
    path : str or Path
        SQLite file with ``exposures`` and ``events`` tables.
    experiment : str, optional
        Keep one experiment (default: all, with an ``experiment`` column to tell them apart).
    window_days : float, optional
        Count only events before ``first exposure + window_days``.

    Returns
    -------
    pandas.DataFrame
        Columns ``experiment, customer_id, arm, first_exposure, date, n_arms, n_exposures,
        click, conversion, spend, discount_cost``: ``click`` = any click, ``conversion`` = any
        purchase or redemption, ``spend`` = summed value of purchases, ``discount_cost`` =
        summed ``discount`` of the exposures whose offer was redeemed (matched on request and
        product, else on the customer's latest exposure of that product), best effort.

        Exposures still in the service's journal (see :func:`journal_exposures`) are
        included, with a warning; ``attrs["notes"]`` then says how many.

    Raises
    ------
    CampaignDataError
        Missing file, tables or columns; unknown experiment.
    """
    path = Path(path)
    if window_days is not None and not window_days > 0:
        raise CampaignDataError(
            f"the outcome window must be a positive number of days, got {window_days}"
        )
    for attempt in range(_SNAPSHOT_ATTEMPTS):
        last = attempt + 1 == _SNAPSHOT_ATTEMPTS
        try:
            return _read_event_log(path, experiment, window_days, retry=not last)
        except _JournalMovedMeanwhile:
            logger.info("a journal was moved into %s while it was read; reading again", path)
        except sqlite3.DatabaseError as exc:
            raise CampaignDataError(
                f"{path.name!r} is not a readable SQLite event log: {exc}"
            ) from exc
    raise AssertionError("unreachable: the last attempt does not retry")


#: Reads of the event log before a journal moved meanwhile is accepted as is (rare: a move
#: between the read's snapshot and its reading of the journal files).
_SNAPSHOT_ATTEMPTS = 5


class _JournalMovedMeanwhile(Exception):
    pass


def _journal_moved_meanwhile(path: Path, listed: set[str], snapshot: dict[str, int]) -> bool:
    """Whether a journal file listed before the snapshot is gone and its lines were moved
    after it: then they are in neither the snapshot's table nor a file."""
    d = journal_dir(path)
    gone = [n for n in listed | set(snapshot) if not (d / n).exists()]
    if not gone:
        return False
    with closing(sqlite3.connect(f"file:{path.absolute()}?mode=ro", uri=True)) as con:
        try:
            latest = dict(con.execute("SELECT journal, moved FROM journal_progress").fetchall())
        except sqlite3.OperationalError:  # no journal was ever moved into this log
            latest = {}
    return any(latest.get(n) != snapshot.get(n, 0) for n in gone)


def _read_event_log(
    path: Path, experiment: str | None, window_days: float | None, retry: bool
) -> pd.DataFrame:
    d = journal_dir(path)
    listed = {f.name for f in d.glob("*.jsonl")} if d.is_dir() else set()
    con = _connect(path)
    notes: list[str] = []
    try:
        # one read transaction: the journal offsets and the tables are the same snapshot
        con.execute("BEGIN")
        tables = {
            r[0]
            for r in con.execute("SELECT name FROM sqlite_master WHERE type IN ('table','view')")
        }
        for table, cols in (("exposures", _EXPOSURE_COLUMNS), ("events", _EVENT_COLUMNS)):
            if table not in tables:
                raise CampaignDataError(
                    f"{path.name!r} is not an event log: table {table!r} is missing (found {sorted(tables)})"
                )
            have = _columns(con, table)
            missing = [c for c in cols if c not in have]
            if missing:
                raise CampaignDataError(f"event log table {table!r} lacks column(s) {missing}")
        exp_cols = _columns(con, "exposures")
        ev_cols = _columns(con, "events")
        want_exp = [c for c in (*_EXPOSURE_COLUMNS, "product_id", "discount") if c in exp_cols]
        want_ev = [c for c in (*_EVENT_COLUMNS, "product_id", "value") if c in ev_cols]
        where, params = "", ()
        if experiment is not None:
            where, params = " WHERE experiment = ?", (experiment,)
        exposures = pd.read_sql_query(
            f"SELECT {', '.join(want_exp)} FROM exposures{where}", con, params=params
        )
        progress = _journal_progress(con, tables)
        journal, n_lines = journal_exposures(path, progress)
        if retry and _journal_moved_meanwhile(path, listed, progress):
            raise _JournalMovedMeanwhile
        j_exp = journal if experiment is None else journal[journal["experiment"] == experiment]
        if len(j_exp):
            # counted for the experiment read, not for every experiment in the journal
            n_lists = j_exp["request_id"].nunique() if experiment is not None else n_lines
            msg = (
                f"{n_lists} served lists ({len(j_exp)} exposure rows) were still in the journal"
                f" {journal_dir(path).name}/ (the offer service stopped before moving them into"
                " the log); they are included here. The next start of the service (or"
                " serving.eventlog.recover_journals) moves them into the exposures table."
            )
            logger.warning("%s", msg)
            notes.append(msg)
            exposures = pd.concat(
                [exposures, j_exp[want_exp]] if not exposures.empty else [j_exp[want_exp]],
                ignore_index=True,
            )
        if experiment is not None and exposures.empty:
            found = sorted(
                {r[0] for r in con.execute("SELECT DISTINCT experiment FROM exposures")}
                | set(journal["experiment"])
            )
            raise CampaignDataError(
                f"experiment {experiment!r} not in the event log; experiments are {found}"
            )
        if n_lines:
            events = pd.read_sql_query(f"SELECT {', '.join(want_ev)} FROM events", con)
            events = events[events["customer_id"].isin(exposures["customer_id"].unique())]
            events = events.reset_index(drop=True)
        else:
            ev_where = f" WHERE customer_id IN (SELECT customer_id FROM exposures{where})"
            events = pd.read_sql_query(
                f"SELECT {', '.join(want_ev)} FROM events{ev_where}", con, params=params
            )
        con.execute("COMMIT")
    finally:
        con.close()

    out_cols = [
        "experiment",
        "customer_id",
        "arm",
        "first_exposure",
        "date",
        "n_arms",
        "n_exposures",
        *EVENT_LOG_METRICS,
        "discount_cost",
    ]
    if exposures.empty:
        logger.warning("event log %s has no exposures", path)
        empty = pd.DataFrame(columns=out_cols)
        empty.attrs["notes"] = notes
        return empty

    exposures["ts"] = _parse_ts(exposures["ts"])
    exposures["arm"] = exposures["arm"].astype(str)
    exposures = exposures.sort_values(["experiment", "customer_id", "ts"], kind="stable")
    key = ["experiment", "customer_id"]
    g = exposures.groupby(key, sort=True)
    units = g.agg(
        arm=("arm", "first"),
        first_exposure=("ts", "min"),
        n_arms=("arm", "nunique"),
        n_exposures=("arm", "size"),
    ).reset_index()
    switched = int((units["n_arms"] > 1).sum())
    if switched:
        logger.warning(
            "%d customers were exposed in more than one arm; each is kept in their first arm",
            switched,
        )

    events["ts"] = _parse_ts(events["ts"])
    ev = events.reset_index(names="_event").merge(
        units[[*key, "first_exposure"]], on="customer_id", how="inner"
    )
    req = exposures[["request_id", "experiment"]].dropna().drop_duplicates()
    req["_via_request"] = True
    ev = ev.merge(req, on=["request_id", "experiment"], how="left")
    via = ev["_via_request"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    after = (ev["ts"] >= ev["first_exposure"]).fillna(False).to_numpy(dtype=bool)
    keep = via | after
    if window_days is not None:
        limit = ev["first_exposure"] + pd.Timedelta(days=window_days)
        keep &= (ev["ts"] < limit).to_numpy(dtype=bool) | (ev["ts"].isna().to_numpy() & via)
    ev = ev[keep]

    typ = ev["type"].astype(str).str.lower()
    value = (
        ev["value"].astype(float).fillna(0.0) if "value" in ev else pd.Series(0.0, index=ev.index)
    )
    ev = ev.assign(
        _click=(typ == "clicked").astype(float),
        _conv=typ.isin(["purchased", "redeemed"]).astype(float),
        _spend=np.where(typ == "purchased", value, 0.0),
    )
    agg = (
        ev.groupby(key)
        .agg(click=("_click", "max"), conversion=("_conv", "max"), spend=("_spend", "sum"))
        .reset_index()
    )
    units = units.merge(agg, on=key, how="left")
    for col in EVENT_LOG_METRICS:
        units[col] = units[col].fillna(0.0).astype(float)

    units["discount_cost"] = 0.0
    if "discount" in exposures and "product_id" in exposures and "product_id" in ev:
        red = ev[typ == "redeemed"][["_event", *key, "request_id", "product_id"]]
        if not red.empty:
            units = _add_discount_cost(units, red, exposures, key)

    units["date"] = units["first_exposure"].dt.normalize()
    out = units[out_cols].sort_values(key, kind="stable").reset_index(drop=True)
    out.attrs["notes"] = notes
    out.attrs["amounts"] = ["spend", "discount_cost"]  # money, even when all 0 (no purchase yet)
    return out


def _add_discount_cost(
    units: pd.DataFrame, red: pd.DataFrame, exposures: pd.DataFrame, key: list[str]
) -> pd.DataFrame:
    exp = exposures.dropna(subset=["discount"])
    by_req = (
        exp.groupby(["experiment", "request_id", "product_id"])["discount"]
        .max()
        .rename("_d_req")
        .reset_index()
    )
    # Fallback for redemptions without the request id: the customer's latest exposure of that product.
    by_cust = exp.groupby([*key, "product_id"])["discount"].last().rename("_d_cust").reset_index()
    m = red.merge(by_req, on=["experiment", "request_id", "product_id"], how="left")
    m = m.merge(by_cust, on=[*key, "product_id"], how="left")
    m["_d"] = m["_d_req"].fillna(m["_d_cust"]).fillna(0.0)
    # a redemption is one row per experiment its customer is in: it is unmatched only if it
    # matches in none, and it costs in each experiment where it matches
    no_match = m["_d_req"].isna() & m["_d_cust"].isna()
    unmatched = int(no_match.groupby(m["_event"]).all().sum())
    if unmatched:
        logger.warning("%d redemptions match no exposure with a discount; counted as 0", unmatched)
    cost = m.drop_duplicates(["_event", *key]).groupby(key)["_d"].sum().rename("_cost")
    cost = cost.reset_index()
    units = units.merge(cost, on=key, how="left")
    units["discount_cost"] = units["_cost"].fillna(0.0)
    return units.drop(columns="_cost")
