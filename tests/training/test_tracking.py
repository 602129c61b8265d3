"""The registry flow against a temporary MLflow store: register, promote only if better, rollback."""

from __future__ import annotations

import pandas as pd
import pytest

from features.contract import Tables


class TinyModel:
    """A fitted 'model' of our own: a constant list per customer."""

    def __init__(self, items):
        self.items = items


@pytest.fixture()
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("TAILOR_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    from training import tracking

    uri = tracking.configure()
    assert uri.startswith("sqlite:///") and str(tmp_path) in uri
    return tracking


def _tables():
    tx = pd.DataFrame(
        {
            "customer_id": [1, 1, 2],
            "basket_id": [10, 11, 12],
            "product_id": [5, 6, 5],
            "store_id": [1, 1, 1],
            "timestamp": pd.to_datetime(["2017-01-01", "2017-01-05", "2017-01-03"]),
            "quantity": [1.0, 1.0, 1.0],
            "sales_value": [2.0, 3.0, 2.0],
            "retail_discount": [0.0, 0.0, 0.0],
            "coupon_discount": [0.0, 0.0, 0.0],
        }
    )
    return Tables(transactions=tx)


def _log(tracking, value, items, split="2017-01-20/same-data"):
    preds = pd.DataFrame(
        {
            "customer_id": [1, 1, 2],
            "product_id": items + [items[0]],
            "rank": [1, 2, 1],
            "score": [0.9, 0.5, 0.8],
        }
    )
    return tracking.log_family_run(
        "next_purchase",
        TinyModel(items),
        preds,
        cutoff="2017-02-01",
        config={"k": 10},
        evaluation=pd.DataFrame(
            {
                "family": ["next_purchase"] * 2,
                "model": ["m", "baseline"],
                "cutoff": ["2017-01-20"] * 2,
                "metric": ["ndcg@10"] * 2,
                "value": [value, 0.1],
            }
        ),
        validation_metric="ndcg@10",
        validation_value=value,
        feature_names=["a", "b"],
        fingerprint=tracking.data_fingerprint(_tables()),
        validation_split=split,
    )


def test_register_promote_only_if_better_and_rollback(store):
    tracking = store
    with pytest.raises(tracking.NoChampionError, match="no 'champion' version"):
        tracking.load_champion("next_purchase")
    _, v1 = _log(tracking, 0.30, [5, 6])
    ok, why = tracking.promote_if_better("next_purchase", v1)
    assert ok and "first champion" in why
    _, v2 = _log(tracking, 0.25, [6, 5])
    ok, why = tracking.promote_if_better("next_purchase", v2)
    assert not ok and "does not beat" in why
    assert tracking.current_champion("next_purchase") == v1
    _, v3 = _log(tracking, 0.35, [7, 5])
    ok, _ = tracking.promote_if_better("next_purchase", v3)
    assert ok and tracking.current_champion("next_purchase") == v3
    model, version = tracking.load_champion("next_purchase")
    assert version == v3 and model.items == [7, 5]
    # the logged pyfunc answers for the customers asked
    wrapper, _ = tracking.load_champion_wrapper("next_purchase")
    out = wrapper.predict(None, pd.DataFrame({"customer_id": [2]}))
    assert out["customer_id"].tolist() == [2]
    assert tracking.rollback("next_purchase") == v1
    assert tracking.current_champion("next_purchase") == v1
    with pytest.raises(tracking.NoChampionError, match="no previous champion"):
        tracking.rollback("next_purchase")
    # force overrides the comparison
    ok, why = tracking.promote_if_better("next_purchase", v2, force=True)
    assert ok and "forced" in why
    versions = tracking.list_versions("next_purchase")
    assert versions["version"].tolist() == [1, 2, 3]
    assert versions.loc[versions["champion"], "version"].tolist() == [int(v2)]


def test_rollback_skips_a_previous_champion_that_was_deleted(store):
    tracking = store
    versions = [_log(tracking, v, [5, 6])[1] for v in (0.1, 0.2, 0.3)]
    for v in versions:
        assert tracking.promote_if_better("next_purchase", v)[0]
    # history v1, v2; champion v3; v2 is deleted from the registry
    tracking.client().delete_model_version(tracking.model_name("next_purchase"), versions[1])
    assert tracking.rollback("next_purchase") == versions[0]
    with pytest.raises(tracking.NoChampionError, match="no previous champion"):
        tracking.rollback("next_purchase")


def test_a_version_without_a_recorded_split_is_not_compared(store):
    tracking = store
    _, v1 = _log(tracking, 0.30, [5, 6])
    assert tracking.promote_if_better("next_purchase", v1)[0]
    _, v2 = _log(tracking, 0.90, [5, 6], split=None)  # e.g. logged by an older version
    ok, why = tracking.promote_if_better("next_purchase", v2)
    assert not ok and "an unrecorded split" in why and "--force" in why
    assert tracking.promote_if_better("next_purchase", v2, force=True)[0]


def test_lower_is_better_metric(store):
    tracking = store
    _, v1 = _log(tracking, 100.0, [5, 6])
    tracking.promote_if_better("next_purchase", v1, greater_is_better=False)
    _, v2 = _log(tracking, 90.0, [5, 6])
    ok, _ = tracking.promote_if_better("next_purchase", v2, greater_is_better=False)
    assert ok


def test_the_split_and_fingerprint_see_edits_but_not_a_refresh():
    from training import tracking

    def shop():
        t = _tables()
        t.products = pd.DataFrame({"product_id": [5, 6], "category": ["a", "b"]})
        t.customers = pd.DataFrame({"customer_id": [1, 2], "age_band": ["25-34", "65+"]})
        return t

    def hashes(t):
        return tracking.validation_split(t, "2017-01-02", "2017-01-04"), tracking.data_fingerprint(
            t
        )

    split, fp = hashes(shop())
    assert hashes(shop()) == (split, fp)

    def quantity(t):
        t.transactions["quantity"] *= 2

    def swap_products(t):  # lines before the end: (1, 5) and (2, 5) -> (1, 6), (2, 5)...
        t.transactions.loc[0, "product_id"], t.transactions.loc[1, "product_id"] = 6, 5

    def move_a_line(t):
        t.transactions.loc[2, "timestamp"] -= pd.Timedelta(hours=1)

    def category(t):
        t.products["category"] = ["b", "a"]

    def demographics(t):
        t.customers["age_band"] = ["65+", "25-34"]

    # edits of the past with the same totals and counts: another split and fingerprint
    for edit in (quantity, swap_products, move_a_line, category, demographics):
        t = shop()
        edit(t)
        got_split, got_fp = hashes(t)
        assert got_split != split and got_fp != fp, edit.__name__

    # a refresh: a product and a customer that only appear later keep the split
    t = shop()
    t.products = pd.concat([t.products, pd.DataFrame({"product_id": [9], "category": ["c"]})])
    t.customers = pd.concat(
        [t.customers, pd.DataFrame({"customer_id": [3], "age_band": ["35-44"]})]
    )
    assert hashes(t)[0] == split and hashes(t)[1] != fp


def test_promotion_compares_only_the_same_validation_split(store):
    tracking = store
    tables = _tables()
    split = tracking.validation_split(tables, "2017-01-02", "2017-01-04")
    # only what is before the end of the window counts: a later row keeps the split
    assert split == tracking.validation_split(tables, "2017-01-02", "2017-01-05")
    assert split.startswith("2017-01-02/")
    other = tracking.validation_split(tables, "2017-01-02", "2017-01-06")
    assert other != split
    _, v1 = _log(tracking, 0.30, [5, 6], split=split)
    assert tracking.promote_if_better("next_purchase", v1)[0]
    _, v2 = _log(tracking, 0.40, [6, 5], split=other)
    ok, why = tracking.promote_if_better("next_purchase", v2)
    assert not ok and "cannot be compared" in why and other in why and split in why
    assert tracking.current_champion("next_purchase") == v1
    _, v3 = _log(tracking, 0.35, [7, 5], split=split)
    ok, why = tracking.promote_if_better("next_purchase", v3)
    assert ok and why.endswith(f"(beats v{v1})")
    ok, why = tracking.promote_if_better("next_purchase", v2, force=True)
    assert ok and "forced" in why


def test_nan_validation_values(store):
    tracking = store
    _, v1 = _log(tracking, float("nan"), [5, 6])
    ok, why = tracking.promote_if_better("next_purchase", v1)
    assert not ok and "no valid validation value; no champion set" in why
    assert tracking.current_champion("next_purchase") is None
    assert tracking.promote_if_better("next_purchase", v1, force=True)[0]
    # a champion without a valid value does not block a valid version
    _, v2 = _log(tracking, 0.01, [6, 5])
    ok, why = tracking.promote_if_better("next_purchase", v2)
    assert ok and f"champion v{v1} has no valid validation value" in why
    _, v3 = _log(tracking, float("nan"), [5, 6])
    ok, why = tracking.promote_if_better("next_purchase", v3)
    assert not ok and f"champion v{v2} kept" in why


def test_unknown_family(store):
    with pytest.raises(ValueError, match="unknown model family"):
        store.model_name("bogus")


def test_log_evaluation_logs_goal_verdicts(store):
    import mlflow

    ev = pd.DataFrame(
        {
            "family": ["churn"] * 2,
            "model": ["lightgbm", "logistic_rfm"],
            "cutoff": ["2017-09-01"] * 2,
            "metric": ["roc_auc"] * 2,
            "value": [0.90, 0.86],
        }
    )
    with mlflow.start_run() as run:
        store.log_evaluation(ev)
    got = mlflow.get_run(run.info.run_id).data.metrics
    assert got["goal.churn.roc_auc.result"] == pytest.approx(0.04)
    assert got["goal.churn.roc_auc.met"] == 1.0
    arts = {a.path for a in store.client().list_artifacts(run.info.run_id)}
    assert {"evaluation.csv", "goals.csv"} <= arts


def test_only_mlflows_cloudpickle_note_is_dropped():
    import logging

    import training.tracking  # noqa: F401  (installs the filter)

    log = logging.getLogger("mlflow.pyfunc")

    def record(msg):
        return logging.LogRecord("mlflow.pyfunc", logging.WARNING, __file__, 1, msg, None, None)

    note = "Passing a Python object as `python_model` causes it to be serialized using CloudPickle, ..."
    assert not log.filter(record(note))
    assert log.filter(record("Failed to infer the model signature"))
