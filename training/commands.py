"""`tailor train | evaluate | predict | models | run`: the data scientist's commands.

Each model family module (``training.next_purchase``, ``training.cross_sell``,
``training.churn``, ``training.value``) exposes the same functions -- ``default_config``,
``evaluate_family``, ``fit_family``, ``predict_family`` -- and the constants
``VALIDATION_METRIC``, ``VALIDATION_GREATER_IS_BETTER`` and ``MODEL_NAME``; this module
only orchestrates them. The one family-aware part is `predict`'s options: ``--k`` for the
two list tasks (next purchase's prepared list grows to ``--k``) and ``--level`` for cross-sell.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from types import ModuleType

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from features.cli import MAPPING_HELP, NOISY_LOGGERS, check_writable, parse_date
from features.contract import Tables
from training.protocol import CUTOFFS, REFERENCE_START, VALIDATION_CUTOFFS, WINDOWS_DAYS

logger = logging.getLogger(__name__)
console = Console(stderr=True)

FAMILY_MODULES = {
    "next_purchase": "training.next_purchase",
    "cross_sell": "training.cross_sell",
    "churn": "training.churn",
    "value": "training.value",
}
TASK_ALIASES = {"next-purchase": "next_purchase", "cross-sell": "cross_sell"}

models_app = typer.Typer(
    help="Inspect the registry, promote or roll back champions.", no_args_is_help=True
)


def family_module(family: str) -> ModuleType:
    family = TASK_ALIASES.get(family, family)
    if family not in FAMILY_MODULES:
        raise typer.BadParameter(
            f"unknown model family {family!r}; choose one of {', '.join(k.replace('_', '-') for k in FAMILY_MODULES)} or all"
        )
    return importlib.import_module(FAMILY_MODULES[family])


def parse_families(family: str) -> list[str]:
    """``all``, one family or a comma-separated list (``churn,value``), in that order."""
    if family == "all":
        return list(FAMILY_MODULES)
    out = []
    for part in family.split(","):
        fam = TASK_ALIASES.get(part.strip(), part.strip())
        family_module(fam)
        if fam not in out:
            out.append(fam)
    return out


class CannotTrain(Exception):
    """The data cannot support a requested fit or evaluation (too short, cutoff outside it)."""


def check_as_of(tables: Tables, cutoff: pd.Timestamp, what: str = "--as-of") -> None:
    """Refuse a cutoff after the day after the last transaction or too close to the start."""
    tx = tables.transactions["timestamp"]
    first, end = tx.min(), default_as_of(tables)
    if cutoff > end:
        raise typer.BadParameter(
            f"{cutoff.date()} is after the data ends (last transaction {tx.max().date()}); "
            f"use {end.date()} or earlier",
            param_hint=what,
        )
    if cutoff <= first + pd.Timedelta(days=28):
        raise typer.BadParameter(
            f"{cutoff.date()} leaves too little history (data starts {first.date()})",
            param_hint=what,
        )


def check_output(out: Path | None, what: str = "--out") -> None:
    """Fail before any work when an output file's type is not supported or it cannot be written."""
    if out is None:
        return
    if Path(out).suffix.lower() not in (".parquet", ".csv"):
        raise typer.BadParameter(
            f"unsupported output {Path(out).name!r}: use .parquet or .csv", param_hint=what
        )
    check_writable(out, what)


def default_as_of(tables: Tables) -> pd.Timestamp:
    """The day after the last transaction: production models use all the data."""
    return tables.transactions["timestamp"].max().normalize() + pd.Timedelta(days=1)


def _load(source: str, path: Path | None = None, mapping: Path | None = None) -> Tables:
    from features.cli import load_for_command
    from features.contract import ContractError

    with console.status(f"loading {source} ..."):
        try:
            return load_for_command(source, path, mapping)
        except (ContractError, FileNotFoundError, ValueError) as exc:
            raise typer.BadParameter(str(exc), param_hint="--source / --path") from exc


def primary_model(mod: ModuleType, evaluation: pd.DataFrame) -> str:
    name = getattr(mod, "MODEL_NAME", None)
    if name is not None:
        return name
    return str(evaluation["model"].iloc[0])


