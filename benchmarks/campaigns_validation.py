"""Campaign analysis validation: Hillstrom figures, uplift vs random, simulation honesty.

Usage::

    python benchmarks/campaigns_validation.py            # full run (~2 min on 2 cores)
    python benchmarks/campaigns_validation.py --quick    # fewer simulations and seeds
    python benchmarks/campaigns_validation.py --json out.json

Prints four tables:

1. Hillstrom by arm: n, visit / conversion / spend per customer with 95% CIs, and the lift
   of each e-mail against no e-mail (Welch CI, Holm p-value).
2. Uplift models on a held-out 30% (T-learner and class transformation on LightGBM) against
   random targeting: Qini coefficient with bootstrap CI, AUUC vs ATE/2, uplift at 10/30%,
   over several split seeds.
3. Simulated A/A and A/B tests: false-positive rate at 5% and 95% CI coverage of a known
   effect (absolute and relative), with and without CUPED, with the Monte-Carlo standard error.
4. SRM check: detection rate when the treatment arm loses 5% of its traffic, and the false
   alarm rate on healthy splits.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from campaigns.analysis import analyze  # noqa: E402
from campaigns.uplift import uplift_experiment  # noqa: E402
from campaigns.validation import simulate_tests, srm_detection_rate, summarise_tests  # noqa: E402

HILLSTROM = Path("/work/shared/data/hillstrom/hillstrom.csv")
FEATURES = [
    "recency",
    "history_segment",
    "history",
    "mens",
    "womens",
    "zip_code",
    "newbie",
    "channel",
]


def hillstrom_table(df: pd.DataFrame) -> pd.DataFrame:
    res = analyze(df, "segment", "No E-Mail", "visit,conversion,spend", covariate="history")
    t = res.table[res.table.adjustment == "none"]
    rows = []
    for _, r in t.iterrows():
        scale = 100 if r["kind"] == "rate" else 1
        rows.append(
            {
                "arm": r["arm"],
                "metric": r["metric"],
                "n": int(r["n"]),
                "mean": f"{r['mean'] * scale:.4f}{'%' if scale == 100 else ''}",
                "95% CI": f"[{r['mean_ci_low'] * scale:.4f}, {r['mean_ci_high'] * scale:.4f}]",
                "abs lift": "" if r["is_control"] else f"{r['abs_lift'] * scale:.4f}",
                "lift 95% CI": ""
                if r["is_control"]
                else f"[{r['abs_ci_low'] * scale:.4f}, {r['abs_ci_high'] * scale:.4f}]",
                "rel lift": "" if r["is_control"] else f"{r['rel_lift']:.1%}",
                "p (Holm)": "" if r["is_control"] else f"{r['p_value_holm']:.2g}",
            }
        )
    cu = res.table[res.table.adjustment == "cuped"]
    print(f"SRM: {res.srm.message()}")
    print(
        f"CUPED on history: variance reduction {cu['variance_reduction'].min():.2%} .. {cu['variance_reduction'].max():.2%}"
    )
    return pd.DataFrame(rows)


def uplift_table(df: pd.DataFrame, seeds: list[int], n_boot: int) -> pd.DataFrame:
    rows = []
    for arm in ("Womens E-Mail", "Mens E-Mail"):
        for outcome in ("visit", "conversion"):
            for seed in seeds:
                rep = uplift_experiment(
                    df,
                    "segment",
                    arm,
                    "No E-Mail",
                    outcome,
                    features=FEATURES,
                    seed=seed,
                    n_boot=n_boot,
                )
                for _, r in rep.metrics.iterrows():
                    rows.append(
                        {
                            "arm": arm,
                            "outcome": outcome,
                            "seed": seed,
                            "model": r["model"],
                            "ate": r["ate"],
                            "qini": r["qini"],
                            "qini_ci_low": r["qini_ci_low"],
                            "qini_ci_high": r["qini_ci_high"],
                            "auuc": r["auuc"],
                            "auuc_random": r["auuc_random"],
                            "uplift_at_10": r["uplift_at_10"],
                            "uplift_at_30": r["uplift_at_30"],
                        }
                    )
    return pd.DataFrame(rows)


def simulation_table(n_sims: int, n_per_arm: int, seed: int) -> pd.DataFrame:
    rows = []
    for metric in ("revenue", "conversion"):
        for lift in (0.0, 0.05):
            s = summarise_tests(
                simulate_tests(n_sims, n_per_arm, metric, lift, seed=seed), metric, lift
            )
            for adj, r in s.iterrows():
                rows.append(
                    {
                        "metric": metric,
                        "true lift": lift,
                        "adjustment": adj,
                        "n_sims": int(r["n_sims"]),
                        "rejection rate": r["rejection_rate"],
                        "coverage abs": r["coverage_abs"],
                        "coverage rel": r["coverage_rel"],
                        "MC s.e.": r["mc_se"],
                        "variance reduction": r.get("variance_reduction", np.nan),
                    }
                )
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1,000 simulations, one uplift seed")
    ap.add_argument("--json", type=Path, help="write all tables as JSON here")
    args = ap.parse_args(argv)
    n_sims = 1000 if args.quick else 4000
    seeds = [0] if args.quick else [0, 1, 2, 3, 4]
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 30)
    out = {}

    t0 = time.perf_counter()
    df = pd.read_csv(HILLSTROM)
    print(
        "== 1. Hillstrom by arm (README: n 21,307 / 21,387 / 21,306; visit 18.28 / 15.14 / 10.62%;"
    )
    print("      conversion 1.253 / 0.884 / 0.573%; spend $1.4226 / $1.0772 / $0.6528)")
    h = hillstrom_table(df)
    print(h.to_string(index=False))
    out["hillstrom"] = h.to_dict(orient="records")

    print(f"\n== 2. Uplift on a held-out 30% vs random targeting (seeds {seeds})")
    u = uplift_table(df, seeds, n_boot=100 if args.quick else 200)
    summary = u.groupby(["arm", "outcome", "model"], sort=False)[
        ["ate", "qini", "qini_ci_low", "auuc", "auuc_random", "uplift_at_10", "uplift_at_30"]
    ].mean()
    summary["seeds qini_ci_low>0"] = (
        u.assign(pos=u.qini_ci_low > 0)
        .groupby(["arm", "outcome", "model"], sort=False)["pos"]
        .sum()
    )
    print(summary.round(5).to_string())
    out["uplift"] = u.to_dict(orient="records")

    print(
        f"\n== 3. Simulated tests: {n_sims} per row, 2,000 customers per arm (5% level; targets 5% +- 1.5, 95% +- 1.5)"
    )
    s = simulation_table(n_sims, 2000, seed=12345)
    print(s.round(4).to_string(index=False))
    out["simulation"] = s.to_dict(orient="records")

    print("\n== 4. SRM check (chi-square, flag at p < 0.001)")
    srm = [
        srm_detection_rate(20_000, 0.05, n_sims=4000 if not args.quick else 1000, seed=1),
        srm_detection_rate(20_000, 0.0, n_sims=4000 if not args.quick else 1000, seed=2),
        srm_detection_rate(40_000, 0.05, n_sims=4000 if not args.quick else 1000, seed=3),
    ]
    print(pd.DataFrame(srm).to_string(index=False))
    out["srm"] = srm
    print(f"\ntotal {time.perf_counter() - t0:.1f} s")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
