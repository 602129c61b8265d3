"""`tailor data ...` and `tailor features ...`: load, validate and describe sources; build features."""

from __future__ import annotations

import json
import logging
import re
import tempfile
import time
from pathlib import Path

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from features.config import get_settings
from features.contract import ContractError, Tables, load_tables, save_tables

logger = logging.getLogger(__name__)
console = Console(stderr=True)

data_app = typer.Typer(help="Load, validate and describe a data source.", no_args_is_help=True)
features_app = typer.Typer(help="Build as-of features.", no_args_is_help=True)

SourceOpt = typer.Option(
    "completejourney", "--source", "-s", help="completejourney | synthetic | files"
)
PathOpt = typer.Option(None, "--path", help="files source: directory with the CSV/Parquet files")
#: Libraries whose INFO chatter would bury the progress lines: WARNING and above only.
NOISY_LOGGERS = ("mlflow", "alembic", "urllib3", "bentoml", "matplotlib", "numba")
MAPPING_HELP = (
    "files source: column mapping file (TOML or JSON), or the name of a shipped one "
    "(features/sources/mappings/, e.g. online_retail)"
)
MappingOpt = typer.Option(None, "--mapping", help=MAPPING_HELP)


def source_options(
    source: str,
    path: Path | None,
    mapping: Path | None,
    customers: int | None = None,
    products: int | None = None,
    days: int | None = None,
    lines: int | None = None,
    seed: int | None = None,
) -> dict:
    if source == "files":
        if path is None:
            raise typer.BadParameter("the files source needs --path DIRECTORY", param_hint="--path")
        return {"path": path, "mapping": mapping}
    if source == "synthetic":
        opts = {
            "customers": customers,
            "products": products,
            "days": days,
            "lines": lines,
            "seed": seed,
        }
        return {k: v for k, v in opts.items() if v is not None}
    return {}


def parse_date(value: str | None, what: str = "--as-of") -> pd.Timestamp | None:
    """A date option as a naive timestamp (a time zone is converted to UTC and dropped)."""
    if value is None:
        return None
    m = re.match(r"\s*(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4}|\d{2})\b", value)
    if m and int(m[1]) <= 12 and int(m[2]) <= 12 and int(m[1]) != int(m[2]):
        # pandas would read it month first whatever the shop meant (the contract refuses
        # such dates in the data too)
        year = m[3] if len(m[3]) == 4 else f"20{m[3]}"
        a, b = m[1].zfill(2), m[2].zfill(2)
        raise typer.BadParameter(
            f"{value!r} is ambiguous (day or month first?); write {year}-{b}-{a} or {year}-{a}-{b}",
            param_hint=what,
        )
    try:
        ts = pd.Timestamp(value)
    except ValueError as exc:
        raise typer.BadParameter(f"not a date: {value!r}", param_hint=what) from exc
    if pd.isna(ts):  # pd.Timestamp("") is NaT rather than an error
        raise typer.BadParameter(f"not a date: {value!r}", param_hint=what)
    return ts.tz_convert(None) if ts.tzinfo is not None else ts


def check_writable(path: Path, what: str = "--out", folder: bool = False) -> None:
    """Fail before any work when ``path`` cannot be written: it is a folder where a file is
    wanted, a parent is a file, or the nearest existing folder does not take new files."""
    path = Path(path)
    if not folder and path.is_dir():
        raise typer.BadParameter(f"{path} is a folder; give a file name", param_hint=what)
    parent = path.parent  # as the user wrote it, for the message
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise typer.BadParameter(
            f"cannot write {path}: {parent} is a file, not a folder", param_hint=what
        )
    try:  # a probe, not os.access: root passes access checks on read-only file systems
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        raise typer.BadParameter(
            f"cannot write {path}: {parent} does not take new files ({exc.strerror})",
            param_hint=what,
        ) from exc


def cutoff_label(cutoff: pd.Timestamp) -> str:
    """The default feature folder's name: the date, plus the time when the cutoff is not
    midnight (``2017-10-02``, ``2017-10-02T120000``), so no two cutoffs share a folder."""
    return cutoff.strftime("%Y-%m-%d" if cutoff == cutoff.normalize() else "%Y-%m-%dT%H%M%S")


def without_forgotten(tables: Tables) -> Tables:
    """The tables without the customers erased by `tailor forget`: what `data load` saves
    and :func:`load_for_command` returns, so no command brings them back."""
    from serving.privacy import forgotten_ids

    ids = set(tables.transactions["customer_id"].unique())
    if tables.customers is not None:
        ids |= set(tables.customers["customer_id"])
    gone = forgotten_ids(ids, get_settings().serving_dir)
    if not gone:
        return tables
    out = tables.subset_customers(sorted(ids - gone))
    out.notes = [*tables.notes, f"{len(gone):,} erased customer(s) left out (`tailor forget`)"]
    return out


def record_feature_files(directory: Path) -> None:
    """List a feature folder's files where `tailor forget` looks for derived files."""
    from serving.cli import _record_exports

    _record_exports(
        get_settings().serving_dir, sorted(p for p in Path(directory).glob("*.parquet"))
    )


def source_dir(source: str) -> Path:
    return get_settings().data_dir / "sources" / source


def load_for_command(source: str, path: Path | None = None, mapping: Path | None = None) -> Tables:
    """Tables of a source: the saved copy from `tailor data load` if any (and no --path was
    given), else the source loaded fresh; customers erased by `tailor forget` left out."""
    from features.sources import load_source

    saved = source_dir(source)
    if path is None and (saved / "transactions.parquet").exists():
        return without_forgotten(load_tables(saved))
    return without_forgotten(load_source(source, **source_options(source, path, mapping)))