def validation_value(mod: ModuleType, evaluation: pd.DataFrame) -> float:
    model = primary_model(mod, evaluation)
    rows = evaluation[
        (evaluation["model"] == model) & (evaluation["metric"] == mod.VALIDATION_METRIC)
    ]
    if rows.empty:
        raise RuntimeError(f"evaluation has no {mod.VALIDATION_METRIC} for model {model}")
    return float(rows["value"].mean())


def validation_cutoff(
    family: str, as_of: pd.Timestamp, data_start: pd.Timestamp | None = None
) -> pd.Timestamp:
    """The family's validation cutoff on data from ``data_start`` up to ``as_of``.

    DESIGN.md's date (:data:`VALIDATION_CUTOFFS`) when the data holds it with as much history
    before it as Complete Journey has; otherwise the same distance from the data's own first
    day, so data of another year validates like Complete Journey and a refresh that appends
    weeks keeps the cutoff. Either is moved back, if need be, so that its label window ends
    by ``as_of``: a model trained as of a date never validates on later data.
    """
    window = pd.Timedelta(days=WINDOWS_DAYS[family])
    cutoff = VALIDATION_CUTOFFS[family]
    if data_start is not None:
        start = pd.Timestamp(data_start).normalize()
        anchored = start + (cutoff - REFERENCE_START)
        if anchored > cutoff or cutoff + window > as_of:
            cutoff = anchored
    if cutoff + window > as_of:
        cutoff = (as_of - window).normalize()
    return cutoff


def fit_stage(family: str, tables: Tables, as_of: pd.Timestamp) -> dict:
    """The compute of one family's training: validate, fit as of ``as_of``, predict.

    Only data before ``as_of`` is read, the validation included (:func:`validation_cutoff`).
    No MLflow here, so stages of several families can run in parallel processes and be
    logged one after the other by :func:`log_stage`. Raises :class:`CannotTrain` when the
    data is too short for the validation or the fit.
    """
    mod = family_module(family)
    config = mod.default_config()
    # a family may validate on a lighter configuration (cross-sell: products only)
    val_config = getattr(mod, "validation_config", lambda c: c)(config)
    val_cutoff = validation_cutoff(family, as_of, tables.transactions["timestamp"].min())
    t0 = time.perf_counter()
    try:
        evaluation = mod.evaluate_family(
            tables.before(as_of), cutoffs=[val_cutoff], config=val_config
        )
    except ValueError as exc:
        raise CannotTrain(
            f"{family}: cannot validate at {val_cutoff.date()} on data before {as_of.date()}: {exc}"
        ) from exc
    val = validation_value(mod, evaluation)
    t_val = time.perf_counter() - t0
    try:
        model = mod.fit_family(tables, as_of, config=config)
    except ValueError as exc:
        raise CannotTrain(f"{family}: cannot fit as of {as_of.date()}: {exc}") from exc
    predictions = mod.predict_family(model, tables, as_of)
    return {
        "family": family,
        "config": config,
        "evaluation": evaluation,
        "validation_cutoff": val_cutoff,
        "validation_value": val,
        "model": model,
        "predictions": predictions,
        "seconds_validate": t_val,
        "seconds_fit": time.perf_counter() - t0 - t_val,
    }


