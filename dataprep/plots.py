"""Plots of what the prepare stage removed, with the numbers behind them as CSV (for `dvc plots`).

PNGs are reproducible: no pyplot global state, no timestamp or software version in the metadata.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from matplotlib.figure import Figure

PNG_METADATA = {"Software": None}  # matplotlib would write its version here


def write_plots(directory: Path, removed: Counter, cluster_sizes: dict[str, Counter]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    reasons = sorted(removed.items(), key=lambda item: (-item[1], item[0]))
    write_csv(directory / "removals.csv", ["reason", "documents"], reasons)
    plot_removals(directory / "removals.png", reasons)
    rows = [(step, size, n) for step, sizes in sorted(cluster_sizes.items()) for size, n in sorted(sizes.items())]
    write_csv(directory / "dedup_clusters.csv", ["step", "cluster_size", "clusters"], rows)
    plot_clusters(directory / "dedup_clusters.png", cluster_sizes)


def write_csv(path: Path, header: list[str], rows: list[tuple]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def plot_removals(path: Path, reasons: list[tuple[str, int]]) -> None:
    fig = Figure(figsize=(8, 0.8 + 0.35 * max(len(reasons), 1)), layout="constrained")
    ax = fig.subplots()
    if reasons:
        labels, counts = zip(*reversed(reasons))  # largest at the top
        bars = ax.barh(labels, counts, color="tab:red")
        ax.bar_label(bars, padding=2)
    else:
        ax.text(0.5, 0.5, "nothing removed", ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([])
    ax.set_xlabel("documents removed")
    ax.set_title("Removed documents by reason")
    fig.savefig(path, dpi=100, metadata=PNG_METADATA)


def plot_clusters(path: Path, cluster_sizes: dict[str, Counter]) -> None:
    fig = Figure(figsize=(8, 4), layout="constrained")
    ax = fig.subplots()
    steps = sorted(name for name, sizes in cluster_sizes.items() if sizes)
    sizes = sorted({size for name in steps for size in cluster_sizes[name]})
    width = 0.8 / max(len(steps), 1)
    for i, name in enumerate(steps):
        xs = [sizes.index(size) + (i - (len(steps) - 1) / 2) * width for size in sorted(cluster_sizes[name])]
        ax.bar(xs, [cluster_sizes[name][size] for size in sorted(cluster_sizes[name])], width, label=name)
    if steps:
        ax.set_xticks(range(len(sizes)), [str(s) for s in sizes])
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no duplicates", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("documents in cluster")
    ax.set_ylabel("clusters")
    ax.set_title("Duplicate clusters by size")
    fig.savefig(path, dpi=100, metadata=PNG_METADATA)
