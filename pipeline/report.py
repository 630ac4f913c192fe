"""The report card: one run's story on one HTML page, plots embedded as PNGs.

Read from the run's outputs only (the paths its params name, see pipeline/summary.py): the data
funnel per stage from each stage's stats.json, filters, dedup, PII, languages, tokenizer fertility,
loss curves, evaluation (per language when the metrics have it) and samples. The page is a single
self-contained file (no scripts, no network), written atomically and logged to the run's MLflow run
as `report/report.html`. Same outputs in, same bytes out.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from pipeline.summary import read_json, run_label
from tokenmill.locations import without_credentials
from tokenmill.errors import UserError
from tokenmill.stage import atomic_write_text

if TYPE_CHECKING:
    from pipeline.params import Params

MARKER = '<meta name="generator" content="tokenmill report">'
MLFLOW_UI = "http://127.0.0.1:5000"  # `make ui`


def write_report(params: Params, out: Path) -> dict:
    """Write the report card for the run `params` names to `out`; log it to the run's MLflow run."""
    paths = params.paths
    crawl = read_json(Path(paths.crawl) / "stats.json") or {}
    corpus = read_json(Path(paths.corpus) / "stats.json") or {}
    tokens = read_json(Path(paths.tokens) / "stats.json") or {}
    model = Path(paths.model)
    train = read_json(model / "stats.json") or {}
    metrics = read_json(Path(paths.metrics)) or {}
    samples = read_json(Path(paths.metrics).with_name("samples.json")) or []
    run = read_json(model / "run.json") or {}
    if not (crawl or corpus or tokens or train or metrics):
        raise UserError(f"nothing to report: none of {paths.crawl}, {paths.corpus}, {paths.tokens}, {paths.model}, "
                        f"{paths.metrics} has a stage's output yet; run `dvc repro` (or a stage) first")
    sections = [
        _header(params, run, read_json(model / "config.json") or {}),
        _funnel(crawl, corpus, tokens),
        _filters(corpus),
        _dedup_pii_languages(corpus, _kept_languages(Path(paths.corpus))),
        _tokenizer(tokens),
        _training(train, model),
        _evaluation({k: v for k, v in metrics.items() if not k.startswith("task/")}),
        _tasks({**metrics, **(read_json(Path(paths.tasks)) or {})},
               read_json(Path(paths.tasks).with_name("harness.json")) or {}),
        _samples(samples),
    ]
    atomic_write_text(out, _page(f"tokenmill report card: {params.run or 'versioned run'}", sections))
    logged = _log_to_mlflow(params, run, out)
    return {"report": out.as_posix(), "mlflow_run": logged}


# --- sections ------------------------------------------------------------------------------------

def _header(params: Params, run: dict, trained: dict) -> str:
    rows = [("run", run_label(params))]
    if run.get("run_id"):
        url = f"{MLFLOW_UI}/#/experiments/{run.get('experiment_id', '')}/runs/{run['run_id']}"
        rows.append(("MLflow run", f'<a href="{_e(url)}">{_e(run["run_id"])}</a> '
                                   f'(experiment {_e(run.get("experiment", params.tracking.experiment))}; '
                                   f'open with <code>make ui</code>)'))
    corpus_version = _corpus_version(params)
    if corpus_version:
        rows.append(("corpus version", f"<code>{_e(corpus_version)}</code> (DVC hash in dvc.lock)"))
    if trained:  # what the model was trained with (its config.json), not what params say now
        shape, config = trained.get("model", {}), trained.get("train", {})
        rows.append(("model", _e(f"preset {shape.get('preset')} ({shape.get('n_layer')} layers, {shape.get('n_embd')} "
                                 f"wide, context {shape.get('block_size')}), {trained.get('steps')} steps, batch "
                                 f"{config.get('batch_size')}, lr {config.get('lr')}, trained on {trained.get('tokens')}")))
    return "<h1>tokenmill report card</h1>" + _table(["", ""], rows, raw=True, head=False)


