"""The prepare stage: documents in, steps in order, kept and removed documents out, stats and plots.

    out/part-00000.parquet ...          kept documents (with `lang`, `lang_score`, ... columns)
    out/removed/part-00000.parquet ...  removed documents with `reason` (and `duplicate_of`)
    out/stats.json                      documents/bytes in and out, removals, per-step counts
    out/plots/removals.{png,csv}        removed documents per reason
    out/plots/dedup_clusters.{png,csv}  duplicate cluster sizes
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from tqdm import tqdm

from dataprep.config import PrepareConfig
from dataprep.dedup import ExactDedup, NearDedup
from dataprep.filters import GopherQuality, GopherRepetition
from dataprep.language import LanguageFilter
from dataprep.normalize import Normalize
from dataprep.pii import PIIScrubber
from dataprep.plots import write_plots
from dataprep.step import RemoveCallback, Step
from tokenmill.documents import Document, ShardWriter, document_files, read_documents
from tokenmill.errors import ConfigError
from tokenmill.stage import StageStats, atomic_directory

# The CLI's `tokenmill filter|dedup|scrub`; `tokenmill prepare` runs `config.steps`.
STEP_GROUPS = {
    "filter": ["language", "quality", "repetition"],
    "dedup": ["exact_dedup", "near_dedup"],
    "scrub": ["pii"],
}

# step name → how to build it from the prepare config
STEP_BUILDERS: dict[str, Callable[[PrepareConfig, RemoveCallback], Step]] = {
    "normalize": lambda c, on_remove: Normalize(c.normalize, on_remove),
    "language": lambda c, on_remove: LanguageFilter(c.language, on_remove),
    "quality": lambda c, on_remove: GopherQuality(c.quality, on_remove),
    "repetition": lambda c, on_remove: GopherRepetition(c.repetition, on_remove),
    "exact_dedup": lambda c, on_remove: ExactDedup(c.exact_dedup, on_remove),
    "near_dedup": lambda c, on_remove: NearDedup(c.near_dedup, on_remove),
    "pii": lambda c, on_remove: PIIScrubber(c.pii, on_remove),
}


def build_steps(names: list[str], config: PrepareConfig, on_remove: RemoveCallback) -> list[Step]:
    unknown = [name for name in names if name not in STEP_BUILDERS]
    if unknown:
        raise ConfigError(f"prepare.steps: unknown step '{unknown[0]}' (known: {', '.join(STEP_BUILDERS)})")
    return [STEP_BUILDERS[name](config, on_remove) for name in names]


def run(inp: Path, out: Path, config: PrepareConfig, steps: list[str] | None = None) -> dict[str, Any]:
    """Run `steps` (default: `config.steps`) over the documents at `inp`; write `out`; return stats."""
    names = list(config.steps if steps is None else steps)
    document_files(inp)  # a missing or empty input fails here, before `out` is touched
    stats = StageStats(stage="prepare")
    with atomic_directory(out) as tmp:
        kept = ShardWriter(tmp, config.shard_size)
        removed = ShardWriter(tmp / "removed", config.shard_size)
        # Removed documents are versioned and pushed with the corpus: scrub them as well.
        removed_scrubber = PIIScrubber(config.pii) if "pii" in names else None

        def on_remove(doc: Document, reason: str) -> None:
            doc.meta["reason"] = reason
            if removed_scrubber is not None:
                doc.text = removed_scrubber.scrub(doc.text)
            removed.write(doc)
            stats.removed[reason] += 1

        pipeline = build_steps(names, config, on_remove)
        docs: Iterable[Document] = counted(read_documents(inp), stats)
        for step in pipeline:
            docs = step.run(docs)
        kept.write_all(docs)
        kept.close()
        removed.close()
        stats.documents_out, stats.bytes_out = kept.documents, kept.bytes
        stats.extra = summary(names, pipeline, kept, removed)
        write_plots(tmp / "plots", stats.removed, cluster_sizes(pipeline))
        stats.write(tmp)
    return stats.to_dict()


def counted(docs: Iterable[Document], stats: StageStats) -> Iterator[Document]:
    """Count documents and bytes read, with a progress bar."""
    for doc in tqdm(docs, desc="prepare", unit="doc", dynamic_ncols=True):
        stats.documents_in += 1
        stats.bytes_in += doc.nbytes
        yield doc


def cluster_sizes(pipeline: list[Step]) -> dict[str, Counter]:
    return {s.name: s.cluster_sizes for s in pipeline if isinstance(s, (ExactDedup, NearDedup))}


def summary(names: list[str], pipeline: list[Step], kept: ShardWriter, removed: ShardWriter) -> dict[str, Any]:
    """The stage-specific part of stats.json."""
    extra: dict[str, Any] = {
        "steps": names,
        "per_step": {step.name: step.stats() for step in pipeline},
        "shards": kept.shards,
        "removed_shards": removed.shards,
        "removed_bytes": removed.bytes,
    }
    for step in pipeline:
        if isinstance(step, LanguageFilter):
            extra["languages"] = dict(sorted(step.identified.items()))
        if isinstance(step, PIIScrubber):
            extra["pii_replaced"] = dict(sorted(step.replaced.items()))
    extra["dedup_clusters"] = {
        name: {"clusters": sum(sizes.values()), "sizes": {str(k): v for k, v in sorted(sizes.items())}}
        for name, sizes in cluster_sizes(pipeline).items()
    }
    return extra
