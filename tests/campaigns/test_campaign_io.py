"""read_event_log / read_input on a small SQLite log and on CSV / Parquet files."""

from __future__ import annotations

import json
import sqlite3

import pandas as pd
import pytest
from campaign_event_log import make_event_log

from campaigns.analysis import CampaignDataError
from campaigns.io import read_event_log, read_input


@pytest.fixture
def log_path(tmp_path):
    return make_event_log(tmp_path / "events.sqlite")


def test_one_row_per_experiment_and_customer(log_path):
    df = read_event_log(log_path)
    assert list(zip(df.experiment, df.customer_id, strict=True)) == [
        ("exp1", 1),
        ("exp1", 2),
        ("exp1", 3),
        ("exp1", 4),
        ("exp2", 1),
    ]
    e1 = df[df.experiment == "exp1"].set_index("customer_id")
    assert list(e1.arm) == ["control", "offer", "offer", "control"]
    # customer 1: purchase before exposure ignored; 20 (no request id) + 5 later both after exposure
    assert e1.loc[1, ["click", "conversion", "spend", "discount_cost"]].tolist() == [
        0,
        1,
        25.0,
        0.0,
    ]
    # customer 2: click, redemption (discount 2.0 of product 100 in r2), purchase 10
    assert e1.loc[2, ["click", "conversion", "spend", "discount_cost"]].tolist() == [
        1,
        1,
        10.0,
        2.0,
    ]
    # customer 3: redemption without request id -> discount of the customer's exposure of product 101
    assert e1.loc[3, ["click", "conversion", "spend", "discount_cost"]].tolist() == [0, 1, 0.0, 1.5]
    # customer 4: first arm kept, the switch is counted
    assert e1.loc[4, "arm"] == "control" and e1.loc[4, "n_arms"] == 2 and e1.loc[4, "click"] == 1
    assert e1.loc[2, "n_exposures"] == 2
    assert e1.loc[2, "first_exposure"] == pd.Timestamp("2024-01-01 09:00")
    assert e1.loc[3, "date"] == pd.Timestamp("2024-01-02")
    e2 = df[df.experiment == "exp2"].iloc[0]
    assert e2.arm == "B" and e2.spend == 5.0 and e2.conversion == 1


def test_experiment_filter_and_window(log_path):
    df = read_event_log(log_path, experiment="exp1", window_days=7)
    assert set(df.experiment) == {"exp1"} and len(df) == 4
    assert (
        df.set_index("customer_id").loc[1, "spend"] == 20.0
    )  # the February purchase is outside 7 days
    # the amounts are marked, so an all-zero spend is analysed as money, not as a 0/1 rate
    assert read_input(log_path, experiment="exp1").attrs["amounts"] == ["spend", "discount_cost"]


def test_unknown_experiment_lists_the_known_ones(log_path):
    with pytest.raises(
        CampaignDataError,
        match="experiment 'exp9' not in the event log; experiments are \\['exp1', 'exp2'\\]",
    ):
        read_event_log(log_path, experiment="exp9")


def test_read_input_needs_experiment_when_several(log_path):
    with pytest.raises(
        CampaignDataError, match="holds 2 experiments .* pick one with --experiment"
    ):
        read_input(log_path)
    assert len(read_input(log_path, experiment="exp1")) == 4


def test_not_an_event_log(tmp_path):
    p = tmp_path / "other.db"
    con = sqlite3.connect(p)
    con.execute("CREATE TABLE exposures(request_id TEXT, ts TEXT, customer_id INTEGER, arm TEXT)")
    con.execute("CREATE TABLE events(request_id TEXT, ts TEXT, customer_id INTEGER, type TEXT)")
    con.commit()
    with pytest.raises(
        CampaignDataError, match="table 'exposures' lacks column\\(s\\) \\['experiment'\\]"
    ):
        read_event_log(p)
    con.execute("DROP TABLE events")
    con.execute("ALTER TABLE exposures ADD COLUMN experiment TEXT")
    con.commit()
    con.close()
    with pytest.raises(CampaignDataError, match="table 'events' is missing"):
        read_event_log(p)
    with pytest.raises(CampaignDataError, match="does not exist"):
        read_event_log(tmp_path / "nope.sqlite")
    assert not (tmp_path / "nope.sqlite").exists()  # no empty database created


def test_a_file_that_is_not_sqlite_is_a_clear_error(tmp_path):
    p = tmp_path / "bad.db"
    p.write_text("arm,y\na,1\n" * 200)
    with pytest.raises(CampaignDataError, match="not a readable SQLite event log"):
        read_event_log(p)


def test_a_redemption_costs_in_each_experiment_its_offer_was_in(tmp_path):
    from campaign_event_log import EVENTS

    # customer 1 is in exp1 and exp2; they redeem exp2's offer of product 102 (discount 0.5)
    redeem = (11, "r5", "2024-02-01T09:00:00+00:00", 1, 102, "redeemed", 0.5)
    p = make_event_log(tmp_path / "e.sqlite", events=[*EVENTS, redeem])
    both = read_event_log(p).set_index(["experiment", "customer_id"])
    assert both.loc[("exp2", 1), "discount_cost"] == 0.5  # was 0: the exp1 copy was kept
    assert both.loc[("exp1", 1), "discount_cost"] == 0.0
    one = read_event_log(p, experiment="exp2").set_index("customer_id")
    assert one.loc[1, "discount_cost"] == 0.5


