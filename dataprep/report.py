"""The data-quality report of a prepare run: `report.html` beside the corpus, its plots also for DVC.

    out/report.html                     one self-contained page (plots embedded as SVG)
    out/plots/doc_lengths.{csv,svg}     document lengths (characters) before and after, log bins
    out/plots/languages.{csv,svg}       identified languages, all documents and kept ones
    out/plots/pii.{csv,svg}             PII replacements per type
    out/plots/removals.{csv,svg}        removed documents per reason     (dataprep/plots.py)
    out/plots/dedup_clusters.{csv,svg}  duplicate cluster sizes           (dataprep/plots.py)

"Before" is every document that entered the stage (kept and removed), "after" the kept ones: the
lengths of the final texts, counted as the stage wrote them (`text_lengths` reads the same back from
the shards). Everything is derived from the output and stats.json, in a fixed order: the same
run writes the same bytes.
"""

from __future__ import annotations

import base64
import bisect
import html
import math
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import pyarrow.parquet as pq
from dataprep.plots import bar_chart, write_csv
from tokenmill.documents import read_batches, read_table

EXAMPLES_PER_REASON = 3
EXAMPLE_CHARS = 300
BINS_PER_DECADE = 4


def shard_columns(directory: Path, columns: list[str]) -> Iterator[dict[str, Any]]:
    """The given columns (those present) of every shard in `directory`, one shard at a time (a shard's
    columns are let go before the next is read: the whole output's text is never in memory at once)."""
    for shard in sorted(directory.glob("part-*.parquet")):
        names = set(pq.read_schema(shard).names)
        table = read_table(shard, columns=[c for c in columns if c in names])
        yield {c: table.column(c) for c in table.column_names}


def text_lengths(directory: Path) -> list[int]:
    import pyarrow.compute as pc  # only here: its import is ~25 ms of every prepare

    return [n for shard in shard_columns(directory, ["text"]) for n in pc.utf8_length(shard["text"]).to_pylist()]


def log_bins(lengths: list[int]) -> list[int]:
    """Bin edges 1, 1.78, 3.16, 5.62, 10, ... (rounded) covering `lengths`."""
    top = max(lengths, default=1)
    steps = max(1, math.ceil(math.log10(max(top, 1) + 1) * BINS_PER_DECADE))
    edges = sorted({round(10 ** (i / BINS_PER_DECADE)) for i in range(steps + 1)})
    return [0] + edges


def histogram(lengths: list[int], edges: list[int]) -> list[int]:
    """Lengths per bin: the first bin whose upper edge is above the length (the last takes the rest)."""
    counts = [0] * (len(edges) - 1)
    last = len(edges) - 2
    for n in lengths:
        counts[min(max(bisect.bisect_right(edges, n) - 1, 0), last)] += 1
    return counts


def lengths_figure(edges: list[int], before: list[int], after: list[int]) -> str:
    labels = [f"{edges[i]:,}–{edges[i + 1]:,}" for i in range(len(before))]
    return bar_chart("Document lengths before and after prepare", labels,
                     {"before (all documents)": before, "after (kept)": after}, "documents",
                     horizontal=False, category_label="document length (characters)",
                     colours=("#7f7f7f", "#1f77b4"), rotate=True)


def removed_examples(directory: Path) -> dict[str, list[dict[str, str]]]:
    """The first few removed documents per reason (shard order), text cut to EXAMPLE_CHARS."""
    examples: dict[str, list[dict[str, str]]] = {}
    for shard in sorted(directory.glob("part-*.parquet")):
        names = set(pq.read_schema(shard).names)
        if "reason" not in names:
            continue
        reasons = read_table(shard, columns=["reason"]).column("reason").to_pylist()
        wanted: list[int] = []  # rows that become examples: only their texts are turned into Python strings
        for i, reason in enumerate(reasons):
            taken = examples.setdefault(str(reason), [])
            if len(taken) < EXAMPLES_PER_REASON:
                taken.append({})
                wanted.append(i)
        if not wanted:
            continue
        # a few rows at a time up to the last example (not the whole shard's texts decoded at once);
        # row by row (table.take would turn `wanted` into an Arrow array: pa.array imports pandas)
        columns = [c for c in ("id", "text", "url", "duplicate_of") if c in names]
        rows: dict[str, list] = {c: [] for c in columns}
        start, pending = 0, iter(wanted)
        row = next(pending, None)
        for batch in read_batches(shard, columns):
            while row is not None and row < start + batch.num_rows:
                for c in columns:
                    rows[c].append(batch.column(c)[row - start].as_py())
                row = next(pending, None)
            if row is None:
                break
            start += batch.num_rows
        for k, i in enumerate(wanted):
            text = rows["text"][k] or ""
            bucket = examples[str(reasons[i])]
            bucket[bucket.index({})] = {
                "id": str(rows["id"][k]),
                "url": str((rows.get("url") or [None] * (k + 1))[k] or ""),
                "duplicate_of": str((rows.get("duplicate_of") or [None] * (k + 1))[k] or ""),
                "text": text[:EXAMPLE_CHARS] + ("…" if len(text) > EXAMPLE_CHARS else ""),
            }
    return dict(sorted(examples.items()))


def kept_languages(directory: Path) -> Counter:
    counts: Counter = Counter()
    for shard in shard_columns(directory, ["lang"]):
        if "lang" in shard:
            counts.update(str(v) for v in shard["lang"].to_pylist())
    return counts


