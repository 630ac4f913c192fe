"""The prepare stage: documents in, steps in order, kept and removed documents out, stats and plots.

    out/part-00000.parquet ...          kept documents (with `lang`, `lang_score`, ... columns)
    out/removed/part-00000.parquet ...  removed documents with `reason` (and `duplicate_of`)
    out/stats.json                      documents/bytes in and out, removals, per-step counts
    out/report.html                     the data-quality report (dataprep/report.py)
    out/plots/*.{svg,csv}               removals, duplicate clusters, lengths, languages, PII (for `dvc plots`)
"""

from __future__ import annotations

import copy
import dataclasses
import shutil
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dataprep import registry
from dataprep.distributed import dask_client, execute, open_index
from dataprep.memory import lean_allocators
from dataprep.plots import write_plots
from dataprep.report import write_report
from dataprep.step import RemoveCallback, Step
from tokenmill.documents import ShardWriter, document_files, unify_shards
from tokenmill.errors import ConfigError
from tokenmill.stage import StageStats, atomic_directory, file_identity
from tokenmill.stage import work_directory as stage_work_directory

if TYPE_CHECKING:
    from dataprep.config import PrepareConfig

SCRUB_REMOVED = "pii"  # removed documents are versioned and pushed with the corpus: this step scrubs them too


def step_groups() -> dict[str, list[str]]:
    """The CLI's `tokenmill <group>`: each group's default-enabled steps, from the registry."""
    return {group: registry.group_steps(group) for group in registry.GROUPS}


def build_steps(names: list[str], config: Any, on_remove: RemoveCallback) -> list[Step]:
    known = registry.steps()
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ConfigError(f"prepare.steps: unknown step '{unknown[0]}' (known: {', '.join(known)})")
    built = [registry.build_step(name, getattr(config, name, None), on_remove) for name in names]
    for step in built:  # prepare.keep_signals: filters write their measurements as columns
        step.keep_signals = getattr(config, "keep_signals", False)
        step.replay = getattr(config, "replay_signals", False)
    return built


def run(
    inp: Path,
    out: Path,
    config: PrepareConfig,
    steps: list[str] | None = None,
    index: str | Path | None = None,
    client: Any = None,
) -> dict[str, Any]:
    """Run `steps` (default: `config.steps`) over the documents at `inp`; write `out`; return stats.

    `index`: a dedup index directory (default `config.index`; "" for none). `client`: a Dask client
    (or scheduler address) to run on; by default one is made from `config.dask` when it asks for one.
    """
    lean_allocators()
    names = list(config.steps if steps is None else steps)
    if names != list(config.steps):  # the tasks read the steps from the config (what was scrubbed when)
        config = copy.copy(config)
        config.steps = names
    files = document_files(inp)  # a missing or empty input fails here, before `out` is touched
    stats = StageStats(stage="prepare")
    index = index if index is not None else config.index
    work = work_directory(out, files, names, config, index)
    with atomic_directory(out) as tmp:
        # Steps run shard by shard (dataprep/distributed.py: in this process or on Dask workers); the
        # steps built here only collect the counts. Removed documents are scrubbed by SCRUB_REMOVED too.
        pipeline = build_steps(names, config, None)
        scrub_removed = SCRUB_REMOVED if SCRUB_REMOVED in names else None
        dedup_index = open_index(index, pipeline)
        with dask_client(config.dask, client) as dask:
            counts, kept, removed, reasons = execute(
                files, pipeline, config, build_steps, tmp, scrub_removed, dask, dedup_index, work
            )
        unify_shards(tmp)  # tasks wrote their shards apart: give the output one schema
        unify_shards(tmp / "removed")
        stats.documents_in, stats.bytes_in = counts["documents_in"], counts["bytes_in"]
        stats.removed.update(reasons)
        stats.documents_out, stats.bytes_out = kept.documents, kept.bytes
        stats.extra = summary(names, pipeline, kept, removed)
        write_plots(tmp / "plots", stats.removed, cluster_sizes(pipeline))
        write_report(tmp, stats.to_dict(), (kept.lengths, removed.lengths))
        stats.write(tmp)
    shutil.rmtree(work)
    return stats.to_dict()


def work_directory(out: Path | str, files: list, names: list[str], config: Any, index: Any) -> Path:
    """Where the tasks of this run write, kept after a kill so that the same command resumes there
    (dataprep/distributed.py reads back each finished task's result); see tokenmill.stage.work_directory."""
    return stage_work_directory(out, "prepare", {
        "inputs": [file_identity(f) for f in files], "steps": names, "index": str(index or ""),
        "config": {k: v for k, v in dataclasses.asdict(config).items() if k != "dask"}})


def cluster_sizes(pipeline: list[Step]) -> dict[str, Counter]:
    """Duplicate-cluster sizes of every step that keeps them (`cluster_sizes`: size → clusters)."""
    return {s.name: s.cluster_sizes for s in pipeline if isinstance(getattr(s, "cluster_sizes", None), Counter)}


def summary(names: list[str], pipeline: list[Step], kept: ShardWriter, removed: ShardWriter) -> dict[str, Any]:
    """The stage-specific part of stats.json."""
    extra: dict[str, Any] = {
        "steps": names,
        "per_step": {step.name: step.stats() for step in pipeline},
        "shards": kept.shards,
        "removed_shards": removed.shards,
        "removed_bytes": removed.bytes,
    }
    for step in pipeline:  # a step's own top-level figures (languages, pii_replaced, ...)
        if hasattr(step, "summary"):
            extra.update(step.summary())
    extra["dedup_clusters"] = {
        name: {"clusters": sum(sizes.values()), "sizes": {str(k): v for k, v in sorted(sizes.items())}}
        for name, sizes in cluster_sizes(pipeline).items()
    }
    return extra
