"""How training spreads over devices: train.strategy and train.precision turned into Lightning objects.

  auto   one device, or DDP when several are visible (Lightning's choice)
  ddp    DistributedDataParallel: a full replica per device, gradients all-reduced
  fsdp   Lightning FSDPStrategy (FSDP1): each transformer Block its own shard unit; checkpoints hold
         the full state dict, gathered from every rank and written by rank 0
  fsdp2  Lightning ModelParallelStrategy + torch fully_shard (FSDP2) on each Block, then the whole GPT;
         checkpoints hold the full state dict (save_distributed_checkpoint=False)
On CPU the process group uses gloo; on GPUs NCCL. Both FSDP variants are tested on CPU with 2 processes.
"""

from __future__ import annotations

import torch

from training.config import TrainConfig


def resolve_precision(config: TrainConfig) -> str:
    """train.precision, with "auto" made concrete: bf16-mixed on a GPU that supports bf16 (Ampere and
    newer), 16-mixed on an older GPU, 32-true on CPU."""
    if config.precision != "auto":
        return config.precision
    if config.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32-true"


def make_strategy(config: TrainConfig):
    """A Lightning strategy (object or name) for train.strategy."""
    if config.strategy == "fsdp":
        from lightning.pytorch.strategies import FSDPStrategy

        from training.model import Block

        class FSDP1(FSDPStrategy):
            """Lightning's FSDPStrategy. A subclass, because Lightning refuses `type(s) is FSDPStrategy` off
            GPUs while torch's FSDP runs on CPU with gloo: that is how the 2-process CPU test exercises it."""

        return FSDP1(auto_wrap_policy={Block}, state_dict_type="full", sharding_strategy="FULL_SHARD")
    if config.strategy == "fsdp2":
        from lightning.pytorch.strategies import ModelParallelStrategy

        world = device_count(config) * config.num_nodes  # every device one data-parallel (sharding) rank
        return ModelParallelStrategy(data_parallel_size=world, tensor_parallel_size=1, save_distributed_checkpoint=False)
    return config.strategy


def device_count(config: TrainConfig) -> int:
    """Devices per node: train.devices, or for "auto" every visible GPU (1 on CPU)."""
    if str(config.devices).lstrip("-").isdigit() and int(config.devices) > 0:
        return int(config.devices)
    if config.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return torch.cuda.device_count()
    return 1


def shard_fsdp2(model: torch.nn.Module, mesh) -> None:
    """FSDP2: each Block its own all-gather unit (overlaps communication with compute), then the rest."""
    try:
        from torch.distributed.fsdp import fully_shard
    except ImportError:  # torch < 2.6
        from torch.distributed._composable.fsdp import fully_shard

    from training.model import Block

    for module in model.modules():
        if isinstance(module, Block):
            fully_shard(module, mesh=mesh)
    fully_shard(model, mesh=mesh)
