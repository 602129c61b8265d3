"""Validation on a real randomised experiment: Hillstrom's MineThatData e-mail test (64,000
customers; Mens e-mail / Womens e-mail / no e-mail). Figures from /work/shared/data/README.md."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats
from typer.testing import CliRunner

from campaigns.analysis import analyze
from campaigns.cli import app
from campaigns.uplift import uplift_experiment

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
ARMS = ["Mens E-Mail", "Womens E-Mail", "No E-Mail"]
# README: n, visit rate (%), conversion (%), spend per customer ($)
PUBLISHED = {
    "n": [21_307, 21_387, 21_306],
    "visit": ([18.28, 15.14, 10.62], 100, 2),
    "conversion": ([1.253, 0.884, 0.573], 100, 3),
    "spend": ([1.4226, 1.0772, 0.6528], 1, 4),
}


@pytest.fixture(scope="module")
def hillstrom() -> pd.DataFrame:
    assert HILLSTROM.is_file(), f"validation data missing: {HILLSTROM}"
    return pd.read_csv(HILLSTROM)


@pytest.fixture(scope="module")
def result(hillstrom):
    return analyze(hillstrom, "segment", "No E-Mail", "visit,conversion,spend", covariate="history")


def test_arm_sizes_and_means_reproduce_the_published_figures(result):
    t = result.table[result.table.adjustment == "none"]
    for i, arm in enumerate(ARMS):
        rows = t[t.arm == arm].set_index("metric")
        assert (rows["n"] == PUBLISHED["n"][i]).all()
        for metric in ("visit", "conversion", "spend"):
            values, scale, digits = PUBLISHED[metric]
            assert round(rows.loc[metric, "mean"] * scale, digits) == values[i], (arm, metric)
    assert not result.srm.flagged and result.srm.p_value > 0.5


def test_confidence_intervals_are_reported_and_sane(result, hillstrom):
    t = result.table
    assert t[["mean_ci_low", "mean_ci_high"]].notna().all().all()
    assert ((t["mean_ci_low"] < t["mean"]) & (t["mean"] < t["mean_ci_high"])).all()
    r = result.lift("Mens E-Mail", "spend")
    g = hillstrom.groupby("segment")["spend"]
    ref = stats.ttest_ind(g.get_group("Mens E-Mail"), g.get_group("No E-Mail"), equal_var=False)
    assert r["p_value"] == pytest.approx(ref.pvalue)
    assert (r["abs_ci_low"], r["abs_ci_high"]) == pytest.approx(
        tuple(ref.confidence_interval(0.95))
    )
    # both e-mails raise every metric, significantly after Holm
    lifts = t[(t.adjustment == "none") & ~t.is_control]
    assert (lifts["abs_ci_low"] > 0).all() and lifts["significant"].all()
    # CUPED on past-year spend: honest, tiny reduction (corr ~0.065 with visit)
    cu = t[t.adjustment == "cuped"]
    assert (cu["variance_reduction"] > 0).all() and (cu["variance_reduction"] < 0.01).all()


def test_uplift_models_beat_random_targeting_on_held_out_womens_email(hillstrom):
    rep = uplift_experiment(
        hillstrom,
        "segment",
        "Womens E-Mail",
        "No E-Mail",
        "visit",
        features=FEATURES,
        seed=0,
        n_boot=100,
    )
    m = rep.metrics.set_index("model")
    for model in ("t_learner", "class_transformation"):
        assert m.loc[model, "qini"] > m.loc["random", "qini"]
        assert m.loc[model, "qini_ci_low"] > 0, model
        assert m.loc[model, "auuc"] > m.loc[model, "auuc_random"]
        assert m.loc[model, "uplift_at_30"] > m.loc[model, "ate"]


def test_cli_json_on_hillstrom(tmp_path):
    out = tmp_path / "h.json"
    args = ["analyze", str(HILLSTROM), "--arm", "segment", "--control", "No E-Mail", "--metrics",
            "visit,conversion,spend", "--margin", "0.3", "--cost-per-contact", "0.1", "--json", str(out)]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    d = json.loads(out.read_text())
    assert d["arms"]["Mens E-Mail"]["n"] == 21_307
    assert round(d["arms"]["Womens E-Mail"]["metrics"]["spend"]["mean"], 4) == 1.0772
    mens = d["arms"]["Mens E-Mail"]["metrics"]["conversion"]
    assert mens["ci"][0] < mens["lift"] < mens["ci"][1]
    assert d["economics"]["Mens E-Mail"]["incremental_revenue"] == pytest.approx(
        (1.422617 - 0.652789) * 21_307, rel=1e-4
    )


def test_cli_full_report_on_hillstrom(tmp_path):
    report = tmp_path / "h.html"
    args = ["analyze", str(HILLSTROM), "--arm", "segment", "--control", "No E-Mail", "--metrics",
            "visit,conversion,spend", "--covariate", "history", "--report", str(report)]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    html = report.read_text()
    assert html.count("Qini curve") >= 2 and "data:image/png;base64," in html
