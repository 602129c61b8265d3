"""`tailor campaign ...` through typer's CliRunner, including bad input (exit code 2)."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from campaign_event_log import make_event_log
from typer.testing import CliRunner

from campaigns.cli import app

runner = CliRunner()


@pytest.fixture
def shop_csv(tmp_path):
    rng = np.random.default_rng(4)
    n = 3000
    arm = rng.choice(["control", "mail"], n)
    past = rng.gamma(2.0, 20.0, n)
    young = rng.random(n) < 0.5
    p = 0.1 + 0.15 * ((arm == "mail") & young)
    conversion = (rng.random(n) < p).astype(int)
    df = pd.DataFrame(
        {
            "customer_id": np.arange(n),
            "arm": arm,
            "young": young.astype(int),
            "region": rng.choice(["n", "s"], n),
            "past_spend": past,
            "date": pd.Timestamp("2024-05-01") + pd.to_timedelta(rng.integers(0, 6, n), unit="D"),
            "conversion": conversion,
            "spend": conversion * (0.3 * past + rng.gamma(2.0, 10.0, n)),
            "discount": conversion * (arm == "mail") * 2.0,
        }
    )
    path = tmp_path / "shop.csv"
    df.to_csv(path, index=False)
    return path


def test_analyze_csv_writes_table_json_and_report(shop_csv, tmp_path):
    report, summary = tmp_path / "out" / "report.html", tmp_path / "out" / "summary.json"
    args = [
        "analyze", str(shop_csv), "--arm", "arm", "--control", "control", "--metrics", "conversion,spend",
        "--covariate", "past_spend", "--margin", "0.3", "--cost-per-contact", "0.05", "--discount-column", "discount",
        "--report", str(report), "--json", str(summary),
    ]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "Lift vs control 'control'" in res.stdout and "sample ratio OK" in res.stdout
    assert "Uplift models: mail vs control" in res.stdout
    d = json.loads(summary.read_text())
    mail = d["arms"]["mail"]["metrics"]["conversion"]
    df = pd.read_csv(shop_csv)
    assert d["arms"]["mail"]["n"] == int((df.arm == "mail").sum())
    assert mail["mean"] == pytest.approx(df.loc[df.arm == "mail", "conversion"].mean())
    assert (
        mail["lift"] > 0
        and mail["ci"][0] < mail["lift"] < mail["ci"][1]
        and mail["p_value"] < 0.001
    )
    assert "cuped" in mail and d["srm"]["flagged"] is False
    assert d["economics"]["mail"]["discount_cost"] > 0
    assert (
        d["uplift"][0]["models"]["t_learner"]["qini"] > d["uplift"][0]["models"]["random"]["qini"]
    )
    # uplift features exclude outcomes, the arm, ids, dates and the discount
    assert sorted(d["uplift"][0]["features"]) == ["past_spend", "region", "young"]
    html = report.read_text()
    assert html.count("data:image/png;base64,") == 4  # lift, CUPED lift, over time, Qini
    assert not re.search(r"(src|href)=\"?https?://", html)  # self-contained
    assert "Economics" in html and "Over time" in html


def test_analyze_event_log(tmp_path):
    log = make_event_log(tmp_path / "events.sqlite")
    out = tmp_path / "s.json"
    res = runner.invoke(
        app,
        ["analyze", str(log), "--experiment", "exp1", "--control", "control", "--json", str(out)],
    )
    assert res.exit_code == 0, res.output
    d = json.loads(out.read_text())
    assert d["metrics"] == ["click", "conversion", "spend"]
    assert d["arms"]["offer"]["metrics"]["click"]["mean"] == 0.5  # customers 2 and 3
    assert d["arms"]["control"]["metrics"]["spend"]["mean"] == 12.5  # (25 + 0) / 2
    assert d["settings"]["discount_column"] == "discount_cost"
    assert d["economics"]["offer"]["discount_cost"] == pytest.approx((2.0 + 1.5) / 2 * 2)
    assert any("1 customers were exposed in more than one arm" in n for n in d["notes"])


def test_event_log_with_several_experiments_needs_one(tmp_path):
    log = make_event_log(tmp_path / "events.db")
    res = runner.invoke(app, ["analyze", str(log), "--control", "control"])
    assert res.exit_code == 2
    assert "pick one with --experiment" in res.output


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--metrics", "conversion,revenue"], "missing column(s) 'revenue'"),
        (
            ["--metrics", "conversion", "--covariate", "pre_period"],
            "missing column(s) 'pre_period' (covariate)",
        ),
        (["--metrics", "conversion", "--arm", "group"], "missing column(s) 'group' (arm)"),
        ([], "--metrics is required"),
        (
            ["--metrics", "conversion", "--allocation", "0.5,x"],
            "allocation share 'x' is not a number",
        ),
    ],
)
def test_bad_input_exit_code_2(shop_csv, extra, message):
    res = runner.invoke(app, ["analyze", str(shop_csv), "--control", "control", *extra])
    assert res.exit_code == 2, res.output
    assert message in res.output.replace("\n", "")


def test_unknown_control_arm(shop_csv):
    res = runner.invoke(
        app, ["analyze", str(shop_csv), "--control", "holdout", "--metrics", "conversion"]
    )
    assert res.exit_code == 2
    assert (
        "control arm 'holdout' not found in column 'arm'; arms are ['control', 'mail']"
        in res.output.replace("\n", "")
    )


def test_missing_file(tmp_path):
    res = runner.invoke(
        app, ["analyze", str(tmp_path / "nope.csv"), "--control", "c", "--metrics", "y"]
    )
    assert res.exit_code == 2 and "does not exist" in res.output


def test_srm_printed_loudly_and_in_json(tmp_path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {"arm": ["c"] * 10_000 + ["t"] * 9_500, "y": (rng.random(19_500) < 0.1).astype(int)}
    )
    path = tmp_path / "srm.parquet"
    df.to_parquet(path)
    out = tmp_path / "s.json"
    res = runner.invoke(
        app, ["analyze", str(path), "--control", "c", "--metrics", "y", "--json", str(out)]
    )
    assert res.exit_code == 0
    assert res.stdout.count("SAMPLE RATIO MISMATCH") >= 2  # banner before and after the table
    assert json.loads(out.read_text())["srm"]["flagged"] is True
    res = runner.invoke(
        app,
        [
            "analyze",
            str(path),
            "--control",
            "c",
            "--metrics",
            "y",
            "--allocation",
            "c=10000,t=9500",
        ],
    )
    assert res.exit_code == 0 and "sample ratio OK" in res.stdout
    assert "SAMPLE RATIO MISMATCH" not in res.stdout


def test_design_sample_size_and_mde():
    res = runner.invoke(app, ["design", "--baseline", "0.05", "--mde", "0.1"])
    assert res.exit_code == 0, res.output
    assert "31,231" in res.stdout and "62,462" in res.stdout
    res = runner.invoke(app, ["design", "--baseline", "0.05", "--n-total", "62462"])
    assert res.exit_code == 0 and "10.00%" in res.stdout
    res = runner.invoke(app, ["design", "--metric", "revenue", "--baseline", "1.0", "--mde", "0.1"])
    assert res.exit_code == 2 and "positive per-customer standard deviation" in res.output
    res = runner.invoke(app, ["design", "--baseline", "0.05"])
    assert res.exit_code == 2 and "give --mde" in res.output


def test_design_from_data(shop_csv):
    res = runner.invoke(
        app,
        [
            "design",
            "--from-data",
            str(shop_csv),
            "--column",
            "spend",
            "--arm",
            "arm",
            "--control",
            "control",
            "--mde",
            "0.1",
        ],
    )
    assert res.exit_code == 0, res.output
    df = pd.read_csv(shop_csv)
    ctl = df.loc[df.arm == "control", "spend"]
    assert f"baseline {ctl.mean():.6g}, sd {ctl.std():.6g}" in res.stdout
    assert "revenue" in res.stdout


def test_design_and_uplift_take_the_experiment_of_an_event_log(tmp_path):
    log = make_event_log(tmp_path / "events.sqlite")  # experiments exp1 and exp2
    args = ["design", "--from-data", str(log), "--column", "spend", "--mde", "0.1"]
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and "pick one with --experiment" in res.output
    res = runner.invoke(app, [*args, "--experiment", "exp1"])
    assert res.exit_code == 0, res.output
    assert "baseline" in res.stdout
    res = runner.invoke(
        app,
        ["uplift", str(log), "--treatment-column", "arm", "--control", "control"]
        + ["--outcome", "conversion", "--experiment", "nope"],
    )
    assert res.exit_code == 2 and "experiment 'nope' not in the event log" in res.output


def test_uplift_command(shop_csv, tmp_path):
    out = tmp_path / "u.json"
    args = ["uplift", str(shop_csv), "--treatment-column", "arm", "--control", "control", "--outcome", "conversion",
            "--exclude", "spend,discount,customer_id,date", "--json", str(out)]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    d = json.loads(out.read_text())["reports"][0]
    assert sorted(d["features"]) == ["past_spend", "region", "young"]
    assert d["models"]["t_learner"]["uplift_at_30"] > d["models"]["random"]["ate"]
    res = runner.invoke(
        app,
        [
            "uplift",
            str(shop_csv),
            "--treatment-column",
            "grp",
            "--control",
            "c",
            "--outcome",
            "conversion",
        ],
    )
    assert res.exit_code == 2 and "missing treatment column 'grp'" in res.output


def test_registered_in_root_cli():
    from training.cli import app as root

    res = runner.invoke(root, ["campaign", "design", "--baseline", "0.05", "--mde", "0.1"])
    assert res.exit_code == 0, res.output
    assert "31,231" in res.stdout


def test_report_and_json_written_when_uplift_cannot_be_fitted(tmp_path):
    # nobody converts: the lift table exists, the uplift models have nothing to learn
    rng = np.random.default_rng(1)
    n = 200
    df = pd.DataFrame(
        {"arm": np.repeat(["control", "mail"], n // 2), "age": rng.integers(18, 80, n)}
    ).assign(conversion=0)
    path = tmp_path / "flat.csv"
    df.to_csv(path, index=False)
    report, summary = tmp_path / "r.html", tmp_path / "s.json"
    res = runner.invoke(
        app,
        ["analyze", str(path), "--control", "control", "--metrics", "conversion",
         "--report", str(report), "--json", str(summary)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "could not be fitted" in res.stdout.replace("\n", "")
    d = json.loads(summary.read_text())
    assert "uplift" not in d
    assert any("constant outcome" in note for note in d["notes"])
    assert d["arms"]["mail"]["metrics"]["conversion"]["p_value"] == 1.0  # Fisher, 0/100 vs 0/100
    html = report.read_text()
    assert "could not be fitted" in html and "Whom to target next time" not in html


@pytest.mark.parametrize("flag", ["--json", "--report"])
@pytest.mark.parametrize(
    ("where", "message"),
    [("folder", "is a folder; give a file name"), ("under_a_file", "is a file, not a folder")],
)
def test_output_path_that_cannot_be_written_exits_2(shop_csv, tmp_path, flag, where, message):
    target = tmp_path
    if where == "under_a_file":
        (tmp_path / "notes.txt").write_text("x")
        target = tmp_path / "notes.txt" / "out.json"
    res = runner.invoke(
        app,
        ["analyze", str(shop_csv), "--control", "control", "--metrics", "conversion",
         "--no-uplift", flag, str(target)],
        catch_exceptions=False,
    )  # fmt: skip
    assert res.exit_code == 2, res.output
    out = res.output.replace("\n", "")
    assert "cannot write the" in out and message in out
    assert "Traceback" not in res.output
    assert "rel lift" not in out  # refused before the analysis, not after it


def test_unknown_uplift_column_is_refused_before_the_analysis(shop_csv, tmp_path):
    res = runner.invoke(
        app,
        ["analyze", str(shop_csv), "--control", "control", "--metrics", "conversion",
         "--report", str(tmp_path / "r.html"), "--uplift-outcome", "nope"],
        catch_exceptions=False,
    )  # fmt: skip
    assert res.exit_code == 2, res.output
    out = res.output.replace("\n", "")
    assert "uplift column(s) ['nope'] not in the input" in out
    assert "rel lift" not in out
    assert not (tmp_path / "r.html").exists()


def test_brackets_in_user_text_are_printed_as_typed(tmp_path):
    df = pd.DataFrame({"arm": ["[b]x"] * 4 + ["[ctl]"] * 4, "conversion": [1, 0, 1, 1, 0, 1, 0, 0]})
    path = tmp_path / "shop[v2].csv"
    df.to_csv(path, index=False)
    res = runner.invoke(
        app, ["analyze", str(path), "--control", "[ctl]", "--metrics", "conversion", "--no-uplift"]
    )
    assert res.exit_code == 0, res.output
    assert "[b]x" in res.stdout and "Lift vs control '[ctl]'" in res.stdout
    res = runner.invoke(
        app, ["analyze", str(path), "--control", "[nope]", "--metrics", "conversion"]
    )
    assert res.exit_code == 2 and "'[nope]'" in res.output
    res = runner.invoke(
        app, ["design", "--from-data", str(path), "--column", "conversion", "--mde", "0.5"]
    )
    assert res.exit_code == 0, res.output
    assert "estimated from shop[v2].csv [conversion], 8 rows" in res.stdout


def test_design_from_data_warns_when_metric_disagrees(shop_csv):
    args = ["design", "--from-data", str(shop_csv), "--column", "spend", "--mde", "0.1"]
    res = runner.invoke(app, [*args, "--metric", "conversion"])
    assert res.exit_code == 0, res.output
    assert "warning: --metric conversion given, but column 'spend' is not 0/1" in res.output
    assert "designing for revenue" in res.output
    res = runner.invoke(app, args)  # no explicit --metric: no warning
    assert res.exit_code == 0 and "warning" not in res.output


def test_design_zero_baseline_relative_mde_exits_2():
    res = runner.invoke(
        app, ["design", "--metric", "revenue", "--baseline", "0", "--sd", "1", "--mde", "0.1"]
    )
    assert res.exit_code == 2
    assert "a relative mde needs a positive baseline" in res.output.replace("\n", "")


def test_interval_that_cannot_be_computed_prints_n_a(tmp_path):
    # a control arm that never converts: the relative lift and its interval are undefined
    df = pd.DataFrame(
        {"arm": ["mail"] * 6 + ["control"] * 6, "conversion": [1, 0, 1, 1, 0, 1] + [0] * 6}
    )
    path = tmp_path / "zero.csv"
    df.to_csv(path, index=False)
    report = tmp_path / "r.html"
    res = runner.invoke(
        app,
        [
            "analyze",
            str(path),
            "--control",
            "control",
            "--metrics",
            "conversion",
            "--no-uplift",
            "--report",
            str(report),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "n/a" in res.stdout and "[, ]" not in res.stdout
    assert "[, ]" not in report.read_text()


def test_report_cells_print_counts_as_integers():
    from campaigns.report import _frame_table, fmt

    assert fmt(21307) == "21,307" and fmt(np.int64(21307)) == "21,307"
    assert fmt(0.18283) == "0.1828" and fmt(3.0) == "3"  # floats unchanged
    html = _frame_table(pd.DataFrame({"arm": ["a"], "n": [21307], "spend": [1.5]}), {"spend"})
    assert "<td>21,307</td>" in html and "e+04" not in html


def test_absolute_lift_of_a_rate_is_in_percentage_points(tmp_path):
    # 50% vs 25%: +25 points absolute, +100% relative; both used to print as "%"
    df = pd.DataFrame({"arm": ["t"] * 40 + ["c"] * 40, "conv": [1, 0] * 20 + [1, 0, 0, 0] * 10})
    path = tmp_path / "ab.csv"
    df.to_csv(path, index=False)
    report = tmp_path / "r.html"
    args = ["analyze", str(path), "--control", "c", "--metrics", "conv", "--no-uplift"]
    res = runner.invoke(app, [*args, "--report", str(report)])
    assert res.exit_code == 0, res.output
    assert "25.00 pp [" in res.stdout and "100.00%" in res.stdout
    assert "<td>25.00 pp</td>" in report.read_text()


def test_design_with_infinite_sd_exits_2():
    args = ["design", "--metric", "revenue", "--baseline", "5", "--sd", "inf", "--mde", "0.1"]
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    assert "standard deviation" in res.output
