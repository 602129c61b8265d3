"""The load benchmark runner end to end on a tiny store (wrk against both servers, bounded)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from serving.store import build_store
from tests.serving.procs import REPO
from tests.serving.test_service_asgi import META


@pytest.mark.slow
def test_load_runner_measures_floor_and_tailor(tmp_path, tiny_frames):
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (apt-get install -y wrk); .ci/run installs it")
    store = build_store(tiny_frames, tmp_path / "store.sqlite", META)
    out = tmp_path / "load.json"
    res = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "load" / "run.py"),
            "--duration",
            "1",
            "--connections",
            "2",
            "--presets",
            "tuned",
            "--repeat",
            "1",
            "--store",
            str(store),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    data = json.loads(out.read_text())
    rows = {(r["target"], r["connections"]): r for r in data["rows"]}
    assert set(rows) == {("floor", 2), ("tailor", 2)}
    assert all(r["requests"] > 0 and r["errors"] == 0 for r in rows.values())
    assert "| tuned | tailor | 2 |" in out.with_suffix(".md").read_text()
    assert any(g[0].startswith("(c)") for g in data["goals"])


def _load_runner():
    sys.path.insert(0, str(REPO / "benchmarks" / "load"))
    try:
        import run
    finally:
        sys.path.pop(0)
    return run


def test_pooled_percentiles_use_every_request_of_the_runs():
    run = _load_runner()
    # run 1: 97 requests at 1 ms and 3 stalled ones at 200 ms (its own p99 is 200 ms);
    # run 2: 100 requests at 2 ms. Together: 197 fast (the 100th is at 2 ms), 3 slow -> p99 200 ms
    hists = [[(1000, 97), (200_000, 3)], [(2000, 100)]]
    got = run.pooled_percentiles(hists, ps=(50, 95, 98, 99))
    assert got == {50: 2.0, 95: 2.0, 98: 2.0, 99: 200.0}
    # with one stall fewer the pooled tail is back among the fast requests
    got = run.pooled_percentiles([[(1000, 98), (200_000, 2)], [(2000, 100)]], ps=(99,))
    assert got == {99: 2.0}
    assert run.pooled_percentiles([[(1000, 1)], []]) is None  # a run without a histogram
