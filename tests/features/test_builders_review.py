"""Review of the as-of builders: hand-made cases with known answers for defects fixed after review."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from features.build import build_all, read_features, write_features
from features.customer import customer_features, customer_globals
from features.customer_product import customer_product_features
from tests.features._factories import CUTOFF, line, make_tables, random_tables, shop


def test_return_value_is_float_without_any_return():
    # Complete Journey has no returns: return_value came out int64 there (bincount of
    # nothing), float64 wherever a return exists, so the schema depended on the data.
    lines = [line(1, 1, 1, "2017-01-02", 3.0), line(1, 2, 2, "2017-01-09", 4.0)]
    f = customer_features(make_tables(lines), CUTOFF)
    assert f["return_value"].dtype == np.float64
    assert f.loc[1, "return_value"] == 0.0 and f.loc[1, "return_lines"] == 0.0


@pytest.mark.parametrize("seed", range(6))
def test_random_subsets_give_the_full_runs_rows_and_schema(seed):
    # The architecture rule: any subset of customers' rows plus the explicit globals give
    # those customers' rows of the full run, values and dtypes alike (partitions must
    # concatenate into one schema). Subsets include empty ones and ones without returns.
    t = random_tables(seed=seed, customers=30, baskets=300)
    rng = np.random.default_rng(seed)
    ids = np.array(sorted(t.transactions["customer_id"].unique()))
    for cutoff in ("2016-10-15", "2017-01-01 13:37", "2017-04-28"):
        g = customer_globals(t, cutoff)
        full = customer_features(t, cutoff, g)
        cp_full = customer_product_features(t, cutoff)
        for size in (0, 1, 3, int(rng.integers(2, len(ids)))):
            some = sorted(rng.choice(ids, size, replace=False).tolist())
            part = customer_features(t.subset_customers(some), cutoff, g)
            pd.testing.assert_frame_equal(
                part, full.loc[full.index.intersection(some)], check_exact=True
            )
            want = cp_full[cp_full["customer_id"].isin(some)].reset_index(drop=True)
            pd.testing.assert_frame_equal(
                customer_product_features(t.subset_customers(some), cutoff), want, check_exact=True
            )
            pd.testing.assert_frame_equal(
                customer_product_features(t, cutoff, customer_ids=some), want, check_exact=True
            )


def test_write_features_refuses_a_cutoff_that_contradicts_the_frames(tmp_path):
    # The explicit cutoff used to win silently: read_features then labelled features built
    # as of CUTOFF as of a later date.
    frames = build_all(shop(), CUTOFF)
    with pytest.raises(ValueError, match="contradicts"):
        write_features(frames, tmp_path / "f", cutoff=CUTOFF + pd.Timedelta(days=1))
    assert not (tmp_path / "f").exists()
    out = write_features(frames, tmp_path / "f", cutoff=str(CUTOFF.date()))  # same instant
    assert read_features(out)["customers"].attrs["cutoff"] == str(CUTOFF)


def test_cli_build_at_a_time_of_day_gets_its_own_folder(tmp_path, monkeypatch):
    # A cutoff at noon went to the folder of its date and silently replaced the build as of
    # that midnight (the folder name said one cutoff, its manifest another).
    from typer.testing import CliRunner

    from training.cli import app

    monkeypatch.setenv("TAILOR_HOME", str(tmp_path / "var"))
    src = tmp_path / "shop"
    src.mkdir()
    pd.DataFrame(
        [
            line(1, 10, 100, "2017-01-02 10:00", 2.5),
            line(1, 11, 101, "2017-01-09 11:00", 5.0),
            line(2, 20, 100, "2017-01-15 09:00", 2.5),
        ]
    ).to_csv(src / "transactions.csv", index=False)
    runner = CliRunner()
    outs = {}
    for as_of in ("2017-01-15", "2017-01-15 12:00"):
        args = ["features", "build", "--as-of", as_of, "--source", "files", "--path", str(src)]
        res = runner.invoke(app, args)
        assert res.exit_code == 0, res.output
        outs[as_of] = json.loads(res.stdout.strip().splitlines()[-1])["out"]
    root = tmp_path / "var" / "data" / "features" / "files"
    assert outs["2017-01-15"] == str(root / "2017-01-15")
    assert outs["2017-01-15 12:00"] == str(root / "2017-01-15T120000")
    for as_of, out in outs.items():
        manifest = json.loads((root / out.rsplit("/", 1)[1] / "manifest.json").read_text())
        assert manifest["cutoff"] == str(pd.Timestamp(as_of))
    # the midnight build excludes customer 2's 09:00 purchase, the noon build has it
    assert read_features(outs["2017-01-15"])["customers"].index.tolist() == [1]
    assert read_features(outs["2017-01-15 12:00"])["customers"].index.tolist() == [1, 2]