def _funnel(crawl: dict, corpus: dict, tokens: dict) -> str:
    stages: list[tuple[str, Any, Any]] = []
    if crawl:
        stages.append(("crawl: pages fetched", crawl.get("pages_fetched"), crawl.get("bytes_in")))
        stages.append(("crawl: documents extracted", crawl.get("documents_out"), crawl.get("bytes_out")))
    per_step = corpus.get("per_step", {})
    for step in corpus.get("steps", []):
        if step in per_step:
            stages.append((f"prepare: after {step}", per_step[step].get("documents_out"), None))
    if corpus and not per_step:
        stages.append(("prepare: kept", corpus.get("documents_out"), corpus.get("bytes_out")))
    elif corpus:
        stages[-1] = (stages[-1][0], stages[-1][1], corpus.get("bytes_out"))
    if tokens:
        splits = tokens.get("splits", {})
        tokens_total = sum(s.get("tokens", 0) for s in splits.values())
        stages.append((f"tokenize: documents ({tokens_total:,} tokens)", tokens.get("documents_out"),
                       tokens.get("bytes_in")))
    if not stages:
        return _section("Data funnel", "<p>No stage output yet.</p>")
    rows = [(name, _n(docs), _n(nbytes)) for name, docs, nbytes in stages]
    plot = _barh([name for name, _, _ in stages], [docs or 0 for _, docs, _ in stages], "documents",
                 "Documents after each stage")
    return _section("Data funnel", plot + _table(["stage", "documents", "bytes"], rows))


def _filters(corpus: dict) -> str:
    if not corpus:
        return ""
    per_step = corpus.get("per_step", {})
    rows = [(step, _n(s.get("documents_in")), _n(s.get("documents_out")),
             ", ".join(f"{k}: {v}" for k, v in sorted(s.get("removed", {}).items())) or "-",
             _n(s.get("changed")) if "changed" in s else "-")
            for step in corpus.get("steps", []) if (s := per_step.get(step)) is not None]
    removed = corpus.get("removed", {})
    plot = _barh(list(removed), list(removed.values()), "documents", "Documents removed per reason") if removed else ""
    body = plot + _table(["step", "in", "out", "removed (reason: documents)", "changed"], rows)
    body += f"<p>Removed documents are kept with their reason under <code>&lt;corpus&gt;/removed/</code>.</p>"
    return _section("Filters", body)


def _dedup_pii_languages(corpus: dict, kept: dict[str, tuple[int, int]] | None) -> str:
    """`kept`: language -> (documents identified before filtering, documents kept), from the corpus's
    plots/languages.csv; stats.json's `languages` alone counts what the language step identified."""
    if not corpus:
        return ""
    clusters = corpus.get("dedup_clusters", {})
    dedup_rows = [(method, _n(c.get("clusters")),
                   ", ".join(f"{size}×{count}" for size, count in sorted(c.get("sizes", {}).items(),
                                                                       key=lambda kv: int(kv[0]))) or "-")
                  for method, c in clusters.items()]
    pii = corpus.get("pii_replaced", {})
    body = "<h3>Deduplication</h3>" + _table(["method", "clusters", "cluster size × count"], dedup_rows)
    body += "<h3>PII replaced</h3>" + _table(["kind", "replacements"], [(k, _n(v)) for k, v in pii.items()])
    if kept is None:  # a corpus without its plots: what was identified is all there is to show
        identified = corpus.get("languages", {})
        body += "<h3>Languages identified (before filtering)</h3>" + _table(
            ["language", "documents"], [(k, _n(v)) for k, v in sorted(identified.items(), key=_by_count)])
        return _section("Dedup, PII and languages", body)
    rows = sorted(((lang, n_kept, n_identified) for lang, (n_identified, n_kept) in kept.items() if n_kept),
                  key=lambda r: (-r[1], r[0]))
    body += "<h3>Languages kept</h3>" + _table(["language", "documents kept", "identified before filtering"],
                                               [(lang, _n(k), _n(i)) for lang, k, i in rows])
    dropped = sorted(((lang, i) for lang, (i, k) in kept.items() if not k and i), key=_by_count)
    if dropped:
        body += ("<p>Identified before filtering, none kept: "
                 + ", ".join(f"{_e(lang)} ({i:,})" for lang, i in dropped) + ".</p>")
    return _section("Dedup, PII and languages", body)


def _by_count(item: tuple[str, int]) -> tuple[int, str]:
    return -item[1], item[0]


def _kept_languages(corpus: Path) -> dict[str, tuple[int, int]] | None:
    """language -> (identified, kept) from the prepare stage's plots/languages.csv; None without one."""
    rows = _read_csv(corpus / "plots" / "languages.csv")
    try:
        return {r["language"]: (int(r.get("identified") or 0), int(r.get("kept") or 0)) for r in rows} or None
    except (KeyError, ValueError):
        return None


