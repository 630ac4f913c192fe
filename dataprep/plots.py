"""Plots of what the prepare stage removed, with the numbers behind them as CSV (for `dvc plots`).

The charts are small SVG files written here (bars, axes, labels), not rendered by matplotlib: a
prepare run imports and draws nothing heavy (matplotlib's import and five PNG renders took ~1 s of
a near-dedup run). They are reproducible: the same numbers give the same bytes.
"""

from __future__ import annotations

import csv
import html
from dataclasses import dataclass
import math
from collections import Counter
from pathlib import Path
from typing import Sequence

COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
FONT = 11  # px; text widths are estimated at 0.6 em per character
WIDTH = 800


def write_plots(directory: Path, removed: Counter, cluster_sizes: dict[str, Counter]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    reasons = sorted(removed.items(), key=lambda item: (-item[1], item[0]))
    write_csv(directory / "removals.csv", ["reason", "documents"], reasons)
    (directory / "removals.svg").write_text(plot_removals(reasons), encoding="utf-8")
    rows = [(step, size, n) for step, sizes in sorted(cluster_sizes.items()) for size, n in sorted(sizes.items())]
    write_csv(directory / "dedup_clusters.csv", ["step", "cluster_size", "clusters"], rows)
    (directory / "dedup_clusters.svg").write_text(plot_clusters(cluster_sizes), encoding="utf-8")


def write_csv(path: Path, header: list[str], rows: list[tuple]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def plot_removals(reasons: list[tuple[str, int]]) -> str:
    labels = [r for r, _ in reasons]
    return bar_chart("Removed documents by reason", labels, {"documents": [n for _, n in reasons]},
                     "documents removed", empty="nothing removed", colours=("#d62728",), values=True)


def plot_clusters(cluster_sizes: dict[str, Counter]) -> str:
    steps = sorted(name for name, sizes in cluster_sizes.items() if sizes)
    sizes = sorted({size for name in steps for size in cluster_sizes[name]})
    return bar_chart("Duplicate clusters by size", [str(s) for s in sizes],
                     {name: [cluster_sizes[name].get(s, 0) for s in sizes] for name in steps},
                     "clusters", empty="no duplicates", horizontal=False, category_label="documents in cluster")


def nice_ticks(top: float, count: int = 5) -> list[float]:
    """Whole tick values 0, step, 2·step, ... covering `top` (step 1, 2 or 5 × 10^k: counts)."""
    if top <= 0:
        return [0, 1]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = max(1, round(next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)))
    ticks = [0]
    while ticks[-1] < top:
        ticks.append(ticks[-1] + step)
    return ticks


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.3g}"


def _text_width(text: str, size: float = FONT) -> float:
    return 0.6 * size * len(text)


@dataclass(frozen=True)
class _Frame:
    """Where a bar chart's plot area lies in its SVG, and how values map onto it."""

    horizontal: bool
    left: float
    plot_top: float
    plot_w: float
    height_plot: float
    height: float
    band: float  # room per label
    scale_top: float  # the value at the far end of the value axis


def _frame(labels: Sequence[str], k: int, scale_top: float, horizontal: bool, rotate: bool) -> _Frame:
    n = len(labels)
    plot_top = 34 if k == 1 else 50  # room for the legend under the title
    if horizontal:
        left = 12 + max((_text_width(label) for label in labels), default=20)
        right, band = 50, 6 + 14 * k
        height_plot = max(n, 1) * band
        return _Frame(True, left, plot_top, WIDTH - left - right, height_plot, plot_top + height_plot + 44, band,
                      scale_top)
    longest = max((_text_width(label) for label in labels), default=0)
    bottom = 44 + (longest * 0.72 if rotate else 0)
    left, right = 60, 20
    height = 320 + bottom - 44
    plot_w = WIDTH - left - right
    return _Frame(False, left, plot_top, plot_w, height - plot_top - bottom, height,
                  min(plot_w / max(n, 1), 24 + 40 * k), scale_top)


def bar_chart(title: str, labels: Sequence[str], series: dict[str, list[int]], value_label: str, *,
              empty: str = "nothing to show", horizontal: bool = True, category_label: str = "",
              colours: Sequence[str] = COLOURS, values: bool = False, rotate: bool = False) -> str:
    """One bar chart as an SVG document: a group of bars per label, one bar per series (legend when
    there are several). Horizontal: labels down the left, largest first as given; else along the bottom."""
    e = html.escape
    names = list(series)
    ticks = nice_ticks(max((v for vs in series.values() for v in vs), default=0))
    f = _frame(labels, max(len(names), 1), ticks[-1] or 1, horizontal, rotate)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{f.height:.0f}" '
             f'viewBox="0 0 {WIDTH} {f.height:.0f}" font-family="sans-serif" font-size="{FONT}">',
             f'<rect width="{WIDTH}" height="{f.height:.0f}" fill="white"/>',
             f'<text x="{WIDTH / 2:.0f}" y="20" text-anchor="middle" font-size="14">{e(title)}</text>']
    if not labels or not names:
        parts.append(f'<text x="{WIDTH / 2:.0f}" y="{f.plot_top + 40}" text-anchor="middle">{e(empty)}</text>')
    else:
        parts += _grid(f, ticks)
        for i, label in enumerate(labels):
            parts += _bars(f, i, [(name, series[name][i]) for name in names], colours, values)
            parts.append(_category_label(f, i, label, rotate))
        parts += _axes(f, value_label, category_label)
        if len(names) > 1:
            parts += _legend(f, names, colours)
    parts.append("</svg>\n")
    return "\n".join(parts)


