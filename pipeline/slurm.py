"""Training beyond one machine: an `sbatch` script for SLURM and a `torchrun` recipe, both running
`tokenmill train` (python -m pipeline.cli train) with `train.num_nodes`, `train.devices` and
`train.strategy: ddp`.

Under SLURM, `srun` starts one task per GPU and Lightning's SLURMEnvironment reads the ranks, the
node list and the master address from SLURM_* variables. Under torchrun, Lightning's
TorchElasticEnvironment reads them from torchrun's variables. Values params.yaml already has are not
repeated as `--set` (an override makes the run ad hoc: outputs under paths.runs/, not versioned).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from tokenmill.errors import UserError
from tokenmill.stage import atomic_write_text, check_replaceable_file, forcing

SBATCH = "train.sbatch"
TORCHRUN = "torchrun.sh"


def train_overrides(params, nodes: int, gpus: int, overrides: list[str]) -> list[str]:
    wanted = {"train.num_nodes": nodes, "train.devices": gpus, "train.strategy": "ddp"}
    have = {"train.num_nodes": params.train.num_nodes, "train.devices": params.train.devices,
            "train.strategy": params.train.strategy}
    given = {o.partition("=")[0] for o in overrides}
    extra = [f"{key}={value}" for key, value in wanted.items() if str(have[key]) != str(value) and key not in given]
    return [*overrides, *extra]


def train_args(params_path: str, overrides: list[str]) -> str:
    sets = " ".join(f"--set {shlex.quote(o)}" for o in overrides)
    return f"-m pipeline.cli train --params {shlex.quote(params_path)}" + (f" {sets}" if sets else "")


def sbatch_script(project: Path, params_path: str, overrides: list[str], nodes: int, gpus: int,
                  time_limit: str, python: str) -> str:
    return f"""#!/bin/bash
# tokenmill training on SLURM: {nodes} node(s) x {gpus} GPU(s). Submit with: sbatch {SBATCH}
#SBATCH --job-name=tokenmill-train
#SBATCH --nodes={nodes}
#SBATCH --ntasks-per-node={gpus}
#SBATCH --gpus-per-node={gpus}
#SBATCH --cpus-per-task=8
#SBATCH --time={time_limit}
#SBATCH --output=tokenmill-train-%j.out
#SBATCH --signal=SIGUSR1@90
set -euo pipefail
cd {shlex.quote(str(project))}
# The tracking store must be one every node reaches: an MLflow server, not a SQLite file per node.
export MLFLOW_TRACKING_URI="${{MLFLOW_TRACKING_URI:-sqlite:///mlflow/mlflow.db}}"
# One task per GPU; Lightning's SLURMEnvironment takes ranks and the master address from SLURM_*.
srun {shlex.quote(python)} {train_args(params_path, overrides)}
"""


def torchrun_script(project: Path, params_path: str, overrides: list[str], nodes: int, gpus: int,
                    python: str) -> str:
    return f"""#!/bin/bash
# tokenmill training with torchrun: {nodes} node(s) x {gpus} GPU(s). Run this on every node with
# HEAD_NODE set to the first node's address, e.g.  HEAD_NODE=node01 bash {TORCHRUN}
set -euo pipefail
cd {shlex.quote(str(project))}
: "${{HEAD_NODE:?set HEAD_NODE to the address of the first node}}"
# Lightning's TorchElasticEnvironment takes ranks and the master address from torchrun's variables.
{shlex.quote(python)} -m torch.distributed.run --nnodes={nodes} --nproc-per-node={gpus} \\
  --rdzv-backend=c10d --rdzv-endpoint="$HEAD_NODE:29500" --rdzv-id=tokenmill-train \\
  {train_args(params_path, overrides)}
"""


def check_overwrite(path: Path, text: str) -> None:
    """An emitted script may hold someone's edits: it is rewritten only when it already says `text`, or
    under --force (a file replaced, anything else moved aside)."""
    if path.is_file() and not path.is_symlink() and path.read_bytes() == text.encode("utf-8"):
        return
    if (path.exists() or path.is_symlink()) and not forcing():
        raise UserError(f"{path}: exists and differs from the script to write; not overwriting it "
                        f"(move it away, or pass --force to replace it)")
    check_replaceable_file(path, text)


def emit(params, nodes: int, gpus: int, params_path: str = "params.yaml", overrides: list[str] = (),
         out: Path = Path("slurm"), time_limit: str = "24:00:00", python: str = "python") -> dict:
    """Write out/train.sbatch and out/torchrun.sh; returns their paths and the command they run."""
    if nodes < 1 or gpus < 1:
        raise UserError(f"--emit-slurm {nodes} {gpus}: NODES and GPUS must be at least 1")
    if not re.fullmatch(r"[0-9][0-9:-]*", time_limit):
        raise UserError(f"time limit {time_limit!r}: expected SLURM's [days-]hours:minutes:seconds")
    overrides = train_overrides(params, nodes, gpus, list(overrides))
    out = Path(out)
    project = Path.cwd()
    files = {SBATCH: sbatch_script(project, str(params_path), overrides, nodes, gpus, time_limit, python),
             TORCHRUN: torchrun_script(project, str(params_path), overrides, nodes, gpus, python)}
    for name, text in files.items():
        check_overwrite(out / name, text)
    for name, text in files.items():
        atomic_write_text(out / name, text)
        (out / name).chmod(0o755)
    return {"sbatch": (out / SBATCH).as_posix(), "torchrun": (out / TORCHRUN).as_posix(),
            "command": f"{shlex.quote(python)} {train_args(str(params_path), overrides)}", "nodes": nodes,
            "gpus": gpus}
