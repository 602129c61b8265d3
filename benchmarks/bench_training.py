"""Training and prediction speed on Complete Journey: `tailor train all` and `tailor predict`.

Runs the real commands as subprocesses (fresh interpreter each, like a user) against a
temporary MLflow store, and prints wall seconds and peak memory (max RSS of the child).

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

ROOT = Path(__file__).resolve().parents[1]
TAILOR = [sys.executable, "-m", "training.cli"]


# A fresh wrapper per command, so RUSAGE_CHILDREN's max RSS is that command's own peak.
WRAPPER = (
    "import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); "
    "print('MAXRSS', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(rc)"
)


def run(cmd: list[str], env: dict) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", WRAPPER, *cmd], cwd=ROOT, env=env, capture_output=True, text=True
    )
    secs = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
    kb = [int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("MAXRSS")]
    return secs, (kb[-1] / 1024 if kb else float("nan")), proc.returncode


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
