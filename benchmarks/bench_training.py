"""Training and prediction speed on Complete Journey: `tailor train all` and `tailor predict`.

Runs the real commands as subprocesses (fresh interpreter each, like a user) against a
temporary MLflow store, and prints wall seconds and peak memory (resident memory of the command's whole process tree,
sampled every 0.1 s).

    python benchmarks/bench_training.py [--tasks next-purchase,cross-sell,churn,value] [--skip-train]

Goals (issue 3): train all < 300 s with peak memory < 6 GB; predict one task < 120 s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
TAILOR = [sys.executable, "-m", "training.cli"]


def _tree_rss(proc: psutil.Process) -> int:
    """Resident memory of a process and all its descendants (worker processes included).

    Pages shared between processes (libraries) count once per process: an upper bound.
    """
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run(cmd: list[str], env: dict) -> tuple[float, float, int]:
    """Wall seconds, peak memory of the whole process tree (MB, sampled every 0.1 s), exit code."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True
        )
        ps = psutil.Process(proc.pid)
        peak = 0
        while proc.poll() is None:
            try:
                peak = max(peak, _tree_rss(ps))
            except psutil.Error:
                pass
            time.sleep(0.1)
        secs = time.perf_counter() - t0
        if proc.returncode != 0:
            log.seek(0)
            sys.stderr.write(log.read()[-5000:])
    return secs, peak / 2**20, proc.returncode


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--tasks", default="next-purchase,cross-sell,churn,value")
    ap.add_argument("--as-of", default="2017-12-01")
    ap.add_argument("--skip-train", action="store_true")
    args = ap.parse_args()
    home = tempfile.mkdtemp(prefix="tailor-bench-")
    env = {
        **os.environ,
        "TAILOR_HOME": home,
        "BENTOML_DO_NOT_TRACK": "true",
        "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    rows = []
    if not args.skip_train:
        secs, mb, rc = run(TAILOR + ["train", "all"], env)
        rows.append(("tailor train all", secs, mb, rc, 300))
    for task in args.tasks.split(","):
        out = Path(home) / f"{task}.parquet"
        secs, mb, rc = run(
            TAILOR + ["predict", task, "--as-of", args.as_of, "--out", str(out)], env
        )
        rows.append((f"tailor predict {task}", secs, mb, rc, 120))
    print(f"\n{'step':32s} {'seconds':>9s} {'peak MB':>9s} {'goal s':>7s} {'status':>8s}")
    for name, secs, mb, rc, goal in rows:
        status = "FAILED" if rc else ("ok" if secs < goal else "SLOW")
        print(f"{name:32s} {secs:9.1f} {mb:9.0f} {goal:7d} {status:>8s}")


if __name__ == "__main__":
    main()
