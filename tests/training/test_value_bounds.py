"""benchmarks/value_bounds.py on a hand-made table with known MAEs."""

from __future__ import annotations

import sys
from pathlib import Path

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
