"""Load benchmark: `tailor serve` /offers against the BentoML framework floor, with wrk, on loopback.

For each BentoML settings preset (``bentoml-defaults`` = BentoML's own defaults, the
"before"; ``tuned`` = serving/bento_config.py, the "after") it starts both servers with
the same settings -- the offer service and a trivial BentoML service returning a constant
list of 10 offers (floor_service.py) -- and sweeps wrk connections up to saturation,
alternating floor and Tailor at each step so both see the same machine. Every run is
bounded in time (``--duration`` seconds per step). It prints throughput, p50/p95/p99 and
errors, checks the goals, and writes JSON and a Markdown table.

The lookup store is either an existing one (``--store var/serving/store.sqlite``, e.g.
after ``make run``) or one built from the real Complete Journey data with the heuristic
predictions of heuristic_models.py (the serving path is the same; only the numbers in
the candidates differ).

    python benchmarks/load/run.py                       # full sweep, ~4 minutes
    python benchmarks/load/run.py --duration 2 --connections 2,8 --presets tuned   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

WRK_JSON = re.compile(r"^WRKJSON (\{.*\})$", re.M)
WRK_HIST = re.compile(r"^WRKHIST (.*)$", re.M)
NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
GOAL_FLOOR_P99_MS = 20.0
GOAL_THROUGHPUT_SHARE = 0.75
GOAL_P99_RATIO = 1.5
GOAL_MIN_RPS = 300.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A server process (and its workers), started and stopped by pid."""

    def __init__(self, name: str, cmd: list[str], env: dict, port: int, log: Path, ready_path: str):
        self.name, self.cmd, self.env, self.port, self.log, self.ready_path = (
            name,
            cmd,
            env,
            port,
            log,
            ready_path,
        )
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> Proc:
        fh = open(self.log, "ab")
        self.proc = subprocess.Popen(
            self.cmd, cwd=REPO, env=self.env, stdout=fh, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}); see {self.log}")
            try:
                if httpx.get(self.url + self.ready_path, timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise TimeoutError(f"{self.name} not ready after {timeout} s; see {self.log}")

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            procs = [
                psutil.Process(self.proc.pid),
                *psutil.Process(self.proc.pid).children(recursive=True),
            ]
        except psutil.NoSuchProcess:
            procs = []
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        _, alive = psutil.wait_procs(procs, timeout=20)
        for p in alive:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=10)
        self.proc.wait(timeout=10)


def build_store(home: Path, store: Path | None) -> Path:
    """The lookup store for the run: a copy of ``store``, or built from Complete Journey with heuristics."""
    target = home / "serving" / "store.sqlite"
    target.parent.mkdir(parents=True, exist_ok=True)
    if store is not None:
        if Path(store).resolve() != target.resolve():
            shutil.copy(store, target)
        return target
    import heuristic_models
    import pandas as pd

    from features.sources import load_source
    from serving.config import load_config
    from serving.precompute import FAMILIES, precompute
    from serving.store import build_store as write

    t0 = time.perf_counter()
    tables = load_source("completejourney")
    as_of = tables.transactions["timestamp"].max().normalize() + pd.Timedelta(days=1)
    frames = precompute(
        tables,
        as_of,
        dict.fromkeys(FAMILIES),
        load_config().precompute,
        predict=heuristic_models.predict,
    )
    meta = {
        "as_of": str(as_of.date()),
        "source": "completejourney",
        "missing": {},
        "model_versions": dict.fromkeys(FAMILIES, "heuristic"),
    }
    write(frames, target, meta)
    print(
        f"store: {len(frames['scores']):,} customers, {len(frames['candidates']):,} candidates ({time.perf_counter() - t0:.0f} s)"
    )
    return target


