"""The hand-off between two clones, with real git, DVC and make: the first clone's outputs go to the team's
default remote (a directory beside the clones), the second clone pulls the corpus, evaluation set, tokens,
model and report without the raw crawl (never pushed), and finds the main pipeline up to date.

The first clone is this project's tracked files with small stand-in outputs recorded by `dvc commit` (as
`dvc repro` would record them): the hand-off runs this project's own dvc.yaml, .dvc/config and Makefile.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline import team
from pipeline.stages import STAGES

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).parent.parent  # the project's .venv (make's commands come from it)


def sh(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{VENV / 'bin'}{os.pathsep}{os.environ['PATH']}",
           "GIT_AUTHOR_NAME": "A", "GIT_AUTHOR_EMAIL": "a@example.org", "GIT_COMMITTER_NAME": "A",
           "GIT_COMMITTER_EMAIL": "a@example.org"}
    env.pop("PYTHONPATH", None)  # each clone runs its own code
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if check:
        assert done.returncode == 0, f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


def make(target: str, cwd: Path, *variables: str) -> subprocess.CompletedProcess:
    # -o: the venv is the project's, already installed (a teammate's first `make` installs it)
    return sh(["make", "--no-print-directory", "-o", ".venv/.installed", target, *variables], cwd)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def first_clone(root: Path) -> Path:
    """This project's tracked files in a git repository of their own, with stand-in outputs recorded."""
    tracked = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True)
    for name in filter(None, tracked.stdout.split("\0")):
        if (ROOT / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, root / name)
    (root / ".venv").symlink_to(VENV)
    sh(["git", "init", "-q", "-b", "main"], root)
    sh(["git", "add", "-A"], root)
    sh(["git", "commit", "-qm", "project"], root)
    write(root / "data/sites/debian-handbook/index.html", "<p>the served site</p>\n")
    write(root / "data/crawl/documents/part-0.jsonl", '{"text": "raw page, personal data: alice@example.org"}\n')
    write(root / "data/crawl/stats.json", '{"stage": "crawl"}\n')
    write(root / "data/corpus/part-0.jsonl", '{"text": "prepared"}\n')
    write(root / "data/corpus/stats.json", '{"stage": "prepare"}\n')
    write(root / "data/evalset/meta.json", '{"stage": "evalset"}\n')
    write(root / "data/tokens/stats.json", '{"stage": "tokenize"}\n')
    write(root / "models/gpt/model.safetensors", "weights\n")
    write(root / "models/checkpoints/last.ckpt", "scratch\n")
    write(root / "models/hf/config.json", '{"model_type": "gpt2"}\n')
    write(root / "models/quality/stats.json", '{"stage": "quality"}\n')
    if not (root / "tasks.json").is_file():
        write(root / "tasks.json", "{}\n")
    write(root / "report.html", "<html>report</html>\n")
    sh(["dvc", "commit", "-f", "-q"], root)
    sh(["git", "add", "dvc.lock", "metrics.json", "tasks.json"], root)
    sh(["git", "commit", "-qm", "a run of the pipeline"], root)
    return root


