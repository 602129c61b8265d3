"""`tailor lists`, `tailor forget` and the store preparation from the MLflow registry."""

from __future__ import annotations

import hashlib
import hmac

import pandas as pd
import pytest
from typer.testing import CliRunner

from serving.cli import app, prepare_store
from serving.eventlog import EventLog, exposure_rows, read_log
from serving.privacy import forgotten_ids, pseudonymise
from serving.schemas import EventRequest
from serving.store import build_store, load_store, read_meta, store_path
from tests.serving.conftest import AS_OF, stand_in_models, stand_in_predict
from tests.serving.test_service_asgi import META

KEY = "test-key"
runner = CliRunner()


@pytest.fixture
def home(tmp_path, monkeypatch, tiny_frames):
    monkeypatch.setenv("TAILOR_HOME", str(tmp_path))
    monkeypatch.setenv("TAILOR_SERVING_DIR", str(tmp_path / "serving"))
    monkeypatch.setenv("TAILOR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TAILOR_PSEUDONYM_KEY", KEY)
    build_store(tiny_frames, store_path(tmp_path / "serving"), META)
    return tmp_path


def test_pseudonym_is_a_keyed_hash():
    expected = hmac.new(KEY.encode(), b"42", hashlib.sha256).hexdigest()[:20]
    assert pseudonymise(42, KEY) == expected
    assert pseudonymise(42, "other") != expected


