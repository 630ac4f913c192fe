"""Registers the dedup steps (global, two-pass; see dataprep/dedup.py)."""

from dataprep.dedup import ExactDedup, ExactDedupConfig, NearDedup, NearDedupConfig
from dataprep.registry import register_step

register_step("exact_dedup", config=ExactDedupConfig, group="dedup", order=50, help="exact duplicate removal")(ExactDedup)
register_step("near_dedup", config=NearDedupConfig, group="dedup", order=60,
              help="MinHash near-duplicate removal (LSH, large-cluster guard, optional --index)")(NearDedup)
