"""The arguments of `tokenmill finetune STAGE` (pipeline/cli.py adds them; the stages come from registry.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from training.finetune.registry import STAGE_MODULES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stage", choices=STAGE_MODULES, help="what to train (training/finetune/registry.py)")
    parser.add_argument("--data", "--prompts", dest="data", type=Path,
                        help="JSONL data (default: finetune.sft_data, finetune.preference_data or, for ppo and "
                             "grpo, the prompts finetune.rl.prompts)")
    parser.add_argument("--base", help="model directory, MLflow run id or 'champion' (default: finetune.base for sft; "
                                       "finetune.sft_model for the others, also the frozen reference of dpo, ppo, grpo)")
    parser.add_argument("--out", type=Path, help="output directory (default: finetune.out/STAGE)")
    parser.add_argument("--merge", action="store_true", default=None, help="write LoRA merged into a plain model")
    parser.add_argument("--reward-model", "--reward", dest="reward_model",
                        help="dpo: the reward model judging the win rate (finetune.dpo.reward_model); ppo: the reward "
                             "model it optimises (finetune.ppo.reward_model); grpo: a reward model directory or a "
                             "checker module:function (finetune.grpo.reward)")