def test_erasures_at_the_same_time_all_reach_the_suppression_list(tmp_path, monkeypatch):
    import threading
    import time

    import serving.privacy as privacy

    read = privacy.forgotten_pseudonyms

    def slow_read(d):  # widen the read-add-write window
        out = read(d)
        time.sleep(0.005)
        return out

    monkeypatch.setattr(privacy, "forgotten_pseudonyms", slow_read)

    def erase(ids):
        for c in ids:
            privacy.remember_forgotten(tmp_path, c, KEY)

    threads = [threading.Thread(target=erase, args=(range(i, 40, 4),)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert forgotten_ids(range(50), tmp_path, KEY) == set(range(40))


def test_lists_write_pseudonymised_parquet_and_csv(home):
    out = home / "mailing"
    res = runner.invoke(app, ["lists", "--date", "2017-03-01", "--out", str(out), "--n", "4"])
    assert res.exit_code == 0, res.output
    pq = pd.read_parquet(out / "shopping_lists_2017-03-01.parquet")
    csv = pd.read_csv(out / "shopping_lists_2017-03-01.csv")
    assert len(pq) == len(csv) > 0
    assert "customer_id" not in pq.columns and "score" not in pq.columns
    active = sorted(
        c for c, s in load_store(store_path(home / "serving")).scores.items() if s.active
    )
    assert set(pq["customer"]) == {pseudonymise(c, KEY) for c in active}
    assert pq.groupby("customer")["rank"].max().le(4).all()
    c1 = pq[pq["customer"] == pseudonymise(1, KEY)]
    assert (
        c1.iloc[0]["product_id"] == 101 and c1.iloc[0]["coupon_id"] == 11
    )  # the planted retention offer with its coupon
    exp, _ = read_log(home / "serving" / "events.sqlite")
    assert len(exp) == len(pq) and exp["request_id"].str.startswith("list-").all()
    # each row names its list's logged request id, so a mailer can send events for it
    assert pq.groupby("request_id")["customer"].nunique().eq(1).all()
    assert pq["request_id"].nunique() == pq["customer"].nunique()
    assert set(pq["request_id"]) == set(exp["request_id"]) == set(csv["request_id"])
    row = pq.iloc[0]
    EventRequest(
        request_id=row["request_id"],
        customer_id=1,
        product_id=int(row["product_id"]),
        type="redeemed",
    )


def test_lists_bad_date_and_missing_models(home, tiny_frames):
    res = runner.invoke(app, ["lists", "--date", "yesterday"])
    assert res.exit_code == 2 and "is not a date" in res.output
    build_store(
        tiny_frames,
        store_path(home / "serving"),
        {**META, "missing": {"cross_sell": "no champion"}},
    )
    res = runner.invoke(app, ["lists", "--date", "2017-03-01"])
    assert res.exit_code == 2 and "model cross_sell: no champion" in res.output


def test_lists_are_fast_enough_for_every_household(home):
    import time

    from serving.config import load_config
    from serving.engine import OfferEngine
    from serving.lists import shopping_lists

    engine = OfferEngine(load_store(store_path(home / "serving")), load_config())
    t0 = time.perf_counter()
    df = shopping_lists(engine, AS_OF.date(), customers=[1, 2, 3, 4, 5, 6] * 420)  # ~2,500 lists
    assert time.perf_counter() - t0 < 10 and df["customer_id"].nunique() == 6


def test_forget_erases_everywhere_and_says_what(home):
    sd = home / "serving"
    assert runner.invoke(app, ["lists", "--date", "2017-03-01"]).exit_code == 0
    log = EventLog(sd / "events.sqlite")
    log.append_exposures(
        exposure_rows("r1", "t", 1, "default", "personalised", [(101, "replenish", 0.9, 0.0)])
    )
    log.append_event("r1", 1, 101, "purchased", 3.0)
    log.append_event("r2", 2, 301, "viewed")
    log.close()
    feats = home / "data" / "features" / "completejourney" / "2017-03-01"
    feats.mkdir(parents=True)
    pd.DataFrame({"customer_id": [1, 2], "x": [0.5, 0.7]}).to_parquet(
        feats / "customers.parquet", index=False
    )
    n_list_rows = int(
        (
            pd.read_parquet(sd / "lists" / "shopping_lists_2017-03-01.parquet")["customer"]
            == pseudonymise(1, KEY)
        ).sum()
    )

    res = runner.invoke(app, ["forget", "1"])
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())
    assert "erased customer 1" in out and "rows removed in all" in out
    assert (
        "event log: events" in out
        and "lookup store: candidates" in out
        and "customers.parquet" in out
    )

    st = load_store(store_path(sd))
    assert 1 not in st.scores and 1 not in st.candidates and 2 in st.scores
    exp, ev = read_log(sd / "events.sqlite")
    assert (exp["customer_id"] != 1).all() and ev["customer_id"].tolist() == [2]
    for f in ("shopping_lists_2017-03-01.parquet", "shopping_lists_2017-03-01.csv"):
        p = sd / "lists" / f
        df = pd.read_parquet(p) if f.endswith("parquet") else pd.read_csv(p)
        assert pseudonymise(1, KEY) not in set(df["customer"]) and pseudonymise(2, KEY) in set(
            df["customer"]
        )
    assert pd.read_parquet(feats / "customers.parquet")["customer_id"].tolist() == [2]
    assert forgotten_ids([1, 2, 3], sd, KEY) == {1}
    assert n_list_rows > 0


@pytest.mark.slow
def test_prepare_store_from_registry_pins_champions(home, tiny_tables, monkeypatch):
    """Stand-in models registered in a temporary MLflow registry; families without a champion are
    recorded as missing; the store is rebuilt only when a champion moves."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
    from training import tracking

    models = stand_in_models()
    for fam in ("churn", "value"):
        _, version = tracking.log_family_run(
            fam,
            models[fam],
            models[fam].frame,
            cutoff=AS_OF,
            config={},
            evaluation=None,
            validation_metric="auc",
            validation_value=0.7,
            feature_names=None,
            fingerprint="x",
            validation_split="2017-01-01/x",
        )
        tracking.promote_if_better(fam, version)
    store_path(home / "serving").unlink()
    path = prepare_store(
        source="tiny", tables=tiny_tables, as_of="2017-03-01", predict=stand_in_predict
    )
    meta = read_meta(path)
    assert meta["model_versions"] == {"churn": "1", "value": "1"}
    assert set(meta["missing"]) == {"next_purchase", "cross_sell"}
    assert (
        "no 'champion' version registered for tailor-next-purchase"
        in meta["missing"]["next_purchase"]
    )
    built = meta["built_at"]
    assert (
        read_meta(
            prepare_store(
                source="tiny", tables=tiny_tables, as_of="2017-03-01", predict=stand_in_predict
            )
        )["built_at"]
        == built
    )
    _, v2 = tracking.log_family_run(
        "churn",
        models["churn"],
        models["churn"].frame,
        cutoff=AS_OF,
        config={},
        evaluation=None,
        validation_metric="auc",
        validation_value=0.8,
        feature_names=None,
        fingerprint="x",
        validation_split="2017-01-01/x",
    )
    assert tracking.promote_if_better("churn", v2)[0]
    meta2 = read_meta(
        prepare_store(
            source="tiny", tables=tiny_tables, as_of="2017-03-01", predict=stand_in_predict
        )
    )
    assert meta2["model_versions"] == {"churn": "2", "value": "1"}


def _customer_ids(path) -> set[int]:
    df = pd.read_parquet(path)
    return set(df.index if df.index.name == "customer_id" else df["customer_id"])


def test_forget_reaches_saved_sources_feature_folders_and_later_builds(home):
    from tests.cli.test_data_cli import _write_shop
    from training.cli import app as tailor

    shop = home / "shop"
    _write_shop(shop)
    res = runner.invoke(tailor, ["data", "load", "--source", "files", "--path", str(shop)])
    assert res.exit_code == 0, res.output
    build = ["features", "build", "--as-of", "2017-01-15", "--source", "files"]
    custom = home / "elsewhere"  # outside the data folder: found through exports.json
    assert runner.invoke(tailor, [*build, "--out", str(custom)]).exit_code == 0
    assert 1 in _customer_ids(custom / "customers.parquet")

    res = runner.invoke(app, ["forget", "1"])
    assert res.exit_code == 0, res.output
    saved = home / "data" / "sources" / "files" / "transactions.parquet"
    assert _customer_ids(saved) == {2, 3}
    assert _customer_ids(custom / "customers.parquet") == {2, 3}
    # the scrubbed copy still loads, and a build from the raw files leaves customer 1 out
    res = runner.invoke(tailor, ["data", "describe", "--source", "files"])
    assert res.exit_code == 0, res.output
    again = home / "again"
    res = runner.invoke(tailor, [*build, "--path", str(shop), "--out", str(again)])
    assert res.exit_code == 0, res.output
    assert _customer_ids(again / "customers.parquet") == {2, 3}
    assert 1 not in _customer_ids(again / "customer_product.parquet")
    # loading the source again does not bring them back into the saved copy
    res = runner.invoke(tailor, ["data", "load", "--source", "files", "--path", str(shop)])
    assert res.exit_code == 0 and "erased customer(s) left out" in res.output, res.output
    assert _customer_ids(saved) == {2, 3}