@pytest.mark.slow  # about 40 s on 2 busy cores: a dozen git, DVC and make processes
def test_a_teammate_pulls_the_pushed_outputs_and_finds_the_pipeline_up_to_date(tmp_path: Path):
    alice = first_clone(tmp_path / "alice")
    # after a run, plain `dvc status` is the main pipeline's: not a line of the never-run fine-tuning stages
    assert sh(["dvc", "status"], alice).stdout.strip() == "Data and pipelines are up to date."
    assert "../../tokenmill-dvcstore" in (alice / ".dvc/config").read_text()  # beside the clones, not in one
    make("push", alice)
    store = tmp_path / "tokenmill-dvcstore"
    assert store.is_dir() and not (alice / ".dvcstore").exists()

    sh(["git", "clone", "-q", str(alice), "bob"], tmp_path)
    bob = tmp_path / "bob"
    (bob / ".venv").symlink_to(VENV)
    make("pull", bob)  # exits 0: nothing of the crawl nor of examples/finetune is asked for
    for path in ("data/corpus/part-0.jsonl", "data/evalset/meta.json", "data/tokens/stats.json",
                 "models/gpt/model.safetensors", "models/hf/config.json", "models/quality/stats.json",
                 "report.html"):
        assert (bob / path).read_text() == (alice / path).read_text(), path
    assert not (bob / "data/crawl").exists() and not (bob / "data/sites").exists()
    assert not any(b"alice@example.org" in p.read_bytes() for p in store.rglob("*") if p.is_file()), \
        "the raw crawl never reaches the remote"

    status = make("status", bob).stdout
    assert "up to date" in status and "finetune" not in status, status
    assert "changed" not in status and "deleted:" not in status, status
    again = sh(["dvc", "repro", "--allow-missing"], bob)  # what docs/operations.md has a teammate type
    assert "Running stage" not in again.stdout and "up to date" in again.stdout, again.stdout
    assert sh(["git", "status", "--porcelain"], bob).stdout == "", "nothing rerun, dvc.lock as pulled"
    # fine-tuning's first stage on the pulled model (a dry run of its whole file stops at the second stage,
    # whose input the first has not made)
    finetune = sh(["dvc", "repro", "--allow-missing", "--dry", "finetune-sft"], bob / "examples/finetune").stdout
    assert "Running stage 'finetune-sft'" in finetune, finetune
    assert "Running stage 'crawl'" not in finetune and "Running stage 'train'" not in finetune, finetune

    # The fine-tuning example's models (a DVC project of its own) go the same way: pushed by the first
    # clone (`make finetune` ends with `dvc push` there), pulled by the second, up to date there.
    example = "examples/finetune"
    for stage in ("sft", "reward", "dpo", "ppo", "grpo"):
        write(alice / example / "models" / stage / "stats.json", f'{{"stage": "finetune-{stage}"}}\n')
    sh(["dvc", "commit", "-f", "-q"], alice / example)
    sh(["dvc", "push", "-q"], alice / example)
    sh(["git", "add", f"{example}/dvc.lock"], alice)
    sh(["git", "commit", "-qm", "fine-tuned"], alice)
    sh(["git", "pull", "-q"], bob)
    sh(["dvc", "pull", "-q"], bob / example)
    for stage in ("sft", "reward", "dpo", "ppo", "grpo"):
        path = f"{example}/models/{stage}/stats.json"
        assert (bob / path).read_text() == (alice / path).read_text(), path
    assert sh(["dvc", "status"], bob / example).stdout.strip() == "Data and pipelines are up to date."
    assert "Running stage" not in sh(["dvc", "repro"], bob / example).stdout

    # A change downstream of the pulled data reruns that stage, and nothing before it (a dry run stops there:
    # the report follows when the metrics it made differ).
    params = yaml.safe_load((bob / "params.yaml").read_text(encoding="utf-8"))
    params["evaluate"]["max_new_tokens"] = int(params["evaluate"]["max_new_tokens"]) + 1
    (bob / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    dry = sh(["dvc", "repro", "--allow-missing", "--dry"], bob).stdout
    assert "Running stage 'evaluate'" in dry, dry
    assert not any(f"Running stage '{name}'" in dry for name in ("crawl", "prepare", "classifier", "evalset", "tokenize",
                                                                 "train"))
    assert "changed" in make("status", bob).stdout

    # A file under sources/ that crawl.sources does not name is no change to the crawl.
    write(alice / "sources/elsewhere.yaml", "name: elsewhere\nstart_urls: [https://example.org/]\n")
    assert "crawl" not in sh(["dvc", "status", "crawl"], alice).stdout
    assert "up to date" in make("status", alice).stdout


def test_make_remote_names_the_teams_remote_in_the_committed_config(tmp_path: Path):
    project = tmp_path / "project"
    for name in (".dvc/config", ".dvc/.gitignore", ".dvcignore", "Makefile", "examples/finetune/.dvc/config",
                 "examples/finetune/.dvc/.gitignore", "examples/finetune/.dvcignore"):
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, project / name)
    (project / ".venv").symlink_to(VENV)
    sh(["git", "init", "-q"], project)
    out = make("remote", project, "URL=s3://team-bucket/tokenmill").stdout
    assert "commit .dvc/config" in out and "s3://team-bucket/tokenmill" in out
    config = (project / ".dvc/config").read_text()
    assert "url = s3://team-bucket/tokenmill" in config and "remote = team" in config
    assert "../../tokenmill-dvcstore" not in config
    finetune = (project / "examples/finetune/.dvc/config").read_text()  # the example's DVC project too
    assert "url = s3://team-bucket/tokenmill" in finetune and "cache" in finetune

    make("remote", project, "URL=../shared/store")  # a path, relative to the project root as typed
    store = (tmp_path / "shared/store").resolve()
    for config in (project / ".dvc", project / "examples/finetune/.dvc"):
        url = next(line.split("=", 1)[1].strip() for line in (config / "config").read_text().splitlines()
                   if line.strip().startswith("url"))
        assert (config / url).resolve() == store, (config, url)


def test_pull_and_status_cover_the_stages_that_push_and_dvc_plots_are_not_committed():
    assert team.pulled() == ["prepare", "classifier", "evalset", "tokenize", "train", "export", "report"]
    crawl = next(s for s in STAGES if s.name == "crawl")
    assert not any(out.pushed for out in crawl.outputs)
    ignored = subprocess.run(["git", "check-ignore", "-q", "dvc_plots/index.html"], cwd=ROOT)
    assert ignored.returncode == 0, "dvc plots show's output is git-ignored"


def test_the_crawl_depends_on_the_configured_sources_only_and_no_stage_on_unpushed_data(tmp_path: Path):
    from pipeline import dvcfile

    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"crawl": {"sources": ["docs", "elsewhere/site.yaml"]}}),
                                          encoding="utf-8")
    assert dvcfile.source_deps(tmp_path) == ["${paths.sources}/docs.yaml", "elsewhere/site.yaml"]
    declared = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    assert declared["crawl"]["deps"][:2] == ["${paths.sources}/debian-handbook.yaml", "${paths.sites}"]
    crawl_outputs = {out if isinstance(out, str) else next(iter(out)) for out in declared["crawl"]["outs"]}
    for name, entry in declared.items():
        if name not in ("crawl", "prepare"):  # prepare reads the crawl: a pulled clone never reruns it
            assert not any(dep.startswith(tuple(crawl_outputs)) for dep in entry["deps"]), name
    assert declared["train"]["outs"] == ["${paths.model}"], "checkpoints are scratch state, not a DVC output"
