"""What a model costs: parameters by kind, memory per precision, FLOPs per token, MFU, peak memory.

FLOPs per token (training, forward + backward) = 6·N + 12·L·H·Q·T (PaLM, appendix B; nanoGPT's
estimate_mfu), where N = parameters without the position embeddings (a lookup, no multiply; the tied
token embedding counts once, because the output projection multiplies by it), L layers, H heads, Q head
size, T context length. The 12·L·H·Q·T term counts the full attention score matrix (no causal halving).
MFU = FLOPs per token × tokens/s per device ÷ the device's peak dense bf16 FLOP/s.
"""

from __future__ import annotations

import resource
import sys

import torch
import torch.nn as nn

# Dense bf16 tensor-core peaks without sparsity, in FLOP/s, by a substring of torch.cuda.get_device_name().
PEAK_BF16_FLOPS = {"H200": 989e12, "H100 PCIe": 756e12, "H100": 989e12, "A100": 312e12}
# Bytes per parameter for weights, gradients and AdamW's two moments. Lightning's "-mixed" precisions keep
# fp32 weights and compute in 16 bits (activations shrink, states do not); "-true" keeps everything in 16 bits.
BYTES_PER_PARAMETER = {
    "32-true": {"weights": 4, "grads": 4, "adamw": 8},
    "bf16-mixed": {"weights": 4, "grads": 4, "adamw": 8},
    "16-mixed": {"weights": 4, "grads": 4, "adamw": 8},
    "bf16-true": {"weights": 2, "grads": 2, "adamw": 4},
}
GIB = 2**30


def parameter_breakdown(model: nn.Module) -> dict[str, int]:
    """Parameters by kind (tied weights once): embeddings, attention, mlp, norms, other; and total."""
    counts = {"embeddings": 0, "attention": 0, "mlp": 0, "norms": 0, "other": 0}
    kinds = {}
    for module_name, module in model.named_modules():
        if isinstance(module, nn.Embedding):
            kinds[module_name] = "embeddings"
        elif isinstance(module, (nn.LayerNorm, getattr(nn, "RMSNorm", nn.LayerNorm))):
            kinds[module_name] = "norms"
    seen = set()
    for name, p in model.named_parameters():  # named_parameters yields a tied tensor once
        if id(p) in seen:
            continue
        seen.add(id(p))
        module_name = name.rsplit(".", 1)[0] if "." in name else ""
        kind = kinds.get(module_name)
        if kind is None:
            parts = name.split(".")
            kind = "attention" if "attn" in parts else "mlp" if "mlp" in parts else "other"
        counts[kind] += p.numel()
    counts["total"] = sum(counts.values())
    return counts


def memory_estimate(parameters: int, shards: int = 1) -> dict[str, dict[str, float]]:
    """GiB per device for weights, gradients and AdamW state in each precision (activations not included).
    `shards`: FSDP world size, which divides all three."""
    out = {}
    for precision, sizes in BYTES_PER_PARAMETER.items():
        row = {k: parameters * v / shards / GIB for k, v in sizes.items()}
        row["total"] = sum(row.values())
        row["bytes_per_parameter"] = sum(sizes.values())
        out[precision] = row
    return out


def flops_per_token(parameters: int, position_embeddings: int, n_layer: int, n_head: int, n_embd: int,
                    block_size: int) -> float:
    """Training FLOPs per token: 6·N + 12·L·H·Q·T (see the module docstring)."""
    n = parameters - position_embeddings
    return 6 * n + 12 * n_layer * n_head * (n_embd // n_head) * block_size


def device_peak_flops(device: torch.device | str) -> tuple[str, float | None]:
    """(device name, peak dense bf16 FLOP/s or None when unknown, e.g. on CPU)."""
    device = torch.device(device)
    if device.type != "cuda":
        return "cpu", None
    name = torch.cuda.get_device_name(device)
    for key, peak in PEAK_BF16_FLOPS.items():
        if key in name:
            return name, peak
    return name, None


def peak_memory(device: torch.device | str) -> dict[str, float]:
    """Measured: peak resident memory of this process and, on CUDA, torch's peak allocation (GiB)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    rss = kib / GIB if sys.platform == "darwin" else kib * 1024 / GIB
    out = {"peak_rss_gib": rss}
    if torch.device(device).type == "cuda":
        out["cuda_max_allocated_gib"] = torch.cuda.max_memory_allocated(device) / GIB
    return out


def report(breakdown: dict[str, int], estimate: dict[str, dict[str, float]], precision: str) -> str:
    """The lines printed before training."""
    total = breakdown["total"]
    parts = ", ".join(f"{k} {v:,} ({v / total:.0%})" for k, v in breakdown.items() if k != "total" and v)
    lines = [f"train: {total:,} parameters: {parts}",
             "train: memory per device for weights + grads + AdamW state (activations extra):"]
    for name, row in estimate.items():
        mark = "  <- this run" if name == precision else ""
        lines.append(f"train:   {name:<10} {row['bytes_per_parameter']:>2} B/param = {row['weights']:.3f} + "
                     f"{row['grads']:.3f} + {row['adamw']:.3f} = {row['total']:.3f} GiB{mark}")
    return "\n".join(lines)
