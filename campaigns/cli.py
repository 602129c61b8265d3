"""``tailor campaign`` commands: analyze, design, uplift.

Errors in the input (missing column, unknown arm, unreadable file) print one clear line and
exit with code 2, like typer's own usage errors. Text that comes from the user or the data
(file, column and arm names) is printed through :func:`rich.markup.escape`, so brackets in it
are shown as typed instead of being read as markup.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from campaigns import analysis, design, io
from campaigns.analysis import CampaignDataError
from campaigns.report import fmt as _f
from campaigns.report import fmt_ci
from features.cli import check_writable

logger = logging.getLogger(__name__)

app = typer.Typer(
    help="Plan and read A/B campaigns: sample size, lift with CIs, CUPED, SRM, ROI, uplift.",
    no_args_is_help=True,
)

# Columns of a per-customer table that are never uplift features.
_NOT_FEATURES = {
    "customer_id",
    "experiment",
    "request_id",
    "first_exposure",
    "date",
    "n_arms",
    "n_exposures",
}


def _console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    tty = hasattr(stream, "isatty") and stream.isatty()
    return Console(file=stream, width=None if tty else 160, highlight=False)


def _fail(message: str) -> typer.Exit:
    _console(stderr=True).print(f"[bold red]Error:[/] {escape(message)}")
    return typer.Exit(code=2)


def _csv_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [p.strip() for p in text.split(",") if p.strip()]


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o) if np.isfinite(o) else None
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, pd.Timestamp):
        return o.isoformat()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _clean(o):
    """Replace NaN/inf by None everywhere (strict JSON)."""
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_clean(v) for v in o]
    if isinstance(o, float | np.floating) and not np.isfinite(o):
        return None
    return o


def _write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(_clean(payload), indent=2, default=_json_default, allow_nan=False),
        encoding="utf-8",
    )


def _write_output(console: Console, what: str, path: Path, write) -> None:
    """Run ``write()`` and say where ``what`` went; exit 2 with the reason if the file cannot be
    written (a directory, no permission, ...)."""
    try:
        write()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise _fail(f"cannot write the {what} to {str(path)!r}: {reason}") from None
    console.print(f"{what[0].upper()}{what[1:]}: {escape(str(path))}")


def _with_ci(x, low, high, kind: str) -> str:
    """``estimate [low, high]``; ``n/a`` when the estimate is undefined (a zero control mean)."""
    est = _f(x, kind)
    return f"{est} {fmt_ci(low, high, kind)}" if est else "n/a"


def _print_result(console: Console, result: analysis.AnalysisResult) -> None:
    if result.srm.flagged:
        console.print(
            Panel(
                escape(result.srm.message()),
                title="SAMPLE RATIO MISMATCH",
                style="bold white on red",
            )
        )
    else:
        console.print(f"[green]{escape(result.srm.message())}[/]")
    conf = f"{1 - result.alpha:.0%}"
    cuped = result.covariate is not None
    table = Table(
        title=f"Lift vs control '{escape(result.control)}' ({conf} CI; * = significant after Holm)"
    )
    cols = [
        "metric",
        "arm",
        "n",
        "mean",
        f"abs lift [{conf} CI]",
        f"rel lift [{conf} CI]",
        "p",
        "p Holm",
    ]
    if cuped:
        cols[2:2] = ["adj"]
        cols.append("var red")
    for col in cols:
        table.add_column(col, justify="left" if col in ("metric", "arm", "adj") else "right")
    t = result.table
    for metric in result.metrics:
        for _, r in t[t["metric"] == metric].iterrows():
            k = "pct" if r["kind"] == "rate" else "num"
            ctl = bool(r["is_control"])
            sig = r["significant"] is True
            cells = [
                escape(metric),
                f"{escape(str(r['arm']))}{' (control)' if ctl else ''}",
                f"{int(r['n']):,}",
                _f(r["mean"], k),
                ""
                if ctl
                else _with_ci(
                    r["abs_lift"], r["abs_ci_low"], r["abs_ci_high"], "pp" if k == "pct" else k
                ),
                "" if ctl else _with_ci(r["rel_lift"], r["rel_ci_low"], r["rel_ci_high"], "pct"),
                _f(r["p_value"], "p"),
                _f(r["p_value_holm"], "p") + (" *" if sig else ""),
            ]
            if cuped:
                cells[2:2] = ["" if r["adjustment"] == "none" else r["adjustment"]]
                cells.append(_f(r["variance_reduction"], "pct"))
            table.add_row(*cells, style="bold green" if sig else None)
    console.print(table)
    if result.economics is not None:
        eco = Table(title="Economics per treatment arm")
        cols = [
            "arm",
            "n",
            "incremental_revenue",
            "discount_cost",
            "contact_cost",
            "incremental_margin",
            "roi",
        ]
        for c in cols:
            eco.add_column(c, justify="left" if c == "arm" else "right")
        eco.add_column("margin CI", justify="right")
        for _, r in result.economics.iterrows():
            eco.add_row(
                escape(str(r["arm"])),
                f"{int(r['n']):,}",
                f"{r['incremental_revenue']:,.2f}",
                f"{r['discount_cost']:,.2f}",
                f"{r['contact_cost']:,.2f}",
                ""
                if not np.isfinite(r["incremental_margin"])
                else f"{r['incremental_margin']:,.2f}",
                "" if not np.isfinite(r["roi"]) else f"{r['roi']:.2f}",
                ""
                if not np.isfinite(r["incremental_margin"])
                else f"[{r['incremental_margin_ci_low']:,.2f}, {r['incremental_margin_ci_high']:,.2f}]",
            )
        console.print(eco)
    for note in result.notes:
        if not (result.srm.flagged and note == result.srm.message()):
            console.print(f"[yellow]note:[/] {escape(note)}")
    if result.srm.flagged:
        # Repeated at the end so it cannot scroll away above a long table.
        console.print(
            f"[bold white on red]SAMPLE RATIO MISMATCH (p={result.srm.p_value:.2g}): do not trust these lifts.[/]"
        )


def _print_uplift(console: Console, rep) -> None:
    table = Table(
        title=escape(
            f"Uplift models: {rep.treatment} vs {rep.control}, outcome {rep.outcome} (held-out {rep.n_test:,})"
        )
    )
    cols = [
        "model",
        "qini",
        "qini CI",
        "auuc",
        "auuc_random",
        "uplift@10%",
        "uplift@30%",
        "@30% - random CI",
    ]
    for c in cols:
        table.add_column(c, justify="left" if c == "model" else "right")
    for _, r in rep.metrics.iterrows():
        table.add_row(
            escape(str(r["model"])),
            _f(r["qini"]),
            fmt_ci(r.get("qini_ci_low"), r.get("qini_ci_high")),
            _f(r["auuc"]),
            _f(r["auuc_random"]),
            _f(r.get("uplift_at_10")),
            _f(r.get("uplift_at_30")),
            fmt_ci(r.get("uplift_at_30_vs_random_ci_low"), r.get("uplift_at_30_vs_random_ci_high")),
        )
    console.print(table)
    console.print(
        f"random targeting: uplift at any depth = ATE = {rep.metrics['ate'].iloc[0]:.4g}; Qini coefficient 0"
    )


def _default_features(df: pd.DataFrame, exclude: set[str]) -> list[str]:
    return [c for c in df.columns if c not in exclude and c not in _NOT_FEATURES]


@app.command()
def analyze(
    input: Annotated[
        Path,
        typer.Argument(
            help="CSV/Parquet table (one row per customer) or the SQLite event log (.sqlite/.db)."
        ),
    ],
    control: Annotated[str, typer.Option(help="Name of the control arm.")],
    arm: Annotated[str, typer.Option(help="Column holding the arm.")] = "arm",
    metrics: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated metric columns; 'a/b' for a ratio metric. Event log default: click,conversion,spend."
        ),
    ] = None,
    covariate: Annotated[
        str | None, typer.Option(help="Pre-period covariate column for CUPED (e.g. past spend).")
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="Write a self-contained HTML report here.")
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the JSON summary here.")
    ] = None,
    experiment: Annotated[
        str | None, typer.Option(help="Experiment to analyse (event log with several).")
    ] = None,
    allocation: Annotated[
        str | None,
        typer.Option(
            help="Planned split for the SRM check: '0.5,0.5' (control first, then arms by name) or 'arm=share,...'. Default: equal."
        ),
    ] = None,
    margin: Annotated[
        float | None, typer.Option(help="Gross margin rate on revenue, e.g. 0.3.")
    ] = None,
    cost_per_contact: Annotated[
        float, typer.Option(help="Cost of contacting one treated customer.")
    ] = 0.0,
    discount_column: Annotated[
        str | None,
        typer.Option(help="Per-customer discount cost column (event log: discount_cost)."),
    ] = None,
    revenue_column: Annotated[
        str | None, typer.Option(help="Revenue column for the economics (default: spend).")
    ] = None,
    date_column: Annotated[
        str | None,
        typer.Option(
            help="Exposure date column for the over-time plot (default: date / first_exposure if present)."
        ),
    ] = None,
    alpha: Annotated[float, typer.Option(help="Significance level; CIs are 1 - alpha.")] = 0.05,
    window_days: Annotated[
        float | None,
        typer.Option(help="Event log: count outcomes within this many days of first exposure."),
    ] = None,
    uplift: Annotated[
        bool,
        typer.Option(help="Fit uplift models for the report's Qini curve (needs feature columns)."),
    ] = True,
    uplift_outcome: Annotated[
        str | None, typer.Option(help="Outcome for the uplift models (default: first metric).")
    ] = None,
    uplift_features: Annotated[
        str | None,
        typer.Option(help="Comma-separated uplift features (default: every other column)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for the uplift split and models.")] = 0,
) -> None:
    """Lift per arm with confidence intervals, CUPED, SRM check, Holm correction and ROI."""
    console = _console()
    # refused before any long work (reading a large log, fitting the uplift models)
    for what, path in (("JSON summary", json_path), ("HTML report", report)):
        if path is not None:
            try:
                check_writable(path)
            except typer.BadParameter as exc:
                raise _fail(f"cannot write the {what}: {exc.message}") from exc
    try:
        df = io.read_input(input, experiment=experiment, window_days=window_days)
        from_log = io.is_event_log(input)
        if report is not None and uplift:
            _check_uplift_columns(df, uplift_outcome, uplift_features)
        if metrics is None:
            if not from_log:
                raise CampaignDataError(
                    "--metrics is required for a table input, e.g. --metrics visit,conversion,spend"
                )
            metrics = ",".join(io.EVENT_LOG_METRICS)
        if from_log and discount_column is None:
            discount_column = "discount_cost"
        result = analysis.analyze(
            df,
            arm=arm,
            control=control,
            metrics=metrics,
            covariate=covariate,
            alpha=alpha,
            cost_per_contact=cost_per_contact,
            margin=margin,
            discount_col=discount_column,
            revenue_col=revenue_column,
            allocation=allocation,
            date_col=date_column,
        )
        result.notes.extend(df.attrs.get("notes", []))
        _print_result(console, result)
        uplift_reports = []
        if report is not None and uplift:
            uplift_reports = _fit_uplift(
                console, df, result, uplift_outcome, uplift_features, discount_column, seed
            )
    except (CampaignDataError, ValueError) as exc:
        raise _fail(str(exc)) from None
    payload = {"input": str(input), **result.to_dict()}
    if uplift_reports:
        payload["uplift"] = [r.to_dict() for r in uplift_reports]
    if json_path is not None:
        _write_output(console, "JSON summary", json_path, lambda: _write_json(json_path, payload))
    if report is not None:
        from campaigns.report import write_report

        _write_output(
            console,
            "HTML report",
            report,
            lambda: write_report(
                report,
                result,
                uplift_reports or None,
                title=f"Campaign analysis: {input.name}",
                source=str(input),
            ),
        )


def _check_uplift_columns(df, outcome, features_text) -> None:
    """The columns named by ``--uplift-outcome`` and ``--uplift-features`` must exist."""
    named = [c for c in [outcome, *(_csv_list(features_text) or [])] if c]
    missing = [c for c in named if c not in df.columns]
    if missing:
        raise CampaignDataError(
            f"uplift column(s) {missing} not in the input; columns are {list(map(str, df.columns))}"
        )


def _fit_uplift(console, df, result, outcome, features_text, discount_column, seed):
    """Uplift reports per treatment arm for the HTML report.

    The uplift part is optional: a model that cannot be fitted (e.g. no conversions, "the
    treated arm has a constant outcome") is skipped with a note printed and added to
    ``result.notes``, so the lift table still reaches the report and the JSON. Columns the
    user named (``--uplift-outcome``, ``--uplift-features``) must exist.
    """
    from campaigns.uplift import uplift_experiment

    _check_uplift_columns(df, outcome, features_text)
    plain = [m for m in result.metrics if "/" not in m]
    outcome = outcome or (plain[0] if plain else None)
    if outcome is None:
        console.print("[yellow]note:[/] no plain metric to model uplift on; Qini curve skipped")
        return []
    exclude = {result.arm_column, outcome, *(p for m in result.metrics for p in m.split("/"))}
    exclude |= {
        c
        for c in (
            discount_column,
            result.settings.get("revenue_column"),
            result.settings.get("date_column"),
        )
        if c
    }
    feats = _csv_list(features_text) or _default_features(df, exclude)
    if not feats:
        console.print(
            "[yellow]note:[/] no feature columns in the input: uplift models and Qini curve skipped"
        )
        return []
    reports = []
    for arm_name in result.arms[1:]:
        try:
            rep = uplift_experiment(
                df, result.arm_column, arm_name, result.control, outcome, features=feats, seed=seed
            )
        except ValueError as exc:
            note = (
                f"uplift models for arm {arm_name!r} (outcome {outcome!r}) could not be fitted:"
                f" {exc}; Qini curve and uplift metrics skipped"
            )
            console.print(f"[yellow]note:[/] {escape(note)}")
            result.notes.append(note)
            continue
        _print_uplift(console, rep)
        reports.append(rep)
    return reports


@app.command("design")
def design_cmd(
    baseline: Annotated[
        float | None, typer.Option(help="Control conversion rate or mean revenue per customer.")
    ] = None,
    mde: Annotated[
        float | None,
        typer.Option(help="Minimum detectable effect (relative by default: 0.1 = +10%)."),
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option(
            help="'conversion' or 'revenue' (default: conversion; with --from-data: what the data is)."
        ),
    ] = None,
    sd: Annotated[
        float | None, typer.Option(help="Per-customer standard deviation (revenue).")
    ] = None,
    relative: Annotated[
        bool,
        typer.Option("--relative/--absolute", help="Whether --mde is relative to the baseline."),
    ] = True,
    alpha: Annotated[float, typer.Option(help="Two-sided significance level.")] = 0.05,
    power: Annotated[float, typer.Option(help="Power.")] = 0.8,
    control_share: Annotated[float, typer.Option(help="Share of customers in control.")] = 0.5,
    treatments: Annotated[
        int, typer.Option(help="Number of treatment arms (share the rest equally).")
    ] = 1,
    n_total: Annotated[
        int | None,
        typer.Option(help="Customers available: print the MDE instead of a sample size."),
    ] = None,
    from_data: Annotated[
        Path | None,
        typer.Option(help="Estimate baseline (and sd) from this CSV/Parquet/event log."),
    ] = None,
    column: Annotated[
        str | None, typer.Option(help="Column of --from-data to estimate from.")
    ] = None,
    arm: Annotated[
        str | None, typer.Option(help="With --from-data: arm column, to use control rows only.")
    ] = None,
    control: Annotated[str | None, typer.Option(help="With --from-data: control arm name.")] = None,
    experiment: Annotated[
        str | None, typer.Option(help="With --from-data: experiment (event log with several).")
    ] = None,
) -> None:
    """Sample size (or minimum detectable effect) for a conversion or revenue-per-customer metric."""
    console = _console()
    try:
        if from_data is not None:
            if column is None:
                raise CampaignDataError("--from-data needs --column (the metric to estimate)")
            df = io.read_input(from_data, experiment=experiment)
            if column not in df.columns:
                raise CampaignDataError(
                    f"column {column!r} not in {from_data.name!r}; columns are {list(df.columns)}"
                )
            if arm is not None or control is not None:
                if arm is None or control is None:
                    raise CampaignDataError("--arm and --control go together")
                if arm not in df.columns:
                    raise CampaignDataError(f"arm column {arm!r} not in {from_data.name!r}")
                present = sorted(df[arm].astype(str).unique())
                if control not in present:
                    raise CampaignDataError(
                        f"control arm {control!r} not found in column {arm!r}; arms are {present}"
                    )
                df = df[df[arm].astype(str) == control]
            est_metric, est_baseline, est_sd = design.baseline_from_data(df[column])
            if metric is not None and metric != est_metric:
                _console(stderr=True).print(
                    f"[bold yellow]warning:[/] --metric {escape(metric)} given, but column"
                    f" {escape(repr(column))} {'is' if est_metric == 'conversion' else 'is not'}"
                    f" 0/1: designing for {est_metric}"
                )
            metric = est_metric
            baseline = est_baseline if baseline is None else baseline
            sd = est_sd if sd is None else sd
            console.print(
                escape(
                    f"estimated from {from_data.name} [{column}], {len(df):,} rows: {metric}, baseline {baseline:.6g}, sd {sd:.6g}"
                )
            )
        metric = metric or "conversion"
        if baseline is None:
            raise CampaignDataError("give --baseline (or --from-data with --column)")
        if n_total is not None:
            d = design.mde(
                n_total,
                baseline,
                metric=metric,
                sd=sd,
                alpha=alpha,
                power=power,
                control_share=control_share,
                n_treatments=treatments,
            )
        else:
            if mde is None:
                raise CampaignDataError(
                    "give --mde (the effect to detect) or --n-total (to get the MDE)"
                )
            d = design.sample_size(
                baseline,
                mde,
                metric=metric,
                sd=sd,
                relative=relative,
                alpha=alpha,
                power=power,
                control_share=control_share,
                n_treatments=treatments,
            )
    except (CampaignDataError, ValueError) as exc:
        raise _fail(str(exc)) from None
    t = Table(
        title="Experiment design" + (" (MDE for the given size)" if n_total is not None else "")
    )
    t.add_column("quantity", justify="left")
    t.add_column("value", justify="right")
    rate = d.metric == "conversion"
    rows = [
        ("metric", d.metric),
        ("baseline", f"{d.baseline:.4%}" if rate else f"{d.baseline:.4g}"),
        ("sd per customer", f"{d.sd:.4g}"),
        ("MDE (absolute)", f"{d.mde_abs:.4%} points" if rate else f"{d.mde_abs:.4g}"),
        ("MDE (relative)", f"{d.mde_rel:.2%}"),
        ("alpha (per test)", f"{d.alpha:g} ({d.alpha_per_test:.4g})"),
        ("power", f"{d.power:g}"),
        ("control share", f"{d.control_share:g}"),
        ("treatment arms", str(d.n_treatments)),
        ("n control", f"{d.n_control:,}"),
        ("n per treatment arm", f"{d.n_per_treatment:,}"),
        ("n total", f"{d.n_total:,}"),
    ]
    for k, v in rows:
        t.add_row(k, v)
    console.print(t)


@app.command("uplift")
def uplift_cmd(
    input: Annotated[
        Path,
        typer.Argument(
            help="CSV/Parquet table (one row per randomised customer) or the SQLite event log "
            "(.sqlite/.db)."
        ),
    ],
    treatment_column: Annotated[str, typer.Option(help="Column holding the arm.")],
    control: Annotated[str, typer.Option(help="Control arm name.")],
    outcome: Annotated[str, typer.Option(help="Outcome column (0/1 or an amount).")],
    treatment: Annotated[
        str | None,
        typer.Option(help="Treatment arm (default: every non-control arm, one at a time)."),
    ] = None,
    features: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated features (default: every other column; list them to keep other outcomes out)."
        ),
    ] = None,
    exclude: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated columns to leave out of the default features (e.g. other outcomes)."
        ),
    ] = None,
    test_size: Annotated[float, typer.Option(help="Held-out share.")] = 0.3,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the metrics as JSON here.")
    ] = None,
    experiment: Annotated[
        str | None, typer.Option(help="Experiment to use (event log with several).")
    ] = None,
) -> None:
    """Fit a T-learner and a class-transformation model; compare them with random targeting (Qini, AUUC, uplift@k)."""
    from campaigns.uplift import uplift_experiment

    console = _console()
    try:
        df = io.read_input(input, experiment=experiment)
        if treatment_column not in df.columns:
            raise CampaignDataError(
                f"missing treatment column {treatment_column!r}; the input has columns {list(df.columns)}"
            )
        present = sorted(df[treatment_column].astype(str).unique())
        if control not in present:
            raise CampaignDataError(
                f"control arm {control!r} not found in column {treatment_column!r}; arms are {present}"
            )
        arms = [treatment] if treatment else [a for a in present if a != control]
        feats = _csv_list(features) or _default_features(
            df, {treatment_column, outcome, *(_csv_list(exclude) or [])}
        )
        reports = [
            uplift_experiment(
                df,
                treatment_column,
                a,
                control,
                outcome,
                features=feats,
                test_size=test_size,
                seed=seed,
            )
            for a in arms
        ]
    except (CampaignDataError, ValueError) as exc:
        raise _fail(str(exc)) from None
    for rep in reports:
        _print_uplift(console, rep)
    if json_path is not None:
        payload = {"input": str(input), "reports": [r.to_dict() for r in reports]}
        _write_output(console, "JSON summary", json_path, lambda: _write_json(json_path, payload))
