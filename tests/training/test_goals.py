"""training/goals.py on hand-made evaluation tables with known verdicts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.goals import GOALS, Goal, format_result, goal_table


def _long(rows: list[tuple[str, str, str, list[float]]]) -> pd.DataFrame:
    out = []
    for family, model, metric, values in rows:
        for i, v in enumerate(values):
            out.append(
                (family, model, pd.Timestamp("2017-10-02") + pd.Timedelta(days=30 * i), metric, v)
            )
    return pd.DataFrame(out, columns=["family", "model", "cutoff", "metric", "value"])


def test_ratio_goal_uses_the_best_baseline_of_the_cutoff_means():
    ev = _long(
        [
            ("cross_sell", "lgbm_rerank", "ndcg@10", [0.06, 0.06]),
            ("cross_sell", "popularity", "ndcg@10", [0.04, 0.04]),
            ("cross_sell", "als", "ndcg@10", [0.03, 0.05]),  # mean 0.04, ties popularity
            ("cross_sell", "item_knn", "ndcg@10", [0.035, 0.035]),
            ("cross_sell", "ease", "ndcg@10", [0.09, 0.09]),  # the model's own signal: no baseline
        ]
    )
    g = goal_table(ev)
    assert len(g) == 1
    r = g.iloc[0]
    assert r["baseline"] == pytest.approx(0.04) and r["best_baseline"] in ("popularity", "als")
    assert r["result"] == pytest.approx(1.5) and r["met"]
    ev.loc[ev["model"] == "lgbm_rerank", "value"] = 0.0599
    r = goal_table(ev).iloc[0]
    assert r["result"] == pytest.approx(0.0599 / 0.04) and not r["met"]
    assert format_result(r) == "1.50x (goal 1.50x)"


def test_churn_and_value_goals_known_verdicts():
    ev = _long(
        [
            ("churn", "lightgbm", "roc_auc", [0.90, 0.86]),
            ("churn", "logistic_rfm", "roc_auc", [0.87, 0.84]),  # +0.025: not met
            ("churn", "lightgbm", "pr_auc", [0.30, 0.30]),
            ("churn", "logistic_rfm", "pr_auc", [0.30, 0.30]),  # equal: not above
            ("churn", "lightgbm", "brier", [0.05, 0.05]),
            ("churn", "logistic_rfm", "brier", [0.05, 0.06]),  # lower is better: met
            ("value", "lightgbm", "mae", [150.0, 150.0]),
            ("value", "last_90d_spend", "mae", [200.0, 200.0]),  # -25%: met
            ("value", "bgnbd_gamma_gamma", "mae", [100.0, 100.0]),  # not the goal's baseline
            ("value", "lightgbm", "spearman", [0.8, 0.8]),
            ("value", "last_90d_spend", "spearman", [0.7, 0.7]),
            ("value", "bgnbd_gamma_gamma", "spearman", [0.81, 0.81]),  # best one beats the model
        ]
    )
    g = goal_table(ev).set_index("goal")
    assert g.loc["ROC-AUC +0.03 over the baseline", "result"] == pytest.approx(0.025)
    assert not g.loc["ROC-AUC +0.03 over the baseline", "met"]
    assert not g.loc["PR-AUC above the baseline", "met"]
    assert g.loc["Brier no worse than the baseline", "met"]
    mae = g.loc["MAE 15% below last-90-days spend"]
    assert (
        mae["result"] == pytest.approx(0.25)
        and mae["met"]
        and mae["best_baseline"] == "last_90d_spend"
    )
    assert format_result(mae) == "-25.0% (goal -15%)"
    sp = g.loc["Spearman above both baselines"]
    assert sp["best_baseline"] == "bgnbd_gamma_gamma" and not sp["met"]
    assert sp["result"] == pytest.approx(-0.01)


def test_goals_without_their_rows_are_left_out():
    ev = _long([("next_purchase", "lgbm_ranker", "ndcg@10", [0.4])])  # no baseline row
    assert goal_table(ev).empty
    ev = _long([("next_purchase", "tifu_knn", "ndcg@10", [0.4])])  # no model row
    assert goal_table(ev).empty
    ev = _long(
        [
            ("next_purchase", "lgbm_ranker", "ndcg@10", [np.nan]),
            ("next_purchase", "tifu_knn", "ndcg@10", [0.4]),
        ]
    )
    r = goal_table(ev).iloc[0]  # present but NaN: reported, not met (used to vanish)
    assert np.isnan(r["result"]) and not r["met"]


def test_goal_validation_and_every_family_has_goals():
    with pytest.raises(ValueError, match="goal kind"):
        Goal("churn", "roc_auc", "lightgbm", ("logistic_rfm",), "better")
    with pytest.raises(ValueError, match="names no baseline"):
        Goal("churn", "roc_auc", "lightgbm", (), "diff")
    assert {g.family for g in GOALS} == {"next_purchase", "cross_sell", "churn", "value"}


def test_goals_figure_one_panel_per_goal_with_the_goal_line(tmp_path):
    from training.goals import goals_figure

    ev = _long(
        [
            ("churn", "lightgbm", "roc_auc", [0.90, 0.86]),
            ("churn", "logistic_rfm", "roc_auc", [0.87, 0.84]),
            ("churn", "lightgbm", "brier", [0.05, 0.05]),
            ("churn", "logistic_rfm", "brier", [0.05, 0.06]),
            ("value", "lightgbm", "mae", [150.0, 150.0]),
            ("value", "last_90d_spend", "mae", [200.0, 200.0]),
        ]
    )
    fig = goals_figure(ev, "churn")
    axes = fig.get_axes()
    assert len(axes) == 2  # roc_auc and brier; no PR-AUC rows
    lines = [ln for ln in axes[0].get_lines() if ln.get_linestyle() == "--"]
    assert lines and lines[0].get_ydata()[0] == pytest.approx(0.855 + 0.03)  # baseline + 0.03
    assert axes[0].get_title().endswith("\nnot met") and axes[1].get_title().endswith("\nmet")
    value = goals_figure(ev, "value").get_axes()[0]
    dashed = [ln for ln in value.get_lines() if ln.get_linestyle() == "--"][0]
    assert dashed.get_ydata()[0] == pytest.approx(170.0)  # 85% of 200
    assert goals_figure(ev, "cross_sell") is None
    fig.savefig(tmp_path / "g.png")
    assert (tmp_path / "g.png").stat().st_size > 1000


def test_a_baseline_at_zero_gives_an_infinite_ratio_not_an_error():
    ev = _long(
        [
            ("cross_sell", "lgbm_rerank", "ndcg@10", [0.01]),
            ("cross_sell", "popularity", "ndcg@10", [0.0]),
        ]
    )
    r = goal_table(ev).iloc[0]
    assert np.isinf(r["result"]) and r["met"]
    ev.loc[ev["model"] == "lgbm_rerank", "value"] = 0.0
    r = goal_table(ev).iloc[0]
    assert np.isnan(r["result"]) and not r["met"]


def test_a_nan_metric_is_reported_as_undefined_and_not_met():
    ev = _long(
        [
            ("churn", "lightgbm", "roc_auc", [np.nan, np.nan]),  # e.g. one class only
            ("churn", "logistic_rfm", "roc_auc", [0.87, 0.84]),
            ("value", "lightgbm", "spearman", [0.8, 0.8]),
            ("value", "last_90d_spend", "spearman", [0.7, 0.7]),
            ("value", "bgnbd_gamma_gamma", "spearman", [np.nan, np.nan]),
        ]
    )
    g = goal_table(ev).set_index("metric")
    assert set(g.index) == {"roc_auc", "spearman"}  # the goals do not vanish
    assert not g["met"].any() and g["result"].isna().all()
    assert g.loc["spearman", "best_baseline"] == "bgnbd_gamma_gamma"  # not order-dependent
    assert format_result(g.loc["roc_auc"]) == "undefined (a metric is NaN)"
    # the baselines listed the other way round give the same verdict
    rev = Goal("value", "spearman", "lightgbm", ("bgnbd_gamma_gamma", "last_90d_spend"), "above")
    again = goal_table(ev, (rev,)).iloc[0]
    assert again["best_baseline"] == "bgnbd_gamma_gamma" and not again["met"]
    from training.goals import goals_figure

    assert len(goals_figure(ev, "value").get_axes()) == 1