def _tokenizer(tokens: dict) -> str:
    if not tokens:
        return ""
    fertility = tokens.get("fertility", {})
    rows = [("vocabulary", _n(tokens.get("vocab_size"))), ("bytes per token", _n(tokens.get("bytes_per_token")))]
    rows += [(f"{split} split", f"{_n(s.get('documents'))} documents, {_n(s.get('tokens'))} tokens")
             for split, s in tokens.get("splits", {}).items()]
    plot = _barh(list(fertility), list(fertility.values()), "tokens per word",
                 "Tokenizer fertility per language (lower is better)") if fertility else ""
    return _section("Tokenizer", plot + _table(["", ""], rows, head=False))


def _training(train: dict, model: Path) -> str:
    if not train:
        return ""
    history = {split: _read_csv(model / "history" / f"{split}.csv") for split in ("train", "val")}
    plot = _loss_plot(history) if any(history.values()) else ""
    rows = [(key, _n(train.get(key))) for key in ("steps", "tokens_seen", "parameters", "train_loss", "val_loss",
                                                  "tokens_per_s") if key in train]
    return _section("Training", plot + _table(["", ""], rows, head=False))


FIGURES = {"bits_per_byte": "bits per byte", "perplexity": "perplexity", "val_loss": "loss (nats/token)"}
GROUPS = {"lang": "language", "source": "source"}  # training/evaluate.py's `<figure>/<group>=<name>` keys
SCORED = ("documents", "tokens", "bytes")
_FIGURE_KEY = re.compile(r"^(masked_)?(" + "|".join(FIGURES) + r")(?:/(\w+)=(.+))?$")


def _evaluation(metrics: dict) -> str:
    """The evaluate stage's metrics.json as tables: the figures side by side, overall and per language
    (and per source); what it scored; any other figure in a last table."""
    if not metrics:
        return ""
    overall: dict[str, float] = {}
    grouped: dict[str, dict[str, dict[str, float]]] = {}
    masked, rest = False, {}
    for key, value in metrics.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        match = _FIGURE_KEY.match(key)
        if match is None:
            rest[key] = value
            continue
        masked = masked or bool(match.group(1))
        figure, group, name = match.group(2), match.group(3), match.group(4)
        if group is None:
            overall[figure] = value
        else:
            grouped.setdefault(group, {}).setdefault(name, {})[figure] = value
    columns = [f for f in FIGURES if f in overall or any(f in v for g in grouped.values() for v in g.values())]
    headers = [("masked-token " if masked else "") + FIGURES[f] for f in columns]
    body = ""
    if masked:
        body += "<p>Masked-LM figures: scored on the masked positions only.</p>"
    if columns and not grouped:
        body += _table(["", *headers], [("all", *(_n(overall.get(f)) for f in columns))])
    for group in sorted(grouped, key=lambda g: (list(GROUPS).index(g) if g in GROUPS else len(GROUPS), g)):
        label = GROUPS.get(group, group)
        names = grouped[group]
        rows = [(name, *(_n(names[name].get(f)) for f in columns)) for name in sorted(names)]
        if overall:
            rows.append(("all", *(_n(overall.get(f)) for f in columns)))
        body += f"<h3>Per {_e(label)}</h3>" + _table([label, *headers], rows)
        bpb = {name: v["bits_per_byte"] for name, v in sorted(names.items()) if "bits_per_byte" in v}
        if group == "lang" and len(bpb) > 1:
            body += _barh(list(bpb), list(bpb.values()), "bits per byte (lower is better)",
                          "Bits per byte per language")
    scored = [f"{_n(rest.pop(k))} {k}" for k in SCORED if k in rest]
    unigram = [rest.pop(k) for k in ("unigram_val_loss", "masked_unigram_val_loss") if k in rest]
    if scored or unigram:
        body += ("<p>" + (f"Scored: {', '.join(scored)}." if scored else "")
                 + (f" Unigram baseline loss: {_n(unigram[0])} nats/token." if unigram else "") + "</p>")
    if rest:
        body += "<h3>Other figures</h3>" + _table(["metric", "value"], [(k, _n(v)) for k, v in sorted(rest.items())])
    return _section("Evaluation", body)


def _tasks(metrics: dict, harness: dict) -> str:
    """lm-evaluation-harness tasks (training/harness.py): one row per task, its figures and their stderr."""
    tasks: dict[str, dict] = {}
    for key, value in metrics.items():
        if key.startswith("task/") and key.count("/") == 2:
            _, task, metric = key.split("/")
            tasks.setdefault(task, {})[metric] = value
    if not tasks:
        return ""
    columns = ["acc", "acc_norm", "perplexity"]
    rows = [(task, *(f"{_n(t[c])} ± {_n(t.get(c + '_stderr'))}" if c in t else "" for c in columns),
             _n(t.get("sample_len"))) for task, t in sorted(tasks.items())]
    note = (f"<p>lm-evaluation-harness {_e(harness.get('lm_eval', ''))}, limit {_e(harness.get('limit'))}, "
            f"local tasks from evaluation set {_e(harness.get('eval_set'))}</p>") if harness else ""
    return _section("Harness tasks", note + _table(["task", *columns, "examples"], rows))


