"""`tokenmill reproduce RUN`: train a model again from what its MLflow run records, and say whether it
came out the same.

A training run records the git commit it ran at (tag mlflow.source.git.commit), the DVC hash of its
corpus (tag corpus.dvc_md5), its train/model params, the evaluation set it was measured on (params
tokens.eval_set.*), its CPU thread count (param cpu_threads), its weights and tokenizer (artifacts
model.pt, tokenizer.json) and its validation bits-per-byte (metric eval/bits_per_byte). Reproducing
it means:

1. that commit checked out in a scratch git worktree (`--out`, default runs/reproduce-<run>);
2. the corpus and the evaluation set restored there by their DVC hashes (the run's corpus hash; the
   evaluation set of that commit's dvc.lock), from this checkout's DVC cache, else the DVC remote;
3. tokenize, train and evaluate run there with that commit's code and params.yaml, plus the params in
   which the run differed from it (its --set overrides), with the same threads and no tracking;
4. the new tokenizer, weights and bits-per-byte compared with the recorded ones: on the CPU with the
   same thread count the weights are bitwise equal; elsewhere bits-per-byte within `TOLERANCE`.

The verdict and every figure go to `<out>/reproduce.json`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from tokenmill.errors import UserError
from tokenmill.stage import write_json

TOLERANCE = 1e-4  # relative, on bits-per-byte, where the weights are not bitwise equal (another machine)
WORK = ".reproduce"  # inside the scratch worktree: restored data and the new outputs
COMPARED = ("train.", "model.")  # logged params that decide the weights (tokens.* describe the data)


@dataclass
class Recorded:
    """What a training run recorded about how it was made."""

    run_id: str
    commit: str
    corpus_md5: str
    eval_set_digest: str | None
    cpu_threads: int | None
    bits_per_byte: float | None
    params: dict[str, str] = field(default_factory=dict)  # train.* and model.* as MLflow keeps them (text)


def run_id_of(spec: str, tracking) -> str:
    """A run id, runs:/ID or models:/NAME@ALIAS | models:/NAME/VERSION -> the run id."""
    if spec.startswith("models:/"):
        from training.registry import model_uri_run_id

        return model_uri_run_id(tracking, spec)
    return spec[len("runs:/"):].split("/")[0] if spec.startswith("runs:/") else spec


def recorded(spec: str, tracking) -> Recorded:
    from training import tracking as mlf

    run_id = run_id_of(spec, tracking)
    if mlf.existing_run(tracking, run_id) is None:
        raise UserError(f"{spec}: no such MLflow run in {tracking.tracking_uri}")
    run = mlf.client(tracking).get_run(run_id).data
    commit = run.tags.get(mlf.GIT_COMMIT_TAG)
    corpus = run.tags.get("corpus.dvc_md5")
    missing = [name for name, value in (("git commit (tag mlflow.source.git.commit)", commit),
                                        ("corpus hash (tag corpus.dvc_md5)", corpus)) if not value]
    if missing:
        raise UserError(f"run {run_id}: records no {' and no '.join(missing)}: it cannot be reproduced")
    threads = run.params.get("cpu_threads")
    return Recorded(run_id, commit, corpus, run.params.get("tokens.eval_set.digest"),
                    int(threads) if threads and threads.isdigit() else None,
                    run.metrics.get("eval/bits_per_byte"),
                    {k: v for k, v in run.params.items() if k.startswith(COMPARED)})


def check_out(commit: str, scratch: Path) -> None:
    """`commit` into a detached git worktree at `scratch` (of the repository in the working directory)."""
    known = subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], capture_output=True)
    if known.returncode != 0:
        raise UserError(f"commit {commit} is not in this repository (git fetch it first)")
    made = subprocess.run(["git", "worktree", "add", "--detach", str(scratch), commit], capture_output=True, text=True)
    if made.returncode != 0:
        raise UserError(f"git worktree add {scratch} {commit}: {made.stderr.strip().splitlines()[-1]}")


def restore(scratch: Path, name: str, md5: str, cache: Path) -> Path:
    """The directory whose DVC hash is `md5`, as `<scratch>/.reproduce/<name>`: a .dvc file naming it,
    then `dvc pull` (this checkout's cache first, the remote of that commit for what it lacks)."""
    work = scratch / WORK
    work.mkdir(exist_ok=True)
    (work / f"{name}.dvc").write_text(yaml.safe_dump({"outs": [{"md5": md5, "hash": "md5", "path": name}]}))
    _dvc(scratch, "config", "--local", "cache.dir", str(cache.resolve()))
    _dvc(scratch, "pull", "-q", f"{WORK}/{name}.dvc", what=f"{name} {md5} (not in {cache} nor the DVC remote)")
    return work / name


def _dvc(cwd: Path, *args: str, what: str = "") -> None:
    done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        detail = (done.stderr.strip() or done.stdout.strip()).splitlines()
        raise UserError(f"dvc {args[0]} {what}: {detail[-1] if detail else 'failed'}".replace("  ", " "))


def locked_evalset_md5(scratch: Path) -> str | None:
    """The evaluation set's hash in that commit's dvc.lock (None: it had none)."""
    lock = scratch / "dvc.lock"
    stages = (yaml.safe_load(lock.read_text(encoding="utf-8")) or {}).get("stages", {}) if lock.is_file() else {}
    outs = stages.get("evalset", {}).get("outs") or []
    return outs[0].get("md5") if outs else None


def overrides(scratch: Path, recorded_params: dict[str, str]) -> list[str]:
    """`--set` values for the params in which the run differed from that commit's params.yaml."""
    show = ("import json; from pipeline.params import load_params; from tokenmill.config import flatten; "
            "p = load_params('params.yaml'); print(json.dumps(flatten({'train': p.train, 'model': p.model}), default=str))")
    current = json.loads(_python(scratch, ["-c", show]).stdout)
    sets = []
    for key, text in sorted(recorded_params.items()):
        if key in current and str(current[key]) != text:
            sets.append(f"{key}={'null' if text == 'None' else text}")
    return sets


def _python(scratch: Path, args: list[str], threads: int | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(scratch.resolve())}
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    done = subprocess.run([sys.executable, *args], cwd=scratch, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise UserError(f"reproduce: `{' '.join(args[:3])}` failed in {scratch}: {lines[-1] if lines else done.returncode}")
    return done


def rerun(scratch: Path, corpus: Path, evalset: Path | None, sets: list[str], threads: int | None) -> Path:
    """tokenize, train and evaluate at that commit into <scratch>/.reproduce/; returns the metrics file."""
    work = Path(WORK)
    flags = [arg for value in [*sets, "tracking.enabled=false"] for arg in ("--set", value)]
    cli = ["-m", "pipeline.cli"]
    _python(scratch, [*cli, "tokenize", "--in", str(corpus.relative_to(scratch)), "--out", str(work / "tokens"),
                      "--eval-set", str(evalset.relative_to(scratch)) if evalset else "", *flags], threads)
    _python(scratch, [*cli, "train", "--tokens", str(work / "tokens"), "--out", str(work / "model"),
                      "--checkpoints", str(work / "checkpoints"), *flags], threads)
    _python(scratch, [*cli, "evaluate", "--model", str(work / "model"), "--tokens", str(work / "tokens"),
                      "--out", str(work / "metrics.json"), *flags], threads)
    return scratch / work / "metrics.json"


def compare(run: Recorded, scratch: Path, tracking) -> dict:
    """The new tokenizer, weights and bits-per-byte against the run's."""
    import tempfile

    import torch

    from training import tracking as mlf
    from training.checkpoints import load_checkpoint

    new = scratch / WORK
    with tempfile.TemporaryDirectory(prefix="tokenmill-reproduce-") as tmp:
        client = mlf.client(tracking)
        old_model = Path(client.download_artifacts(run.run_id, "model.pt", tmp))
        old_tokenizer = Path(client.download_artifacts(run.run_id, "tokenizer.json", tmp))
        old = load_checkpoint(old_model)["state_dict"]
        fresh = load_checkpoint(new / "model" / "model.pt")["state_dict"]
        same_tokenizer = old_tokenizer.read_bytes() == (new / "tokens" / "tokenizer.json").read_bytes()
    same_shapes = old.keys() == fresh.keys() and all(old[k].shape == fresh[k].shape for k in old)
    max_diff = max((float((old[k].float() - fresh[k].float()).abs().max()) for k in old), default=0.0) \
        if same_shapes else None
    bitwise = same_shapes and all(torch.equal(old[k], fresh[k]) for k in old)
    metrics = json.loads((new / "metrics.json").read_text(encoding="utf-8"))
    bpb = metrics.get("bits_per_byte")
    close = (run.bits_per_byte is not None and bpb is not None
             and abs(bpb - run.bits_per_byte) <= TOLERANCE * abs(run.bits_per_byte))
    return {"tokenizer_identical": same_tokenizer, "weights_bitwise_equal": bitwise, "weights_max_abs_diff": max_diff,
            "bits_per_byte": {"recorded": run.bits_per_byte, "reproduced": bpb},
            "eval_set": {"recorded": run.eval_set_digest, "reproduced": metrics.get("eval_set")},
            "reproduced": bool(bitwise or close) and same_tokenizer}


def reproduce(spec: str, tracking, out: Path | None = None) -> dict:
    """Reproduce the training run behind `spec` (see the module docstring); the verdict, also in <out>/reproduce.json."""
    run = recorded(spec, tracking)
    scratch = Path(out or Path("runs") / f"reproduce-{run.run_id[:12]}")
    if scratch.exists():
        raise UserError(f"{scratch}: exists; remove it (git worktree remove --force {scratch}) or choose --out")
    check_out(run.commit, scratch)
    corpus = restore(scratch, "corpus", run.corpus_md5, Path(".dvc/cache"))
    evalset_md5 = locked_evalset_md5(scratch) if run.eval_set_digest else None
    evalset = restore(scratch, "evalset", evalset_md5, Path(".dvc/cache")) if evalset_md5 else None
    sets = overrides(scratch, run.params)
    rerun(scratch, corpus, evalset, sets, run.cpu_threads)
    result = {"run_id": run.run_id, "commit": run.commit, "corpus_md5": run.corpus_md5, "overrides": sets,
              "cpu_threads": run.cpu_threads, "worktree": str(scratch), **compare(run, scratch, tracking),
              "recorded": asdict(run)}
    write_json(scratch / WORK / "reproduce.json", result)
    return result


def add_arguments(p) -> None:
    p.add_argument("run", metavar="RUN", help="an MLflow run id, runs:/ID, models:/NAME@ALIAS or models:/NAME/VERSION")
    p.add_argument("--out", type=Path, help="the scratch worktree (default: runs/reproduce-<run>)")


def run(args, params) -> dict:
    result = reproduce(args.run, params.tracking, args.out)
    bpb = result["bits_per_byte"]
    verdict = ("reproduced: weights bitwise equal" if result["weights_bitwise_equal"]
               else "reproduced within tolerance" if result["reproduced"] else "NOT reproduced")
    print(f"{verdict}; bits per byte recorded {bpb['recorded']} reproduced {bpb['reproduced']}; "
          f"tokenizer {'identical' if result['tokenizer_identical'] else 'different'} "
          f"({result['worktree']}/{WORK}/reproduce.json)", file=sys.stderr)
    if not result["reproduced"]:
        raise SystemExit(1)  # not a user's mistake (exit 2) but a finding: the figures are in reproduce.json
    return result