def log_stage(
    stage: dict, tables: Tables, as_of: pd.Timestamp, force: bool = False, register: bool = True
) -> dict:
    """Log a fitted stage to MLflow, register it and promote it if it beats the champion."""
    from training import tracking

    t0 = time.perf_counter()
    family, model = stage["family"], stage["model"]
    mod = family_module(family)
    figures = mod.figures(model) if hasattr(mod, "figures") else {}
    features = list(getattr(model, "feature_names_", []) or [])
    val_cutoff = stage["validation_cutoff"]
    split = tracking.validation_split(
        tables, val_cutoff, val_cutoff + pd.Timedelta(days=WINDOWS_DAYS[family])
    )
    run_id, version = tracking.log_family_run(
        family,
        model,
        stage["predictions"],
        cutoff=as_of,
        config=stage["config"],
        evaluation=stage["evaluation"],
        validation_metric=mod.VALIDATION_METRIC,
        validation_value=stage["validation_value"],
        validation_split=split,
        feature_names=features,
        fingerprint=tracking.data_fingerprint(tables),
        figures=figures,
        register=register,
    )
    promoted, why = (False, "not registered")
    if version is not None:
        promoted, why = tracking.promote_if_better(
            family, version, getattr(mod, "VALIDATION_GREATER_IS_BETTER", True), force=force
        )
    seconds_log = time.perf_counter() - t0
    return {
        "family": family,
        "version": version,
        "validation_metric": mod.VALIDATION_METRIC,
        "validation_cutoff": val_cutoff,
        "validation_value": stage["validation_value"],
        "promoted": promoted,
        "decision": why,
        "run_id": run_id,
        "seconds_validate": stage["seconds_validate"],
        "seconds_fit": stage["seconds_fit"],
        "seconds_log": seconds_log,
        "seconds": stage["seconds_validate"] + stage["seconds_fit"] + seconds_log,
        "rows_predicted": len(stage["predictions"]),
    }


def train_family(
    family: str, tables: Tables, as_of: pd.Timestamp, force: bool = False, register: bool = True
) -> dict:
    """Validate, fit, log, register and (if better) promote one family. Returns a summary dict."""
    return log_stage(
        fit_stage(family, tables, as_of), tables, as_of, force=force, register=register
    )


#: What a worker process of :func:`train_families` was given by :func:`_init_worker`.
_WORKER: dict = {}


def _log_setup() -> tuple[int, str | None, str | None]:
    """This process's root log level and format, for the workers to log the same way."""
    root = logging.getLogger()
    fmt = next((h.formatter for h in root.handlers if h.formatter is not None), None)
    return root.level, getattr(fmt, "_fmt", None), getattr(fmt, "datefmt", None)


def _init_worker(tables: Tables, stage_fn, log_setup) -> None:
    # the workers already run side by side: one OpenMP thread each (read by LightGBM when
    # the families import it, and by training.cs_data)
    os.environ["OMP_NUM_THREADS"] = "1"
    level, fmt, datefmt = log_setup
    logging.basicConfig(level=level, format=fmt or logging.BASIC_FORMAT, datefmt=datefmt)
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    _WORKER.update(tables=tables, stage_fn=stage_fn)


def _fit_stage_in_worker(family: str, as_of: pd.Timestamp) -> dict:
    return _WORKER["stage_fn"](family, _WORKER["tables"], as_of)


#: Slowest first, so parallel workers finish close together.
FIT_ORDER = ("next_purchase", "cross_sell", "churn", "value")


def train_families(
    families: list[str],
    tables: Tables,
    as_of: pd.Timestamp,
    force: bool = False,
    jobs: int = 1,
    on_done: Callable[[dict], None] | None = None,
    stage_fn: Callable[[str, Tables, pd.Timestamp], dict] = None,
) -> list[dict]:
    """Train several families: compute in ``jobs`` processes, log to MLflow in this one.

    All or nothing: every family is computed first, and only when all succeeded are they
    logged, registered and (if better) promoted, so a family the data cannot support
    (:class:`CannotTrain`) leaves the registry as it was; the work still queued is cancelled.
    MLflow's SQLite store sees one writer at a time; results come back in ``families`` order.
    ``stage_fn`` computes a stage (default :func:`fit_stage`; a module-level function, as
    worker processes import it).
    """
    stage_fn = stage_fn or fit_stage
    order = sorted(families, key=lambda f: FIT_ORDER.index(f) if f in FIT_ORDER else len(FIT_ORDER))
    stages: dict[str, dict] = {}

    if jobs <= 1 or len(order) == 1:
        for fam in order:
            stages[fam] = stage_fn(fam, tables, as_of)
    else:
        # spawned, not forked: a fork of a process that has run OpenMP (LightGBM, e.g. an
        # earlier fit in the same notebook or test session) hangs in the child's first
        # parallel region. Each worker gets the tables once, through its initializer.
        pool = ProcessPoolExecutor(
            max_workers=min(jobs, len(order)),
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(tables, stage_fn, _log_setup()),
        )
        try:
            futures = {pool.submit(_fit_stage_in_worker, fam, as_of): fam for fam in order}
            for fut in as_completed(futures):
                stages[futures[fut]] = fut.result()
        finally:
            # after a failure the running stages end and the queued ones never start
            pool.shutdown(wait=True, cancel_futures=True)
    results: dict[str, dict] = {}
    for fam in order:
        res = log_stage(stages.pop(fam), tables, as_of, force=force)
        results[fam] = res
        if on_done is not None:
            on_done(res)
    return [results[f] for f in families]


