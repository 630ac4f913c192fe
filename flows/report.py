"""A stage's summary in a flow run: one log line, and a markdown table as a Prefect artifact."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact


def figures(stats: dict[str, Any]) -> dict[str, Any]:
    """The scalar figures of a stage's stats, plus removals by reason (`removed.<reason>`)."""
    rows = {key: value for key, value in stats.items()
            if (isinstance(value, (int, float, str)) or value is None) and key != "stage"}
    for reason, count in (stats.get("removed") or {}).items():
        rows[f"removed.{reason}"] = count
    return rows


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value).replace("|", "\\|")


def markdown_table(stage: str, stats: dict[str, Any], note: str = "") -> str:
    lines = [f"### {stage}", "", note, "", "| figure | value |", "|---|---|"] if note else \
        [f"### {stage}", "", "| figure | value |", "|---|---|"]
    lines += [f"| {key} | {_cell(value)} |" for key, value in figures(stats).items()]
    return "\n".join(lines) + "\n"


def report_stage(stage: str, stats: dict[str, Any] | None, note: str = "") -> None:
    """Log the stage's figures on one line and publish them as the artifact `<stage>-summary`."""
    stats = stats or {}
    line = " ".join(f"{key}={_cell(value)}" for key, value in figures(stats).items())
    get_run_logger().info("%s: %s%s", stage, note + (" " if note and line else ""), line)
    create_markdown_artifact(markdown=markdown_table(stage, stats, note), key=f"{stage}-summary",
                             description=f"{stage} stage figures")
