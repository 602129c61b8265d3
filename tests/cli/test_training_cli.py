"""`tailor train | evaluate | predict | models` through the real CLI app, on small synthetic data.

MLflow runs against a temporary SQLite store (TAILOR_HOME in tmp_path). Two families are
trained in two worker processes (the path `tailor train all` takes), then the registry flow
is driven from the command line: a second version that is not better stays a challenger,
a forced promotion moves `champion`, a rollback moves it back.
"""

from __future__ import annotations

import os

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from training.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    from features.cli import source_dir
    from features.contract import save_tables
    from features.sources import load_source

    root = tmp_path_factory.mktemp("tailor")
    mp = pytest.MonkeyPatch()
    mp.setenv("TAILOR_HOME", str(root / "var"))
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    tables = load_source("synthetic", customers=300, products=150, days=365, seed=3)
    save_tables(tables, source_dir("synthetic"), {"source": "synthetic"})
    yield root
    mp.undo()


def invoke(*args):
    res = runner.invoke(app, list(args), catch_exceptions=False)
    return res


@pytest.mark.slow  # about 2 minutes: two trainings of churn and one of value
def test_train_two_families_in_parallel_then_promote_and_rollback(home):
    res = invoke("train", "churn,value", "--source", "synthetic", "--jobs", "2")
    assert res.exit_code == 0, res.output
    assert "churn: v1" in res.output and "value: v1" in res.output
    assert res.output.count("first champion") == 2
    table = res.output[res.output.index("training as of") :]
    assert table.count("champion") == 2 and "challenger" not in table

    from training import tracking

    assert tracking.current_champion("churn") == "1"
    assert tracking.current_champion("value") == "1"

    # the same data and config again: equal, not better -> stays a challenger
    res = invoke("train", "churn", "--source", "synthetic")
    assert res.exit_code == 0, res.output
    assert "churn: v2" in res.output
    assert "challenger" in res.output[res.output.index("training as of") :]
    assert tracking.current_champion("churn") == "1"

    res = invoke("models", "promote", "churn", "2")
    assert res.exit_code == 1  # not better without --force
    res = invoke("models", "promote", "churn", "2", "--force")
    assert res.exit_code == 0, res.output
    assert tracking.current_champion("churn") == "2"

    res = invoke("models", "list")
    assert res.exit_code == 0 and "tailor-churn" in res.output

    res = invoke("models", "rollback", "churn")
    assert res.exit_code == 0, res.output
    assert "champion is v1 again" in res.output
    assert tracking.current_champion("churn") == "1"


def test_predict_value_writes_the_contract_columns(home, tmp_path):
    out = tmp_path / "value.csv"
    res = invoke(
        "predict", "value", "--as-of", "2017-10-01", "--out", str(out), "--source", "synthetic"
    )
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out)
    assert list(df.columns[:5]) == [
        "customer_id",
        "expected_spend_90d",
        "clv_1y",
        "p_alive",
        "tier",
    ]
    assert df["customer_id"].is_unique and (df["expected_spend_90d"] >= 0).all()
    assert df["p_alive"].between(0, 1).all()


def test_predict_cross_sell_category_level_writes_category_lists(home, tmp_path):
    out = tmp_path / "cats.parquet"
    res = invoke(
        "predict", "cross-sell", "--as-of", "2017-10-01", "--out", str(out),
        "--source", "synthetic", "--level", "category", "--k", "3",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    df = pd.read_parquet(out)
    assert list(df.columns[:4]) == ["customer_id", "category", "rank", "score"]
    ranks = df.groupby("customer_id")["rank"].apply(list)
    # 1..3, fewer only for a customer who has bought from nearly every category
    assert ranks.map(lambda r: r == list(range(1, len(r) + 1)) and len(r) <= 3).all()
    assert (ranks.map(len) == 3).mean() > 0.9
    from features.cli import load_for_command

    tables = load_for_command("synthetic")
    assert set(df["category"]) <= set(tables.products["category"])


@pytest.mark.parametrize(
    "args, message",
    [
        (("churn", "--level", "category"), "for cross-sell only"),
        (("cross-sell", "--level", "brand"), "unknown level 'brand'"),
    ],
)
def test_predict_level_errors(home, tmp_path, args, message):
    out = tmp_path / "x.csv"
    res = runner.invoke(
        app, ["predict", *args, "--as-of", "2017-10-01", "--out", str(out), "--source", "synthetic"]
    )
    assert res.exit_code == 2 and message in res.output, res.output
    assert not out.exists()


@pytest.mark.slow
def test_evaluate_prints_model_and_baseline_and_writes_long_table(home, tmp_path):
    out = tmp_path / "ev.parquet"
    res = invoke("evaluate", "churn", "--source", "synthetic", "--no-log", "--out", str(out))
    assert res.exit_code == 0, res.output
    ev = pd.read_parquet(out)
    assert {"lightgbm", "logistic_rfm"} <= set(ev["model"])
    assert ev["cutoff"].nunique() == 3
    assert "logistic_rfm" in res.output and "mean" in res.output
    assert "ROC-AUC +0.03 over the baseline" in res.output  # the goals table


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("train", "weather"), "unknown model family"),
        (("predict", "churn", "--as-of", "2017-10-01", "--out", "x.txt"), "use .parquet or .csv"),
        (("predict", "churn", "--as-of", "not-a-date", "--out", "x.csv"), "not a date"),
        (
            (
                "predict",
                "churn",
                "--as-of",
                "2017-01-10",
                "--out",
                "x.csv",
                "--source",
                "synthetic",
            ),
            "too little history",
        ),
    ],
)
def test_bad_arguments_are_clear(home, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)  # relative outputs (x.csv, x.txt) land here if written
    res = runner.invoke(app, list(args), catch_exceptions=False)
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "x.txt").exists()