def _default_jobs() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def train(
    family: str = typer.Argument(
        "all", help="next-purchase | cross-sell | churn | value | all, or a comma-separated list"
    ),
    as_of: str | None = typer.Option(
        None, "--as-of", help="train on data before this date (default: all data)"
    ),
    source: str = typer.Option("completejourney", "--source", "-s"),
    path: Path | None = typer.Option(None, "--path", help="files source directory"),
    mapping: Path | None = typer.Option(None, "--mapping", help=MAPPING_HELP),
    force: bool = typer.Option(
        False, "--force", help="make the new version champion even if it is not better"
    ),
    jobs: int = typer.Option(
        _default_jobs(), "--jobs", "-j", min=1, help="families fitted in parallel processes"
    ),
) -> None:
    """Train model families, log them to MLflow, register them and promote the better ones."""
    families = parse_families(family)
    cutoff = parse_date(as_of)
    tables = _load(source, path, mapping)
    if cutoff is None:
        cutoff = default_as_of(tables)
    else:
        check_as_of(tables, cutoff)

    def report(res: dict) -> None:
        console.print(
            f"[bold]{res['family']}[/]: v{res['version']} {res['validation_metric']}={res['validation_value']:.4f} "
            f"-> {res['decision']} ({res['seconds']:.0f} s of work)"
        )

    t0 = time.perf_counter()
    with console.status(
        f"training {', '.join(families)} as of {cutoff.date()} ({jobs} process(es)) ..."
    ):
        try:
            results = train_families(
                families, tables, cutoff, force=force, jobs=jobs, on_done=report
            )
        except CannotTrain as exc:
            _fail(exc)
    console.print(
        f"trained {len(results)} famil{'y' if len(results) == 1 else 'ies'} in {time.perf_counter() - t0:.0f} s"
    )
    table = Table(title=f"training as of {cutoff.date()}")
    # the full decision is on each family's line above; the table says where each version is
    for col in ("family", "version", "metric", "validated", "value", "status", "s"):
        table.add_column(col, no_wrap=True)
    for r in results:
        table.add_row(
            r["family"],
            str(r["version"]),
            r["validation_metric"],
            str(r["validation_cutoff"].date()),
            f"{r['validation_value']:.4f}",
            "champion" if r["promoted"] else "challenger",
            f"{r['seconds']:.0f}",
        )
    console.print(table)


def evaluation_table(evaluation: pd.DataFrame) -> pd.DataFrame:
    """Wide table: one row per (family, model, metric), one column per cutoff, plus the mean."""
    ev = evaluation.copy()
    ev["cutoff"] = pd.to_datetime(ev["cutoff"]).dt.strftime("%Y-%m-%d")
    wide = ev.pivot_table(
        index=["family", "metric", "model"], columns="cutoff", values="value", aggfunc="mean"
    )
    wide["mean"] = wide.mean(axis=1)
    return wide.reset_index()


def print_evaluation(wide: pd.DataFrame, title: str) -> None:
    table = Table(title=title)
    for col in wide.columns:
        table.add_column(
            str(col), justify="right" if col not in ("family", "metric", "model") else "left"
        )
    for row in wide.itertuples(index=False):
        table.add_row(*[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row])
    Console(width=max(160, Console().width)).print(table)


