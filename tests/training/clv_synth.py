"""Planted synthetic shop for the customer-value tests (BG/NBD visits, Gamma-Gamma spend)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.clv import sample_bgnbd

#: Planted BG/NBD parameters in days: a visit every ~25 days on average, ~1 in 5 visits is the last.
PLANTED_BGNBD = {"r": 1.2, "alpha": 30.0, "a": 1.0, "b": 4.0}
#: Planted Gamma-Gamma spend per visit: mean p v / (q - 1) = 4 * 90 / 5 = 72.
PLANTED_GG = {"p": 4.0, "q": 6.0, "v": 90.0}
START = pd.Timestamp("2017-01-01")
END = pd.Timestamp("2017-12-31")


def make_shop(
    n_customers: int, seed: int, returns: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Canonical ``transactions`` of a shop whose customers follow the planted models.

    First visits are spread over the first 150 days; visits follow BG/NBD in days until
    ``END``; each visit is a basket of 1-3 lines sharing a Gamma-Gamma visit value. With
    ``returns``, ~5% of baskets get a same-day partial return line, and ~3% of customers
    a return-only day later on (which must not count as a visit).

    Returns
    -------
    (transactions, truth)
        ``truth`` is indexed by customer_id with ``first``, ``lambda_``, ``p_``, ``nu``.
    """
    rng = np.random.default_rng(seed)
    first = START + pd.to_timedelta(rng.uniform(0, 150, n_customers), unit="D")
    horizon = ((END - first) / pd.Timedelta(days=1)).to_numpy()
    truth, events = sample_bgnbd(horizon, **PLANTED_BGNBD, rng=rng, return_events=True)
    nu = rng.gamma(PLANTED_GG["q"], 1.0 / PLANTED_GG["v"], size=n_customers)
    n_ev = len(events)
    value = rng.gamma(PLANTED_GG["p"], 1.0 / nu[events["customer"].to_numpy()])
    ts = first.to_numpy()[events["customer"].to_numpy()] + pd.to_timedelta(
        events["time"].to_numpy(), unit="D"
    )
    n_lines = rng.integers(1, 4, size=n_ev)
    basket = np.repeat(np.arange(n_ev), n_lines)
    weight = rng.uniform(0.5, 1.5, size=len(basket))
    line_value = value[basket] * weight / np.bincount(basket, weights=weight)[basket]
    tx = pd.DataFrame(
        {
            "customer_id": events["customer"].to_numpy()[basket].astype("int64") + 1000,
            "basket_id": basket.astype("int64") + 1,
            "product_id": rng.integers(1, 500, size=len(basket)).astype("int64"),
            "store_id": np.ones(len(basket), dtype="int64"),
            "timestamp": pd.DatetimeIndex(ts)[basket].astype("datetime64[ns]"),
            "quantity": np.ones(len(basket)),
            "sales_value": line_value,
            "retail_discount": np.zeros(len(basket)),
            "coupon_discount": np.zeros(len(basket)),
        }
    )
    if returns:
        extra = []
        # same-day partial return: nets out within the visit day (value stays > 0)
        picked = rng.random(n_ev) < 0.05
        for k in np.flatnonzero(picked):
            extra.append((k, ts[k], -0.3 * value[k]))
        # a return-only day 1-3 days after some customers' first visit: not a visit
        first_ev = events.groupby("customer").head(1)
        chosen = first_ev.sample(frac=0.03, random_state=seed)
        for k in chosen.index:
            extra.append(
                (k, ts[k] + pd.Timedelta(days=int(rng.integers(1, 4)), hours=1), -0.5 * value[k])
            )
        if extra:
            k, when, val = (np.array(v, dtype=object) for v in zip(*extra, strict=True))
            k = k.astype(int)
            ret = pd.DataFrame(
                {
                    "customer_id": events["customer"].to_numpy()[k].astype("int64") + 1000,
                    "basket_id": np.arange(len(k), dtype="int64") + n_ev + 1,
                    "product_id": rng.integers(1, 500, size=len(k)).astype("int64"),
                    "store_id": np.ones(len(k), dtype="int64"),
                    "timestamp": pd.DatetimeIndex(when.tolist()).astype("datetime64[ns]"),
                    "quantity": -np.ones(len(k)),
                    "sales_value": val.astype(float),
                    "retail_discount": np.zeros(len(k)),
                    "coupon_discount": np.zeros(len(k)),
                }
            )
            tx = pd.concat([tx, ret], ignore_index=True)
    tx = tx.sort_values(["timestamp", "basket_id"], kind="stable").reset_index(drop=True)
    truth = truth.assign(first=first, nu=nu)
    truth.index = truth.index.astype("int64") + 1000
    truth.index.name = "customer_id"
    return tx, truth
