"""Pseudonyms for exports and the erasure ("forget") bookkeeping.

Anything handed to outside parties (shopping-list files for a mailing house, reports for
manufacturers) carries a keyed hash of the customer id instead of the id:
``HMAC-SHA256(key, str(customer_id))``, the first 20 hex digits. The key comes from the
configuration (``pseudonym_key`` in ``tailor.toml`` or ``TAILOR_PSEUDONYM_KEY``); without
the key the pseudonyms cannot be linked back to ids, and a new key unlinks old exports.

Erased customers are remembered only by pseudonym in ``<serving_dir>/forgotten.json``, so
a later rebuild of the lookup store from the source data leaves them out.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from features.config import get_settings

logger = logging.getLogger(__name__)

DEFAULT_KEY = "change-me"
PSEUDONYM_LENGTH = 20
FORGOTTEN_FILE = "forgotten.json"


def pseudonym_key() -> str:
    key = get_settings().pseudonym_key
    if key == DEFAULT_KEY:
        logger.warning(
            "pseudonym_key is the default %r: set TAILOR_PSEUDONYM_KEY before sharing exports",
            DEFAULT_KEY,
        )
    if not key:
        raise ValueError("pseudonym_key is empty; set TAILOR_PSEUDONYM_KEY")
    return key


def pseudonymise(customer_id: int, key: str | None = None) -> str:
    """The keyed-hash pseudonym of one customer id."""
    key = key if key is not None else pseudonym_key()
    return hmac.new(key.encode(), str(int(customer_id)).encode(), hashlib.sha256).hexdigest()[
        :PSEUDONYM_LENGTH
    ]


def pseudonymise_ids(ids: Iterable[int], key: str | None = None) -> list[str]:
    """Pseudonyms of many ids (the key is read once)."""
    key = key if key is not None else pseudonym_key()
    k = key.encode()
    return [
        hmac.new(k, str(int(i)).encode(), hashlib.sha256).hexdigest()[:PSEUDONYM_LENGTH]
        for i in ids
    ]


def pseudonymise_frame(
    df: pd.DataFrame,
    column: str = "customer_id",
    key: str | None = None,
    new_column: str = "customer",
) -> pd.DataFrame:
    """A copy of ``df`` with ``column`` replaced by its pseudonyms in ``new_column`` (first column)."""
    out = df.copy()
    out.insert(0, new_column, pseudonymise_ids(out[column], key))
    return out.drop(columns=[column])


def forgotten_pseudonyms(serving_dir: str | Path) -> set[str]:
    p = Path(serving_dir) / FORGOTTEN_FILE
    if not p.exists():
        return set()
    return set(json.loads(p.read_text()).get("pseudonyms", []))


def remember_forgotten(serving_dir: str | Path, customer_id: int, key: str | None = None) -> str:
    """Add a customer's pseudonym to the suppression list (atomically); returns the pseudonym."""
    serving_dir = Path(serving_dir)
    serving_dir.mkdir(parents=True, exist_ok=True)
    pseudo = pseudonymise(customer_id, key)
    # read-add-replace under a lock: two erasures at once must both stay on the list
    with open(serving_dir / f".{FORGOTTEN_FILE}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        known = forgotten_pseudonyms(serving_dir)
        known.add(pseudo)
        fd, tmp = tempfile.mkstemp(dir=serving_dir, prefix=".forgotten.")
        with os.fdopen(fd, "w") as fh:
            json.dump({"pseudonyms": sorted(known)}, fh)
        os.replace(tmp, serving_dir / FORGOTTEN_FILE)
    return pseudo


def forgotten_ids(ids: Iterable[int], serving_dir: str | Path, key: str | None = None) -> set[int]:
    """Which of ``ids`` have been erased (their pseudonym is on the suppression list)."""
    gone = forgotten_pseudonyms(serving_dir)
    if not gone:
        return set()
    ids = [int(i) for i in ids]
    return {i for i, p in zip(ids, pseudonymise_ids(ids, key), strict=True) if p in gone}
