"""Speed and memory of loading a source and building every as-of feature table.

Usage::

    python benchmarks/bench_features.py --source completejourney
    python benchmarks/bench_features.py --source synthetic --lines 10000000

Prints one row per step (load, the four feature steps of ``build_all``, optionally
labels and writing Parquet): wall seconds, peak resident memory during the step and
resident memory after it, then the total against the goals (Complete Journey under
10 s; 10 million synthetic lines under 2 minutes within 6 GB).

Peak memory per step comes from Linux's ``VmHWM`` (reset between steps through
``/proc/self/clear_refs``); elsewhere the process-wide ``ru_maxrss`` is shown.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

GOALS = {"completejourney": (10.0, None), "synthetic": (120.0, 6 * 1024)}  # seconds, MB


def _status_mb(field: str) -> float | None:
    try:
        for row in Path("/proc/self/status").read_text().splitlines():
            if row.startswith(field + ":"):
                return int(row.split()[1]) / 1024
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class Meter:
    """Times steps and records peak / current RSS for each."""

    def __init__(self):
        self.rows: list[dict] = []
        self._name = None
        self._t0 = 0.0
        self.per_step_peak = _reset_peak()

    def start(self, name: str) -> None:
        self.stop()
        self.per_step_peak = _reset_peak() and self.per_step_peak
        self._name, self._t0 = name, time.perf_counter()

    def stop(self) -> None:
        if self._name is None:
            return
        secs = time.perf_counter() - self._t0
        peak = _status_mb("VmHWM") if self.per_step_peak else None
        if peak is None:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        self.rows.append(
            {
                "step": self._name,
                "seconds": secs,
                "peak_rss_mb": peak,
                "rss_after_mb": _status_mb("VmRSS"),
            }
        )
        self._name = None


def print_table(rows: list[dict], title: str) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # plain fallback
        print(title)
        print(f"{'step':<18}{'seconds':>10}{'peak RSS MB':>14}{'RSS after MB':>14}")
        for r in rows:
            print(
                f"{r['step']:<18}{r['seconds']:>10.2f}{r['peak_rss_mb']:>14,.0f}{(r['rss_after_mb'] or 0):>14,.0f}"
            )
        return
    table = Table(title=title)
    for col in ("step", "seconds", "peak RSS MB", "RSS after MB"):
        table.add_column(col, justify="left" if col == "step" else "right")
    for r in rows:
        table.add_row(
            r["step"],
            f"{r['seconds']:.2f}",
            f"{r['peak_rss_mb']:,.0f}",
            "" if r["rss_after_mb"] is None else f"{r['rss_after_mb']:,.0f}",
        )
    Console().print(table)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", choices=("completejourney", "synthetic"), default="completejourney")
    ap.add_argument("--lines", type=int, default=10_000_000, help="synthetic: number of line items")
    ap.add_argument("--seed", type=int, default=0, help="synthetic: random seed")
    ap.add_argument(
        "--cutoff",
        default=None,
        help="as-of date (default: 2017-12-01 on Complete Journey, 14 days before the end otherwise)",
    )
    ap.add_argument("--labels", action="store_true", help="also time the four label builders")
    ap.add_argument(
        "--write", action="store_true", help="also time writing the Parquet files (temporary dir)"
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from features.build import build_all, write_features
    from features.sources import load_source

    meter = Meter()
    meter.start("load")
    if args.source == "synthetic":
        tables = load_source("synthetic", lines=args.lines, seed=args.seed)
    else:
        tables = load_source("completejourney")
    meter.stop()
    tx = tables.transactions
    if args.cutoff:
        cutoff = pd.Timestamp(args.cutoff)
    elif args.source == "completejourney":
        cutoff = pd.Timestamp("2017-12-01")
    else:
        cutoff = tx["timestamp"].max().normalize() - pd.Timedelta(days=14)

    frames = build_all(tables, cutoff, progress=meter.start)
    meter.stop()
    if args.labels:
        from features.labels import (
            churn_labels,
            cross_sell_labels,
            next_purchase_labels,
            value_labels,
        )

        meter.start("labels")
        next_purchase_labels(tables, cutoff)
        cross_sell_labels(tables, cutoff - pd.Timedelta(days=14))
        churn_labels(tables, cutoff - pd.Timedelta(days=60))
        value_labels(tables, cutoff - pd.Timedelta(days=90))
        meter.stop()
    if args.write:
        meter.start("write")
        with tempfile.TemporaryDirectory() as d:
            write_features(frames, Path(d) / "features")
        meter.stop()

    rows = meter.rows
    total = {
        "step": "total",
        "seconds": sum(r["seconds"] for r in rows),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in rows),
        "rss_after_mb": rows[-1]["rss_after_mb"],
    }
    print_table(
        rows + [total], f"features: {args.source}, {len(tx):,} lines, cutoff {cutoff.date()}"
    )
    sizes = {k: len(v) for k, v in frames.items()}
    print("rows:", ", ".join(f"{k} {v:,}" for k, v in sizes.items()))
    goal_s, goal_mb = GOALS[args.source]
    core = sum(r["seconds"] for r in rows if r["step"] not in ("labels", "write"))
    verdict = f"load + features {core:.1f} s (goal < {goal_s:.0f} s: {'met' if core < goal_s else 'MISSED'})"
    if goal_mb is not None:
        verdict += (
            f", peak {total['peak_rss_mb']:,.0f} MB (goal < {goal_mb:,} MB: "
            f"{'met' if total['peak_rss_mb'] < goal_mb else 'MISSED'})"
        )
    print(verdict)
    print(
        json.dumps(
            {
                "source": args.source,
                "lines": len(tx),
                "cutoff": str(cutoff.date()),
                "steps": rows,
                "rows": sizes,
            },
            default=str,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