SYN = ("--source", "synthetic")


def _flat(output: str) -> str:
    """The output on one line, without the frame of typer's error box."""
    return " ".join(output.replace("│", " ").split())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("predict", "churn", "--as-of", "", "--out", "x.csv", *SYN), "not a date: ''"),
        (
            ("predict", "churn", "--as-of", "2019-06-01", "--out", "x.csv", *SYN),
            "is after the data ends",
        ),
        (("predict", "churn", "--as-of", "2017-10-01", "--out", "x.csv", "-s", "nosuch"), "nosuch"),
        (
            ("predict", "churn", "--as-of", "2017-10-01", "--out", "x.csv", "-s", "files")
            + ("--path", "/nonexistent/tailor"),
            "/nonexistent/tailor",
        ),
        (
            ("predict", "churn", "--as-of", "2017-10-01", "--out", "x.csv", "-s", "files")
            + ("--path", ".", "--mapping", "/nonexistent/m.toml"),
            "mapping file /nonexistent/m.toml not found",
        ),
        # churn needs a 60-day label window and 56 days of history before a training cutoff
        (
            ("predict", "churn", "--as-of", "2017-02-15", "--out", "x.csv", *SYN),
            "churn: cannot fit as of 2017-02-15",
        ),
        (("train", "churn", "--as-of", "2017-02-15", *SYN), "churn: cannot validate at"),
        (("train", "churn", "--as-of", "", *SYN), "not a date"),
        (("evaluate", "churn", "--out", "ev.txt", *SYN), "use .parquet or .csv"),
        (("models", "rollback", "weather"), "unknown model family"),
        (("models", "rollback", "next-purchase"), "tailor-next-purchase"),
        (("models", "promote", "next-purchase", "v7"), "tailor-next-purchase v7"),
        (("models", "promote", "next-purchase", "seven"), "not a version number"),
    ],
)
def test_bad_input_gives_a_message_not_a_traceback(home, tmp_path, monkeypatch, args, message):
    """Each case exits 2 with the message; no exception escapes (`catch_exceptions` off)."""
    monkeypatch.chdir(tmp_path)  # the cases' relative outputs (x.csv) land here if written
    res = runner.invoke(app, list(args), catch_exceptions=False)
    assert res.exit_code == 2, res.output
    assert message in _flat(res.output), res.output
    assert not (tmp_path / "x.csv").exists()


def test_evaluate_checks_the_plots_folder_before_any_work(home, tmp_path):
    afile = tmp_path / "plots"
    afile.write_text("not a folder")
    res = runner.invoke(app, ["evaluate", "churn", *SYN, "--plots", str(afile)])
    assert res.exit_code == 2 and "is a file, not a folder" in _flat(res.output)


def test_predict_next_purchase_longer_lists_than_the_default(home, tmp_path):
    out = tmp_path / "np.csv"
    res = invoke("predict", "next-purchase", "--as-of", "2017-10-01", "--out", str(out), *SYN)
    assert res.exit_code == 0, res.output
    res = invoke(
        "predict", "next-purchase", "--as-of", "2017-10-01", "--k", "60", "--out", str(out), *SYN
    )
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out)
    assert df.groupby("customer_id")["rank"].max().max() > 50


