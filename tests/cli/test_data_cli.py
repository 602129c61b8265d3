"""`tailor data ...` and `tailor features build` through the real CLI app."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from training.cli import app

runner = CliRunner()


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("TAILOR_HOME", str(tmp_path / "var"))
    return tmp_path


def _write_shop(directory, bad_price=False):
    directory.mkdir(parents=True, exist_ok=True)
    tx = pd.DataFrame(
        {
            "customer_id": [1, 1, 2, 2, 3],
            "basket_id": [10, 11, 20, 21, 30],
            "product_id": [100, 101, 100, 102, 101],
            "store_id": [1, 1, 1, 2, 2],
            "timestamp": [
                "2017-01-02 10:00",
                "2017-01-09 11:00",
                "2017-01-03 09:00",
                "2017-01-20 18:00",
                "2017-01-05 12:00",
            ],
            "quantity": [1, 2, 1, -1, 1],
            "sales_value": [2.5, 5.0, 2.5, -3.0, 4.0],
            "retail_discount": [0.0, 0.5, 0.0, 0.0, 0.0],
            "coupon_discount": [0.0, 0.0, 0.0, 0.0, 0.0],
        }
    )
    if bad_price:
        tx.loc[1, "sales_value"] = -5.0
    tx.to_csv(directory / "transactions.csv", index=False)
    return tx


def test_load_describe_and_rejected_load_keeps_good_data(home):
    good = home / "good"
    _write_shop(good)
    res = runner.invoke(app, ["data", "load", "--source", "files", "--path", str(good)])
    assert res.exit_code == 0, res.output
    saved = home / "var" / "data" / "sources" / "files" / "transactions.parquet"
    assert len(pd.read_parquet(saved)) == 5

    bad = home / "bad"
    _write_shop(bad, bad_price=True)
    res = runner.invoke(app, ["data", "load", "--source", "files", "--path", str(bad)])
    assert res.exit_code == 2
    assert "negative price" in res.output and "sales_value" in res.output
    kept = pd.read_parquet(saved)
    assert (kept["sales_value"] >= -3.0).all() and len(kept) == 5  # the previous good data

    res = runner.invoke(app, ["data", "describe", "--source", "files"])
    assert res.exit_code == 0, res.output
    assert "returns" in res.output


def test_files_source_needs_a_path(home):
    res = runner.invoke(app, ["data", "validate", "--source", "files"])
    assert res.exit_code == 2
    assert "--path" in res.output


def test_unknown_source(home):
    res = runner.invoke(app, ["data", "validate", "--source", "nope"])
    assert res.exit_code == 2
    assert "unknown source" in res.output


def test_features_build_writes_parquet(home):
    shop = home / "shop"
    _write_shop(shop)
    out = home / "feat"
    res = runner.invoke(
        app,
        [
            "features",
            "build",
            "--as-of",
            "2017-01-15",
            "--source",
            "files",
            "--path",
            str(shop),
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["out"] == str(out)
    cust = pd.read_parquet(out / "customers.parquet")
    # customer 2's return on 2017-01-20 is after the cutoff: only their first visit counts
    assert sorted(
        cust.index.tolist() if cust.index.name == "customer_id" else cust["customer_id"].tolist()
    ) == [1, 2, 3]


def test_features_build_rejects_bad_date(home):
    res = runner.invoke(app, ["features", "build", "--as-of", "not-a-date"])
    assert res.exit_code == 2
    assert "not a date" in res.output


def _build(home, out, as_of="2017-01-15"):
    shop = home / "shop"
    _write_shop(shop)
    args = ["features", "build", "--as-of", as_of, "--source", "files", "--path", str(shop)]
    return runner.invoke(app, [*args, "--out", str(out)])


def test_features_build_never_deletes_a_folder_of_other_files(home):
    out = home / "reports"
    out.mkdir()
    (out / "q3_notes.txt").write_text("important")
    res = _build(home, out)
    assert res.exit_code == 2
    assert "holds other files" in " ".join(res.output.replace("│", " ").split())
    assert (out / "q3_notes.txt").read_text() == "important"
    # an earlier build in the same folder is replaced, and a time zone is read as UTC
    ok = home / "feat"
    assert _build(home, ok).exit_code == 0
    res = _build(home, ok, as_of="2017-01-16T00:00+05:00")
    assert res.exit_code == 0, res.output
    assert json.loads((ok / "manifest.json").read_text())["cutoff"].startswith("2017-01-15 19:00")


def test_features_build_rejects_a_blank_date(home):
    res = runner.invoke(app, ["features", "build", "--as-of", ""])
    assert res.exit_code == 2 and "not a date" in res.output


def _flat(output: str) -> str:
    return " ".join(output.replace("│", " ").split())


def test_features_build_checks_the_output_folder_before_any_work(home, monkeypatch):
    monkeypatch.chdir(home)  # short relative paths: long ones wrap inside the error box
    afile = home / "notes.txt"
    afile.write_text("keep")
    res = _build(home, "notes.txt/features")
    assert res.exit_code == 2
    assert "cannot write notes.txt/features:" in _flat(res.output)
    assert "notes.txt is a file, not a folder" in _flat(res.output)
    assert afile.read_text() == "keep"


@pytest.mark.parametrize(
    ("as_of", "message"),
    [
        (
            "01/02/2017",
            "'01/02/2017' is ambiguous (day or month first?); write 2017-02-01 or 2017-01-02",
        ),
        ("2.1.17", "write 2017-01-02 or 2017-02-01"),
    ],
)
def test_an_ambiguous_date_is_refused_not_read_month_first(home, as_of, message):
    res = _build(home, home / "feat", as_of=as_of)
    assert res.exit_code == 2 and message in _flat(res.output), res.output
    assert not (home / "feat").exists()
    # an unambiguous one is read either way round
    assert _build(home, home / "feat", as_of="13/01/2017").exit_code == 0
    assert json.loads((home / "feat" / "manifest.json").read_text())["cutoff"].startswith(
        "2017-01-13"
    )


def test_features_build_after_the_data_says_what_the_gap_does(home):
    res = _build(home, home / "feat", as_of="2017-03-01")
    assert res.exit_code == 0, res.output
    out = _flat(res.output)
    assert "the cutoff is 39 day(s) after the last transaction" in out
    assert "as of the end of the data" not in out  # they are not: recency counts the gap
    cust = pd.read_parquet(home / "feat" / "customers.parquet")
    assert (cust["recency_days"] > 39).all()