def test_a_journal_moved_while_the_log_is_read_is_not_lost(log_path, monkeypatch):
    import campaigns.io as cio
    from serving.eventlog import recover_journals

    journal = log_path.parent / "events.sqlite.journal"
    journal.mkdir()
    line = _journal_line(
        "r9", "2024-01-05T07:00:00.000+00:00", 99, "exp1", "offer", [[100, "remind", 0.5, 2.0]]
    )
    (journal / "exposures-123-abcd1234.jsonl").write_bytes(line)
    real, calls = cio.journal_exposures, []

    def move_first(path, moved=None):
        calls.append(1)
        if len(calls) == 1:  # after the snapshot, before the files are read
            recover_journals(path)
        return real(path, moved)

    monkeypatch.setattr(cio, "journal_exposures", move_first)
    df = read_event_log(log_path, experiment="exp1")
    assert 99 in set(df["customer_id"]) and len(calls) == 2  # read again from a fresh snapshot


def test_read_input_tables(tmp_path):
    df = pd.DataFrame({"arm": ["a", "b"], "y": [1.0, 0.0], "experiment": ["x", "y"]})
    df.to_csv(tmp_path / "t.csv", index=False)
    df.to_parquet(tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(read_input(tmp_path / "t.csv"), df)
    pd.testing.assert_frame_equal(read_input(tmp_path / "t.parquet"), df)
    assert read_input(tmp_path / "t.csv", experiment="y")["arm"].tolist() == ["b"]
    (tmp_path / "t.xlsx").write_text("x")
    with pytest.raises(CampaignDataError, match="cannot read 't.xlsx'"):
        read_input(tmp_path / "t.xlsx")
    with pytest.raises(CampaignDataError, match="does not exist"):
        read_input(tmp_path / "missing.csv")


def test_empty_experiment_log(tmp_path):
    p = make_event_log(tmp_path / "empty.sqlite", exposures=[], events=[])
    df = read_event_log(p)
    assert len(df) == 0 and "conversion" in df.columns and "discount_cost" in df.columns


def _journal_line(rid, ts, cid, exp, arm, offers) -> bytes:
    # the format of serving.eventlog.ExposureJournal.append_list: one JSON array and ",\n"
    return json.dumps([rid, ts, cid, exp, arm, offers], separators=(",", ":")).encode() + b",\n"


def test_exposures_left_in_the_journal_are_read_once(log_path, caplog):
    journal = log_path.parent / "events.sqlite.journal"
    journal.mkdir()
    moved = _journal_line(
        "r1", "2024-01-01T10:00:00.000+00:00", 1, "exp1", "control", [[100, "remind", 0.9, 0.0]]
    )
    left = _journal_line(
        "r9", "2024-01-05T07:00:00.000+00:00", 99, "exp1", "offer", [[100, "remind", 0.5, 2.0]]
    )
    other = _journal_line(  # another experiment's list: not counted in exp1's note
        "r11", "2024-01-05T08:00:00.000+00:00", 5, "exp2", "B", [[100, "remind", 0.5, 0.0]] * 2
    )
    torn = b'["r10","2024-01-06T07:00:00.000+00:00",98,"exp1"'  # cut short by the kill
    (journal / "exposures-123-abcd1234.jsonl").write_bytes(moved + left + other + torn)
    con = sqlite3.connect(log_path)
    con.execute("CREATE TABLE journal_progress(journal TEXT PRIMARY KEY, moved INTEGER)")
    con.execute(
        "INSERT INTO journal_progress VALUES (?, ?)", ("exposures-123-abcd1234.jsonl", len(moved))
    )
    con.commit()
    con.close()
    before = log_path.read_bytes()

    with caplog.at_level("WARNING", logger="campaigns.io"):
        df = read_event_log(log_path, experiment="exp1")
    e1 = df.set_index("customer_id")
    # customer 99 (only in the journal) is exposed, and their purchase of 7.0 counts
    assert list(e1.index) == [1, 2, 3, 4, 99]
    assert e1.loc[99, ["arm", "n_exposures", "conversion", "spend"]].tolist() == [
        "offer",
        1,
        1,
        7.0,
    ]
    # the line already moved into the table is not counted twice
    assert e1.loc[1, "n_exposures"] == 1
    assert "1 served lists (1 exposure rows) were still in the journal" in caplog.text
    assert "still in the journal" in df.attrs["notes"][0]
    e2 = read_event_log(log_path, experiment="exp2")
    assert "1 served lists (2 exposure rows) were still" in e2.attrs["notes"][0]
    assert log_path.read_bytes() == before  # read only

    # the same answer as after the service's own recovery moved the journal into the table
    from serving.eventlog import recover_journals

    recover_journals(log_path)
    assert not any(journal.glob("*.jsonl"))
    after = read_event_log(log_path, experiment="exp1")
    pd.testing.assert_frame_equal(after, df)
    assert after.attrs["notes"] == []


@pytest.mark.parametrize("days", [0, -1.0])
def test_a_window_that_is_not_positive_is_refused(log_path, days):
    # was silently accepted: every outcome fell outside the window, all metrics 0
    with pytest.raises(CampaignDataError, match="positive number of days"):
        read_event_log(log_path, experiment="exp1", window_days=days)


def test_a_window_on_a_table_is_refused(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"arm": ["a", "b"], "y": [1, 0]}).to_csv(path, index=False)
    with pytest.raises(CampaignDataError, match="applies to an event log only"):
        read_input(path, window_days=7)
