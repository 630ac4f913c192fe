"""dvc.yaml, written from the stage table (pipeline/stages.py): `python -m pipeline.dvcfile` rewrites it, and
tests/pipeline/test_dvcfile.py fails when the committed file is not what the table gives.

A stage's code dependencies are the source files of the modules its entry points reach through imports
(pipeline/codegraph.py), plus the wiring every stage runs through: editing a module reruns exactly the
stages that run it. The crawl's source dependencies are the YAML files of params.yaml's crawl.sources
(a new file under sources/ changes nothing until a configured source names it): after editing that list,
rerun `python -m pipeline.dvcfile`.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import yaml

from pipeline import codegraph
from pipeline.stages import CRAWL_SOURCES, STAGES, WIRING, Stage

HEADER = """\
# Written by `python -m pipeline.dvcfile` from the stage table in pipeline/stages.py: edit that, not this.
# Each stage calls one `tokenmill` subcommand; paths and params come from params.yaml (${paths.*}), so
# `dvc repro` reruns only what a change touches. A stage's code deps are the modules it runs; the crawl's
# sources are params.yaml's crawl.sources (after editing that list, rerun `python -m pipeline.dvcfile`).
"""

# DVC's plots of the pipeline's outputs (`dvc plots show`).
PLOTS = """\
plots:
  - loss:
      title: Training and validation loss
      template: linear
      x: step
      y:
        models/gpt/history/train.csv: loss
        models/gpt/history/val.csv: loss
  - data/corpus/plots/removals.csv:
      title: Documents removed per reason
      template: bar_horizontal
      x: documents
      y: reason
  - data/corpus/plots/dedup_clusters.csv:
      title: Near-duplicate cluster sizes
      template: bar_horizontal
      x: clusters
      y: cluster_size
  - data/corpus/plots/languages.csv:
      title: Languages identified and kept
      template: bar_horizontal
      x: kept
      y: language
  - data/corpus/plots/pii.csv:
      title: PII replaced per type
      template: bar_horizontal
      x: replacements
      y: type
  - doc_lengths:
      title: Document lengths before and after prepare
      x: length_to
      y:
        data/corpus/plots/doc_lengths.csv: [before, after]
  - models/gpt/plots/loss.png
  - data/corpus/plots/doc_lengths.svg
  - data/corpus/plots/languages.svg
  - data/corpus/plots/pii.svg
  - data/corpus/plots/removals.svg
  - data/corpus/plots/dedup_clusters.svg
"""


def code_deps(stage: Stage, root: Path = codegraph.ROOT) -> list[str]:
    """The files of every module the stage's entry points reach, and of the wiring; empty packages left out."""
    files = {codegraph.module_file(m, root) for m in codegraph.reach(stage.code, root)}
    files |= {codegraph.module_file(m, root) for m in WIRING}
    return sorted(p.relative_to(root).as_posix() for p in files
                  if p is not None and (p.name != "__init__.py" or p.read_text(encoding="utf-8").strip()))


def source_deps(root: Path = codegraph.ROOT) -> list[str]:
    """The YAML file of every source in params.yaml's crawl.sources, as crawler.config.load_source finds it:
    a name is ${paths.sources}/NAME.yaml, a path (with a / or ending in .yaml/.yml) is itself."""
    params = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    names = [str(name) for name in params["crawl"]["sources"]]
    return [name if "/" in name or name.endswith((".yaml", ".yml")) else f"${{paths.sources}}/{name}.yaml"
            for name in names]


def stage_entry(stage: Stage, root: Path = codegraph.ROOT) -> dict:
    """The stage as dvc.yaml declares it."""
    tracked = [o for o in stage.outputs if o.tracked]
    outs = [{f"${{paths.{o.path}}}": dict(o.dvc)} if o.dvc else f"${{paths.{o.path}}}"
            for o in tracked if not o.metric]
    metrics = [{f"${{paths.{o.path}}}": dict(o.dvc)} for o in tracked if o.metric]
    reads = [dep for read in stage.reads for dep in (source_deps(root) if read == CRAWL_SOURCES else [read])]
    entry = {"cmd": stage.cmd, "deps": [*reads, *code_deps(stage, root)]}
    if stage.sections:
        entry["params"] = list(stage.sections)
    if outs:
        entry["outs"] = outs
    if metrics:
        entry["metrics"] = metrics
    return entry


def _comment(text: str, indent: str) -> str:
    return "".join(f"{indent}# {line}\n" for line in textwrap.wrap(text, 100 - len(indent)))


def render(root: Path = codegraph.ROOT) -> str:
    parts = [HEADER, "stages:\n"]
    for stage in STAGES:
        body = yaml.safe_dump({stage.name: stage_entry(stage, root)}, sort_keys=False, width=120)
        notes = "".join(_comment(f"{o.path}: {o.note}", "  ") for o in stage.outputs if o.note)
        parts.append(_comment(stage.note, "  ") + notes + textwrap.indent(body, "  ") + "\n")
    return "".join(parts) + PLOTS


def main(argv: list[str] | None = None) -> int:
    out = Path(argv[0]) if argv else codegraph.ROOT / "dvc.yaml"
    out.write_text(render(), encoding="utf-8")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