def test_parse_date_and_the_protocol_check():
    import typer

    from features.contract import Tables
    from training.commands import check_protocol_covered, parse_date, validation_cutoff
    from training.protocol import CUTOFFS, WINDOWS_DAYS

    assert parse_date("2017-10-01T00:00+05:00") == pd.Timestamp("2017-09-30 19:00")
    assert parse_date(None) is None
    with pytest.raises(typer.BadParameter, match="not a date"):
        parse_date(" ")
    # a model trained as of a date validates on data before it only
    assert validation_cutoff("churn", pd.Timestamp("2018-01-01")) == pd.Timestamp("2017-08-01")
    assert validation_cutoff("churn", pd.Timestamp("2017-06-01")) == pd.Timestamp("2017-04-02")
    # data of another year validates as far into its own data as Complete Journey does,
    # and a refresh that appends weeks keeps the cutoff
    start = pd.Timestamp("2022-03-05 08:30")
    for as_of in ("2023-03-10", "2023-04-20"):
        got = validation_cutoff("churn", pd.Timestamp(as_of), start)
        assert got == pd.Timestamp("2022-03-05") + (
            pd.Timestamp("2017-08-01") - pd.Timestamp("2017-01-01")
        )
    assert validation_cutoff("churn", pd.Timestamp("2011-12-10"), pd.Timestamp("2010-12-01")) == (
        pd.Timestamp("2011-07-01")
    )
    # Complete Journey's own start, or data that began earlier: DESIGN.md's date
    for begin in ("2017-01-01 06:00", "2016-01-01"):
        got = validation_cutoff("churn", pd.Timestamp("2018-01-01"), pd.Timestamp(begin))
        assert got == pd.Timestamp("2017-08-01")
    for family, cutoffs in CUTOFFS.items():  # validation windows end by the first reporting one
        if family in ("next_purchase", "cross_sell"):  # churn and value: training.protocol
            end = validation_cutoff(family, pd.Timestamp("2018-01-01")) + pd.Timedelta(
                days=WINDOWS_DAYS[family]
            )
            assert end <= min(cutoffs), family
    tx = pd.DataFrame(
        {
            "customer_id": [1, 1],
            "basket_id": [1, 2],
            "product_id": [1, 1],
            "store_id": [1, 1],
            "timestamp": pd.to_datetime(["2017-01-01", "2017-11-30"]),
            "quantity": [1.0, 1.0],
            "sales_value": [1.0, 1.0],
            "retail_discount": [0.0, 0.0],
            "coupon_discount": [0.0, 0.0],
        }
    )
    tables = Tables(transactions=tx)
    check_protocol_covered(tables, "value")  # the last window, 2017-09-01 + 90 days, fits
    with pytest.raises(typer.BadParameter, match=r"cutoffs 2017-12-01 with their 14-day"):
        check_protocol_covered(tables, "next_purchase")
    with pytest.raises(typer.BadParameter, match=r"cutoffs 2017-11-01 with their 60-day"):
        check_protocol_covered(tables, "churn")


def test_suggested_cutoffs_fit_data_of_another_year():
    import typer

    from features.contract import Tables
    from training.commands import check_protocol_covered, suggested_cutoffs
    from training.protocol import CUTOFFS

    days = pd.date_range("2010-12-01", "2011-12-09", freq="D")  # Online Retail's span
    tx = pd.DataFrame(
        {
            "customer_id": 1,
            "basket_id": range(len(days)),
            "product_id": 1,
            "store_id": 1,
            "timestamp": days,
            "quantity": 1.0,
            "sales_value": 1.0,
            "retail_discount": 0.0,
            "coupon_discount": 0.0,
        }
    )
    tables = Tables(transactions=tx)
    for family in CUTOFFS:
        with pytest.raises(typer.BadParameter, match=r"e\.g\. --cutoffs 2011-"):
            check_protocol_covered(tables, family)
        cuts = suggested_cutoffs(tables, family)
        check_protocol_covered(tables, family, cuts)  # they fit
        gaps = {b - a for a, b in zip(CUTOFFS[family], CUTOFFS[family][1:], strict=False)}
        assert {b - a for a, b in zip(cuts, cuts[1:], strict=False)} == gaps  # same spacing
    with pytest.raises(typer.BadParameter, match="too short"):
        check_protocol_covered(Tables(transactions=tx[tx.timestamp < "2011-01-20"]), "value")