def write_ids(home: Path, store: Path, unknown_share: float = 0.05) -> Path:
    """Customer ids the load cycles through: every customer in the store, plus a share of unknown ones."""
    import sqlite3

    conn = sqlite3.connect(store)
    ids = [r[0] for r in conn.execute("SELECT customer_id FROM scores ORDER BY customer_id")]
    conn.close()
    n_unknown = max(1, int(len(ids) * unknown_share))
    ids += [10_000_000 + i for i in range(n_unknown)]  # cold start
    path = home / "ids.txt"
    path.write_text("\n".join(map(str, ids)) + "\n")
    return path


def run_wrk(url: str, connections: int, duration: float, ids: Path, threads: int = 1) -> dict:
    cmd = [
        "wrk",
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "5s",
        "-s",
        str(HERE / "offers.lua"),
        url,
        "--",
        str(ids),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60).stdout
    m = WRK_JSON.search(out)
    if not m:
        raise RuntimeError(f"no summary from wrk:\n{out}")
    r = json.loads(m.group(1))
    non2xx = int(NON_2XX.search(out).group(1)) if NON_2XX.search(out) else 0
    secs = r["duration_us"] / 1e6
    h = WRK_HIST.search(out)
    hist = [tuple(map(int, pair.split(","))) for pair in h.group(1).split(";") if pair] if h else []
    return {
        "connections": connections,
        "rps": r["requests"] / secs if secs else 0.0,
        "p50_ms": r["p50_us"] / 1000,
        "p95_ms": r["p95_us"] / 1000,
        "p99_ms": r["p99_us"] / 1000,
        "max_ms": r["max_us"] / 1000,
        "requests": r["requests"],
        "errors": r["connect"] + r["read"] + r["write"] + r["timeout"] + max(r["status"], non2xx),
        "hist": hist,
    }


def servers(preset: str, home: Path, log_dir: Path) -> tuple[Proc, Proc]:
    env = {
        **os.environ,
        "BENTOML_DO_NOT_TRACK": "true",
        "PYTHONPATH": str(REPO),
        "TAILOR_BENTO_CONFIG": json.dumps({"preset": preset}),
        "TAILOR_HOME": str(home),
        "TAILOR_SERVING_DIR": str(home / "serving"),
    }
    env.pop("TAILOR_API_TOKEN", None)
    fp, tp = free_port(), free_port()
    floor = Proc(
        "floor",
        [
            sys.executable,
            "-m",
            "bentoml",
            "serve",
            "floor_service:Floor",
            "--host",
            "127.0.0.1",
            "--port",
            str(fp),
            "--working-dir",
            str(HERE),
        ],
        env,
        fp,
        log_dir / f"floor-{preset}.log",
        "/readyz",
    )
    tailor_exe = Path(sys.executable).with_name("tailor")
    tcmd = [str(tailor_exe)] if tailor_exe.exists() else [sys.executable, "-m", "training.cli"]
    tailor = Proc(
        "tailor",
        [*tcmd, "serve", "--no-refresh", "--port", str(tp)],
        env,
        tp,
        log_dir / f"tailor-{preset}.log",
        "/readyz",
    )
    return floor, tailor


def pooled_percentiles(
    hists: list[list[tuple[int, int]]], ps=(50, 95, 99)
) -> dict[int, float] | None:
    """Percentiles (ms) of the latencies of several runs together, from wrk's (microseconds, count) histograms.

    Pooling the runs of a step estimates its tail from all their requests at once: a median of
    per-run 99th percentiles jumps between the runs that happened to catch a rare stall and
    those that did not. None if a run has no histogram.
    """
    if not hists or not all(hists):
        return None
    counts: dict[int, int] = {}
    for h in hists:
        for v, c in h:
            counts[v] = counts.get(v, 0) + c
    values = sorted(counts)
    total = sum(counts.values())
    out, cum, i = {}, 0, 0
    for p in sorted(ps):
        need = p / 100 * total
        while i < len(values) and cum + counts[values[i]] < need:
            cum += counts[values[i]]
            i += 1
        out[p] = values[min(i, len(values) - 1)] / 1000
    return out


def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


