"""The stage wiring (pipeline/stages.py) shared by the CLI and the Prefect tasks."""

import shutil
from pathlib import Path

import yaml

from pipeline import stages
from pipeline.params import load_params
from tokenmill.documents import read_documents


def served_source(directory: Path, name: str, site: Path) -> None:
    (directory / f"{name}.yaml").write_text(yaml.safe_dump({
        "name": name, "serve": str(site), "allow_private": True, "start_urls": ["/en/index.html"],
        "max_pages": 20, "max_depth": 3, "delay_s": 0, "concurrency": 4}), encoding="utf-8")


def texts(crawl: Path) -> dict[tuple[str, str], str]:
    return {(d.meta["source"], d.meta["url"].split("/", 3)[3]): d.text for d in read_documents(crawl / "documents")}


def test_crawling_one_source_refreshes_it_and_keeps_the_others(tiny_site: Path, tmp_path: Path, monkeypatch):
    project = tmp_path / "project"
    (project / "sources").mkdir(parents=True)
    for name in ("alpha", "beta"):
        shutil.copytree(tiny_site, tmp_path / name)
        served_source(project / "sources", name, tmp_path / name)
    (project / "params.yaml").write_text(yaml.safe_dump({"crawl": {"sources": ["alpha", "beta"]}}), encoding="utf-8")
    monkeypatch.chdir(project)
    params = load_params("params.yaml")

    stages.crawl(params)
    before = texts(project / params.paths.crawl)
    for name in ("alpha", "beta"):
        page = tmp_path / name / "en" / "page-1.html"
        page.write_text(page.read_text(encoding="utf-8").replace("<p>", "<p>Revised today. ", 1), encoding="utf-8")

    stats = stages.crawl(params, ["alpha"])  # `tokenmill crawl alpha`, the crawl-alpha deployment

    after = texts(project / params.paths.crawl)
    assert set(after) == set(before) and {source for source, _ in after} == {"alpha", "beta"}
    assert "Revised today." in after["alpha", "en/page-1.html"]
    assert {k: v for k, v in after.items() if k[0] == "beta"} == {k: v for k, v in before.items() if k[0] == "beta"}
    assert stats["sources"]["beta"]["carried_over"] and not stats["sources"]["alpha"].get("carried_over")