def _fail(exc: Exception) -> None:
    console.print("[bold red]error:[/] ", end="")
    console.print(str(exc), markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def _summary_table(title: str, summary: dict) -> Table:
    table = Table(title=title)
    table.add_column("what")
    table.add_column("value", justify="right")
    for k, v in summary.items():
        table.add_row(k, f"{v:,}" if isinstance(v, int) else str(v))
    return table


@data_app.command("load")
def data_load(
    source: str = SourceOpt,
    path: Path | None = PathOpt,
    mapping: Path | None = MappingOpt,
    customers: int | None = typer.Option(None, help="synthetic: number of customers"),
    products: int | None = typer.Option(None, help="synthetic: number of products"),
    days: int | None = typer.Option(None, help="synthetic: number of days"),
    lines: int | None = typer.Option(None, help="synthetic: target number of line items"),
    seed: int | None = typer.Option(None, help="synthetic: random seed"),
) -> None:
    """Load a source, validate it and save the canonical tables under the data directory.

    A rejected load leaves the previously saved data in place.
    """
    from features.sources import load_source

    opts = source_options(source, path, mapping, customers, products, days, lines, seed)
    t0 = time.perf_counter()
    with console.status(f"loading {source} ..."):
        try:
            tables = without_forgotten(load_source(source, **opts))
            out = save_tables(
                tables,
                source_dir(source),
                {"source": source, "options": {k: str(v) for k, v in opts.items()}},
            )
        except (ContractError, FileNotFoundError, ValueError) as exc:
            _fail(exc)
    console.print(_summary_table(f"{source}: saved to {out}", tables.summary()))
    for note in tables.notes:
        console.print(f"  note: {note}")
    console.print(f"done in {time.perf_counter() - t0:.1f} s")


@data_app.command("validate")
def data_validate(
    source: str = SourceOpt, path: Path | None = PathOpt, mapping: Path | None = MappingOpt
) -> None:
    """Validate a source against the data contract without saving it."""
    from features.sources import load_source

    try:
        tables = load_source(source, **source_options(source, path, mapping))
    except (ContractError, FileNotFoundError, ValueError) as exc:
        _fail(exc)
    console.print(f"[green]valid[/]: {', '.join(tables.present())}")
    for note in tables.notes:
        console.print(f"  note: {note}")


@data_app.command("describe")
def data_describe(
    source: str = SourceOpt, path: Path | None = PathOpt, mapping: Path | None = MappingOpt
) -> None:
    """Describe a source: table sizes, date range, customers, returns, what was excluded."""
    try:
        tables = load_for_command(source, path, mapping)
    except (ContractError, FileNotFoundError, ValueError) as exc:
        _fail(exc)
    tx = tables.transactions
    summary = tables.summary()
    summary["net_sales"] = round(float(tx["sales_value"].sum()), 2)
    summary["lines_per_basket"] = round(len(tx) / max(1, summary["baskets"]), 2)
    console.print(_summary_table(f"source {source}", summary))
    for note in tables.notes:
        console.print(f"  note: {note}")


@features_app.command("build")
def features_build(
    as_of: str = typer.Option(
        ..., "--as-of", help="cutoff date: only events strictly before it are used"
    ),
    source: str = SourceOpt,
    path: Path | None = PathOpt,
    mapping: Path | None = MappingOpt,
    out: Path | None = typer.Option(
        None,
        "--out",
        help="output directory (default: DATA_DIR/features/<source>/<date>); replaced as a "
        "whole, so it must be new, empty or an earlier feature build",
    ),
) -> None:
    """Build every as-of feature table and write them as Parquet."""
    from rich.progress import Progress

    from features.build import MANIFEST, build_all, write_features

    cutoff = parse_date(as_of)
    if out is not None:
        check_writable(out, folder=True)
    if out is not None and out.exists():
        if not out.is_dir():
            raise typer.BadParameter(f"{out} is a file, not a folder", param_hint="--out")
        if any(out.iterdir()) and not (out / MANIFEST).exists():
            raise typer.BadParameter(
                f"{out} holds other files and no feature build ({MANIFEST}); the build replaces "
                "the whole folder, so choose a new or empty one",
                param_hint="--out",
            )
    t0 = time.perf_counter()
    try:
        tables = load_for_command(source, path, mapping)
    except (ContractError, FileNotFoundError, ValueError) as exc:
        _fail(exc)
    last = tables.transactions["timestamp"].max()
    first = tables.transactions["timestamp"].min()
    if cutoff <= first:
        _fail(
            ValueError(
                f"--as-of {cutoff.date()} is before the first transaction ({first}); nothing to learn from"
            )
        )
    steps = ["customers", "demographics", "customer_product", "products"]
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("features", total=len(steps))

        def tick(step: str) -> None:
            progress.update(
                task, description=f"features: {step}", advance=0 if step == steps[0] else 1
            )

        frames = build_all(tables, cutoff, progress=tick)
        progress.update(task, completed=len(steps))
    out = out or get_settings().data_dir / "features" / source / cutoff_label(cutoff)
    write_features(frames, out)
    record_feature_files(out)
    table = Table(title=f"features as of {cutoff_label(cutoff)} -> {out}")
    table.add_column("frame")
    table.add_column("rows", justify="right")
    table.add_column("columns", justify="right")
    for name, df in frames.items():
        table.add_row(name, f"{len(df):,}", str(df.shape[1]))
    console.print(table)
    if cutoff > last:
        console.print(
            f"[yellow]note:[/] the cutoff is {(cutoff - last).days:,} day(s) after the last "
            f"transaction ({last}); recency, overdue ratios and the spend windows count that "
            "gap as time without purchases"
        )
    console.print(f"done in {time.perf_counter() - t0:.1f} s")
    print(json.dumps({"out": str(out), **{k: len(v) for k, v in frames.items()}}))