def _samples(samples: list) -> str:
    if not samples:
        return ""
    parts = []
    for item in samples:
        texts = "".join(f'<li dir="auto">{_e(s)}</li>' for s in item.get("samples", []))
        parts.append(f'<div class="sample"><p dir="auto"><b>{_e(item.get("prompt", ""))}</b></p><ol>{texts}</ol></div>')
    return _section("Samples", "".join(parts))


# --- plots ---------------------------------------------------------------------------------------

def _figure():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=(7, 3.2), dpi=100)


def _png(fig, alt: str) -> str:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _barh(labels: list[str], values: list[float], xlabel: str, title: str) -> str:
    fig = _figure()
    fig.set_figheight(max(1.6, 0.45 * len(labels) + 0.9))
    ax = fig.add_subplot()
    ax.barh(range(len(labels)), values, color="#4878a8")
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    for i, v in enumerate(values):
        ax.annotate(f"{v:,.4g}", (v, i), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
    ax.margins(x=0.15)
    return _png(fig, title)


def _loss_plot(history: dict[str, list[dict]]) -> str:
    fig = _figure()
    ax = fig.add_subplot()
    for split, style in (("train", "-"), ("val", "o-")):
        rows = [r for r in history[split] if r.get("loss") not in (None, "")]
        if rows:
            ax.plot([int(r["step"]) for r in rows], [float(r["loss"]) for r in rows], style, label=f"{split} loss")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title("Loss curves")
    ax.grid(alpha=0.3)
    ax.legend()
    return _png(fig, "Loss curves")


# --- HTML ----------------------------------------------------------------------------------------

STYLE = """
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{margin-bottom:.2rem}h2{border-bottom:1px solid #ccc;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ddd;padding:.25rem .6rem;text-align:left}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;display:block;margin:.5rem 0}.sample{margin-bottom:1rem}code{background:#f3f3f3;padding:0 .2rem}
"""


def _page(title: str, sections: Iterable[str]) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n{MARKER}\n'
            f'<title>{_e(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n'
            + "\n".join(s for s in sections if s) + "\n</body>\n</html>\n")


def _section(title: str, body: str) -> str:
    return f"<section><h2>{_e(title)}</h2>\n{body}\n</section>"


def _table(columns: list[str], rows: Iterable[tuple], raw: bool = False, head: bool = True) -> str:
    rows = list(rows)
    if not rows:
        return "<p>-</p>"
    header = "<tr>" + "".join(f"<th>{_e(c)}</th>" for c in columns) + "</tr>" if head else ""
    body = "".join("<tr>" + "".join(_cell(v, raw) for v in row) + "</tr>" for row in rows)
    return f"<table>{header}{body}</table>"


def _cell(value: Any, raw: bool) -> str:
    text = str(value)
    numeric = text.replace(",", "").replace(".", "", 1).lstrip("-").isdigit()
    return f'<td class="num">{text}</td>' if numeric else f"<td>{text if raw else _e(text)}</td>"


def _e(value: Any) -> str:
    return html.escape(str(value))


def _n(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _corpus_version(params: Params) -> str | None:
    """The corpus's DVC hash as dvc.lock records it (the versioned run only)."""
    import yaml

    lock = Path("dvc.lock")
    if params.run is not None or not lock.is_file():
        return None
    try:
        stages = (yaml.safe_load(lock.read_text(encoding="utf-8")) or {}).get("stages", {})
    except yaml.YAMLError:
        return None
    for out in stages.get("prepare", {}).get("outs", []):
        if out.get("path") == params.paths.corpus:
            return out.get("md5")
    return None


def _log_to_mlflow(params: Params, run: dict, out: Path) -> str | None:
    """Log the page to the run's MLflow run (artifact `report/report.html`); None when there is none."""
    if not params.tracking.enabled or not run.get("run_id"):
        return None
    from training.tracking import client as tracking_client

    client = tracking_client(params.tracking)
    try:
        client.get_run(run["run_id"])
    except Exception:  # MlflowException: the store was reset or the run deleted
        print(f"warning: MLflow run {run['run_id']} not in {without_credentials(params.tracking.tracking_uri)}; "
              "report not logged",
              file=sys.stderr)
        return None
    client.log_artifact(run["run_id"], str(out), "report")
    return run["run_id"]