def print_goals(evaluation: pd.DataFrame) -> None:
    """The issue's quality goals, checked on the mean over the evaluated cutoffs."""
    from training.goals import format_result, goal_table

    goals = goal_table(evaluation)
    if goals.empty:
        return
    table = Table(title="goals (mean over the cutoffs above)")
    for col in ("family", "goal", "model", "best baseline", "result", "met"):
        table.add_column(col, justify="right" if col in ("model", "result") else "left")
    for _, r in goals.iterrows():
        table.add_row(
            r["family"],
            r["goal"],
            f"{r['model']:.4f}",
            f"{r['best_baseline']} {r['baseline']:.4f}",
            format_result(r),
            "[green]met[/green]" if r["met"] else "[red]not met[/red]",
        )
    Console(width=max(160, Console().width)).print(table)


def evaluate(
    family: str = typer.Argument(
        "all", help="next-purchase | cross-sell | churn | value | all, or a comma-separated list"
    ),
    source: str = typer.Option("completejourney", "--source", "-s"),
    path: Path | None = typer.Option(None, "--path"),
    mapping: Path | None = typer.Option(None, "--mapping", help=MAPPING_HELP),
    out: Path | None = typer.Option(
        None, "--out", help="also write the long table (CSV or Parquet)"
    ),
    log: bool = typer.Option(True, "--log/--no-log", help="log the table to MLflow"),
    plots: Path | None = typer.Option(
        None, "--plots", help="also write goals_<family>.png (model vs baselines vs goal) here"
    ),
    cutoffs: str | None = typer.Option(
        None,
        "--cutoffs",
        help="comma-separated dates to evaluate at instead of DESIGN.md's (for other data)",
    ),
) -> None:
    """Each model vs each baseline, per metric and cutoff, plus the mean (DESIGN.md protocol)."""
    families = parse_families(family)
    custom = parse_cutoffs(cutoffs)
    check_output(out)
    if plots is not None and plots.exists() and not plots.is_dir():
        raise typer.BadParameter(f"{plots} is a file, not a folder", param_hint="--plots")
    tables = _load(source, path, mapping)
    for fam in families:
        check_protocol_covered(tables, fam, custom)
    frames = []
    for fam in families:
        mod = family_module(fam)
        cuts = custom or CUTOFFS[fam]
        t0 = time.perf_counter()
        with console.status(f"evaluating {fam} at {', '.join(str(c.date()) for c in cuts)} ..."):
            try:
                ev = mod.evaluate_family(tables, cutoffs=cuts, config=mod.default_config())
            except ValueError as exc:
                _fail(CannotTrain(f"{fam}: cannot evaluate on this data: {exc}"))
        console.print(f"{fam}: evaluated in {time.perf_counter() - t0:.0f} s")
        frames.append(ev)
        print_evaluation(evaluation_table(ev), f"{fam}: model vs baselines")
        print_goals(ev)
        if plots is not None:
            from training.goals import goals_figure

            fig = goals_figure(ev, fam)
            if fig is not None:
                plots.mkdir(parents=True, exist_ok=True)
                fig.savefig(plots / f"goals_{fam}.png", dpi=100)
                console.print(f"plot: {plots / f'goals_{fam}.png'}")
    evaluation = pd.concat(frames, ignore_index=True)
    if out is not None:
        write_frame(evaluation, out)
    if log:
        import mlflow

        from training import tracking

        for fam, ev in evaluation.groupby("family"):
            with mlflow.start_run(
                experiment_id=tracking.experiment_id(f"tailor-{fam}"), run_name=f"evaluate-{fam}"
            ):
                mlflow.set_tag("kind", "evaluation")
                mlflow.set_tag("data_fingerprint", tracking.data_fingerprint(tables))
                tracking.log_evaluation(ev)


def _outside(tables: Tables, family: str, cutoffs: list[pd.Timestamp]) -> list[pd.Timestamp]:
    """The cutoffs whose label window does not fit in the data (or with under 4 weeks before)."""
    first, end = tables.transactions["timestamp"].min(), default_as_of(tables)
    window = pd.Timedelta(days=WINDOWS_DAYS[family])
    return [c for c in cutoffs if c + window > end or c <= first + pd.Timedelta(days=28)]


