"""Plots of results tables (needs the ``plot`` extra: matplotlib)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = ["plot_table", "swept_columns"]

_NOT_SWEPT = {"point_id", "name"}


def swept_columns(df: pd.DataFrame) -> list[str]:
    """Columns that vary across the table and describe the point (swept keys, device, time)."""
    cand = [c for c in df.columns if ("." in c or c in ("device", "t_s", "drift_compensation", "seed")) and c not in _NOT_SWEPT]
    return [c for c in cand if df[c].nunique(dropna=False) > 1]


def plot_table(df: pd.DataFrame, x: str | None = None, metrics: tuple[str, ...] = ("accuracy_hw", "energy_per_inference_J"), out: str | Path | None = None):
    """One panel per metric against ``x`` (default: the first varying swept column), one line per other point key.

    Returns the matplotlib Figure; saves it to ``out`` when given.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("plotting needs matplotlib: pip install 'xbarsim[plot]'") from exc
    varying = swept_columns(df)
    if x is None:
        if not varying:
            raise ValueError("plot: the table has no varying swept column; pass x=COLUMN")
        x = varying[0]
    if x not in df.columns:
        raise ValueError(f"plot: x: got {x!r}; columns: {', '.join(df.columns)}")
    metrics = tuple(m for m in metrics if m in df.columns)
    if not metrics:
        raise ValueError("plot: none of the metrics is in the table")
    groups = [c for c in varying if c != x]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.6), squeeze=False)
    grouped = df.groupby(groups, dropna=False, sort=False) if groups else [((), df)]
    for key, part in grouped:
        key = key if isinstance(key, tuple) else (key,)
        label = ", ".join(f"{g}={k}" for g, k in zip(groups, key)) or None
        part = part.sort_values(x)
        for ax, m in zip(axes[0], metrics):
            ax.plot(part[x].to_numpy(), part[m].to_numpy(), marker="o", label=label)
    for ax, m in zip(axes[0], metrics):
        ax.set_xlabel(x)
        ax.set_ylabel(m)
        ax.grid(alpha=0.3)
        if m.endswith("_J") or m.endswith("_s"):
            ax.set_yscale("log")
        if groups:
            ax.legend(fontsize=7)
    fig.tight_layout()
    if out is not None:
        fig.savefig(out, dpi=120)
    return fig
