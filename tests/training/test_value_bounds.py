"""benchmarks/value_bounds.py on a hand-made table with known MAEs."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.features._factories import line, make_tables

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from value_bounds import bounds  # noqa: E402


def test_bounds_known_values():
    t = make_tables(
        [
            line(1, 1, 10, "2017-01-01", 100.0),  # outside the window
            line(1, 2, 10, "2017-05-01", 30.0),  # last 90 days before the cutoff
            line(1, 3, 10, "2017-07-10", 50.0),  # in [2017-07-03, 2017-10-01)
            line(1, 4, 10, "2017-12-31", 175.0),  # after the window
            line(2, 5, 10, "2017-02-01", 10.0),
        ]
    )
    b = bounds(t, "2017-07-03")
    assert b["customers"] == 2
    assert b["last_90d_spend"] == pytest.approx((abs(50 - 30) + 0) / 2)
    # 365 days of data, 275 outside the 90-day window
    level1, level2 = 305 / 275 * 90, 10 / 275 * 90
    assert b["rest_of_year_level"] == pytest.approx((abs(50 - level1) + level2) / 2)
    assert b["target_for_goal"] == pytest.approx(0.85 * 10)
    # the 90 days after the window end 2017-12-30: the 2017-12-31 line is beyond them
    assert b["adjacent_windows"] == pytest.approx((abs(50 - (30 + 0) / 2) + 0) / 2)


def test_adjacent_windows_scale_a_short_after_window():
    t = make_tables(
        [
            line(1, 1, 10, "2017-01-01", 1.0),  # the data starts here
            line(1, 2, 10, "2017-08-01", 90.0),  # last 90 days before the cutoff
            line(1, 3, 10, "2017-10-01", 60.0),  # in [2017-09-01, 2017-11-30)
            line(1, 4, 10, "2017-12-15", 10.0),  # after: [2017-11-30, data end 2017-12-15]
        ]
    )
    b = bounds(t, "2017-09-01")
    after_days = (
        pd.Timestamp("2017-12-15") + pd.Timedelta(seconds=1) - pd.Timestamp("2017-11-30")
    ).total_seconds() / 86400
    assert b["adjacent_windows"] == pytest.approx(abs(60 - (90 + 10 * 90 / after_days) / 2))


def test_model_bounds_shipped_mae_is_what_evaluate_reports():
    from test_churn import planted_shop
    from value_bounds import model_bounds

    from training import value

    tables, _ = planted_shop(n=120, days=300, seed=3)
    cfg = value.ValueConfig.from_dict(
        {"train_cutoffs": 3, "lgbm": {"n_estimators": 60, "min_child_samples": 20}}
    )
    cutoff = pd.Timestamp("2017-07-03")
    ev = value.evaluate_family(tables, cutoffs=[cutoff], config=cfg)
    mae = ev.query("model == 'lightgbm' and metric == 'mae'")["value"].item()
    got = model_bounds(tables, cutoff, cfg)
    assert got["lightgbm"] == pytest.approx(mae)
    assert 0 < got["lightgbm_own_labels"] < 10 * mae
