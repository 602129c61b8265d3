"""The shared evaluation protocol of DESIGN.md: cutoffs and windows per task."""

from __future__ import annotations

import pandas as pd

#: Reporting cutoffs: every metric is the mean over these three.
CUTOFFS: dict[str, list[pd.Timestamp]] = {
    "next_purchase": [pd.Timestamp(d) for d in ("2017-10-02", "2017-11-01", "2017-12-01")],
    "cross_sell": [pd.Timestamp(d) for d in ("2017-10-02", "2017-11-01", "2017-12-01")],
    "churn": [pd.Timestamp(d) for d in ("2017-09-01", "2017-10-02", "2017-11-01")],
    "value": [pd.Timestamp(d) for d in ("2017-07-03", "2017-08-01", "2017-09-01")],
}

#: A cutoff before the reporting ones, for tuning hyper-parameters and for the champion
#: comparison of `tailor train` (never a reporting cutoff). For next purchase and cross-sell
#: its label window ends by the first reporting cutoff. Churn's (2017-08-01 + 60 days) overlaps
#: the first reporting window by 29 days: 2017-07-03 would not, but its training cutoffs (May
#: and before) hold no churner in the synthetic source, whose churn starts in May, so `tailor
#: train` could not validate there. Value's cannot be disjoint on one year of data: its model
#: trains on a window ending 90 days before its cutoff with 56 days of history before that, so
#: the first possible cutoff (late May 2017 on Complete Journey) has a window reaching into the
#: reporting ones (2017-06-01 + 90 days overlaps those of 2017-07-03 and 2017-08-01). The
#: reporting models never see these labels; only the choice of hyper-parameters did.
VALIDATION_CUTOFFS: dict[str, pd.Timestamp] = {
    "next_purchase": pd.Timestamp("2017-09-01"),
    "cross_sell": pd.Timestamp("2017-09-01"),
    "churn": pd.Timestamp("2017-08-01"),
    "value": pd.Timestamp("2017-06-01"),
}

#: The first day of Complete Journey's transactions: the validation cutoffs above sit this far
#: into the data. Data that does not hold them (another year, or too little history before
#: them) validates at the same distance from its own first day (see
#: :func:`training.commands.validation_cutoff`).
REFERENCE_START = pd.Timestamp("2017-01-01")

WINDOWS_DAYS = {"next_purchase": 14, "cross_sell": 28, "churn": 60, "value": 90}
CHURN_ACTIVE_DAYS = 90
PARTIAL_CHURN_SHARE = 0.5
K = 10
