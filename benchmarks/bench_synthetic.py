"""Speed and memory of the synthetic generator.

Goal (from the issue): 10 million line items in under 2 minutes within 4 GB peak memory.

    .venv/bin/python benchmarks/bench_synthetic.py                 # 10M lines
    .venv/bin/python benchmarks/bench_synthetic.py --lines 1000000 --validate
    .venv/bin/python benchmarks/bench_synthetic.py --json          # one JSON line at the end

Runs the same steps as :func:`features.sources.synthetic.generate_with_truth` one by one
and prints, per step, the wall time and the peak resident memory of the process so far
(``resource.getrusage``, which includes the interpreter and imported libraries).
Validation against the data contract is an extra step, reported separately.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GOAL_SECONDS = 120.0
GOAL_PEAK_MB = 4096.0


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def current_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=10_000_000, help="target number of line items")
    ap.add_argument("--products", type=int, default=1000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--validate", action="store_true", help="also validate against the data contract"
    )
    ap.add_argument(
        "--json", action="store_true", help="print the results as one JSON line at the end"
    )
    args = ap.parse_args(argv)

    import pandas as pd

    from features.contract import validate
    from features.sources.synthetic import (
        SyntheticConfig,
        _assemble,
        _customers_for_lines,
        _simulate,
    )

    rows = [("start (imports)", 0.0, peak_mb(), "")]
    cfg = SyntheticConfig()
    t_all = time.perf_counter()

    t0 = time.perf_counter()
    customers = _customers_for_lines(args.lines, args.products, args.days, args.seed, cfg)
    rows.append(
        (
            "pilot: customers for the target",
            time.perf_counter() - t0,
            peak_mb(),
            f"{customers:,} customers",
        )
    )

    t0 = time.perf_counter()
    sim = _simulate(customers, args.products, args.days, args.seed, cfg)
    n_lines = len(sim["lines"][0]) + len(sim["returns"][0])
    rows.append(
        ("simulate (numpy arrays)", time.perf_counter() - t0, peak_mb(), f"{n_lines:,} lines")
    )

    t0 = time.perf_counter()
    tables, truth = _assemble(sim, pd.Timestamp("2017-01-01"), cfg)
    del sim
    rows.append(
        (
            "assemble tables + truth",
            time.perf_counter() - t0,
            peak_mb(),
            f"{len(tables.transactions.columns)} columns",
        )
    )
    generate_s = time.perf_counter() - t_all
    generate_peak = peak_mb()
    rows.append(
        ("= generate_with_truth", generate_s, generate_peak, f"{len(tables.transactions):,} lines")
    )

    validate_s = None
    if args.validate:
        t0 = time.perf_counter()
        validate(tables)
        validate_s = time.perf_counter() - t0
        rows.append(("validate (data contract)", validate_s, peak_mb(), ""))

    tx_mb = tables.transactions.memory_usage(deep=False).sum() / 2**20
    print(
        f"synthetic generator, target {args.lines:,} lines, {args.products:,} products, {args.days} days, seed {args.seed}"
    )
    print(f"{'step':<34}{'seconds':>10}{'peak RSS MB':>14}  note")
    for step, sec, mb, note in rows:
        print(f"{step:<34}{sec:>10.2f}{mb:>14.0f}  {note}")
    print(f"transactions frame: {tx_mb:.0f} MB; current RSS {current_mb():.0f} MB")
    ok = generate_s < GOAL_SECONDS and generate_peak < GOAL_PEAK_MB
    print(
        f"goal {GOAL_SECONDS:.0f} s / {GOAL_PEAK_MB:.0f} MB for generation: "
        f"{'met' if ok else 'NOT met'} ({generate_s:.1f} s, {generate_peak:.0f} MB)"
    )
    result = {
        "target_lines": args.lines,
        "lines": len(tables.transactions),
        "customers": customers,
        "generate_seconds": round(generate_s, 2),
        "generate_peak_mb": round(generate_peak),
        "validate_seconds": None if validate_s is None else round(validate_s, 2),
        "peak_mb": round(peak_mb()),
        "goal_met": ok,
    }
    if args.json:
        print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
