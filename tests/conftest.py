"""Shared fixtures for the whole test suite.

* ``cj_tables``: the real Complete Journey data, loaded and validated once per session
  (about 2 s).
* ``small_synth`` / ``small_synth_truth``: a small synthetic shop (300 customers, 300
  products, 2017, seed 7: about 220k line items) and the habits planted in it.

Session-scoped: treat the frames as read-only (``.copy()`` before changing them).
"""

from __future__ import annotations

import pytest

from features.contract import Tables, validate
from features.sources.synthetic import SyntheticTruth, generate_with_truth

SMALL_SYNTH = {"customers": 300, "products": 300, "days": 365, "seed": 7}


@pytest.fixture(scope="session")
def cj_tables() -> Tables:
    from features.sources import load_source

    return load_source("completejourney")


@pytest.fixture(scope="session")
def _small_synth_pair() -> tuple[Tables, SyntheticTruth]:
    tables, truth = generate_with_truth(**SMALL_SYNTH)
    return validate(tables), truth


@pytest.fixture(scope="session")
def small_synth(_small_synth_pair) -> Tables:
    return _small_synth_pair[0]


@pytest.fixture(scope="session")
def small_synth_truth(_small_synth_pair) -> SyntheticTruth:
    return _small_synth_pair[1]
