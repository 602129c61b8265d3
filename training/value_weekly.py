"""Weekly spend-level features for the value model, as of a cutoff.

Only transactions strictly before the cutoff ``T`` are read. Weeks are 7-day blocks
counted back from ``T`` (week 0 = the last 7 days). Spend is net ``sales_value`` (returns
negative); a visit is a day with a sale line. Spend levels are expressed as 90-day
equivalents (weekly mean x 90 / 7) so they read like the target; a window longer than the
data before ``T`` is averaged over the weeks the data has.

Columns:

* ``spend90_w{1,2,4,8,13,26}`` -- mean weekly spend of the last ``w`` weeks, x 90/7;
* ``visits_w{...}`` -- mean visit days a week over the same windows;
* ``spend90_ewm{2,4,8,16}`` -- exponentially weighted weekly spend (half-life in weeks), x 90/7;
* ``wk_spend_q25_{13,26}``, ``wk_spend_med_{13,26}``, ``wk_spend_q75_{13,26}`` -- quartiles
  of weekly spend (x 90/7), and ``weeks_active_{13,26}`` (share of weeks with a visit);
* ``spend_slope_13`` and ``visit_slope_13`` -- least-squares slopes over the last 13 weeks
  (or the weeks the data has, if fewer).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features._util import days_back, observed_weeks_before
from features.contract import Tables

DAY = pd.Timedelta(days=1)
MAX_WEEKS = 52
PER_90_DAYS = 90 / 7
WINDOWS = (1, 2, 4, 8, 13, 26)
HALF_LIVES = (2, 4, 8, 16)


def weekly_matrices(
    tables: Tables, cutoff, ids: pd.Index, weeks: int = MAX_WEEKS, data_start=None
) -> tuple[np.ndarray, np.ndarray, int]:
    """Weekly net spend and visit days (rows ``ids``, column 0 = newest week) and the
    number of whole weeks of data before ``cutoff`` (capped at ``weeks``), counted from
    ``data_start`` (a global: pass it when ``tables`` hold only some customers; default
    the first transaction in ``tables``)."""
    cutoff = pd.Timestamp(cutoff)
    all_tx = tables.transactions
    tx = all_tx[all_tx["timestamp"] < cutoff]
    code = ids.get_indexer(tx["customer_id"].to_numpy())
    age = ((cutoff - tx["timestamp"]) / DAY).to_numpy()
    day = days_back(age)  # week 0 = [T - 7 days, T)
    week = day // 7
    ok = (code >= 0) & (week < weeks)
    spend = np.zeros((len(ids), weeks))
    np.add.at(spend, (code[ok], week[ok]), tx["sales_value"].to_numpy("float64")[ok])
    sale = ((tx["quantity"] > 0) & (tx["sales_value"] >= 0)).to_numpy() & ok
    vd = pd.DataFrame({"c": code[sale], "d": day[sale]}).drop_duplicates()
    visits = np.zeros((len(ids), weeks))
    np.add.at(visits, (vd["c"].to_numpy(), vd["d"].to_numpy() // 7), 1.0)
    observed = observed_weeks_before(all_tx, cutoff, data_start)
    return spend, visits, max(min(observed, weeks), 1)


def weekly_value_features(tables: Tables, cutoff, customer_ids, data_start=None) -> pd.DataFrame:
    """The columns listed in the module docstring, indexed by ``customer_ids``, float64.

    ``data_start``: see :func:`weekly_matrices`."""
    ids = pd.Index(customer_ids, name="customer_id")
    spend, visits, obs = weekly_matrices(tables, cutoff, ids, data_start=data_start)
    out: dict[str, np.ndarray] = {}
    for w in WINDOWS:
        ww = min(w, obs)
        out[f"spend90_w{w}"] = spend[:, :ww].sum(axis=1) / ww * PER_90_DAYS
        out[f"visits_w{w}"] = visits[:, :ww].sum(axis=1) / ww
    for hl in HALF_LIVES:
        wts = 0.5 ** (np.arange(obs) / hl)
        out[f"spend90_ewm{hl}"] = (spend[:, :obs] * wts).sum(axis=1) / wts.sum() * PER_90_DAYS
    for w in (13, 26):
        ww = min(w, obs)
        q = np.quantile(spend[:, :ww], [0.25, 0.5, 0.75], axis=1)
        out[f"wk_spend_q25_{w}"] = q[0] * PER_90_DAYS
        out[f"wk_spend_med_{w}"] = q[1] * PER_90_DAYS
        out[f"wk_spend_q75_{w}"] = q[2] * PER_90_DAYS
        out[f"weeks_active_{w}"] = (visits[:, :ww] > 0).mean(axis=1)
    # over the weeks the data has: weeks before the data began are not weeks without spend
    ww = min(13, obs)
    x = (ww - 1) / 2.0 - np.arange(ww)  # week 0 (newest) -> +(ww - 1) / 2
    norm = (x**2).sum() or 1.0  # one week of data: no slope (0)
    out["spend_slope_13"] = (spend[:, :ww] * x).sum(axis=1) / norm * PER_90_DAYS
    out["visit_slope_13"] = (visits[:, :ww] * x).sum(axis=1) / norm
    return pd.DataFrame(out, index=ids).astype("float64")
