"""Small plotting helpers shared by the model families (figures logged to MLflow)."""

from __future__ import annotations

import pandas as pd


def importance_figure(importance: pd.Series, title: str, top: int = 20):
    """Horizontal bars of the ``top`` largest gain shares (``importance``: feature -> gain).

    Shares are of the total gain of all features. Drawn on an Agg canvas (no display, no
    change to pyplot's global state).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    total = float(importance.sum())
    imp = (importance / total if total > 0 else importance).sort_values(ascending=False)
    imp = imp.head(top)[::-1]
    fig = Figure(figsize=(7, 0.25 * len(imp) + 1.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.barh(imp.index, imp.to_numpy(), color="#4c72b0")
    ax.set_xlabel(f"share of total gain (top {len(imp)} of {len(importance)} features)")
    ax.set_title(title)
    fig.tight_layout()
    return fig