def test_evaluate_at_own_cutoffs(home, tmp_path):
    out = tmp_path / "ev.csv"
    res = invoke(
        "evaluate", "value", "--source", "synthetic", "--no-log", "--out", str(out),
        "--cutoffs", "2017-07-01, 2017-06-01",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    ev = pd.read_csv(out)
    assert sorted(ev["cutoff"].astype(str).str[:10].unique()) == ["2017-06-01", "2017-07-01"]
    for bad, message in [
        ("2017-12-15", "the cutoffs 2017-12-15 with their 90-day windows"),
        ("2017-06-01T10:00", "days (YYYY-MM-DD), not times"),
        (" , ", "at least one date"),
    ]:
        res = invoke("evaluate", "value", "--source", "synthetic", "--no-log", "--cutoffs", bad)
        assert res.exit_code == 2 and message in _flat(res.output), res.output


@pytest.mark.parametrize("task", ["next-purchase", "cross-sell", "churn", "value"])
def test_predict_twice_gives_the_same_output(home, tmp_path, task):
    """Issue #3 part 6: same seed, same output (a fresh fit each time, byte for byte)."""
    outs = []
    for i in range(2):
        out = tmp_path / f"{task}-{i}.csv"
        res = invoke(
            "predict", task, "--as-of", "2017-10-01", "--out", str(out), "--source", "synthetic"
        )
        assert res.exit_code == 0, res.output
        outs.append(out.read_bytes())
    assert len(outs[0]) > 100 and outs[0] == outs[1]


def lgbm_stage(family, tables, as_of):
    """Fits and predicts with LightGBM on two threads in the worker: the region that hung."""
    import lightgbm as lgb

    X, y = tables
    model = lgb.LGBMClassifier(n_estimators=5, n_jobs=2, verbose=-1).fit(X, y)
    return {"family": family, "p": model.predict_proba(X)[:, 1]}


def fake_stage(family, tables, as_of):
    """A stage that fails for value (module level: worker processes import it)."""
    import training.commands as commands

    if family == "value":
        raise commands.CannotTrain("value: cannot fit as of 2017-05-01: too little history")
    return {"family": family, "pid": os.getpid()}


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_family_that_cannot_train_leaves_the_registry_as_it_was(monkeypatch, jobs):
    import training.commands as commands

    logged = []
    monkeypatch.setattr(
        commands, "log_stage", lambda stage, *a, **k: logged.append(stage["family"]) or stage
    )
    fams = ["next_purchase", "churn", "value"]
    with pytest.raises(commands.CannotTrain, match="value: cannot fit"):
        commands.train_families(
            fams, None, pd.Timestamp("2017-05-01"), jobs=jobs, stage_fn=fake_stage
        )
    assert logged == []  # nothing logged or registered
    got = commands.train_families(
        fams[:2], None, pd.Timestamp("2017-05-01"), jobs=jobs, stage_fn=fake_stage
    )
    assert [r["family"] for r in got] == fams[:2] and sorted(logged) == sorted(fams[:2])
    # with 2 jobs the stages ran in other processes
    assert all((r["pid"] != os.getpid()) == (jobs == 2) for r in got)


def test_parallel_training_does_not_hang_after_openmp_ran_in_this_process(monkeypatch):
    """A forked worker of a process that has run a multi-threaded LightGBM fit hung in
    its first parallel region (libgomp is not fork-safe); the workers are spawned."""
    import lightgbm as lgb
    import numpy as np

    import training.commands as commands

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(2000, 5)), rng.integers(0, 2, 2000)
    lgb.LGBMClassifier(n_estimators=5, n_jobs=2, verbose=-1).fit(X, y)  # OpenMP pool here
    monkeypatch.setattr(commands, "log_stage", lambda stage, *a, **k: stage)
    got = commands.train_families(
        ["churn", "value"], (X, y), pd.Timestamp("2017-05-01"), jobs=2, stage_fn=lgbm_stage
    )
    assert [len(r["p"]) for r in got] == [2000, 2000]


def test_a_broken_settings_file_is_a_message(tmp_path, monkeypatch):
    bad = tmp_path / "tailor.toml"
    bad.write_text("home = [unclosed\n")
    monkeypatch.setenv("TAILOR_CONFIG", str(bad))
    res = runner.invoke(app, ["models", "list"], catch_exceptions=False)
    assert res.exit_code == 2 and "is not valid TOML" in res.output
    monkeypatch.setenv("TAILOR_CONFIG", str(tmp_path / "missing.toml"))
    res = runner.invoke(app, ["models", "list"], catch_exceptions=False)
    assert res.exit_code == 2 and "which does not exist" in _flat(res.output)