def suggested_cutoffs(tables: Tables, family: str) -> list[pd.Timestamp] | None:
    """DESIGN.md's cutoffs of ``family`` moved onto this data, or None if they cannot fit.

    First at the same distance from the data's first day as on Complete Journey; if the data
    is shorter than that, moved back so that the last label window ends with the data.
    """
    protocol = CUTOFFS[family]
    first = tables.transactions["timestamp"].min().normalize()
    tries = [[c + (first - REFERENCE_START) for c in protocol]]
    last = (default_as_of(tables) - pd.Timedelta(days=WINDOWS_DAYS[family])).normalize()
    tries.append([c - (max(protocol) - last) for c in protocol])
    for cuts in tries:
        if not _outside(tables, family, cuts):
            return cuts
    return None


def check_protocol_covered(
    tables: Tables, family: str, cutoffs: list[pd.Timestamp] | None = None
) -> None:
    """The cutoffs of ``family`` (DESIGN.md's by default) and their label windows must lie
    inside the data."""
    custom = cutoffs is not None
    cutoffs = list(cutoffs) if custom else CUTOFFS[family]
    outside = _outside(tables, family, cutoffs)
    if not outside:
        return
    tx = tables.transactions["timestamp"]
    window = WINDOWS_DAYS[family]
    whose = "the cutoffs" if custom else "the protocol's cutoffs"
    msg = (
        f"{family}: {whose} {', '.join(str(c.date()) for c in outside)} with their "
        f"{window}-day windows are not inside this data ({tx.min().date()} to "
        f"{tx.max().date()}, and 4 weeks of history are needed before a cutoff)"
    )
    if not custom:
        msg += "; `tailor evaluate` follows DESIGN.md's Complete Journey cutoffs unless given --cutoffs"
    hint = suggested_cutoffs(tables, family)
    if hint is not None:
        msg += f", e.g. --cutoffs {','.join(str(c.date()) for c in hint)}"
    else:
        msg += f"; the data is too short for a {window}-day window after 4 weeks of history"
    raise typer.BadParameter(msg, param_hint="--cutoffs" if custom else "--source")


def parse_cutoffs(value: str | None) -> list[pd.Timestamp] | None:
    """``--cutoffs 2011-06-01,2011-07-01``: sorted distinct dates (None when not given)."""
    if value is None:
        return None
    parts = [v for v in (p.strip() for p in value.split(",")) if v]
    if not parts:
        raise typer.BadParameter("give at least one date", param_hint="--cutoffs")
    days = {parse_date(v, "--cutoffs") for v in parts}
    if any(d != d.normalize() for d in days):
        raise typer.BadParameter("cutoffs are days (YYYY-MM-DD), not times", param_hint="--cutoffs")
    return sorted(days)


def _fail(exc: Exception) -> None:
    console.print("[bold red]error:[/] ", end="")
    console.print(str(exc), markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def write_frame(df: pd.DataFrame, out: Path) -> None:
    """Write ``df`` to ``out`` whole or not at all; a write error (e.g. a full disk) is one
    line and exit code 2, and the previous file stays whole."""
    check_output(out)
    out = Path(out)
    # written next to it, then renamed: an interrupted run leaves the previous file whole
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix.lower() == ".parquet":
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False)
        os.replace(tmp, out)
    except OSError as exc:
        _fail(RuntimeError(f"cannot write {out}: {exc.strerror or exc}"))
    finally:
        tmp.unlink(missing_ok=True)


def with_source_codes(pred: pd.DataFrame, tables: Tables) -> pd.DataFrame:
    """``pred`` plus the shop's own ``customer_code`` / ``product_code`` where the source
    mapped text codes to ids (the files source keeps them), so the user can join the
    predictions back to their own systems."""
    for key, table in (("customer_id", "customers"), ("product_id", "products")):
        code = key.replace("_id", "_code")
        if key not in pred.columns or code in pred.columns:
            continue
        pairs = [
            df[[key, code]]
            for df in (tables.transactions, getattr(tables, table))
            if df is not None and code in df.columns
        ]
        if pairs:
            lookup = pd.concat(pairs).dropna().drop_duplicates(key).set_index(key)[code]
            pred = pred.assign(**{code: pred[key].map(lookup)})
    return pred


