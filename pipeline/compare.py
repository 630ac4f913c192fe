"""`tokenmill compare RUN_A RUN_B`: two MLflow runs side by side in one HTML file.

Params that differ, every metric of either run, the corpus version each trained on, and their loss
curves (train and validation loss histories from MLflow) in one plot embedded in the page.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from tokenmill.locations import without_credentials
from training.tracking import client
from tokenmill.errors import UserError
from tokenmill.stage import atomic_write_text

CURVES = ("train/loss", "val/loss")


def load_run(tracking, run_id: str) -> dict[str, Any]:
    mlflow_client = client(tracking)
    try:
        run = mlflow_client.get_run(run_id)
    except Exception:  # MlflowException: no such run in this store
        raise UserError(f"MLflow run {run_id!r} not found in {without_credentials(tracking.tracking_uri)}") from None
    curves = {name: [(m.step, m.value) for m in sorted(mlflow_client.get_metric_history(run_id, name),
                                                       key=lambda m: m.step)] for name in CURVES}
    return {"run_id": run_id, "name": run.info.run_name, "params": dict(run.data.params),
            "metrics": dict(run.data.metrics), "tags": dict(run.data.tags), "curves": curves}


def compare(tracking, run_a: str, run_b: str) -> dict[str, Any]:
    a, b = load_run(tracking, run_a), load_run(tracking, run_b)
    keys = sorted(set(a["params"]) | set(b["params"]))
    return {
        "runs": [a, b],
        "params_diff": {k: (a["params"].get(k), b["params"].get(k)) for k in keys
                        if a["params"].get(k) != b["params"].get(k)},
        "metrics": {k: (a["metrics"].get(k), b["metrics"].get(k))
                    for k in sorted(set(a["metrics"]) | set(b["metrics"]))},
        "corpus": [(r["tags"].get("corpus.version"), r["tags"].get("corpus.dvc_md5")) for r in (a, b)],
    }


def loss_plot_png(runs: list[dict[str, Any]]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for run, color in zip(runs, ("tab:blue", "tab:orange")):
        for name, style in zip(CURVES, ("-", "--")):
            points = run["curves"][name]
            if points:
                ax.plot(*zip(*points), style, color=color, label=f"{run['run_id'][:8]} {name}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    return f"{value:.5g}" if isinstance(value, float) else html.escape(str(value))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def to_html(found: dict[str, Any]) -> str:
    a, b = found["runs"]
    ids = [a["run_id"], b["run_id"]]
    png = base64.b64encode(loss_plot_png(found["runs"])).decode("ascii")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>tokenmill compare {ids[0][:8]} {ids[1][:8]}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin-bottom:1.5em}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}</style></head><body>
<h1>tokenmill: {html.escape(ids[0])} vs {html.escape(ids[1])}</h1>
<h2>Corpus versions</h2>
{_table(["", "corpus version", "DVC hash"], [[ids[i], *found["corpus"][i]] for i in range(2)])}
<h2>Metrics</h2>
{_table(["metric", ids[0], ids[1]], [[k, *v] for k, v in found["metrics"].items()])}
<h2>Params that differ</h2>
{_table(["param", ids[0], ids[1]], [[k, *v] for k, v in found["params_diff"].items()])}
<h2>Loss curves</h2>
<img alt="train and validation loss of both runs" src="data:image/png;base64,{png}">
</body></html>
"""


def write_comparison(tracking, run_a: str, run_b: str, out: Path) -> dict[str, Any]:
    found = compare(tracking, run_a, run_b)
    atomic_write_text(out, to_html(found))
    return {"out": Path(out).as_posix(), "params_differing": len(found["params_diff"]),
            **{f"{k} ({i})": v[i] for k, v in found["metrics"].items() if k.startswith("eval/") for i in (0, 1)
               if v[i] is not None}}