def _grid(f: _Frame, ticks: Sequence[float]) -> list[str]:
    """A grid line and its value at every tick of the value axis."""
    parts = []
    bottom = f.plot_top + f.height_plot
    for tick in ticks:
        if f.horizontal:
            x = f.left + f.plot_w * tick / f.scale_top
            parts.append(f'<line x1="{x:.1f}" y1="{f.plot_top}" x2="{x:.1f}" y2="{bottom}" stroke="#ddd"/>')
            parts.append(f'<text x="{x:.1f}" y="{bottom + 14}" text-anchor="middle">{_number(tick)}</text>')
        else:
            y = bottom - f.height_plot * tick / f.scale_top
            parts.append(f'<line x1="{f.left}" y1="{y:.1f}" x2="{f.left + f.plot_w}" y2="{y:.1f}" stroke="#ddd"/>')
            parts.append(f'<text x="{f.left - 4}" y="{y + 4:.1f}" text-anchor="end">{_number(tick)}</text>')
    return parts


def _bars(f: _Frame, i: int, bars: list[tuple[str, float]], colours: Sequence[str], values: bool) -> list[str]:
    """The bars of label i, one per series, each with its value as a tooltip (and as text when `values`)."""
    e = html.escape
    parts = []
    thickness = (f.band - 6) / len(bars)
    for j, (name, value) in enumerate(bars):
        length = (f.plot_w if f.horizontal else f.height_plot) * value / f.scale_top
        colour = colours[j % len(colours)]
        if f.horizontal:
            y = f.plot_top + i * f.band + 3 + j * thickness
            parts.append(f'<rect x="{f.left}" y="{y:.1f}" width="{length:.1f}" height="{thickness:.1f}" '
                         f'fill="{colour}"><title>{e(name)}: {_number(value)}</title></rect>')
            if values:
                parts.append(f'<text x="{f.left + length + 3:.1f}" y="{y + thickness / 2 + 4:.1f}">{_number(value)}</text>')
        else:
            x = f.left + i * f.band + 3 + j * thickness
            y = f.plot_top + f.height_plot - length
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{thickness:.1f}" height="{length:.1f}" '
                         f'fill="{colour}"><title>{e(name)}: {_number(value)}</title></rect>')
    return parts


def _category_label(f: _Frame, i: int, label: str, rotate: bool) -> str:
    e = html.escape
    if f.horizontal:
        y = f.plot_top + i * f.band + f.band / 2 + 4
        return f'<text x="{f.left - 6:.1f}" y="{y:.1f}" text-anchor="end">{e(label)}</text>'
    x = f.left + i * f.band + f.band / 2
    y = f.plot_top + f.height_plot + 14
    if rotate:
        return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="end" font-size="9" '
                f'transform="rotate(-45 {x:.1f} {y:.1f})">{e(label)}</text>')
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="middle">{e(label)}</text>'


def _axes(f: _Frame, value_label: str, category_label: str) -> list[str]:
    """The two axes and their titles."""
    e = html.escape
    bottom = f.plot_top + f.height_plot
    parts = [f'<line x1="{f.left}" y1="{bottom}" x2="{f.left + f.plot_w}" y2="{bottom}" stroke="black"/>',
             f'<line x1="{f.left}" y1="{f.plot_top}" x2="{f.left}" y2="{bottom}" stroke="black"/>']
    centre = f'x="{f.left + f.plot_w / 2:.0f}" y="{f.height - 8:.0f}" text-anchor="middle"'
    if f.horizontal:
        return parts + [f'<text {centre}>{e(value_label)}</text>']
    middle = f.plot_top + f.height_plot / 2
    return parts + [f'<text {centre}>{e(category_label)}</text>',
                    f'<text x="14" y="{middle:.0f}" text-anchor="middle" '
                    f'transform="rotate(-90 14 {middle:.0f})">{e(value_label)}</text>']


def _legend(f: _Frame, names: list[str], colours: Sequence[str]) -> list[str]:
    """One line under the title: a swatch and the name of each series."""
    parts, x = [], f.left
    for j, name in enumerate(names):
        parts.append(f'<rect x="{x:.1f}" y="30" width="10" height="10" fill="{colours[j % len(colours)]}"/>')
        parts.append(f'<text x="{x + 14:.1f}" y="39">{html.escape(name)}</text>')
        x += 30 + _text_width(name)
    return parts