def sweep(
    presets: list[str],
    connections: list[int],
    duration: float,
    home: Path,
    ids: Path,
    threads: int,
    repeat: int,
) -> tuple[list[dict], list[dict]]:
    """Run the sweep; returns (rows: the median over ``repeat`` runs per step, every run).

    At each connection count the two servers take turns (floor, Tailor, Tailor, floor, ...), so
    a burst of load from elsewhere on the machine hits both alike.
    """
    rows, runs = [], []
    for preset in presets:
        floor, tailor = servers(preset, home, home)
        try:
            floor.start()
            tailor.start()
            for srv in (floor, tailor):  # warm up: first requests pay for imports and caches
                run_wrk(srv.url, 4, 2, ids, threads)
            for c in connections:
                got: dict[str, list[dict]] = {"floor": [], "tailor": []}
                for rep in range(repeat):
                    for srv in (floor, tailor) if rep % 2 == 0 else (tailor, floor):
                        r = run_wrk(srv.url, c, duration, ids, threads)
                        r.update(preset=preset, target=srv.name, rep=rep)
                        runs.append(r)
                        got[srv.name].append(r)
                for name in ("floor", "tailor"):
                    rs = got[name]
                    row = {
                        "preset": preset,
                        "target": name,
                        "connections": c,
                        "runs": len(rs),
                        "requests": sum(r["requests"] for r in rs),
                        "errors": sum(r["errors"] for r in rs),
                    }
                    for k in ("rps", "p50_ms", "p95_ms", "p99_ms"):
                        row[k] = _median([r[k] for r in rs])
                    row["p99_ms_runs"] = [r["p99_ms"] for r in rs]
                    pooled = pooled_percentiles([r["hist"] for r in rs])
                    if pooled:  # latencies: every request of the step's runs together
                        row["p50_ms"], row["p95_ms"], row["p99_ms"] = (
                            pooled[50],
                            pooled[95],
                            pooled[99],
                        )
                    row["max_ms"] = max(r["max_ms"] for r in rs)
                    rows.append(row)
                    print(
                        f"{preset:17s} {name:6s} c={c:<3d} {row['rps']:8.0f} req/s  p50 {row['p50_ms']:6.2f}  "
                        f"p95 {row['p95_ms']:6.2f}  p99 {row['p99_ms']:7.2f} ms  errors {row['errors']}"
                        f"  ({len(rs)} runs; per-run p99 {'/'.join(f'{x:.0f}' for x in row['p99_ms_runs'])})",
                        flush=True,
                    )
        finally:
            tailor.stop()
            floor.stop()
    return rows, runs


def evaluate(rows: list[dict], preset: str = "tuned") -> list[tuple[str, bool, str]]:
    """The issue's goals on the rows of ``preset``: (goal, met, measured)."""

    def pick(target, p=preset):
        return {r["connections"]: r for r in rows if r["preset"] == p and r["target"] == target}

    floor, tailor = pick("floor"), pick("tailor")
    if not floor or not tailor:
        return []
    goals = []
    if 2 in floor:
        before = pick("floor", "bentoml-defaults").get(2)
        was = (
            f"; before tuning {before['p99_ms']:.1f} ms, {before['rps']:.0f} req/s"
            if before
            else ""
        )
        goals.append(
            (
                f"(a) floor p99 at 2 connections < {GOAL_FLOOR_P99_MS:.0f} ms",
                floor[2]["p99_ms"] < GOAL_FLOOR_P99_MS,
                f"{floor[2]['p99_ms']:.1f} ms, {floor[2]['rps']:.0f} req/s{was}",
            )
        )
    fpeak = max(floor.values(), key=lambda r: r["rps"])
    tpeak = max(tailor.values(), key=lambda r: r["rps"])
    share = tpeak["rps"] / fpeak["rps"]
    goals.append(
        (
            f"(b) Tailor peak throughput >= {GOAL_THROUGHPUT_SHARE:.0%} of the floor's",
            share >= GOAL_THROUGHPUT_SHARE,
            f"{tpeak['rps']:.0f} vs {fpeak['rps']:.0f} req/s = {share:.0%}",
        )
    )
    ratios = {
        c: tailor[c]["p99_ms"] / floor[c]["p99_ms"]
        for c in tailor
        if c in floor and floor[c]["p99_ms"] > 0
    }
    worst = max(ratios, key=ratios.get)
    each = ", ".join(f"c={c}: {v:.2f}" for c, v in sorted(ratios.items()))
    goals.append(
        (
            f"(b) Tailor p99 <= {GOAL_P99_RATIO} x floor p99 at every connection count",
            ratios[worst] <= GOAL_P99_RATIO,
            f"worst at c={worst}: {ratios[worst]:.2f} x ({each})",
        )
    )
    clean = [r for r in tailor.values() if r["errors"] == 0]
    best = max((r["rps"] for r in clean), default=0.0)
    goals.append(
        (
            f"(c) Tailor /offers >= {GOAL_MIN_RPS:.0f} req/s with no errors",
            best >= GOAL_MIN_RPS,
            f"{best:.0f} req/s; errors in all runs: {sum(r['errors'] for r in tailor.values())}",
        )
    )
    return goals


