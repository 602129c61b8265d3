"""One interface per kind of model (../shared/STYLE.md #3).

Every ranker -- baselines included -- is fitted as of a cutoff and recommends for one
customer id or a batch, so evaluation and serving never special-case a model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable

import numpy as np
import pandas as pd

from features.contract import Tables

RECS_COLUMNS = ["customer_id", "product_id", "rank", "score"]


class Ranker(ABC):
    """fit(tables, cutoff) -> self; recommend(customer_ids, n) -> long frame.

    ``recommend`` returns columns ``customer_id, product_id, rank (1 = best), score`` and may
    add model-specific columns (e.g. ``expected_days``). Implementations only read events
    strictly before ``cutoff``.
    """

    #: short name used in tables and MLflow
    name: str = "ranker"

    @abstractmethod
    def fit(self, tables: Tables, cutoff) -> Ranker: ...

    @abstractmethod
    def recommend(self, customer_ids: Iterable[int] | int, n: int = 10) -> pd.DataFrame: ...

    def get_params(self) -> dict:
        return {
            k: v for k, v in vars(self).items() if not k.endswith("_") and not k.startswith("_")
        }


def empty_recs(extra: list[str] | None = None) -> pd.DataFrame:
    return pd.DataFrame(columns=RECS_COLUMNS + list(extra or []))


def as_id_list(customer_ids) -> list[int]:
    if isinstance(customer_ids, int | np.integer):
        return [int(customer_ids)]
    return [int(c) for c in customer_ids]
