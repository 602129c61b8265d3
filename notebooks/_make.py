"""Generate the walkthrough notebooks from the cell lists in this file.

The cells live here as plain Python strings so that a change to a notebook is a readable
diff; the ``.ipynb`` files are generated from them, carry no outputs, and are committed
next to this script. After editing a cell::

    .venv/bin/python notebooks/_make.py          # rewrite notebooks/*.ipynb
    .venv/bin/python notebooks/_make.py --check  # exit 1 if a committed notebook is stale

The notebooks only tell the story: every computation is a call into the packages
(``features``, ``training``, ``serving``, ``campaigns``); the cells hold glue and plots.
``tests/notebooks/test_notebooks.py`` executes them top to bottom.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent


def md(text: str) -> tuple[str, str]:
    return ("markdown", text.strip("\n"))


def code(text: str) -> tuple[str, str]:
    return ("code", text.strip("\n"))


# --------------------------------------------------------------------------- 01

EXPLORE = [
    md("""
# 01 · Explore the customers

*Identify, then differentiate by value and by needs.*

A loyalty-card grocer knows every basket of every card holder. Before predicting anything, the
marketing team wants to see who its customers are. We take the **Complete Journey** panel
(2,469 households of one US grocer, 2017) and stand on **1 December 2017**: every number below uses
only what happened before that date, exactly as the models do.

We look at

1. **RFM**: how recently, how often and how much each household buys, and the segments it gives;
2. **the 80/20 curve**: how concentrated spend is on the best customers;
3. **life-cycle stages**: who they are (young singles, families, empty nesters...), where we know it;
4. **predicted value**: a probabilistic repeat-buying model (BG/NBD + Gamma-Gamma) for the next 90 days;
5. **value tiers and the 9-grid**: who to reward, who to grow, and who costs more than they earn.
"""),
    code("""
%matplotlib inline
import matplotlib.pyplot as plt
import pandas as pd

from features.customer import customer_features
from features.demographics import demographic_features
from features.sources import load_source
from training.clv import ProbabilisticValueModel

CUTOFF = pd.Timestamp("2017-12-01")
pd.set_option("display.precision", 2)

tables = load_source("completejourney")
tx = tables.transactions
print(
    f"{len(tx):,} line items, {tx['customer_id'].nunique():,} households, "
    f"{tx['timestamp'].min():%Y-%m-%d} to {tx['timestamp'].max():%Y-%m-%d}; "
    f"demographics for {len(tables.customers):,} households"
)
"""),
    md("""
## 1. RFM as of the cutoff

`features.customer.customer_features` builds one row per household that bought before the cutoff:
recency (days since the last visit), frequency (baskets), monetary (net spend), their 1-5 scores
against the quintiles of all customers, and the usual RFM segment names.
"""),
    code("""
cf = customer_features(tables, CUTOFF)
cf[["recency_days", "frequency", "monetary", "r_score", "f_score", "m_score", "rfm_segment"]].head()
"""),
    code("""
segments = (
    cf.groupby("rfm_segment")
    .agg(
        households=("monetary", "size"),
        median_recency_days=("recency_days", "median"),
        median_baskets=("frequency", "median"),
        median_spend=("monetary", "median"),
        spend=("monetary", "sum"),
    )
    .sort_values("spend", ascending=False)
)
segments["pct_of_households"] = 100 * segments["households"] / segments["households"].sum()
segments["pct_of_spend"] = 100 * segments["spend"] / segments["spend"].sum()
segments.drop(columns="spend").round(1)
"""),
    code("""
fig, ax = plt.subplots(figsize=(9, 4))
segments[["pct_of_households", "pct_of_spend"]].plot.bar(ax=ax, rot=30)
ax.set_ylabel("%")
ax.set_xlabel("")
ax.set_title(f"RFM segments as of {CUTOFF:%Y-%m-%d}: share of households vs share of spend")
plt.show()
"""),
    md("""
