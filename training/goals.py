"""The quality goals of issue #3, checked against an evaluation table.

``tailor evaluate`` prints, after each family's model-vs-baselines table, whether the
model meets its goal on the mean over the reporting cutoffs, with the number behind the
verdict -- so the goals are read off the same run as the metrics, never copied by hand.

A goal compares the model's mean metric with the *best* of its baselines (or with one
named baseline) in one of these ways:

=============  ========================================  ======================================
kind           result                                    met when
=============  ========================================  ======================================
``ratio``      model / best baseline                     result >= target
``diff``       model - best baseline                     result >= target
``above``      model - best baseline (higher is better)  result > 0
``no_worse``   model - best baseline (lower is better)   result <= 0
``reduction``  1 - model / baseline (lower is better)    result >= target
=============  ========================================  ======================================

A goal whose model or baseline rows are missing is left out; one whose mean is NaN (a
metric that could not be computed, e.g. ROC-AUC with one class) is reported as undefined
and not met.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

KINDS = ("ratio", "diff", "above", "no_worse", "reduction")


@dataclass(frozen=True)
class Goal:
    """One quality goal of a model family.

    Attributes
    ----------
    family, metric, model
        Which rows of the evaluation table (``model`` is the family's own model).
    baselines : tuple of str
        The baselines the goal is measured against; the best of them (by the metric's
        direction) is used.
    kind : str
        One of :data:`KINDS` (see the module docstring).
    target : float
        The threshold of ``ratio``, ``diff`` and ``reduction`` (ignored by the others).
    text : str
        The goal as the issue words it.
    """

    family: str
    metric: str
    model: str
    baselines: tuple[str, ...]
    kind: str
    target: float = 0.0
    text: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"goal kind must be one of {KINDS}, got {self.kind!r}")
        if not self.baselines:
            raise ValueError(f"goal {self.family}/{self.metric} names no baseline")

    @property
    def lower_is_better(self) -> bool:
        return self.kind in ("no_worse", "reduction")


NP_BASELINES = ("g_topfreq", "p_topfreq", "tifu_knn")
#: DESIGN.md's cross-sell baselines (the issue names popularity and item-kNN; DESIGN adds
#: ALS). The model's own signals reported alone (``als_tuned``, ``ease`` ...) are not baselines.
CS_BASELINES = ("popularity", "item_knn", "als")

GOALS: tuple[Goal, ...] = (
    Goal("next_purchase", "ndcg@10", "lgbm_ranker", NP_BASELINES, "ratio", 1.10, "NDCG@10 +10% over the best baseline"),
    Goal("next_purchase", "recall@10", "lgbm_ranker", NP_BASELINES, "ratio", 1.10, "Recall@10 +10% over the best baseline"),
    Goal("cross_sell", "ndcg@10", "lgbm_rerank", CS_BASELINES, "ratio", 1.5, "NDCG@10 1.5x the best baseline"),
    Goal("churn", "roc_auc", "lightgbm", ("logistic_rfm",), "diff", 0.03, "ROC-AUC +0.03 over the baseline"),
    Goal("churn", "pr_auc", "lightgbm", ("logistic_rfm",), "above", 0.0, "PR-AUC above the baseline"),
    Goal("churn", "brier", "lightgbm", ("logistic_rfm",), "no_worse", 0.0, "Brier no worse than the baseline"),
    Goal("value", "mae", "lightgbm", ("last_90d_spend",), "reduction", 0.15, "MAE 15% below last-90-days spend"),
    Goal("value", "spearman", "lightgbm", ("last_90d_spend", "bgnbd_gamma_gamma"), "above", 0.0, "Spearman above both baselines"),
)  # fmt: skip

COLUMNS = [
    "family",
    "metric",
    "goal",
    "kind",
    "model",
    "best_baseline",
    "baseline",
    "result",
    "target",
    "met",
]


def _means(evaluation: pd.DataFrame) -> pd.Series:
    return evaluation.groupby(["family", "model", "metric"])["value"].mean()


def goal_line(goal: Goal, baseline: float) -> float:
    """The model value that would just meet ``goal`` given the best baseline's value."""
    if goal.kind == "ratio":
        return goal.target * baseline
    if goal.kind == "diff":
        return baseline + goal.target
    if goal.kind == "reduction":
        return (1.0 - goal.target) * baseline
    return baseline


def check(goal: Goal, means: pd.Series) -> dict | None:
    """The goal's verdict from mean metrics indexed by (family, model, metric); None if absent."""
    try:
        model = float(means[(goal.family, goal.model, goal.metric)])
    except KeyError:
        return None
    base = {
        b: float(means[(goal.family, b, goal.metric)])
        for b in goal.baselines
        if (goal.family, b, goal.metric) in means.index
    }
    if not base:
        return None
    undefined = [k for k, v in base.items() if not np.isfinite(v)]
    best = undefined[0] if undefined else (min if goal.lower_is_better else max)(base, key=base.get)
    b = base[best]
    if undefined or not np.isfinite(model):
        # a metric that could not be computed (NaN) is reported, never met
        return _verdict(goal, model, best, b, np.nan, False)
    with np.errstate(divide="ignore", invalid="ignore"):  # a baseline at 0: inf or nan
        if goal.kind == "ratio":
            result = float(np.float64(model) / b)
        elif goal.kind == "reduction":
            result = float(1.0 - np.float64(model) / b)
        else:
            result = model - b
    if goal.kind == "above":
        met = result > 0
    elif goal.kind == "no_worse":
        met = result <= 0
    else:
        met = result >= goal.target
    return _verdict(goal, model, best, b, result, bool(met and not np.isnan(result)))


def _verdict(goal: Goal, model: float, best: str, b: float, result: float, met: bool) -> dict:
    return {
        "family": goal.family,
        "metric": goal.metric,
        "goal": goal.text,
        "kind": goal.kind,
        "model": model,
        "best_baseline": best,
        "baseline": b,
        "result": result,
        "target": goal.target if goal.kind in ("ratio", "diff", "reduction") else np.nan,
        "met": met,
    }


def goal_table(evaluation: pd.DataFrame, goals: tuple[Goal, ...] = GOALS) -> pd.DataFrame:
    """Verdict of every goal whose model and baselines are in ``evaluation`` (long table).

    Metrics are averaged over the cutoffs present (the reporting cutoffs for
    ``tailor evaluate``). Columns: :data:`COLUMNS`.
    """
    means = _means(evaluation)
    rows = [r for g in goals if (r := check(g, means)) is not None]
    return pd.DataFrame(rows, columns=COLUMNS)


def format_result(row: pd.Series) -> str:
    """A row of :func:`goal_table` as it reads best: ``1.20x``, ``-8.4%`` (MAE change), ``+0.023``."""
    kind = row["kind"]
    if pd.isna(row["result"]):
        return "undefined (a metric is NaN)"
    if kind == "ratio":
        return f"{row['result']:.2f}x (goal {row['target']:.2f}x)"
    if kind == "reduction":
        return f"{-100 * row['result']:+.1f}% (goal -{100 * row['target']:.0f}%)"
    if kind == "diff":
        return f"{row['result']:+.4f} (goal {row['target']:+.2f})"
    return f"{row['result']:+.4f}"


def goals_figure(evaluation: pd.DataFrame, family: str, goals: tuple[Goal, ...] = GOALS):
    """One panel per goal metric of ``family``: every model's mean (bars) and each cutoff (dots),
    the model's bar highlighted, and a dashed line where the goal would be met.

    Returns
    -------
    matplotlib.figure.Figure or None
        None when the evaluation holds none of the family's goal metrics.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    means = _means(evaluation)
    verdicts = {
        g.metric: (g, r) for g in goals if g.family == family and (r := check(g, means)) is not None
    }
    if not verdicts:
        return None
    ev = evaluation[evaluation["family"] == family]
    fig = Figure(figsize=(max(6.0, 4.2 * len(verdicts)), 4.6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(verdicts), squeeze=False)[0]
    for ax, (metric, (goal, r)) in zip(axes, verdicts.items(), strict=True):
        rows = ev[ev["metric"] == metric]
        models = [goal.model, *[b for b in goal.baselines if b in set(rows["model"])]]
        models += sorted(set(rows["model"]) - set(models))  # the model's signals alone, if any
        per = rows.groupby("model")["value"]
        x = np.arange(len(models))
        colours = [
            "#c44e52" if m == goal.model else "#8c8c8c" if m in goal.baselines else "#dddddd"
            for m in models
        ]
        ax.bar(x, [per.mean()[m] for m in models], color=colours)
        for i, m in enumerate(models):
            vals = per.get_group(m).to_numpy()
            ax.plot(np.full(len(vals), i), vals, "k.", ms=4)
        line = goal_line(goal, r["baseline"])
        if np.isfinite(line):
            ax.axhline(line, ls="--", c="#c44e52", lw=1)
        ax.set_xticks(x, models, rotation=35, ha="right", fontsize=8)
        verdict = "met" if r["met"] else "not met"
        ax.set_title(f"{metric}: {format_result(pd.Series(r))}\n{verdict}", fontsize=9)
        seen = [v for v in (line, rows["value"].min(), rows["value"].max()) if np.isfinite(v)]
        lo, hi = (min(seen), max(seen)) if seen else (0.0, 1.0)
        pad = 0.15 * (hi - lo) if hi > lo else 0.1 * abs(hi) + 1e-9
        ax.set_ylim(max(0.0, lo - pad) if lo >= 0 else lo - pad, hi + pad)
    fig.suptitle(
        f"{family}: the model (red), its baselines (grey), the model's signals alone (light)\n"
        "dashed: where the goal is met; dots: the cutoffs",
        fontsize=9,
    )
    fig.tight_layout()
    return fig
