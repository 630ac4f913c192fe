"""`tokenmill status`: the sources and their last crawl, the corpus versions, the champion and its figures."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pipeline import champion, corpus
from tokenmill.errors import UserError


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def sources(params) -> list[dict[str, Any]]:
    """Each configured source with its last crawl (when the crawl output was written, pages, documents)."""
    stats_file = Path(params.paths.crawl) / "stats.json"
    stats = _read_json(stats_file)
    when = (datetime.fromtimestamp(stats_file.stat().st_mtime, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            if stats else None)
    found = []
    for name in params.crawl.sources:
        crawled = (stats.get("sources") or {}).get(name)
        found.append({"source": name, "last_crawl": when if crawled else None,
                      "pages": crawled.get("pages_fetched") if crawled else None,
                      "documents": crawled.get("documents") if crawled else None})
    return found


def status(params) -> dict[str, Any]:
    try:
        versions = corpus.versions(params)
    except UserError:  # not a git repository: no versions to list
        versions = []
    best = champion.champion(params.tracking) if params.tracking.enabled else None
    return {
        "sources": sources(params),
        "corpus_versions": [{"version": v.name, "documents": v.documents, "tokens": v.tokens, "md5": v.md5,
                             "runs": v.runs} for v in versions],
        "champion": None if best is None else {
            "version": best["version"], "run_id": best["run_id"], "corpus_version": best["tags"].get("corpus.version"),
            "corpus_md5": best["tags"].get("corpus.dvc_md5"),
            "metrics": {k: v for k, v in sorted(best["metrics"].items()) if k.startswith("eval/")}},
    }


def format_status(found: dict[str, Any]) -> str:
    lines = ["sources"]
    for s in found["sources"]:
        crawl = (f"last crawl {s['last_crawl']}: {s['pages']} pages, {s['documents']} documents"
                 if s["last_crawl"] else "not crawled yet")
        lines.append(f"  {s['source']:<24} {crawl}")
    lines += ["", "corpus versions"]
    lines += [f"  {v['version']:<12} {v['documents'] if v['documents'] is not None else '-':>9} documents  "
              f"{v['tokens'] if v['tokens'] is not None else '-':>10} tokens  {v['md5']}  runs: {len(v['runs'])}"
              for v in found["corpus_versions"]] or ["  none yet"]
    lines += ["", "champion"]
    best = found["champion"]
    if best is None:
        lines.append("  none yet (evaluate's promotion gate makes the first registered model the champion)")
    else:
        lines.append(f"  version {best['version']} (MLflow run {best['run_id']}) on "
                     f"{best['corpus_version'] or best['corpus_md5'] or '?'}")
        lines += [f"  {key:<22} {value:.4f}" for key, value in best["metrics"].items()]
    return "\n".join(lines)