Champions and loyal households are a minority of the card holders and most of the money; the
`at_risk` and `cant_lose` segments used to be good customers and have not come back lately.

## 2. The 80/20 curve

Sort the households by spend, best first, and follow the cumulative share of spend.
"""),
    code("""
spend = cf["monetary"].clip(lower=0).sort_values(ascending=False)
customer_share = pd.Series(range(1, len(spend) + 1), index=spend.index) / len(spend)
spend_share = spend.cumsum() / spend.sum()
top20 = spend_share[customer_share <= 0.2].iloc[-1]
fig, ax = plt.subplots(figsize=(5.5, 5))
ax.plot(customer_share * 100, spend_share * 100, label="Complete Journey")
ax.plot([0, 100], [0, 100], "k--", lw=0.8, label="everyone spends the same")
ax.axvline(20, color="grey", lw=0.8)
ax.axhline(top20 * 100, color="grey", lw=0.8)
ax.set_xlabel("households, best first (%)")
ax.set_ylabel("cumulative share of spend (%)")
ax.set_title(f"The top 20% of households bring {top20:.0%} of spend")
ax.legend()
plt.show()
"""),
    md("""
## 3. Life-cycle stages

`features.demographics.demographic_features` turns the demographic bands into numbers and a family
life-cycle stage (Wells & Gubar). Only about a third of the households filled in the survey; the
others are `unknown`, and every model has to work for them too.
"""),
    code("""
demo = demographic_features(tables, customer_ids=cf.index)
profile = cf[["monetary", "frequency", "basket_value_mean"]].join(demo["lifecycle_stage"])
stages = profile.groupby("lifecycle_stage").agg(
    households=("monetary", "size"),
    median_spend=("monetary", "median"),
    median_baskets=("frequency", "median"),
    mean_basket_value=("basket_value_mean", "mean"),
)
stages.sort_values("median_spend", ascending=False).round(1)
"""),
    code("""
known = stages.drop(index="unknown").sort_values("median_spend")
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
known["households"].plot.barh(ax=axes[0], color="#7a9cc6")
axes[0].set_title("households per stage (profile known)")
known["median_spend"].plot.barh(ax=axes[1], color="#c67a7a")
axes[1].set_title(f"median spend before {CUTOFF:%Y-%m-%d} ($)")
axes[0].set_ylabel("")
plt.tight_layout()
plt.show()
"""),
    md("""
## 4. Predicted value

`training.clv.ProbabilisticValueModel` fits a BG/NBD model (how many more visits, and is the
customer still "alive"?) and a Gamma-Gamma spend model on the visits before the cutoff, then
predicts the spend of the next 90 days and a discounted one-year customer lifetime value.
"""),
    code("""
clv = ProbabilisticValueModel().fit(tables, CUTOFF)
value = clv.predict(tables, CUTOFF)
print({k: round(v, 3) for k, v in clv.to_dict()["bgnbd"].items()}, "(BG/NBD parameters)")
value.describe().T[["mean", "25%", "50%", "75%", "max"]]
"""),
    code("""
both = value.join(cf[["spend_90d", "recency_days"]])
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
axes[0].scatter(both["spend_90d"], both["expected_spend_90d"], s=4, alpha=0.4)
lim = both[["spend_90d", "expected_spend_90d"]].quantile(0.99).max()
axes[0].plot([0, lim], [0, lim], "k--", lw=0.8)
axes[0].set(xlim=(0, lim), ylim=(0, lim), xlabel="spend in the last 90 days ($)",
            ylabel="expected spend in the next 90 days ($)", title="past vs predicted spend")
repeat = cf["frequency"] > 1
axes[1].scatter(both.loc[repeat, "recency_days"], both.loc[repeat, "p_alive"], s=4, alpha=0.4,
                label="repeat customers")
axes[1].scatter(both.loc[~repeat, "recency_days"], both.loc[~repeat, "p_alive"], s=12,
                marker="x", color="#c0392b", label="a single basket")
