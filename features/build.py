"""Build every as-of feature table in one pass, and write / read them as Parquet.

:func:`build_all` reads the history once (one :class:`features._util.History`) and
derives the four frames from it; the results equal the separate public functions.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from features._util import History, as_cutoff
from features.customer import _features, _globals_from, _rfm_base
from features.customer_product import _cp_frame, _product_frame
from features.demographics import demographic_features

logger = logging.getLogger(__name__)

STEPS = ("customers", "demographics", "customer_product", "products")
FRAMES = STEPS
MANIFEST = "manifest.json"


def build_all(
    tables, cutoff, progress: Callable[[str], None] | None = None
) -> dict[str, pd.DataFrame]:
    """All feature frames as of ``cutoff``.

    Parameters
    ----------
    tables : Tables
        Canonical tables.
    cutoff : timestamp-like
        As-of time; nothing at or after it is read.
    progress : callable, optional
        Called with the step name before each step of :data:`STEPS`.

    Returns
    -------
    dict
        ``customers`` (see :func:`features.customer.customer_features`; the globals used
        are in ``frame.attrs["globals"]``), ``demographics`` (customers with history
        or a profile), ``customer_product`` and ``products``. Every frame has
        ``attrs["cutoff"]``.
    """
    cutoff = as_cutoff(cutoff)
    times = {}

    def step(name):
        if progress is not None:
            progress(name)
        times[name] = time.perf_counter()

    step("customers")
    hist = History(tables, cutoff)
    globals_ = _globals_from(hist, tables, _rfm_base(hist))
    customers = _features(hist, tables, globals_)
    customers.attrs["globals"] = globals_

    step("demographics")
    ids = pd.Index(hist.cust_ids)
    if tables.customers is not None:
        ids = ids.union(pd.Index(tables.customers["customer_id"]))
    demographics = demographic_features(tables, ids.sort_values())
    demographics.attrs["cutoff"] = str(cutoff)

    step("customer_product")
    cp = _cp_frame(hist)

    step("products")
    products = _product_frame(hist, tables.products)
    end = time.perf_counter()
    names = list(times)
    logger.info(
        "features as of %s: %s",
        cutoff,
        ", ".join(
            f"{n} {((times[names[i + 1]] if i + 1 < len(names) else end) - times[n]):.2f}s"
            for i, n in enumerate(names)
        ),
    )
    return {
        "customers": customers,
        "demographics": demographics,
        "customer_product": cp,
        "products": products,
    }


def write_features(frames: dict[str, pd.DataFrame], directory, cutoff=None) -> Path:
    """Write each frame as ``<name>.parquet`` plus ``manifest.json``, replacing ``directory`` atomically.

    The manifest holds the cutoff (argument, else the frames' ``attrs["cutoff"]``; an
    argument that contradicts a frame's cutoff is an error), row and column counts per
    frame and the customer globals if present.
    """
    directory = Path(directory)
    if not frames:
        raise ValueError("no frames to write")
    cutoffs = {df.attrs.get("cutoff") for df in frames.values()} - {None}
    if cutoff is None:
        if len(cutoffs) > 1:
            raise ValueError(
                f"frames carry different cutoffs {sorted(cutoffs)}; pass cutoff explicitly"
            )
        cutoff = cutoffs.pop() if cutoffs else None
    elif cutoffs - {str(as_cutoff(cutoff))}:
        # read_features would label every frame with this cutoff: never contradict the frames
        raise ValueError(
            f"cutoff {str(as_cutoff(cutoff))!r} contradicts the frames' cutoffs {sorted(cutoffs)}"
        )
    manifest = {
        "cutoff": None if cutoff is None else str(as_cutoff(cutoff)),
        "frames": {n: {"rows": len(df), "columns": len(df.columns)} for n, df in frames.items()},
    }
    for df in frames.values():
        if "globals" in df.attrs:
            manifest["globals"] = df.attrs["globals"]
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        for name, df in frames.items():
            df = df.copy(deep=False)
            df.attrs = {}  # manifest holds them; pandas would store attrs in the Parquet metadata
            df.to_parquet(tmp / f"{name}.parquet")
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
        old = directory.with_name(f".{directory.name}.old")
        if old.exists():
            shutil.rmtree(old)
        if directory.exists():
            directory.rename(old)
        tmp.rename(directory)
        if old.exists():
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("wrote features %s to %s", list(frames), directory)
    return directory


def read_features(directory) -> dict[str, pd.DataFrame]:
    """Frames written by :func:`write_features`, with ``attrs["cutoff"]`` (and globals) restored."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not path.exists():
        raise FileNotFoundError(
            f"no {MANIFEST} in {directory}; build features first (`tailor features build`)"
        )
    manifest = json.loads(path.read_text())
    out = {}
    for name in manifest["frames"]:
        df = pd.read_parquet(directory / f"{name}.parquet")
        df.attrs["cutoff"] = manifest.get("cutoff")
        if name == "customers" and "globals" in manifest:
            df.attrs["globals"] = manifest["globals"]
        out[name] = df
    return out