PREDICT_COLUMNS = {
    "next_purchase": ["customer_id", "product_id", "rank", "score"],
    "cross_sell": ["customer_id", "product_id", "rank", "score"],
    "churn": ["customer_id", "churn_probability", "partial_churn_probability"],
    "value": ["customer_id", "expected_spend_90d", "clv_1y", "p_alive", "tier"],
}


def predict(
    task: str = typer.Argument(..., help="next-purchase | cross-sell | churn | value"),
    as_of: str = typer.Option(
        ..., "--as-of", help="train strictly on data before this date, predict as of it"
    ),
    out: Path = typer.Option(..., "--out", help="output file: .parquet or .csv"),
    k: int = typer.Option(
        10, "--k", min=1, max=200, help="list length for next-purchase and cross-sell"
    ),
    source: str = typer.Option("completejourney", "--source", "-s"),
    path: Path | None = typer.Option(None, "--path"),
    mapping: Path | None = typer.Option(None, "--mapping", help=MAPPING_HELP),
    level: str = typer.Option(
        "product",
        "--level",
        help="cross-sell only: product, or category (categories never bought from)",
    ),
) -> None:
    """Train on data before DATE and write predictions as of DATE."""
    fam = TASK_ALIASES.get(task, task)
    if fam not in PREDICT_COLUMNS:
        raise typer.BadParameter(
            f"unknown task {task!r}; choose next-purchase, cross-sell, churn or value"
        )
    if level not in ("product", "category"):
        raise typer.BadParameter(
            f"unknown level {level!r}: use product or category", param_hint="--level"
        )
    if level == "category" and fam != "cross_sell":
        raise typer.BadParameter("--level category is for cross-sell only", param_hint="--level")
    check_output(out)
    cutoff = parse_date(as_of)
    mod = family_module(fam)
    tables = _load(source, path, mapping)
    check_as_of(tables, cutoff)
    config = mod.default_config()
    if fam == "next_purchase" and k > config.list_size:  # the prepared lists are this long
        config = dataclasses.replace(config, list_size=k)
    t0 = time.perf_counter()
    columns = PREDICT_COLUMNS[fam]
    if level == "category":
        from training.cs_categories import category_lists, category_tables

        try:
            item_tables = category_tables(tables)
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--level") from None
        columns = ["customer_id", "category", "rank", "score"]
    else:
        item_tables = tables
    with console.status(f"fitting {fam} on data before {cutoff.date()} ..."):
        try:
            model = mod.fit_family(item_tables, cutoff, config=config)
        except ValueError as exc:
            _fail(CannotTrain(f"{fam}: cannot fit as of {cutoff.date()}: {exc}"))
        kwargs = {"k": k} if fam in ("next_purchase", "cross_sell") else {}
        pred = mod.predict_family(model, item_tables, cutoff, **kwargs)
    if level == "category":
        pred = category_lists(pred, item_tables)
    pred = with_source_codes(pred, tables)
    columns = columns + [c for c in ("customer_code", "product_code") if c in pred.columns]
    cols = columns + [c for c in pred.columns if c not in columns]
    pred = pred[cols]
    if fam in ("next_purchase", "cross_sell"):
        pred = pred.sort_values(["customer_id", "rank"]).reset_index(drop=True)
    else:
        pred = pred.sort_values("customer_id").reset_index(drop=True)
    for c in pred.columns:  # lists (reasons) are written as text so CSV and Parquet agree
        if pred[c].dtype == object and len(pred) and isinstance(pred[c].iloc[0], list | tuple):
            pred[c] = pred[c].map(lambda v: "; ".join(map(str, v)))
    write_frame(pred, out)
    console.print(
        f"{fam}: {len(pred):,} rows for {pred['customer_id'].nunique():,} customers -> {out} ({time.perf_counter() - t0:.0f} s)"
    )