def test_an_output_file_is_replaced_whole(tmp_path, monkeypatch):
    from training.commands import write_frame

    out = tmp_path / "p.csv"
    write_frame(pd.DataFrame({"a": [1, 2]}), out)
    assert pd.read_csv(out)["a"].tolist() == [1, 2]

    def broken(self, path, **kw):  # dies half-way through writing
        open(path, "w").write("a\n3\n")
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_csv", broken)
    with pytest.raises(KeyboardInterrupt):
        write_frame(pd.DataFrame({"a": [3, 4]}), out)
    monkeypatch.undo()
    assert pd.read_csv(out)["a"].tolist() == [1, 2] and list(tmp_path.iterdir()) == [out]

    def full(self, path, **kw):  # the disk fills up: one line and exit 2, not a traceback
        open(path, "w").write("a\n3\n")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    with pytest.raises(typer.Exit) as exc:
        write_frame(pd.DataFrame({"a": [3, 4]}), out)
    monkeypatch.undo()
    assert exc.value.exit_code == 2
    assert pd.read_csv(out)["a"].tolist() == [1, 2] and list(tmp_path.iterdir()) == [out]


@pytest.mark.parametrize(
    "args",
    [
        ("predict", "next-purchase", "--as-of", "2017-10-01", *SYN, "--out", "notes.txt/p.csv"),
        ("evaluate", "churn", *SYN, "--no-log", "--out", "notes.txt/ev.csv"),
        ("predict", "churn", "--as-of", "2017-10-01", *SYN, "--out", "afolder.csv"),
    ],
)
def test_an_output_that_cannot_be_written_stops_before_any_work(home, tmp_path, monkeypatch, args):
    """Was a FileExistsError traceback (exit 1) after the whole fit or evaluation."""
    monkeypatch.chdir(tmp_path)  # short relative paths: long ones wrap inside the error box
    (tmp_path / "notes.txt").write_text("keep")
    (tmp_path / "afolder.csv").mkdir()
    res = runner.invoke(app, list(args), catch_exceptions=False)
    assert res.exit_code == 2, res.output
    out = _flat(res.output)
    assert (
        "notes.txt is a file, not a folder" in out or "afolder.csv is a folder; give a file" in out
    ), out
    assert "evaluating" not in out and "fitting" not in out


@pytest.fixture(scope="module")
def coded_shop(tmp_path_factory):
    """A shop whose customers and products are text codes ('C17', 'SKU-100003') in its
    own column names, read through a mapping, as a retailer's export would be."""
    import json

    from features.contract import validate
    from features.sources.synthetic import generate

    root = tmp_path_factory.mktemp("coded_shop")
    tx = validate(generate(customers=40, products=100, days=240, seed=1)).transactions
    pd.DataFrame(
        {
            "Client": "C" + tx["customer_id"].astype(str),
            "Receipt": tx["basket_id"],
            "SKU": "SKU-" + tx["product_id"].astype(str),
            "When": tx["timestamp"].dt.strftime("%d/%m/%Y %H:%M"),
            "Qty": tx["quantity"],
            "Amount": tx["sales_value"],
        }
    ).to_csv(root / "sales.csv", index=False)
    mapping = {
        "transactions": {
            "file": "sales.csv",
            "customer_id": "Client",
            "basket_id": "Receipt",
            "product_id": "SKU",
            "timestamp": {"column": "When", "format": "%d/%m/%Y %H:%M"},
            "quantity": "Qty",
            "sales_value": "Amount",
        }
    }
    (root / "map.json").write_text(json.dumps(mapping))
    return root, tx


def test_predict_writes_the_shops_own_codes_next_to_the_ids(home, tmp_path, coded_shop):
    """The ids of text codes are hashes; without the codes the output joins to nothing."""
    root, tx = coded_shop
    out = tmp_path / "np.csv"
    res = invoke(
        "predict", "next-purchase", "--as-of", "2017-08-01", "--out", str(out), "-s", "files",
        "--path", str(root), "--mapping", str(root / "map.json"), "--k", "3",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out, dtype={"customer_code": str, "product_code": str})
    assert list(df.columns[:6]) == [
        "customer_id", "product_id", "rank", "score", "customer_code", "product_code",
    ]  # fmt: skip
    assert df["customer_id"].min() >= 2**62  # hashed
    assert df["customer_code"].str.fullmatch(r"C\d+").all()
    assert set(df["customer_code"]) <= set("C" + tx["customer_id"].astype(str))
    assert df["product_code"].str.fullmatch(r"SKU-\d+").all()
    from features.sources.files import stable_ids

    assert stable_ids(df["customer_code"])[0].tolist() == df["customer_id"].tolist()
    assert stable_ids(df["product_code"])[0].tolist() == df["product_id"].tolist()