def write_report(out: Path, stats: dict[str, Any], lengths: tuple[list[int], list[int]]) -> None:
    """Write out/report.html and its plots (CSV + SVG in out/plots) from the output and its stats
    (call after `dataprep.plots.write_plots`, whose removal and cluster plots it embeds). `lengths`:
    the characters of the kept and of the removed texts as they were written."""
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    images: dict[str, str] = {}

    after, removed = lengths
    before = after + removed
    edges = log_bins(before)
    hist_before, hist_after = histogram(before, edges), histogram(after, edges)
    used = [i for i, n in enumerate(hist_before) if n] or [0]  # drop the empty bins at either end
    first, last = used[0], used[-1]
    edges, hist_before, hist_after = edges[first : last + 2], hist_before[first : last + 1], hist_after[first : last + 1]
    write_csv(plots / "doc_lengths.csv", ["length_from", "length_to", "before", "after"],
              [(edges[i], edges[i + 1], hist_before[i], hist_after[i]) for i in range(len(hist_before))])
    images["doc_lengths"] = lengths_figure(edges, hist_before, hist_after)

    identified = Counter(stats.get("languages", {}))
    kept = kept_languages(out)
    languages = sorted(set(identified) | set(kept), key=lambda k: (-identified.get(k, kept[k]), k))
    write_csv(plots / "languages.csv", ["language", "identified", "kept"],
              [(lang, identified.get(lang, 0), kept.get(lang, 0)) for lang in languages])
    images["languages"] = bar_chart("Languages", languages, {"identified": [identified.get(k, 0) for k in languages],
                                                              "kept": [kept.get(k, 0) for k in languages]}, "documents")

    pii = stats.get("pii_replaced", {})
    kinds = sorted(pii, key=lambda k: (-pii[k], k))
    write_csv(plots / "pii.csv", ["type", "replacements"], [(k, pii[k]) for k in kinds])
    images["pii"] = bar_chart("PII replaced per type", kinds, {"replacements": [pii[k] for k in kinds]}, "replacements")

    for name in ("removals", "dedup_clusters"):  # written by dataprep/plots.py before the report
        images[name] = (plots / f"{name}.svg").read_text(encoding="utf-8")
    for name in ("doc_lengths", "languages", "pii"):
        (plots / f"{name}.svg").write_text(images[name], encoding="utf-8")

    (out / "report.html").write_text(render(stats, images, removed_examples(out / "removed"), kept), encoding="utf-8")


def render(stats: dict[str, Any], images: dict[str, str], examples: dict[str, list[dict[str, str]]],
           kept_langs: Counter) -> str:
    e = html.escape

    def img(name: str, alt: str) -> str:
        return f'<img alt="{e(alt)}" src="data:image/svg+xml;base64,{base64.b64encode(images[name].encode()).decode()}">'

    def table(header: list[str], rows: list[tuple]) -> str:
        head = "".join(f"<th>{e(str(h))}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in rows)
        return f"<table><tr>{head}</tr>{body}</table>"

    doc_in, doc_out = stats.get("documents_in", 0), stats.get("documents_out", 0)
    bytes_in, bytes_out = stats.get("bytes_in", 0), stats.get("bytes_out", 0)
    per_step = stats.get("per_step", {})
    step_rows = []
    for name in stats.get("steps", []):
        info = per_step.get(name, {})
        removed = info.get("removed", {})
        step_rows.append((name, info.get("documents_in", ""), info.get("documents_out", ""),
                          sum(removed.values()) if removed else 0,
                          ", ".join(f"{k}: {v}" for k, v in sorted(removed.items())) or "-"))
    reason_rows = sorted(stats.get("removed", {}).items(), key=lambda item: (-item[1], item[0]))
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>tokenmill data-quality report</title>",
        "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}"
        "img{max-width:100%}pre{white-space:pre-wrap;background:#f6f6f6;padding:6px;margin:4px 0}"
        "h2{border-bottom:1px solid #ddd}</style></head><body>",
        "<h1>Data-quality report (prepare)</h1>",
        table(["", "documents", "MB"], [("in", doc_in, f"{bytes_in / 1e6:.3f}"), ("out", doc_out, f"{bytes_out / 1e6:.3f}"),
                                        ("removed", doc_in - doc_out, f"{stats.get('removed_bytes', 0) / 1e6:.3f}")]),
        "<h2>Removals per step</h2>", table(["step", "in", "out", "removed", "reasons"], step_rows),
        "<h2>Removals per reason</h2>", table(["reason", "documents"], reason_rows), img("removals", "removals"),
        "<h2>Document lengths</h2>", img("doc_lengths", "document lengths"),
        "<h2>Languages</h2>",
        table(["language", "identified", "kept"],
              [(k, stats.get("languages", {}).get(k, 0), kept_langs.get(k, 0))
               for k in sorted(set(stats.get("languages", {})) | set(kept_langs))]),
        img("languages", "languages"),
        "<h2>Duplicate clusters</h2>",
        table(["step", "clusters", "sizes (size: clusters)"],
              [(name, info.get("clusters", 0), ", ".join(f"{k}: {v}" for k, v in info.get("sizes", {}).items()) or "-")
               for name, info in sorted(stats.get("dedup_clusters", {}).items())]),
        img("dedup_clusters", "duplicate clusters"),
        "<h2>PII replaced</h2>", table(["type", "replacements"], sorted(stats.get("pii_replaced", {}).items())),
        img("pii", "PII per type"),
        "<h2>Removed examples</h2>",
    ]
    for reason, rows in examples.items():
        parts.append(f"<h3>{e(reason)}</h3>")
        for row in rows:
            where = " ".join(x for x in (row["id"], row["url"], f"duplicate of {row['duplicate_of']}" if row["duplicate_of"] else "") if x)
            parts.append(f"<div><b>{e(where)}</b><pre>{e(row['text'])}</pre></div>")
    if not examples:
        parts.append("<p>nothing removed</p>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