@models_app.command("list")
def models_list() -> None:
    """Registered versions of every family, with their validation value and the champion."""
    from training import tracking

    for fam in FAMILY_MODULES:
        df = tracking.list_versions(fam)
        console.print(f"[bold]{tracking.model_name(fam)}[/]")
        console.print(df.to_string(index=False) if len(df) else "  (no versions)")


@models_app.command("promote")
def models_promote(
    family: str = typer.Argument(...),
    version: str = typer.Argument(...),
    force: bool = typer.Option(False, "--force"),
) -> None:
    """Move `champion` to VERSION if it beats the current champion (or --force)."""
    from mlflow.exceptions import MlflowException

    from training import tracking

    fam = TASK_ALIASES.get(family, family)
    mod = family_module(fam)
    number = version[1:] if version[:1] in ("v", "V") else version
    if not number.isdigit():
        raise typer.BadParameter(f"not a version number: {version!r}", param_hint="VERSION")
    try:
        ok, why = tracking.promote_if_better(
            fam, number, getattr(mod, "VALIDATION_GREATER_IS_BETTER", True), force=force
        )
    except MlflowException as exc:
        _fail(RuntimeError(f"{tracking.model_name(fam)} v{number}: {exc.message}"))
    console.print(why)
    if not ok:
        raise typer.Exit(code=1)


@models_app.command("rollback")
def models_rollback(family: str = typer.Argument(...)) -> None:
    """Move `champion` back to the previous champion."""
    from mlflow.exceptions import MlflowException

    from training import tracking

    fam = TASK_ALIASES.get(family, family)
    family_module(fam)
    try:
        v = tracking.rollback(fam)
    except tracking.NoChampionError as exc:
        _fail(exc)
    except MlflowException as exc:
        _fail(RuntimeError(f"{tracking.model_name(fam)}: {exc.message}"))
    console.print(f"{tracking.model_name(fam)}: champion is v{v} again")


def run(
    port: int = typer.Option(3000, "--port"),
    source: str = typer.Option("completejourney", "--source", "-s"),
    path: Path | None = typer.Option(None, "--path", help="files source directory"),
    mapping: Path | None = typer.Option(None, "--mapping", help=MAPPING_HELP),
    serve: bool = typer.Option(
        True, "--serve/--no-serve", help="start the offer service at the end"
    ),
) -> None:
    """The main job: load the source, build features, train + register every family, serve offers.

    The source is loaded fresh and saved (as `tailor data load` does) unless a saved copy
    exists and no --path is given; then the saved copy is used.
    """
    from features.build import build_all, write_features
    from features.cli import source_dir
    from features.config import get_settings
    from features.contract import save_tables

    t0 = time.perf_counter()
    saved = source_dir(source) / "transactions.parquet"
    fresh = path is not None or not saved.exists()
    tables = _load(source, path, mapping)
    if fresh:
        save_tables(tables, source_dir(source), {"source": source})
    console.print(
        f"[green]1/4[/] loaded {source}: {len(tables.transactions):,} line items, "
        f"{tables.transactions['customer_id'].nunique():,} customers"
    )
    as_of = default_as_of(tables)
    with console.status(f"building features as of {as_of.date()} ..."):
        frames = build_all(tables, as_of)
        out = get_settings().data_dir / "features" / source / as_of.strftime("%Y-%m-%d")
        write_features(frames, out)
    console.print(f"[green]2/4[/] features as of {as_of.date()} -> {out}")

    def report(res: dict) -> None:
        console.print(
            f"[green]3/4[/] {res['family']}: v{res['version']} "
            f"{res['validation_metric']}={res['validation_value']:.4f}, {res['decision']}"
        )

    with console.status(f"training {', '.join(FAMILY_MODULES)} ..."):
        try:
            train_families(
                list(FAMILY_MODULES), tables, as_of, jobs=_default_jobs(), on_done=report
            )
        except CannotTrain as exc:
            _fail(exc)
    console.print(f"main job done in {time.perf_counter() - t0:.0f} s")
    if serve:
        from serving import cli as serving_cli

        console.print(
            f"[green]4/4[/] starting the offer service on http://127.0.0.1:{port} (Ctrl-C stops it)"
        )
        serving_cli.serve(port=port, rebuild=True, source=source)
