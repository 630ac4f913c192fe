"""Registers the dedup steps of dataprep/dedup.py (owned by the dedup engineer; see dataprep/registry.py)."""

from dataprep.config import ExactDedupConfig, NearDedupConfig
from dataprep.dedup import ExactDedup, NearDedup
from dataprep.registry import register_step

register_step("exact_dedup", config=ExactDedupConfig, group="dedup", order=50, help="exact duplicate removal")(ExactDedup)
register_step("near_dedup", config=NearDedupConfig, group="dedup", order=60, help="MinHash near-duplicate removal")(NearDedup)