def markdown(rows: list[dict], goals: list[tuple[str, bool, str]], meta: dict) -> str:
    lines = [
        f"Measured {meta['when']} on {meta['machine']}; wrk {meta['wrk']} (1 thread) on loopback, "
        f"{meta['duration']} s per run, {meta.get('repeat', 1)} interleaved runs per step (req/s: median; latencies: "
        f"percentiles of all the runs' requests pooled); "
        f"store: {meta['store']}.",
        "",
        "| settings | target | connections | req/s | p50 ms | p95 ms | p99 ms | errors |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['preset']} | {r['target']} | {r['connections']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | "
            f"{r['p95_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} |"
        )
    lines.append("")
    for goal, ok, measured in goals:
        lines.append(f"- {'met' if ok else 'NOT met'}: {goal} -- {measured}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk step")
    ap.add_argument("--connections", default="1,2,4,8,16,32,64", help="comma-separated sweep")
    ap.add_argument(
        "--presets", default="bentoml-defaults,tuned", help="BentoML settings presets to compare"
    )
    ap.add_argument("--threads", type=int, default=1, help="wrk threads")
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs per step, interleaved; req/s is their median, latencies pool their requests",
    )
    ap.add_argument(
        "--store", type=Path, default=None, help="use this lookup store instead of building one"
    )
    ap.add_argument(
        "--home", type=Path, default=None, help="working folder (default: a temporary one, removed)"
    )
    ap.add_argument(
        "--out", type=Path, default=None, help="write JSON results here (and .md beside it)"
    )
    args = ap.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    home = args.home or Path(tempfile.mkdtemp(prefix="tailor-load-"))
    home.mkdir(parents=True, exist_ok=True)
    try:
        store = build_store(home, args.store)
        ids = write_ids(home, store)
        connections = [int(c) for c in args.connections.split(",")]
        presets = [p for p in args.presets.split(",") if p]
        rows, runs = sweep(
            presets, connections, args.duration, home, ids, args.threads, args.repeat
        )
        goals = evaluate(rows)
        wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split()[
            1:2
        ] or ["?"]
        meta = {
            "when": time.strftime("%Y-%m-%d %H:%M"),
            "machine": f"{os.cpu_count()} cores, load avg {os.getloadavg()[0]:.1f} at the end",
            "wrk": wrk_version[0],
            "duration": args.duration,
            "repeat": args.repeat,
            "store": str(args.store)
            if args.store
            else "Complete Journey, heuristic candidates (heuristic_models.py)",
        }
        md = markdown(rows, goals, meta)
        print()
        print(md)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(
                json.dumps(
                    {
                        "meta": meta,
                        "rows": rows,
                        "runs": [{k: v for k, v in r.items() if k != "hist"} for r in runs],
                        "goals": goals,
                    },
                    indent=1,
                )
            )
            args.out.with_suffix(".md").write_text(md)
        return 0
    finally:
        if args.home is None:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