axes[1].set(xlabel="days since the last visit", ylabel="P(still a customer)",
            title="P(alive) against the silence since the last visit")
axes[1].legend(loc="lower left")
plt.tight_layout()
plt.show()
"""),
    md("""
## 5. Value tiers and the 9-grid

`training.tiers` puts the two views together: **value** today and **potential** tomorrow.
Tiers follow the book: *most valuable* (top of the value ranking), *most growable* (high
potential, low share of their wallet), *below zero* (they cost more in discounts than they bring),
and the rest. The tiers and the grid below come from the value model (`training.value`: a LightGBM
forecast of the next 90 days' spend, trained only on data before the cutoff).
"""),
    code("""
from training import value as value_family
from training.tiers import GRID_TREATMENT, TIERS, TREATMENTS, grid_summary

value_model = value_family.fit_family(tables, CUTOFF)  # LightGBM 90-day spend, trained before the cutoff
scored = value_model.predict(tables, CUTOFF).set_index("customer_id")
tiers = scored.groupby("tier").agg(
    households=("expected_spend_90d", "size"),
    mean_predicted_90d=("expected_spend_90d", "mean"),
    predicted_90d=("expected_spend_90d", "sum"),
    mean_net_margin_90d=("net_margin_90d", "mean"),
    mean_wallet_share=("wallet_share", "mean"),
).reindex(list(TIERS))
tiers["pct_of_predicted_spend"] = 100 * tiers["predicted_90d"] / tiers["predicted_90d"].sum()
assert tiers["households"].sum() == len(scored)
tiers.drop(columns="predicted_90d").round(2)
"""),
    md("""
*Most valuable* households get the deepest deals; *most growable* ones buy from us much less than
households like them (same life-cycle stage) and are worth an investment; *below zero* households
cost more in discounts than the margin they bring, so the offer rules give them no extra discount.

The 9-grid crosses predicted value with the spend trend (recent against earlier spend); each cell
has its treatment: **one-to-one** (personal lists, deepest deals), **one-to-many** (segment
offers), **mass x partner** (manufacturer-funded mass deals), **improve** (grow the basket),
**correct** (find out what went wrong, win back).
"""),
    code("""
summary = grid_summary(scored, scored["expected_spend_90d"])
counts = scored.pivot_table(index="value_class", columns="trend", values="expected_spend_90d",
                            aggfunc="size", fill_value=0).reindex(index=["high", "mid", "low"],
                                                                   columns=["declining", "stable", "growing"])
fig, ax = plt.subplots(figsize=(7, 4.2))
ax.imshow(counts.to_numpy(), cmap="Blues")
for i, v in enumerate(counts.index):
    for j, t in enumerate(counts.columns):
        ax.text(j, i, f"{counts.loc[v, t]:,} households\\n{GRID_TREATMENT[f'{v}/{t}']}",
                ha="center", va="center", fontsize=9)
ax.set_xticks(range(3), counts.columns)
ax.set_yticks(range(3), [f"{v} value" for v in counts.index])
ax.set_title(f"Value x trend grid as of {CUTOFF:%Y-%m-%d} and each cell's treatment")
plt.show()
assert set(scored["treatment"]) <= set(TREATMENTS)
summary
"""),
    md("""
**What we learned.** Spend is concentrated: a fifth of the households bring most of the money, so
discounts should be tiered by value. The RFM segments and `p_alive` flag good customers drifting
away before they are gone: the churn model (notebook 02) makes that a probability. Demographics
exist for a minority, so needs are mostly read from baskets (departments, brands, deals).
"""),
]


# --------------------------------------------------------------------------- 02

RETRAIN = [
    md("""
# 02 · Retrain a model and compare it with the champion

*A data scientist's loop: change one thing, train a challenger, compare it with the champion in
MLflow, promote it, and roll it back if it misbehaves.*

Every model family (next purchase, cross-sell, churn, value) has one registered model in the MLflow
Model Registry, `tailor-<family>`. The offer service loads the version behind the alias
**`champion`**, never "latest": promotion is moving the alias, rollback is moving it back. Each
version carries its validation metric, measured on a validation cutoff before the reporting ones
(the protocol in `training.protocol`), so versions compare on the same split.

We work on the **churn** family (will an active customer stop buying in the next 60 days?),
on Complete Journey. MLflow goes wherever the settings point (`TAILOR_HOME`, default `./var`;
`MLFLOW_TRACKING_URI` for a tracking server).
"""),
    code("""
%matplotlib inline
import dataclasses

import matplotlib.pyplot as plt
import mlflow
import pandas as pd

from features.sources import load_source
from training import tracking
from training.commands import (
    default_as_of,
    evaluation_table,
    family_module,
    train_family,
    validation_cutoff,
    validation_value,
)
from training.protocol import WINDOWS_DAYS

FAMILY = "churn"
family = family_module(FAMILY)  # training.churn: default_config, evaluate_family, fit_family, ...
tables = load_source("completejourney")
AS_OF = default_as_of(tables)  # production models use all the data
# the validation cutoff train_family picks (DESIGN's date on Complete Journey) and the split tag
# it records: promote_if_better compares two versions only when their tags agree
VAL_CUTOFF = validation_cutoff(FAMILY, AS_OF, tables.transactions["timestamp"].min())
VAL_SPLIT = tracking.validation_split(
    tables, VAL_CUTOFF, VAL_CUTOFF + pd.Timedelta(days=WINDOWS_DAYS[FAMILY])
)
print("MLflow store:", tracking.configure())
print(f"validation cutoff {VAL_CUTOFF:%Y-%m-%d}, metric {family.VALIDATION_METRIC}, "
      f"models fitted on data before {AS_OF:%Y-%m-%d}")
"""),
    md("""
## 1. The champion

If the registry has no churn champion yet (a fresh store), we train one exactly as
`tailor train churn` does: validate, fit, log the run, register a version, promote it if it is
the first or the better one.
"""),
    code("""
if tracking.current_champion(FAMILY) is None:
    summary = train_family(FAMILY, tables, AS_OF)
    print(summary["decision"], f"({summary['seconds']:.0f} s)")
CHAMPION = tracking.current_champion(FAMILY)
tracking.list_versions(FAMILY)
"""),
    md("""
## 2. A challenger with bigger trees

The family's defaults live in one config dataclass (`default_config()`), saved with every run.
We change one thing, the size of the LightGBM trees (two hyper-parameters: more leaves, fewer
rows per leaf), and follow the same steps as `train_family`: validate on the same validation
cutoff, fit as of the same date, log the run with its config, its metrics next to the baseline's
and its validation split, and register a new version, but without promoting it yet.
"""),
    code("""
config = family.default_config()
CHANGE = {"num_leaves": 16, "min_child_samples": 50}
challenger_config = dataclasses.replace(config, lgbm={**config.lgbm, **CHANGE})
print({k: config.lgbm[k] for k in CHANGE}, "->", CHANGE)

evaluation = family.evaluate_family(tables.before(AS_OF), cutoffs=[VAL_CUTOFF], config=challenger_config)
model = family.fit_family(tables, AS_OF, config=challenger_config)
run_id, CHALLENGER = tracking.log_family_run(
    FAMILY, model, family.predict_family(model, tables, AS_OF),
    cutoff=AS_OF, config=challenger_config, evaluation=evaluation,
    validation_metric=family.VALIDATION_METRIC,
    validation_value=validation_value(family, evaluation),
    validation_split=VAL_SPLIT,  # without it the challenger cannot be compared with the champion
    feature_names=list(getattr(model, "feature_names_", []) or []),
    fingerprint=tracking.data_fingerprint(tables),
    run_name="challenger-" + "-".join(f"{k}={v}" for k, v in CHANGE.items()),
)
print(f"registered {tracking.model_name(FAMILY)} v{CHALLENGER} (run {run_id[:8]})")
evaluation_table(evaluation)
"""),
    md("""
## 3. Compare in MLflow

The registry says which version is the champion and what each scored; the runs behind the
versions hold the parameters and every metric (model and baseline, per cutoff). Both views come
straight from MLflow (`tracking.list_versions`, `mlflow.search_runs`): the same numbers the MLflow
UI shows (`mlflow ui --backend-store-uri <store>`).
"""),
    code("""
versions = tracking.list_versions(FAMILY).set_index("version")
runs = mlflow.search_runs(experiment_names=[f"tailor-{FAMILY}"]).set_index("run_id")
metric = family.VALIDATION_METRIC.replace("@", "_at_")
columns = {f"params.lgbm.{k}": k for k in CHANGE} | {
    f"metrics.{family.MODEL_NAME}.{metric}.mean": f"{family.MODEL_NAME} {metric}",
    f"metrics.{family.BASELINE_NAME}.{metric}.mean": f"{family.BASELINE_NAME} {metric}",
}
comparison = versions[["champion", "validation_value"]].join(
    runs.loc[versions["run_id"], list(columns)].rename(columns=columns).set_index(versions.index)
)
comparison
"""),
    code("""
fig, ax = plt.subplots(figsize=(6, 3.2))
labels = [f"v{v}" + (" (champion)" if c else "") for v, c in comparison["champion"].items()]
ax.barh(labels, comparison["validation_value"], color=["#0a6b2d" if c else "#7a9cc6" for c in comparison["champion"]])
ax.axvline(comparison[f"{family.BASELINE_NAME} {metric}"].iloc[-1], color="k", ls="--", lw=0.8,
           label=f"baseline ({family.BASELINE_NAME})")
lo = comparison["validation_value"].min()
ax.set_xlim(lo - 0.05, min(1.0, comparison["validation_value"].max() + 0.02))
ax.set_xlabel(f"validation {family.VALIDATION_METRIC} at {VAL_CUTOFF:%Y-%m-%d}")
ax.set_title(f"{tracking.model_name(FAMILY)}: registered versions on the validation split")
ax.legend(loc="lower right")
plt.show()
"""),
    md("""
## 4. Promote

`tracking.promote_if_better` moves `champion` only if the challenger was validated on the same
split (cutoff and data) and beats the champion on the validation metric. If it does not, the
champion stays; to walk through the rest of the cycle we then force the promotion, as
`tailor models promote churn <version> --force` would.
"""),
    code("""
promoted, why = tracking.promote_if_better(FAMILY, CHALLENGER, family.VALIDATION_GREATER_IS_BETTER)
print(why)
if not promoted:
    promoted, why = tracking.promote_if_better(
        FAMILY, CHALLENGER, family.VALIDATION_GREATER_IS_BETTER, force=True
    )
    print(why)
assert tracking.current_champion(FAMILY) == CHALLENGER
"""),
    md("""
What the offer service would load now: the champion's fitted model, pinned by version.
"""),
    code("""
served, version = tracking.load_champion(FAMILY)
print(f"serving {tracking.model_name(FAMILY)} v{version}:", type(served).__name__)
family.predict_family(served, tables, AS_OF).head()
"""),
    md("""
## 5. Roll back

Suppose the new champion misbehaves in production. `tracking.rollback` moves the alias back to the
previous champion (`tailor models rollback churn`); the challenger stays registered, with its run,
for the post-mortem.
"""),
    code("""
restored = tracking.rollback(FAMILY)
print(f"champion is v{restored} again")
assert restored == CHAMPION == tracking.current_champion(FAMILY)
tracking.list_versions(FAMILY)
"""),
    md("""
**What we did.** One change of the trees became a registered, comparable version: its config,
metrics (next to the baseline's), data fingerprint and model are in MLflow. Promotion and rollback
only move the `champion` alias, so the service can switch between versions without retraining.
From the command line: `tailor train churn`, `tailor models list`,
`tailor models promote churn <version> [--force]`, `tailor models rollback churn`.
"""),
]


# --------------------------------------------------------------------------- 03

CAMPAIGN = [
    md("""
# 03 · Evaluate a campaign

*Every campaign runs with a randomised control group, and the analysis reports lift with its
confidence interval, not a point estimate.*

Two campaigns:

1. **Hillstrom's e-mail test** (MineThatData, 2008), a real randomised experiment: 64,000 customers
   were sent a men's e-mail, a women's e-mail or nothing, and followed for two weeks (visit,
   conversion, spend). We check the arms are balanced (sample-ratio mismatch), read the lifts with
   95% intervals, try CUPED with last year's spend, and ask *whom to e-mail next time* with uplift
   models and their Qini curves.
2. **A campaign run through our own offer service**: customers are assigned to arms by the
   service's experiment code, their exposures and responses go to the service's event log
   (SQLite), and the analysis reads that log back. The responses are simulated with an effect we
   *planted*, so we can check the analysis finds it.
"""),
    code("""
%matplotlib inline
import os
from pathlib import Path

import pandas as pd

from campaigns.analysis import analyze
from campaigns.report import lift_figure, qini_figure
from campaigns.uplift import uplift_experiment

HILLSTROM = Path(os.environ.get("TAILOR_HILLSTROM", "/work/shared/data/hillstrom/hillstrom.csv"))
hill = pd.read_csv(HILLSTROM)
hill.groupby("segment")[["visit", "conversion", "spend"]].mean()
"""),
    md("""
## 1. Hillstrom: lifts, intervals, CUPED, SRM

`campaigns.analysis.analyze` takes one row per customer: the arm, the outcomes and (optionally) a
pre-period covariate for CUPED, the margin and the contact cost for the economics.
"""),
    code("""
result = analyze(
    hill,
    arm="segment",
    control="No E-Mail",
    metrics="visit,conversion,spend",
    covariate="history",
    margin=0.3,
    cost_per_contact=0.10,
)
print(result.srm.message())
cols = ["arm", "metric", "adjustment", "n", "mean", "abs_lift", "abs_ci_low", "abs_ci_high",
        "rel_lift", "p_value_holm", "variance_reduction"]
result.table.loc[~result.table["is_control"], cols]
"""),
    code("""
lift_figure(result)
"""),
    md("""
Both e-mails lift every metric, the men's e-mail about twice as much as the women's: the 95%
intervals exclude zero, and the p-values stay far below 5% after Holm's correction for the two
arms (`p_value_holm`). The arm sizes match the planned equal split, so there is no sign of a
broken randomisation. **CUPED** removes the variance a pre-period covariate explains; last
year's spend (`history`) barely predicts a two-week visit, so here the reduction is honest and
tiny (see `variance_reduction`): it only helps with a covariate that tracks the outcome.

The economics, with a 30% margin and 10 cents per e-mail:
"""),
    code("""
result.economics[["arm", "incremental_revenue", "incremental_margin", "contact_cost", "roi"]]
"""),
    md("""
## 2. Whom to e-mail next time: uplift and the Qini curve

The average lift hides who responds. `campaigns.uplift.uplift_experiment` trains two uplift
models (a T-learner and the class-transformation model) on 70% of the women's-e-mail and
no-e-mail customers, and ranks the other 30% by predicted uplift. The Qini curve shows the
incremental visits gained by e-mailing the top x% first; random targeting is the diagonal.
"""),
    code("""
FEATURES = ["recency", "history_segment", "history", "mens", "womens", "zip_code", "newbie", "channel"]
uplift = uplift_experiment(
    hill, "segment", "Womens E-Mail", "No E-Mail", "visit", features=FEATURES, seed=0, n_boot=100
)
uplift.metrics.set_index("model")[["ate", "qini", "qini_ci_low", "qini_ci_high", "uplift_at_30"]]
"""),
    code("""
qini_figure(uplift)
"""),
    md("""
Both models beat random targeting on held-out customers (the Qini coefficient's interval is
above zero): e-mailing the top 30% by predicted uplift buys more extra visits per e-mail than
e-mailing at random.

## 3. A campaign through the offer service's experiment log

Now our own campaign: the `personalisation` experiment of `serving/rules.toml` shows half of the
customers their personalised offer list and the other half the same popular items as everyone
else. We run it through the offer service's own code, without HTTP:

* `serving.precompute.precompute` + `serving.store` build the lookup store as of 1 December
  2017. A cheap personal-frequency ranker (P-TopFreq, a protocol baseline) stands in for the
  next-purchase champion so that this notebook needs no trained model;
* `serving.engine.OfferEngine.offer_list` assigns each customer to an arm
  (`serving.experiments`: a salted hash of the customer id, no state) and ranks their offers;
* every list shown goes to the event log (`serving.eventlog.EventLog`, SQLite in WAL mode) as
  exposures, exactly as the service writes them.
"""),
    code("""
import tempfile

import numpy as np

from features.customer import customer_features
from features.sources import load_source
from serving.config import load_config
from serving.engine import OfferEngine
from serving.eventlog import EventLog, exposure_rows
from serving.precompute import precompute
from serving.store import build_store, load_store
from training.baselines_np import PTopFreq

AS_OF = pd.Timestamp("2017-12-01")
EXPERIMENT = "personalisation"
work = Path(tempfile.mkdtemp(prefix="tailor-campaign-"))

tables = load_source("completejourney")
customers = customer_features(tables, AS_OF)  # pre-period behaviour: the simulation and CUPED use it
ranker = PTopFreq().fit(tables, AS_OF)
frames = precompute(
    tables, AS_OF, models={"next_purchase": ranker},
    predict=lambda family, model, t, as_of, k: model.recommend(customers.index, n=k),
)
store = load_store(build_store(frames, work / "store.sqlite", {"as_of": str(AS_OF.date())}))
config = load_config()
engine = OfferEngine(store, config)
lists = [engine.offer_list(int(c), n=10, experiment=EXPERIMENT) for c in customers.index]
pd.Series([ol.assignment.arm for ol in lists]).value_counts()
"""),
    md("""
The assignment follows the configured 50/50 split, and a small **universal control group**
(5% of customers, their own hash) gets non-personalised offers in every experiment; it is a
long-running holdout, not an arm of this test, so the analysis below leaves it out.

### Simulated responses with a planted effect

We do not have real responses to these offers, so we simulate them, with an effect we choose:
a customer's chance of buying from the list they were shown grows with their spend over the
last 90 days (5% to 50%), and a **personalised list makes that chance 25% higher**. A purchase is
worth about one of their usual baskets. Purchases go to the same event log.
"""),
    code("""
PLANTED_LIFT = 0.25  # relative lift of the purchase probability in the personalised arm
START = pd.Timestamp("2017-12-01 09:00", tz="UTC")
rng = np.random.default_rng(2017)
base_rate = 0.05 + 0.45 * customers["spend_90d"].rank(pct=True)

log = EventLog(work / "events.sqlite")
for i, ol in enumerate(lists):
    cid, arm = ol.customer_id, ol.assignment.arm
    request, shown = f"req-{cid}", START + pd.Timedelta(seconds=30 * i)
    offers = [(o.product_id, o.kind, o.score, o.discount) for o in ol.offers]
    log.append_exposures(exposure_rows(request, shown.isoformat(), cid, EXPERIMENT, arm, offers))
    p = base_rate[cid] * (1 + PLANTED_LIFT if arm == "personalised" else 1)
    if rng.random() < p:
        bought = shown + pd.Timedelta(days=rng.uniform(0, 14))
        value = customers.at[cid, "basket_value_mean"] * rng.gamma(4.0, 0.25)
        product = ol.offers[rng.integers(len(ol.offers))].product_id
        log.append_event(request, cid, product, "purchased", value=value, ts=bought.isoformat())
print(log.counts())
log.close()
"""),
    md("""
### Reading the log back

`campaigns.io.read_event_log` turns the log into one row per customer (the unit of
randomisation): the arm of the first exposure, and conversion and spend within 14 days of it.
The analysis is the same call as for Hillstrom, with last-90-day spend as the CUPED covariate.
"""),
    code("""
from campaigns.io import read_event_log

units = read_event_log(work / "events.sqlite", experiment=EXPERIMENT, window_days=14)
units = units[units["arm"] != "universal_control"].join(customers["spend_90d"], on="customer_id")
sim = analyze(units, arm="arm", control="popular", metrics="conversion,spend", covariate="spend_90d")
print(sim.srm.message())
cols = ["metric", "adjustment", "n", "mean", "control_mean", "rel_lift", "rel_ci_low", "rel_ci_high",
        "p_value", "variance_reduction"]
sim.table.loc[~sim.table["is_control"], cols]
"""),
    code("""
fig = lift_figure(sim, adjustment="cuped")
fig.axes[0].axvline(PLANTED_LIFT * 100, color="#c0392b", ls="--", label=f"planted lift {PLANTED_LIFT:.0%}")
fig.axes[0].legend(loc="lower right")
fig
"""),
    code("""
for metric in ("conversion", "spend"):
    for adjustment in ("none", "cuped"):
        row = sim.lift("personalised", metric, adjustment)
        covered = row["rel_ci_low"] <= PLANTED_LIFT <= row["rel_ci_high"]
        print(f"{metric:10s} {adjustment:5s}: estimated {row['rel_lift']:+.1%} "
              f"[{row['rel_ci_low']:+.1%}, {row['rel_ci_high']:+.1%}] "
              f"{'covers' if covered else 'MISSES'} the planted {PLANTED_LIFT:+.0%}")
        assert covered, (metric, adjustment)
"""),
    md("""
**What we learned.** The analysis of the service's own log recovers the effect we planted: each
95% interval covers the 25% lift. With a covariate that tracks the outcome (recent spend)
CUPED narrows the intervals (see `variance_reduction`), unlike on Hillstrom. With about 2,300
customers in the two arms a 25% lift is detectable, but the intervals are wide (roughly +/-15
points for conversion, +/-20 for spend): to size the next test, `campaigns.design.sample_size`
(or `tailor campaign design`) gives the customers needed for the smallest lift worth detecting.
"""),
]


NOTEBOOKS: dict[str, list[tuple[str, str]]] = {
    "01-explore-customers": EXPLORE,
    "02-retrain-and-compare": RETRAIN,
    "03-evaluate-a-campaign": CAMPAIGN,
}


def build(name: str) -> nbformat.NotebookNode:
    """The notebook ``name`` with stable cell ids and no outputs."""
    cells = []
    for i, (kind, source) in enumerate(NOTEBOOKS[name]):
        cell = new_markdown_cell(source) if kind == "markdown" else new_code_cell(source)
        cell["id"] = f"{name[:2]}-{i:02d}"
        cells.append(cell)
    nb = new_notebook(cells=cells)
    nb.metadata = {
        "kernelspec": {
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
            "name": "python3",
        },
        "language_info": {"name": "python"},
    }
    nbformat.validate(nb)
    return nb


def render(name: str) -> str:
    """The exact text written to ``notebooks/<name>.ipynb``."""
    return nbformat.writes(build(name)) + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for name in NOTEBOOKS:
        path = HERE / f"{name}.ipynb"
        text = render(name)
        if check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(path.name)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        print(f"stale notebooks (run python notebooks/_make.py): {', '.join(stale)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
