"""Cross-sell family: baselines on hand-made cases, planted preferences, config, leakage, output."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from features._util import TX_COLUMNS
from features.contract import Tables
from training import cross_sell as cs
from training.cs_rankers import EASERanker, ItemKNNRanker, PopularityRanker, TrialRanker

CUTOFF = pd.Timestamp("2017-06-01")
#: A small, fast configuration for synthetic shops (the defaults are sized for Complete Journey).
FAST = {
    "min_buyers": 2,
    "signals": {
        "popularity": {"days": 28},
        "item_knn": {"neighbours": 30},
        "als": {"factors": 16, "iterations": 6},
        "ease": {"lam": 50.0},
    },
    "candidates": {"popularity": 20, "item_knn": 30, "als": 30},
    "lgbm": {"n_estimators": 60, "min_child_samples": 20, "num_leaves": 15},
    "knn_neighbours": 30,
}


def _tx(rows) -> Tables:
    """Transactions from ``(customer, product, day)`` rows, one basket per (customer, day)."""
    df = pd.DataFrame(rows, columns=["customer_id", "product_id", "day"])
    df["timestamp"] = pd.Timestamp("2017-01-01") + pd.to_timedelta(df.pop("day"), unit="D")
    df["basket_id"] = df.groupby(["customer_id", "timestamp"]).ngroup() + 1000
    df["store_id"] = 1
    df["quantity"] = 1.0
    df["sales_value"] = 2.0
    df["retail_discount"] = 0.0
    df["coupon_discount"] = 0.0
    return Tables(transactions=df[list(TX_COLUMNS)].astype({"product_id": "int64"}))


# ----------------------------------------------------------------------------- baselines


def test_popularity_counts_recent_buyers_and_excludes_bought():
    # product 10: 3 recent buyers, 11: 2, 12: 1 recent + 3 old ones (outside the 28 days), 13: 1
    rows = [
        (1, 10, 40),
        (2, 10, 41),
        (3, 10, 42),
        (2, 11, 43),
        (3, 11, 44),
        (4, 12, 45),
        (4, 13, 46),
    ]
    rows += [(5, 12, 1), (6, 12, 2), (7, 12, 3)]
    tables = _tx(rows)
    cutoff = pd.Timestamp("2017-02-20")  # day 50: the last 28 days are days 22-49
    pop = PopularityRanker(days=28, min_buyers=1).fit(tables, cutoff)
    recs = pop.recommend([1, 4, 99], n=3)
    got = {c: g["product_id"].tolist() for c, g in recs.groupby("customer_id")}
    assert got[1] == [
        11,
        12,
        13,
    ]  # 10 already bought; 12 and 13 tie on recent buyers, 12 has more all-time
    assert got[4] == [10, 11]  # 12 and 13 bought; only two products left
    assert got[99] == [10, 11, 12]  # no history: plain popularity
    assert recs[recs["customer_id"] == 1]["rank"].tolist() == [1, 2, 3]
    # a customer asked for twice gets one list
    pd.testing.assert_frame_equal(pop.recommend([1, 1, 99, 1], n=3), pop.recommend([1, 99], n=3))


def test_item_knn_scores_by_cosine_similarity_to_history():
    # buyers: product 1 -> {A,B,C,D}, 2 -> {A,B}, 3 -> {A}, 4 -> {E}
    # cos(1,2) = 2/sqrt(4*2) = .707, cos(1,3) = 1/sqrt(4*1) = .5, cos(2,3) = 1/sqrt(2) = .707
    rows = [("A", 1), ("B", 1), ("C", 1), ("D", 1), ("A", 2), ("B", 2), ("A", 3), ("E", 4)]
    rows = [(c, p, i) for i, (c, p) in enumerate((ord(c), p) for c, p in rows)]
    tables = _tx(rows)
    knn = ItemKNNRanker(neighbours=10, min_buyers=1).fit(tables, "2017-02-01")
    recs = knn.recommend([ord("D"), ord("B"), ord("E")], n=2)
    got = {c: g for c, g in recs.groupby("customer_id")}
    d = got[ord("D")]  # history {1}
    assert d["product_id"].tolist() == [2, 3]
    np.testing.assert_allclose(d["score"], [2 / np.sqrt(8), 0.5], rtol=1e-5)
    b = got[ord("B")]  # history {1, 2}: 3 scores .5 + .707, 4 scores 0
    assert b["product_id"].tolist() == [3, 4]
    np.testing.assert_allclose(b["score"], [0.5 + 1 / np.sqrt(2), 0.0], atol=1e-5)
    e = got[
        ord("E")
    ]  # history {4}: nothing similar, zero scores tie by id; 4 itself never comes back
    assert e["product_id"].tolist() == [1, 2]


def test_ease_dual_form_equals_the_item_item_closed_form():
    # 6 customers x 5 products with repeat baskets; EASE's item x item (primal) solution
    # computed directly must equal the ranker's customer x customer (dual) scores
    buys = {
        1: [10, 10, 11],
        2: [10, 11, 12],
        3: [11, 12, 12, 12],
        4: [12, 13],
        5: [13, 14],
        6: [10, 14],
    }
    rows = [(c, p, day) for c, ps in buys.items() for day, p in enumerate(ps)]
    lam = 0.7
    ease = EASERanker(lam=lam, min_buyers=1).fit(_tx(rows), "2017-02-01")
    h = ease.history_
    x = np.log1p(h.counts.toarray().astype(float))
    p = np.linalg.inv(x.T @ x + lam * np.eye(x.shape[1]))
    b = np.eye(x.shape[1]) - p / np.diag(p)[None, :]
    assert np.allclose(np.diag(b), 0.0)
    np.testing.assert_allclose(ease.score_rows(np.arange(h.n_customers)), x @ b, atol=1e-5)
    recs = ease.recommend([1, 5], n=5)
    for cust, g in recs.groupby("customer_id"):
        assert not set(g["product_id"]) & set(buys[cust])  # bought products never come back
        row = h.rows(np.array([cust]))[0]
        want = [
            h.items[j]
            for j in np.argsort(-(x @ b)[row], kind="stable")
            if h.items[j] not in buys[cust]
        ]
        assert g["product_id"].tolist() == want
        # the reason: the history product with the largest x_k * B_kj
        cols = h.cols(g["product_id"].to_numpy())
        partner, share = ease.explain(row, cols)
        contrib = x[row][:, None] * b[:, cols]
        contrib[x[row] == 0] = -np.inf
        np.testing.assert_array_equal(partner, contrib.argmax(axis=0))
        np.testing.assert_allclose(share, contrib.max(axis=0), atol=1e-5)
        # a model pickled before X' was kept builds it on first use, same answer
        del ease._xt
        again = ease.explain(row, cols)
        np.testing.assert_array_equal(again[0], partner)
        np.testing.assert_array_equal(again[1], share)


def test_ease_completes_planted_bundles_and_checks_lambda():
    # products 1-3 are bought together by customers 1-20, 4-6 by 21-40; customer 50 bought
    # 1 and 2 (and 6 once), customer 51 only 4: EASE completes each one's bundle first
    rows = [(c, p, c) for c in range(1, 21) for p in (1, 2, 3)]
    rows += [(c, p, c) for c in range(21, 41) for p in (4, 5, 6)]
    rows += [(50, 1, 5), (50, 2, 5), (50, 6, 9), (51, 4, 7)]
    recs = EASERanker(lam=5.0, min_buyers=1).fit(_tx(rows), "2017-03-01").recommend([50, 51], n=2)
    got = {c: g["product_id"].tolist() for c, g in recs.groupby("customer_id")}
    assert got[50][0] == 3
    assert sorted(got[51]) == [5, 6]
    with pytest.raises(ValueError, match="lam must be > 0"):
        EASERanker(lam=0.0, min_buyers=1).fit(_tx(rows), "2017-03-01")


def test_trial_recommends_what_similar_customers_just_tried_first():
    # customers 1-20 bought 1 early and tried 2 for the first time in the last 28 days;
    # 21-40 bought 3 early and tried 4 lately; 5 was bought early and late by everyone (not
    # a first purchase). Customer 50 (history 1) gets 2 first, 51 (history 3) gets 4.
    rows = [(c, 1, 5) for c in range(1, 21)] + [(c, 2, 50) for c in range(1, 21)]
    rows += [(c, 3, 5) for c in range(21, 41)] + [(c, 4, 50) for c in range(21, 41)]
    rows += [(c, 5, d) for c in range(1, 41) for d in (6, 51)]
    rows += [(50, 1, 10), (51, 3, 10)]
    cutoff = pd.Timestamp("2017-01-01") + pd.Timedelta(days=60)  # the window: days 32-59
    trial = TrialRanker(lam=1.0, days=28, min_buyers=1).fit(_tx(rows), cutoff)
    got = {
        c: g["product_id"].tolist()
        for c, g in trial.recommend([50, 51], n=2).groupby("customer_id")
    }
    assert got[50][0] == 2 and got[51][0] == 4
    # equal to the item x item (primal) ridge from the early history to the first purchases
    h = trial.history_
    x_in = np.zeros((h.n_customers, h.n_items))
    y = np.zeros_like(x_in)
    for c, p, d in rows:
        i, j = h.rows([c])[0], h.cols([p])[0]
        if d < 32:
            x_in[i, j] += 1
    for c, p, d in rows:
        i, j = h.rows([c])[0], h.cols([p])[0]
        if d >= 32 and x_in[i, j] == 0:
            y[i, j] = 1
    x_in = np.log1p(x_in)
    x = np.log1p(h.counts.toarray().astype(float))
    b = np.linalg.solve(x_in.T @ x_in + np.eye(h.n_items), x_in.T @ y)
    np.testing.assert_allclose(trial.score_rows(np.arange(h.n_customers)), x @ b, atol=1e-8)
    # purchases at or after the cutoff change nothing
    later = TrialRanker(lam=1.0, days=28, min_buyers=1).fit(
        _tx(rows + [(50, 4, 60), (52, 2, 70)]), cutoff
    )
    np.testing.assert_allclose(later.score_rows(np.arange(h.n_customers)), x @ b, atol=1e-8)
    with pytest.raises(ValueError, match="lam must be > 0"):
        TrialRanker(lam=0.0, min_buyers=1).fit(_tx(rows), cutoff)
    with pytest.raises(ValueError, match="days must be"):
        TrialRanker(days=0, min_buyers=1).fit(_tx(rows), cutoff)


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"train_cutoffs": 0}, "train_cutoffs must be an integer >= 1"),
        ({"window_days": -3}, "window_days must be an integer >= 1"),
        ({"objective": "poisson"}, "objective must be 'binary' or 'lambdarank'"),
        ({"signals": {}}, "signals is empty"),
        ({"signals": {"magic": {}}}, r"unknown signal\(s\) \['magic'\]"),
        (
            {"candidates": {"als": 10, "look_alike": 5}},
            r"candidates for signal\(s\) \['look_alike'\]",
        ),
        ({"candidates": {"als": -1}}, "candidates must be integers >= 0"),
        (
            {"candidates": {"als": 0, "item_knn": 0, "popularity": 0}},
            "no signal contributes candidates",
        ),
        ({"lgbm": {"n_jobs": 0}}, "n_jobs must be a whole number >= 1"),
        ({"als_baseline": 64}, "als_baseline must be a dict"),
        ({"categories": "yes"}, "categories must be true or false"),
        ({"learning_rate": 0.1}, "unknown cross-sell setting 'learning_rate'"),
    ],
)
def test_config_validation_errors(overrides, message):
    with pytest.raises(ValueError, match=message):
        cs.default_config(**overrides)


def test_config_merges_lgbm_and_keeps_defaults():
    cfg = cs.default_config(lgbm={"n_estimators": 10})
    assert (
        cfg.lgbm["n_estimators"] == 10
        and cfg.lgbm["min_child_samples"] == 300
        and "learning_rate" in cfg.lgbm
    )
    assert cs.default_config().signals == cs.CrossSellConfig().signals


def test_training_validates_products_only_evaluate_adds_categories():
    from training import commands

    cfg = cs.default_config()
    assert cfg.categories is True
    val = cs.validation_config(cfg)
    assert val.categories is False and cfg.categories is True  # a copy, the config unchanged
    assert commands.family_module("cross-sell").validation_config is cs.validation_config


def test_als_baseline_keeps_its_definition_when_the_signal_is_tuned():
    cfg = cs.default_config()
    assert cfg.als_baseline == cs.ALS_BASELINE
    assert cs.ALS_BASELINE == {"factors": 64, "iterations": 15, "regularization": 0.1, "alpha": 1.0}
    assert cfg.signals["als"] != cs.ALS_BASELINE  # the model's own ALS is tuned separately


# ----------------------------------------------------------------------------- synthetic shop


@pytest.fixture(scope="module")
def shop():
    from features.sources.synthetic import generate_with_truth

    tables, truth = generate_with_truth(customers=400, products=250, days=200, seed=3)
    return tables, truth


@pytest.fixture(scope="module")
def fitted(shop):
    tables, _ = shop
    return cs.fit_family(tables, CUTOFF, cs.default_config(**FAST))


def test_reranker_recovers_planted_department_preferences(shop, fitted):
    tables, truth = shop
    ids = fitted.signals_.history.customers
    dept = tables.products.set_index("product_id")["department"]
    weights = truth.department_weights
    if "customer_id" in weights.columns:
        weights = weights.set_index("customer_id")

    def planted_weight(recs: pd.DataFrame) -> float:
        d = dept.reindex(recs["product_id"]).to_numpy()
        w = [
            weights.at[c, x] if x in weights.columns else 0.0
            for c, x in zip(recs["customer_id"], d, strict=True)
        ]
        return float(np.mean(w))

    model_w = planted_weight(fitted.recommend(ids, 10))
    pop_w = planted_weight(fitted.signals_.signals["popularity"].recommend(ids, 10))
    # the lists follow each customer's own department mix, popularity only the shop's
    assert model_w > 1.3 * pop_w, (model_w, pop_w)
    # and the model beats the popularity baseline on the protocol's metric
    ev = cs.evaluate_family(tables, [CUTOFF], cs.default_config(**FAST))
    ndcg = ev[ev["metric"] == "ndcg@10"].set_index("model")["value"]
    assert {"lgbm_rerank", "popularity", "item_knn", "als"} <= set(ndcg.index)
    # FAST's ALS signal differs from the ALS baseline: both rows are reported
    assert "als_tuned" in ndcg.index
    assert "ease" in ndcg.index  # the EASE signal alone, next to the baselines
    assert ndcg["lgbm_rerank"] > ndcg["popularity"]
    n = ev[ev["metric"] == "n_customers"]["value"]
    assert n.nunique() == 1 and n.iloc[0] > 50  # every model on the same customers
    # the category level: same models, metrics prefixed, its own customers
    cat = ev[ev["metric"] == "category_ndcg@10"].set_index("model")["value"]
    assert set(cat.index) == set(ndcg.index)
    assert cat["lgbm_rerank"] > cat["popularity"]
    nc = ev[ev["metric"] == "category_n_customers"]["value"]
    assert nc.nunique() == 1 and 20 < nc.iloc[0] <= n.iloc[0]
    no_cat = cs.evaluate_family(tables, [CUTOFF], cs.default_config(**FAST, categories=False))
    assert not no_cat["metric"].str.startswith("category_").any()


def test_reranker_gives_one_list_per_customer_asked_twice(fitted):
    ids = sorted(fitted.signals_.history.customers[:3].tolist())
    once = fitted.recommend(ids, n=5)
    twice = fitted.recommend([*ids, *ids], n=5)
    pd.testing.assert_frame_equal(twice, once)
    assert (once.groupby("customer_id").size() == 5).all()


def test_lookalike_with_one_customer_scores_zero():
    from training.cs_rankers import LookAlikeRanker

    tables = _tx([(1, 10, 1), (1, 11, 2)])
    m = LookAlikeRanker(min_buyers=1).fit(tables, pd.Timestamp("2017-02-01"))
    assert (m.score_rows(np.array([0])) == 0).all()


def test_private_label_flag_ignores_case_and_is_nan_when_unknown():
    from features._util import private_label

    got = private_label(["Private", " private ", "National", None, "", float("nan"), "Acme"])
    np.testing.assert_array_equal(got, [1.0, 1.0, 0.0, np.nan, np.nan, np.nan, np.nan])


def test_predict_format_every_customer_k_new_products(shop, fitted):
    tables, _ = shop
    out = cs.predict_family(fitted, tables, CUTOFF, k=7)
    assert list(out.columns) == ["customer_id", "product_id", "rank", "score", "reason"]
    tx = tables.transactions
    before = tx[(tx["timestamp"] < CUTOFF) & (tx["quantity"] > 0) & (tx["sales_value"] >= 0)]
    assert set(out["customer_id"]) == set(before["customer_id"])
    sizes = out.groupby("customer_id").size()
    assert (sizes == 7).all()
    assert (
        out.groupby("customer_id")["rank"].apply(list).map(lambda r: r == list(range(1, 8)))
    ).all()
    # scores decrease with rank within each list
    assert (out.groupby("customer_id")["score"].diff().dropna() <= 1e-12).all()
    bought = set(map(tuple, before[["customer_id", "product_id"]].to_numpy()))
    assert not any(
        (c, p) in bought for c, p in out[["customer_id", "product_id"]].itertuples(index=False)
    )
    assert out["reason"].map(lambda r: isinstance(r, str) and len(r) > 5).all()
    assert not out.duplicated(["customer_id", "product_id"]).any()


def test_same_seed_same_output_and_pickle_round_trip(shop, fitted):
    import cloudpickle

    tables, _ = shop
    a = cs.predict_family(fitted, tables, CUTOFF, k=5)
    again = cs.fit_family(tables, CUTOFF, cs.default_config(**FAST))
    pd.testing.assert_frame_equal(a, cs.predict_family(again, tables, CUTOFF, k=5))
    restored = cloudpickle.loads(cloudpickle.dumps(fitted))
    assert not hasattr(restored, "signals_")  # per-cutoff state is refitted, not stored
    with pytest.raises(RuntimeError, match="call prepare"):
        restored.recommend([1], 5)
    pd.testing.assert_frame_equal(a, cs.predict_family(restored, tables, CUTOFF, k=5))
    assert restored.feature_names_ == fitted.feature_names_ and len(fitted.feature_names_) > 10


def test_no_leakage_events_at_or_after_cutoff_change_nothing(shop, fitted):
    tables, _ = shop
    tx = tables.transactions
    cust = int(tx["customer_id"].iloc[0])
    prods = tx["product_id"].drop_duplicates().head(40).to_numpy()
    planted = pd.DataFrame(
        {
            "customer_id": cust,
            "basket_id": tx["basket_id"].max() + 1 + np.arange(len(prods)),
            "product_id": prods,
            "store_id": tx["store_id"].iloc[0],
            "timestamp": [
                CUTOFF + pd.Timedelta(hours=h) for h in range(len(prods))
            ],  # first one exactly at T
            "quantity": 5.0,
            "sales_value": 50.0,
            "retail_discount": 0.0,
            "coupon_discount": 0.0,
        }
    )
    leaky = dataclasses.replace(tables, transactions=pd.concat([tx, planted], ignore_index=True))
    a = cs.predict_family(fitted, tables, CUTOFF, k=5)
    b = cs.predict_family(
        cs.fit_family(leaky, CUTOFF, cs.default_config(**FAST)), leaky, CUTOFF, k=5
    )
    pd.testing.assert_frame_equal(a, b)


def test_predict_at_a_later_cutoff_refits_signals_on_a_copy(shop, fitted):
    tables, _ = shop
    later = CUTOFF + pd.Timedelta(days=14)
    out = cs.predict_family(fitted, tables, later, k=3)
    assert fitted.cutoff_ == CUTOFF  # the fitted model is unchanged
    tx = tables.transactions
    bought = tx[(tx["timestamp"] < later) & (tx["quantity"] > 0)][["customer_id", "product_id"]]
    hit = out.merge(bought.drop_duplicates(), on=["customer_id", "product_id"])
    assert hit.empty  # products bought before the later cutoff are excluded
    assert (out.groupby("customer_id").size() == 3).all()


def test_figures_and_feature_importance(fitted):
    imp = cs.feature_importance(fitted)
    assert abs(imp.sum() - 1.0) < 1e-9 and set(imp.index) == set(fitted.feature_names_)
    figs = cs.figures(fitted)
    assert set(figs) == {"feature_importance"} and figs["feature_importance"].axes


def test_mlflow_round_trip(tmp_path, monkeypatch, shop, fitted):
    monkeypatch.setenv("TAILOR_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    from training import tracking

    tracking.configure()
    tables, _ = shop
    preds = cs.predict_family(fitted, tables, CUTOFF, k=5)
    ev = pd.DataFrame(
        {
            "family": "cross_sell",
            "model": ["lgbm_rerank"],
            "cutoff": [CUTOFF],
            "metric": ["ndcg@10"],
            "value": [0.1],
        }
    )
    _, version = tracking.log_family_run(
        "cross_sell",
        fitted,
        preds,
        cutoff=CUTOFF,
        config=fitted.config_,
        evaluation=ev,
        validation_metric=cs.VALIDATION_METRIC,
        validation_value=0.1,
        feature_names=fitted.feature_names_,
        fingerprint=tracking.data_fingerprint(tables),
        figures=cs.figures(fitted),
    )
    ok, _ = tracking.promote_if_better("cross_sell", version)
    assert ok
    model, v = tracking.load_champion("cross_sell")
    assert v == version
    pd.testing.assert_frame_equal(preds, cs.predict_family(model, tables, CUTOFF, k=5))


# ----------------------------------------------------------------------------- category level


def test_category_tables_map_products_to_categories():
    from features.contract import validate
    from features.labels import cross_sell_labels
    from training.cs_categories import category_lists, category_tables

    rows = [
        (1, 11, 0), (1, 21, 0), (1, 30, 1),  # customer 1: dairy, meat, no category
        (1, 12, 40),  # new product, old category (dairy): not a new category
        (1, 22, 41),  # same for meat
        (2, 11, 0),
        (2, 21, 40), (2, 12, 41),  # customer 2: meat is new after the cutoff
        (3, 30, 0), (3, 11, 42),  # customer 3: only an uncategorised product before
    ]  # fmt: skip
    t = _tx(rows)
    t.products = pd.DataFrame(
        {
            "product_id": [11, 12, 21, 22, 30],
            "department": ["FRESH", "DAIRY DEPT", "FRESH", "FRESH", None],
            "category": ["dairy", "dairy", "meat", "meat", None],
            "product_type": None,
            "brand": None,
            "manufacturer_id": pd.array([1] * 5, dtype="Int64"),
            "package_size": None,
        }
    )
    c = category_tables(validate(t))
    validate(c)  # still a valid set of canonical tables
    # ids 1..n in name order; the department is the most common one of the category
    assert c.products["product_id"].tolist() == [1, 2]
    assert c.products["category"].tolist() == ["dairy", "meat"]
    # dairy's two products are in FRESH and DAIRY DEPT: a tie goes to the first name
    assert c.products["department"].tolist() == ["DAIRY DEPT", "FRESH"]
    assert c.products.set_index("category").at["meat", "department"] == "FRESH"
    # the two lines of product 30 (no category) are left out
    assert len(c.transactions) == len(t.transactions) - 2
    assert sorted(c.transactions["product_id"].unique()) == [1, 2]
    cutoff = pd.Timestamp("2017-01-20")
    by_tables = cross_sell_labels(c, cutoff, days=28)
    by_level = cross_sell_labels(t, cutoff, days=28, level="category")
    # customer 2 tries meat; customer 3 had no categorised purchase before, so no label
    assert by_level.values.tolist() == [[2, "meat"]]
    named = category_lists(by_tables.assign(rank=1), c)
    assert named[["customer_id", "category"]].values.tolist() == [[2, "meat"]]
    t.products = None
    with pytest.raises(ValueError, match="needs a products table with categories"):
        category_tables(t)


def test_category_level_recovers_planted_department_preferences(shop):
    from training.cs_categories import category_lists, category_tables

    tables, truth = shop
    ct = category_tables(tables)
    model = cs.fit_family(ct, CUTOFF, cs.default_config(**FAST))
    out = category_lists(cs.predict_family(model, ct, CUTOFF, k=3), ct)
    assert list(out.columns[:4]) == ["customer_id", "category", "rank", "score"]
    # categories the customer never bought from, 3 each
    tx = tables.transactions[tables.transactions["timestamp"] < CUTOFF]
    cat = tables.products.set_index("product_id")["category"]
    bought = set(zip(tx["customer_id"], tx["product_id"].map(cat), strict=True))
    assert not any(
        (c, k) in bought for c, k in out[["customer_id", "category"]].itertuples(index=False)
    )
    assert (out.groupby("customer_id").size() == 3).all()
    # the lists lean to each customer's planted departments more than popularity's
    weights = truth.department_weights
    if "customer_id" in weights.columns:
        weights = weights.set_index("customer_id")
    dept = tables.products.drop_duplicates("category").set_index("category")["department"]

    def planted_weight(recs: pd.DataFrame) -> float:
        d = dept.reindex(recs["category"]).to_numpy()
        return float(
            np.mean(
                [
                    weights.at[c, x] if x in weights.columns else 0.0
                    for c, x in zip(recs["customer_id"], d, strict=True)
                ]
            )
        )

    ids = model.signals_.history.customers
    pop = category_lists(model.signals_.signals["popularity"].recommend(ids, 3), ct)
    assert planted_weight(out) > 1.2 * planted_weight(pop)


def test_fit_on_a_prebuilt_training_frame_is_the_same_model(shop, fitted):
    tables, _ = shop
    model = cs.make_model(cs.default_config(**FAST))
    train = model.training_frame(tables, CUTOFF)
    assert train["label"].sum() > 0 and (train.groupby("group")["label"].max() == 1).all()
    assert len(train) == fitted.train_rows_
    model.fit(tables, CUTOFF, train=train)
    ids = list(fitted.signals_.history.customers[:50])
    pd.testing.assert_frame_equal(model.recommend(ids, 5), fitted.recommend(ids, 5))
    from training.cs_rerank import LightGBMReRanker

    with pytest.raises(ValueError, match="train_cutoffs"):
        LightGBMReRanker(train_cutoffs=0).training_frame(tables, CUTOFF)


def test_a_partner_of_the_same_name_is_a_look_alike_not_a_companion():
    from training.cs_rerank import _partner_reason

    # Complete Journey has several products called "Salad Bar Fresh Fruit": the service said
    # "often bought with Salad Bar Fresh Fruit" of a Salad Bar Fresh Fruit
    assert _partner_reason("Salad Bar Fresh Fruit", "salad bar fresh fruit ") == (
        "like the Salad Bar Fresh Fruit you buy"
    )
    assert _partner_reason("Bananas (40 LB)", "Grapes Red (18 LB)") == (
        "often bought with Bananas (40 LB)"
    )
    assert _partner_reason(None, "Grapes") == "often bought with your usual products"
    assert _partner_reason(float("nan"), "Grapes") == "often bought with your usual products"
