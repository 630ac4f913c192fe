"""The sources/ directory as data: list the sources (`tokenmill sources list`) and check source files
(`tokenmill sources validate [FILE ...]`), reporting every problem on a line of its own."""

from __future__ import annotations

import dataclasses
import json
import typing
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from crawler.config import missing_web_keys, Source, available_sources, load_source
from tokenmill.config import coerce, load_yaml
from tokenmill.errors import ConfigError, UserError


def source_files(sources_dir: Path) -> list[Path]:
    return sorted(Path(sources_dir).glob("*.yaml"))


def validate_file(path: Path) -> list[str]:
    """Every problem of one source file, each a line that names the file and key."""
    try:
        data = load_yaml(path)
    except ConfigError as exc:
        return [str(exc)]
    where = str(path)
    hints = typing.get_type_hints(Source)
    fields = {f.name: f for f in dataclasses.fields(Source)}
    errors = [f"{where}: unknown key '{key}' (known: {', '.join(sorted(fields))})" for key in sorted(set(data) - set(fields))]
    errors += [f"{where}: missing required key '{name}'" for name, f in fields.items()
               if name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    errors += [f"{where}: missing required key '{name}'" for name in missing_web_keys(data) if name not in data]
    for key in sorted(set(data) & set(fields)):
        try:
            coerce(hints[key], data[key], f"{where}: {key}")
        except ConfigError as exc:
            errors.append(str(exc))
    if not errors:
        values = {key: coerce(hints[key], value, f"{where}: {key}") for key, value in data.items()}
        source = object.__new__(Source)  # the checks of Source, all of them, without stopping at the first
        for name, f in fields.items():
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            setattr(source, name, values.get(name, default))
        errors += [f"{where}: {problem}" for problem in source.problems()]
        if not errors:
            if source.name != path.stem:
                errors.append(f"{where}: name: '{source.name}' differs from the file name; "
                              f"`tokenmill crawl {path.stem}` finds it by the file name")
    return errors


def validate(paths: list[Path]) -> list[str]:
    errors = []
    for path in paths:
        if not path.is_file():
            errors.append(f"{path}: file not found")
        else:
            errors += validate_file(path)
    return errors


def list_sources(sources_dir: Path, crawl_dir: Path) -> list[dict[str, Any]]:
    """Name, start URLs, budget and last crawl (from the crawl output's stats.json) of each source."""
    last = last_crawl(Path(crawl_dir))
    rows = []
    for name in available_sources(sources_dir):
        try:
            source = load_source(name, Path(sources_dir))
        except UserError as exc:
            rows.append({"name": name, "error": str(exc)})
            continue
        rows.append({"name": source.name, "start_urls": source.start_urls, "max_pages": source.max_pages,
                     "max_depth": source.max_depth, "last_crawl": last.get(source.name),
                     **({"warc": source.warc} if source.warc else {})})
    return rows


def last_crawl(crawl_dir: Path) -> dict[str, str]:
    """Source name -> 'YYYY-MM-DD HH:MM UTC, N documents' from the last finished crawl into crawl_dir."""
    stats_file = crawl_dir / "stats.json"
    try:
        stats = json.loads(stats_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    when = datetime.fromtimestamp(stats_file.stat().st_mtime, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return {name: f"{when}, {figures.get('documents', 0)} documents"
            for name, figures in stats.get("sources", {}).items()}


def format_rows(rows: list[dict[str, Any]]) -> str:
    lines = []
    for row in rows:
        if "error" in row:
            lines.append(f"{row['name']}  INVALID: {row['error']}")
            continue
        if row.get("warc"):  # a source of web archives (crawler/ingest.py)
            archives = ", ".join(row["warc"][:3]) + (f" (+{len(row['warc']) - 3})" if len(row["warc"]) > 3 else "")
            lines.append(f"{row['name']}  archives: {archives}  last crawl: {row['last_crawl'] or 'never'}")
            continue
        starts = ", ".join(row["start_urls"][:3]) + (f" (+{len(row['start_urls']) - 3})" if len(row["start_urls"]) > 3 else "")
        lines.append(f"{row['name']}  {starts}  max_pages={row['max_pages']} max_depth={row['max_depth']}  "
                     f"last crawl: {row['last_crawl'] or 'never'}")
    return "\n".join(lines)
