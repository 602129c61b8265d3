"""`tailor serve`, `tailor lists`, `tailor forget`: the offer service and its batch jobs.

Plain functions with typer annotations (callable from Python with plain values) and a
typer ``app`` registering them; the root CLI (training/cli.py) registers them at the top.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console

from features.config import get_settings
from serving.config import load_config
from serving.store import StoreError, read_meta, store_path

logger = logging.getLogger(__name__)
console = Console(stderr=True)

SERVICE = "serving.service:Tailor"
EXPORTS_FILE = "exports.json"
REPO_ROOT = Path(__file__).resolve().parent.parent

app = typer.Typer(help="Offer service, batch shopping lists, erasure.", no_args_is_help=True)


def _fail(message: str, code: int = 2) -> None:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code=code)


# --------------------------------------------------------------------------- the store


def prepare_store(
    source: str = "completejourney",
    as_of: str | None = None,
    rebuild: bool = False,
    refresh: bool = True,
    predict=None,
    tables=None,
) -> Path:
    """Make sure the lookup store exists and serves the current champions; returns its path.

    * ``rebuild``: always rebuild.
    * ``refresh``: rebuild when the registry's champion versions (or the source) differ from
      the store's; with ``refresh=False`` an existing store is used as it is.
    Families without a champion are left out and recorded as missing (the service then
    starts and says so). ``tables`` (default: the source's saved or fresh tables) and
    ``predict`` (default: each family's ``predict_family``) are for tests and notebooks.
    """
    from serving.precompute import load_champions, precompute
    from serving.privacy import forgotten_ids
    from serving.store import build_store

    settings = get_settings()
    path = store_path(settings.serving_dir)
    if path.exists() and not rebuild:
        try:
            meta = read_meta(path)
        except StoreError as exc:
            logger.warning("rebuilding the lookup store: %s", exc)
        else:
            if not refresh:
                logger.info(
                    "using the lookup store %s as it is (as of %s)", path, meta.get("as_of")
                )
                return path
            from training import tracking

            current = {f: v for f, v in tracking.champion_versions().items() if v is not None}
            if (
                current == meta.get("model_versions")
                and meta.get("source") == source
                and (as_of is None or as_of == meta.get("as_of"))
            ):
                logger.info("lookup store %s is up to date with the champions %s", path, current)
                return path
            logger.info(
                "champions changed (%s -> %s): rebuilding the lookup store",
                meta.get("model_versions"),
                current,
            )
    t0 = time.perf_counter()
    models, versions, missing = load_champions()
    for why in missing.values():
        console.print(f"[yellow]warning:[/] {why}")
    if tables is None:
        from features.cli import load_for_command

        tables = load_for_command(source)
    cutoff = (
        pd.Timestamp(as_of)
        if as_of
        else tables.transactions["timestamp"].max().normalize() + pd.Timedelta(days=1)
    )
    cfg = load_config()
    drop = forgotten_ids(tables.transactions["customer_id"].unique(), settings.serving_dir)
    frames = precompute(
        tables, cutoff, models, cfg.precompute, predict=predict, exclude_customers=drop
    )
    meta = {
        "as_of": str(cutoff.date()),
        "source": source,
        "model_versions": versions,
        "missing": missing,
    }
    build_store(frames, path, meta)
    console.print(
        f"lookup store: {len(frames['scores']):,} customers, {len(frames['candidates']):,} candidates, "
        f"models {versions or 'none'} as of {cutoff.date()} -> {path} ({time.perf_counter() - t0:.0f} s)"
    )
    return path


# --------------------------------------------------------------------------- serve


def serve(
    port: Annotated[int, typer.Option("--port", "-p", help="port to listen on")] = 3000,
    host: Annotated[
        str, typer.Option("--host", help="address to bind (127.0.0.1: this machine only)")
    ] = "127.0.0.1",
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="rebuild the lookup store from the champions first")
    ] = False,
    refresh: Annotated[
        bool,
        typer.Option(
            "--refresh/--no-refresh", help="rebuild the store if the registry's champions changed"
        ),
    ] = True,
    source: Annotated[
        str, typer.Option("--source", "-s", help="data source the store is built from")
    ] = "completejourney",
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="predict as of this date (default: after the last sale)"),
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="BentoML worker processes")
    ] = None,
) -> None:
    """Start the offer service (BentoML) on HOST:PORT, after loading the champion models into the lookup store."""
    settings = get_settings()
    try:
        prepare_store(source=source, as_of=as_of, rebuild=rebuild, refresh=refresh)
    except Exception as exc:  # the service still starts and /readyz says why
        logger.exception("could not build the lookup store")
        console.print(
            f"[yellow]warning:[/] no lookup store ({type(exc).__name__}: {exc}); /readyz will say so"
        )
    env = dict(os.environ)
    env.update(
        BENTOML_DO_NOT_TRACK="true",
        TAILOR_HOME=str(settings.home),
        TAILOR_SERVING_DIR=str(settings.serving_dir),
        TAILOR_DATA_DIR=str(settings.data_dir),
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p),
    )
    if workers is not None:
        over = json.loads(env.get("TAILOR_BENTO_CONFIG") or "{}")
        over["workers"] = workers
        env["TAILOR_BENTO_CONFIG"] = json.dumps(over)
    cmd = [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        SERVICE,
        "--host",
        host,
        "--port",
        str(port),
        "--working-dir",
        str(REPO_ROOT),
    ]
    console.print(f"offer service: http://{host}:{port} (OpenAPI page at /, readiness at /readyz)")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(
        sys.executable, cmd, env
    )  # the server replaces this process: signals reach it directly


# --------------------------------------------------------------------------- lists


def _record_exports(serving_dir: Path, paths: list[Path]) -> None:
    manifest = serving_dir / EXPORTS_FILE
    known = json.loads(manifest.read_text()).get("files", []) if manifest.exists() else []
    known = sorted(set(known) | {str(p.resolve()) for p in paths})
    serving_dir.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({"files": known}, indent=1))


def lists(
    date: Annotated[
        str, typer.Option("--date", help="the day the lists are for (deals valid on it)")
    ],
    out: Annotated[
        Path | None, typer.Option("--out", help="output folder (default: <serving_dir>/lists)")
    ] = None,
    n: Annotated[
        int | None,
        typer.Option("--n", min=1, max=50, help="offers per customer (default from rules.toml)"),
    ] = None,
    experiment: Annotated[
        str | None, typer.Option("--experiment", help="experiment the lists belong to")
    ] = None,
    log_exposures: Annotated[
        bool, typer.Option("--log/--no-log", help="log the lists as exposures")
    ] = True,
    source: Annotated[str, typer.Option("--source", "-s")] = "completejourney",
) -> tuple[Path, Path]:
    """Write every active customer's personalised shopping list with deals (Parquet + CSV, pseudonymised ids)."""
    from serving.engine import OfferEngine
    from serving.eventlog import EventLog
    from serving.experiments import UnknownExperimentError
    from serving.lists import export_lists, log_lists, shopping_lists
    from serving.privacy import pseudonym_key
    from serving.store import load_store

    try:
        day = dt.date.fromisoformat(date)
    except ValueError:
        _fail(f"--date {date!r} is not a date (YYYY-MM-DD)")
    t0 = time.perf_counter()
    settings = get_settings()
    path = store_path(settings.serving_dir)
    if not path.exists():
        prepare_store(source=source)
    cfg = load_config()
    engine = OfferEngine(load_store(path), cfg)
    missing = engine.missing("offers")
    if missing:
        _fail("cannot build personalised lists: " + "; ".join(missing))
    as_of = engine.store.as_of
    if day < as_of:
        console.print(
            f"[yellow]note:[/] the store's predictions are as of {as_of}, after the list date {day}"
        )
    elif (day - as_of).days > 28:
        console.print(
            f"[yellow]note:[/] the store's predictions are {(day - as_of).days} days old (as of {as_of}); consider `tailor serve --rebuild`"
        )
    try:
        df = shopping_lists(engine, day, n=n, experiment=experiment)
    except UnknownExperimentError as exc:
        _fail(str(exc))
    out_dir = Path(out) if out else settings.serving_dir / "lists"
    pq, csv = export_lists(df, out_dir, day, pseudonym_key())
    _record_exports(settings.serving_dir, [pq, csv])
    logged = 0
    if log_exposures:
        log = EventLog(
            settings.serving_dir / "events.sqlite",
            cfg.eventlog.synchronous,
            cfg.eventlog.busy_timeout_ms,
        )
        try:
            logged = log_lists(log, df)
        finally:
            log.close()
    console.print(
        f"{df['customer_id'].nunique():,} customers, {len(df):,} offers ({int(df['coupon_id'].notna().sum()):,} with deals) "
        f"for {day} -> {pq} and {csv}; {logged:,} exposures logged ({time.perf_counter() - t0:.1f} s)"
    )
    return pq, csv


# --------------------------------------------------------------------------- forget


def _frame_without(df: pd.DataFrame, customer_id: int, pseudo: str) -> tuple[pd.DataFrame, int]:
    mask = pd.Series(False, index=df.index)
    if "customer_id" in df.columns:
        mask |= pd.to_numeric(df["customer_id"], errors="coerce") == customer_id
    if "customer" in df.columns:
        mask |= df["customer"].astype(str) == pseudo
    if df.index.name == "customer_id":
        mask |= pd.Series(df.index == customer_id, index=df.index)
    return df[~mask], int(mask.sum())


def _scrub_file(path: Path, customer_id: int, pseudo: str) -> int:
    """Remove a customer's rows from one Parquet/CSV file in place (atomically); returns rows removed."""
    if path.suffix == ".parquet":
        df = pd.read_parquet(path)
    elif path.suffix == ".csv":
        df = pd.read_csv(path)
    else:
        return 0
    kept, removed = _frame_without(df, customer_id, pseudo)
    if removed:
        tmp = path.with_name(f".{path.name}.tmp")
        if path.suffix == ".parquet":
            kept.to_parquet(tmp, index=kept.index.name == "customer_id")
        else:
            kept.to_csv(tmp, index=False)
        os.replace(tmp, path)
    return removed


def derived_files(settings=None) -> list[Path]:
    """Files holding customer rows that ``forget`` scrubs: exported lists, feature files
    (wherever `tailor features build --out` wrote them) and the saved canonical copies of
    the sources (`tailor data load`, `tailor run`)."""
    settings = settings or get_settings()
    files: set[Path] = set()
    manifest = settings.serving_dir / EXPORTS_FILE
    if manifest.exists():
        files |= {Path(p) for p in json.loads(manifest.read_text()).get("files", [])}
    folders = (
        settings.serving_dir / "lists",
        settings.data_dir / "features",
        settings.data_dir / "sources",
    )
    for folder in folders:
        if folder.exists():
            files |= {p for p in folder.rglob("*") if p.suffix in (".parquet", ".csv")}
    return sorted(p for p in files if p.exists())


def forget(
    customer_id: Annotated[int, typer.Argument(min=0, help="the customer (household) id to erase")],
) -> dict[str, int]:
    """Erase a customer from the lookup store, the event log and derived files, and say what was removed."""
    from serving.eventlog import EventLog
    from serving.privacy import pseudonym_key, remember_forgotten
    from serving.store import forget_in_store

    settings = get_settings()
    key = pseudonym_key()
    pseudo = remember_forgotten(settings.serving_dir, customer_id, key)
    removed: dict[str, int] = {}
    for table, n in forget_in_store(store_path(settings.serving_dir), customer_id).items():
        removed[f"lookup store: {table}"] = n
    log_path = settings.serving_dir / "events.sqlite"
    if log_path.exists():
        cfg = load_config()
        log = EventLog(log_path, cfg.eventlog.synchronous, cfg.eventlog.busy_timeout_ms)
        try:
            for table, n in log.forget(customer_id).items():
                removed[f"event log: {table}"] = n
        finally:
            log.close()
    for f in derived_files(settings):
        n = _scrub_file(f, customer_id, pseudo)
        if n:
            removed[f"file: {f}"] = n
    typer.echo(f"erased customer {customer_id} (pseudonym {pseudo}):")
    for where, n in removed.items():
        typer.echo(f"  {n:>9,} rows  {where}")
    typer.echo(
        f"{sum(removed.values()):,} rows removed in all; the customer is on the suppression list (by pseudonym) so "
        "rebuilds of the store leave them out. A running offer service keeps its in-memory copy until restarted."
    )
    return removed


app.command("serve")(serve)
app.command("lists")(lists)
app.command("forget")(forget)
