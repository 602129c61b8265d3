"""Self-contained HTML report of a campaign analysis (plots embedded as base64 PNG).

Plots are drawn on ``matplotlib.figure.Figure`` objects with the Agg canvas, never through
``pyplot``: no global backend switch, no figure registry to leak, safe in servers and tests.
"""

from __future__ import annotations

import base64
import html
import io
import logging
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from campaigns.analysis import AnalysisResult
from campaigns.uplift import UpliftReport

logger = logging.getLogger(__name__)

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.6em} h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.88em;margin:.6em 0}
th,td{border:1px solid #ddd;padding:.3em .6em;text-align:right} th{background:#f4f4f4}
td.l,th.l{text-align:left} .sig{font-weight:bold;color:#0a6b2d} .neg{color:#a11}
.srm-bad{background:#c00;color:#fff;padding:1em;font-size:1.15em;font-weight:bold;border-radius:4px}
.srm-ok{background:#e9f6ec;padding:.6em;border-radius:4px} .note{color:#555;font-size:.9em}
img{max-width:100%}
"""


def _png(fig) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(b64: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def fmt(x, kind: str = "num") -> str:
    """A number for a table cell ("" when missing); kinds: num, pct, pp, p, money.

    ``pp`` is a difference of two rates in percentage points (0.0766 -> ``7.66 pp``), so an
    absolute lift of a rate is not read as a relative one (``%``).
    """
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return ""
    if kind == "pct":
        return f"{x:.2%}"
    if kind == "pp":
        return f"{x * 100:.2f} pp"
    if kind == "p":
        return f"{x:.2g}" if x < 0.001 else f"{x:.4f}"
    if kind == "money":
        return f"{x:,.2f}"
    if isinstance(x, int | np.integer) and not isinstance(x, bool | np.bool_):
        return f"{x:,}"  # counts: 21,307, not 2.131e+04
    return f"{x:.4g}"


def fmt_ci(low, high, kind: str = "num") -> str:
    """``[low, high]``, or ``n/a`` when the interval could not be computed (e.g. a zero control mean)."""
    lo, hi = fmt(low, kind), fmt(high, kind)
    return f"[{lo}, {hi}]" if lo and hi else "n/a"


def _valuefmt(kind: str) -> str:
    return "pct" if kind == "rate" else "num"


def lift_figure(result: AnalysisResult, adjustment: str = "none"):
    """Forest plot: relative lift with its confidence interval, per treatment arm and metric."""
    from matplotlib.figure import Figure

    t = result.table
    t = t[(~t["is_control"]) & (t["adjustment"] == adjustment)]
    metrics = list(dict.fromkeys(t["metric"]))
    fig = Figure(figsize=(8, 0.9 + 0.45 * len(t)))
    ax = fig.add_subplot(111)
    labels, y = [], 0
    for metric in metrics:
        for _, r in t[t["metric"] == metric].iterrows():
            lo, hi, mid = r["rel_ci_low"], r["rel_ci_high"], r["rel_lift"]
            color = "#0a6b2d" if r["significant"] else "#777"
            if np.isfinite(mid):
                ax.errorbar(
                    mid * 100,
                    y,
                    xerr=[[(mid - lo) * 100], [(hi - mid) * 100]],
                    fmt="o",
                    color=color,
                    capsize=3,
                )
            labels.append(f"{metric}: {r['arm']}")
            y += 1
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlabel(f"relative lift vs {result.control} (%), {1 - result.alpha:.0%} CI")
    ax.set_title("Lift per arm" + (" (CUPED)" if adjustment == "cuped" else ""))
    ax.grid(axis="x", alpha=0.3)
    return fig


def over_time_figure(result: AnalysisResult):
    """Cumulative mean per arm by exposure date, one panel per metric."""
    from matplotlib.figure import Figure

    ot = result.over_time
    metrics = list(dict.fromkeys(ot["metric"]))
    fig = Figure(figsize=(8, 2.6 * len(metrics)))
    for i, metric in enumerate(metrics):
        ax = fig.add_subplot(len(metrics), 1, i + 1)
        for arm in result.arms:
            d = ot[(ot["metric"] == metric) & (ot["arm"] == arm)]
            ax.plot(
                d["date"], d["mean"], marker=".", label=arm, lw=2 if arm == result.control else 1.3
            )
        ax.set_ylabel(metric)
        ax.set_title(f"cumulative {metric} per customer, by first-exposure date", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def qini_figure(report: UpliftReport):
    """Qini curves of the uplift models against random targeting."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 4.5))
    ax = fig.add_subplot(111)
    first = None
    for name, c in report.curves.items():
        ax.plot(c["fraction"] * 100, c["qini"], label=name)
        first = c
    if first is not None:
        ax.plot(first["fraction"] * 100, first["random"], "k--", label="random targeting")
    ax.set_xlabel("customers targeted (%), by decreasing predicted uplift")
    ax.set_ylabel(f"incremental {report.outcome} per treated customer")
    ax.set_title(f"Qini curve: {report.treatment} vs {report.control} (held-out {report.n_test:,})")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def _results_table(result: AnalysisResult) -> str:
    t = result.table
    head = (
        "<tr><th class=l>metric</th><th class=l>arm</th><th class=l>adj.</th><th>n</th><th>mean</th>"
        f"<th>{1 - result.alpha:.0%} CI of mean</th><th>abs. lift</th><th>CI</th><th>rel. lift</th><th>CI</th>"
        "<th>p</th><th>p (Holm)</th><th>var. red.</th></tr>"
    )
    rows = []
    for metric in result.metrics:
        for _, r in t[t["metric"] == metric].iterrows():
            f = _valuefmt(r["kind"])
            d = "pp" if r["kind"] == "rate" else f  # a difference of rates: percentage points
            cls = ' class="sig"' if r["significant"] is True else ""
            rows.append(
                f"<tr{cls}><td class=l>{html.escape(metric)}</td><td class=l>{html.escape(str(r['arm']))}"
                f"{' (control)' if r['is_control'] else ''}</td><td class=l>{r['adjustment']}</td>"
                f"<td>{int(r['n']):,}</td><td>{fmt(r['mean'], f)}</td>"
                f"<td>{fmt_ci(r['mean_ci_low'], r['mean_ci_high'], f)}</td>"
                f"<td>{fmt(r['abs_lift'], d)}</td><td>{'' if r['is_control'] else fmt_ci(r['abs_ci_low'], r['abs_ci_high'], d)}</td>"
                f"<td>{fmt(r['rel_lift'], 'pct')}</td><td>{'' if r['is_control'] else fmt_ci(r['rel_ci_low'], r['rel_ci_high'], 'pct')}</td>"
                f"<td>{fmt(r['p_value'], 'p')}</td><td>{fmt(r['p_value_holm'], 'p')}</td>"
                f"<td>{fmt(r['variance_reduction'], 'pct')}</td></tr>"
            )
    return f"<table>{head}{''.join(rows)}</table>"


def _frame_table(frame: pd.DataFrame, money: set[str] | None = None) -> str:
    money = money or set()
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for _, r in frame.iterrows():
        cells = []
        for c, v in r.items():
            if isinstance(v, str):
                cells.append(f"<td class=l>{html.escape(v)}</td>")
            else:
                cells.append(f"<td>{fmt(v, 'money' if c in money else 'num')}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def render_html(
    result: AnalysisResult,
    uplift: UpliftReport | list[UpliftReport] | None = None,
    title: str = "Campaign analysis",
    source: str | None = None,
) -> str:
    """HTML text of the report: SRM verdict, results table, lift plot, economics, over-time
    plot (when dates exist), uplift models and Qini curves (when ``uplift`` is given)."""
    uplifts = (
        [] if uplift is None else [uplift] if isinstance(uplift, UpliftReport) else list(uplift)
    )
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
    ]
    parts.append(f"<h1>{html.escape(title)}</h1>")
    meta = f"arm column <b>{html.escape(result.arm_column)}</b>, control <b>{html.escape(result.control)}</b>, "
    meta += f"metrics {html.escape(', '.join(result.metrics))}"
    if result.covariate:
        meta += f", CUPED covariate <b>{html.escape(result.covariate)}</b>"
    if source:
        meta += f"<br>input: {html.escape(source)}"
    meta += f"<br>generated {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}"
    parts.append(f"<p class=note>{meta}</p>")
    srm_cls = "srm-bad" if result.srm.flagged else "srm-ok"
    parts.append(f"<div class='{srm_cls}'>{html.escape(result.srm.message())}</div>")
    parts.append("<h2>Results</h2>")
    parts.append(
        "<p class=note>Absolute lift: Welch t-test; for a rate in percentage points (pp). Relative lift and ratio metrics: delta method. "
        "p (Holm): adjusted over the treatment arms per metric; bold green = significant after adjustment. "
        "Rate CIs of the mean: Wilson.</p>"
    )
    parts.append(_results_table(result))
    parts.append(_img(_png(lift_figure(result)), "relative lift per arm"))
    if result.covariate:
        parts.append(_img(_png(lift_figure(result, "cuped")), "relative lift per arm, CUPED"))
        cu = "; ".join(
            f"{m}: theta={v['theta']:.4g}, corr={v['corr']:.3f}, expected variance reduction {v['expected_variance_reduction']:.1%}"
            for m, v in result.cuped.items()
        )
        parts.append(
            f"<p class=note>CUPED on {html.escape(result.covariate)}: {html.escape(cu)}</p>"
        )
    if result.economics is not None:
        parts.append("<h2>Economics</h2>")
        s = result.settings
        parts.append(
            f"<p class=note>revenue column {html.escape(str(s.get('revenue_column')))}, margin rate {s.get('margin')}, "
            f"cost per contact {s.get('cost_per_contact')}, discount column {html.escape(str(s.get('discount_column')))}. "
            "Discount cost is incremental (arm minus control, per customer, times the arm's size). "
            "ROI = incremental margin (net of costs) / costs.</p>"
        )
        money = {c for c in result.economics.columns if c not in ("arm", "n", "margin_rate", "roi")}
        parts.append(_frame_table(result.economics, money))
    if result.over_time is not None and not result.over_time.empty:
        parts.append("<h2>Over time</h2>")
        parts.append(_img(_png(over_time_figure(result)), "metric over time"))
    if uplifts:
        parts.append("<h2>Whom to target next time (uplift models)</h2>")
        parts.append(
            "<p class=note>Random targeting earns the ATE at every depth; its Qini coefficient is 0 and its "
            "AUUC is ATE/2. Intervals: Poisson bootstrap of the held-out customers.</p>"
        )
    for rep in uplifts:
        parts.append(
            f"<h3>{html.escape(rep.treatment)} vs {html.escape(rep.control)}, outcome {html.escape(rep.outcome)}</h3>"
            f"<p class=note>trained on {rep.n_train:,}, evaluated on a held-out {rep.n_test:,}; "
            f"features: {html.escape(', '.join(rep.features))}.</p>"
        )
        keep = ["model", "ate", "auuc", "auuc_random", "qini", "qini_ci_low", "qini_ci_high"]
        keep += [
            c
            for c in rep.metrics.columns
            if c.startswith("uplift_at_") and not c.endswith(("_ci_low", "_ci_high"))
        ]
        parts.append(_frame_table(rep.metrics[[c for c in keep if c in rep.metrics.columns]]))
        parts.append(_img(_png(qini_figure(rep)), f"Qini curve {rep.treatment}"))
    if result.notes:
        parts.append(
            "<h2>Notes</h2><ul>"
            + "".join(f"<li>{html.escape(n)}</li>" for n in result.notes)
            + "</ul>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(
    path: str | Path,
    result: AnalysisResult,
    uplift: UpliftReport | list[UpliftReport] | None = None,
    **kwargs,
) -> Path:
    """Write :func:`render_html` to ``path`` (parent folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(result, uplift, **kwargs), encoding="utf-8")
    logger.info("wrote campaign report %s", path)
    return path
