"""crawl(): sources -> <out>/documents (Parquet), <out>/warc (raw responses), <out>/stats.json.

A crawl of some sources may carry the others over from the crawl already in `<out>` (their pages,
documents and WARC records as they are): each source refreshes its part of one crawl output on
its own cadence (the per-source Prefect deployments, `tokenmill crawl SOURCE`).

The work happens in `<out>.partial/` (see crawler/state.py) and is renamed to `<out>` at the end.
A crawl that is stopped (SIGTERM, Ctrl-C, even SIGKILL) resumes when crawl() is called again
with the same sources, config and `out`.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from crawler.config import CrawlConfig, Source
from crawler.items import counts_toward_budget
from crawler.serve import serve_directory
from crawler.state import COMPLETE, CrawlState, carried_page, read_index, read_pages
from crawler.urls import UrlMap, canonical, document_id, without_userinfo
from tokenmill.config import to_dict
from tokenmill.documents import SHARD_PATTERN, Document, ShardWriter
from tokenmill.errors import TransientError, UserError
from tokenmill.stage import StageStats, replace_path, write_json

logger = logging.getLogger(__name__)
scrapy_log = logging.getLogger("crawler")  # the Scrapy child's log lines, forwarded (see forward_log)

# why a page gave no document, when that is the site's trouble rather than the source's settings:
# a crawl that stored nothing for one of these reasons may succeed when tried again
TRANSIENT_REASONS = {"network_error", "timeout", "dns_error", "robots_unavailable", "http_429"}

DOCUMENT_COLUMNS = ["id", "text", "canonical_url", "content_sha256", "content_type", "declared_charset", "depth",
                    "detected_charset", "fetched_at", "lang", "license", "source", "source_languages", "status",
                    "title", "url"]


def crawl(sources: list[Source], out: Path, config: CrawlConfig, carry_over: list[Source] = ()) -> dict:
    """Crawl `sources` into `out`; returns the stats written to `out`/stats.json.

    `carry_over`: sources kept in `out` as the crawl already there holds them (not fetched); one
    that `out` does not hold yet is left out of this crawl, with a warning."""
    out = Path(out)
    if not sources:
        raise UserError("crawl: no sources given")
    names = [s.name for s in [*sources, *carry_over]]
    if len(set(names)) != len(names):
        raise UserError("crawl: two sources have the same name")
    for source in sources:
        if source.serve is not None:
            served_directory(source)  # fail before starting anything
    carried = []
    for source in carry_over:
        if crawled_index(out, source.name).exists():
            carried.append(source)
        else:
            logger.warning("%s: not in %s yet; crawl it to add it", source.name, out)
    state = CrawlState(out.with_name(out.name + ".partial"))
    ports = start_or_resume(state, sources, config, carried)
    link_previous(state, [s for s in sources if s.recrawl_after is not None] + carried, out)
    with ExitStack() as stack:
        for source in sources:
            if source.serve is not None:
                port = stack.enter_context(serve_directory(served_directory(source), ports.get(source.name, 0)))
                if port != ports.get(source.name):  # new port: the JOBDIR's request fingerprints are void
                    state.source_dir(source.name).mkdir(parents=True, exist_ok=True)
                    state.open_marker(source.name).touch()
                ports[source.name] = port
        write_job(state, sources, config, ports, carried)
        for source in sources:
            state.prepare_run(source.name)
        if any(not source.warc for source in sources):
            run_child(state)
    for source in sources:
        if source.warc:  # archives instead of a site: read, not fetched (crawler/ingest.py)
            from crawler.ingest import ingest_source

            ingest_source(source, config, state.pages_file(source.name), state.closed_file(source.name))
    unfinished = {s.name: state.close_reason(s.name) for s in sources if state.close_reason(s.name) not in COMPLETE}
    if unfinished:
        detail = ", ".join(f"{name} ({reason or 'no reason recorded'})" for name, reason in unfinished.items())
        raise TransientError(f"crawl of {detail} stopped before the end; "
                             f"run it again with the same output ({out}) to resume")
    return finalise(state, sources, out, config, carried)


def crawled_index(out: Path, source: str) -> Path:
    """A finished crawl's page index of a source (crawler.state.read_index reads it)."""
    return out / "pages" / f"{source}.jsonl.gz"


def link_previous(state: CrawlState, sources: list[Source], out: Path) -> None:
    """Keep the last crawl of `sources` in `out` at hand (hard links, so that `out` can be replaced
    at the end): its page index (with the text) and its WARC; for a recrawl, or to carry it over."""
    for source in sources:
        index = crawled_index(out, source.name)
        target = state.previous_pages(source.name)
        if not index.exists() or target.exists():
            continue
        state.previous_dir.mkdir(parents=True, exist_ok=True)
        warc = out / "warc" / f"{source.name}.warc.gz"
        if warc.exists():
            os.link(warc, state.previous_dir / warc.name)
        os.link(index, target)  # last: its presence says the previous crawl is complete here
        logger.info("%s: recrawl of %s (pages older than %s are revalidated)", source.name, out, source.recrawl_after)


def served_directory(source: Source) -> Path:
    directory = Path(source.serve)
    if not directory.is_dir():
        raise UserError(f"{source.serve}: site not found; run `make site` (fetches the Debian package "
                        "debian-handbook) or point a source at a real site with start_urls")
    return directory


def served_origin(source: Source) -> str:
    """The origin a served source's pages are recorded under: stable, unlike the port it is served on."""
    return f"http://{source.name}.localhost"


# --- the partial directory ---------------------------------------------------------------------

def job_spec(sources: list[Source], config: CrawlConfig, carried: list[Source] = ()) -> dict[str, Any]:
    spec = {"sources": [to_dict(s) for s in sources], "config": to_dict(config)}
    if carried:
        spec["carried"] = [to_dict(s) for s in carried]
    return spec


def start_or_resume(state: CrawlState, sources: list[Source], config: CrawlConfig,
                    carried: list[Source] = ()) -> dict[str, int]:
    """Resume the partial crawl of the same job, or start afresh; the served ports used before."""
    if state.job_file.exists():
        previous = json.loads(state.job_file.read_text(encoding="utf-8"))
        if previous.get("spec") == job_spec(sources, config, carried):
            logger.info("resuming the crawl in %s", state.root)
            return dict(previous.get("ports", {}))
        logger.warning("%s holds a crawl of other sources or settings; starting afresh", state.root)
    shutil.rmtree(state.root, ignore_errors=True)
    state.root.mkdir(parents=True)
    return {}


def write_job(state: CrawlState, sources: list[Source], config: CrawlConfig, ports: dict[str, int],
              carried: list[Source] = ()) -> None:
    entries = []
    for source in (s for s in sources if not s.warc):  # the Scrapy child crawls; archives are read here
        urls = UrlMap()
        if source.serve is not None:
            urls = UrlMap(f"http://127.0.0.1:{ports[source.name]}", served_origin(source))
            # a served source allows exactly its own address (and port: crawler.addresses.SourceScope)
            source = dataclasses.replace(source, serve=None, allowed_domains=["127.0.0.1"], allow_private=["127.0.0.1"],
                                         start_urls=[urls.fetch_origin + path for path in source.start_urls],
                                         sitemap_urls=[urls.fetch_origin + path for path in source.sitemap_urls])
        entries.append({"source": to_dict(source), "urls": dataclasses.asdict(urls)})
    write_json(state.job_file, {"spec": job_spec(sources, config, carried), "ports": ports, "config": to_dict(config),
                                "sources": entries})


# --- the Scrapy child --------------------------------------------------------------------------

def run_child(state: CrawlState) -> None:
    """Run Scrapy in a child process (its own session: a Ctrl-C reaches it only through us)."""
    command = [sys.executable, "-m", "crawler.job", str(state.root), str(os.getpid())]
    child = subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, encoding="utf-8", errors="replace", bufsize=1)
    forwarder = threading.Thread(target=forward_log, args=(child.stdout,), name="crawl log", daemon=True)
    with log_to_stderr_unless_configured(), stop_gracefully(child) as received:
        forwarder.start()
        code = child.wait()
        forwarder.join(timeout=10)
    if received:  # the child has saved its state; now stop as the signal asked
        signal.raise_signal(received[0])
    if code != 0:
        how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
        raise TransientError(f"the crawl process {how} (its log is above); "
                             "run the crawl again with the same output to resume")


LOG_LINE = re.compile(r"(DEBUG|INFO|WARNING|ERROR|CRITICAL) ([\w.]+): ?(.*)")


def forward_log(stream: Any) -> None:
    """The child's log lines into the logger `crawler` at their level, INFO at least; indented
    lines (a multi-line message's) keep the level of the line they continue, other lines (progress)
    are INFO."""
    level = logging.INFO
    for line in stream:
        line = line.rstrip("\n")
        match = LOG_LINE.fullmatch(line)
        if match:
            level = max(logging.INFO, logging.getLevelName(match.group(1)))
            line = f"{match.group(2)}: {match.group(3)}"
        elif not line[:1].isspace():
            level = logging.INFO
        if line:
            scrapy_log.log(level, "%s", line)


@contextmanager
def log_to_stderr_unless_configured() -> Iterator[None]:
    """Where nothing handles the `crawler` logger (a plain script or the CLI), print its lines to
    stderr for the crawl's duration; an application that configured logging (Prefect) gets them."""
    if scrapy_log.hasHandlers():
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    scrapy_log.addHandler(handler)
    previous = scrapy_log.level
    scrapy_log.setLevel(logging.INFO)
    try:
        yield
    finally:
        scrapy_log.removeHandler(handler)
        scrapy_log.setLevel(previous)


@contextmanager
def stop_gracefully(child: subprocess.Popen) -> Iterator[list[int]]:
    """On SIGTERM/SIGINT, ask the child to stop gracefully (a second signal: at once) and wait
    for it; yields the signals received. Only the main thread can receive signals; elsewhere a
    killed parent takes the child with it (crawler.job.die_with_parent) and the crawl resumes
    from its state file."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handle(signum: int, frame: Any) -> None:
        received.append(signum)
        child.send_signal(signal.SIGTERM if len(received) == 1 else signal.SIGKILL)

    previous = {s: signal.signal(s, handle) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


# --- the output --------------------------------------------------------------------------------

def finalise(state: CrawlState, sources: list[Source], out: Path, config: CrawlConfig,
             carried: list[Source] = ()) -> dict:
    """The output from the pages of this crawl's runs (and the carried sources' from the last crawl);
    the counts of pages tried, fetched and dropped are this crawl's."""
    staging = state.root / "final"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "warc").mkdir(parents=True)
    stats = StageStats("crawl", extra={"pages_fetched": 0, "sources": {}})
    documents: list[Document] = []
    kept: dict[str, list[dict[str, Any]]] = {}
    for source in carried:
        pages = kept[source.name] = [carried_page(p) for p in read_index(state.previous_pages(source.name))]
        documents += source_documents(source, pages)
        stats.extra["sources"][source.name] = {**page_stats(pages), "carried_over": True}
    for source in sources:
        pages = kept[source.name] = outcomes(read_pages(state.pages_file(source.name)))
        documents += source_documents(source, pages)
        source_stats = page_stats(pages)
        stats.extra["sources"][source.name] = source_stats
        stats.documents_in += source_stats["pages_tried"]
        stats.bytes_in += source_stats["bytes_fetched"]
        stats.extra["pages_fetched"] += source_stats["pages_fetched"]
        stats.removed.update(source_stats["dropped"])
        if source_stats["documents"] == 0:
            logger.warning("%s: no documents (%s)", source.name, describe_losses(source_stats))
    stats.extra["refused"] = dict(sorted(sum((Counter(stats.extra["sources"][s.name]["refused"]) for s in sources),
                                             Counter()).items()))
    if not documents:
        stats.write(state.root)  # for a look; the output is not replaced
        raise empty_crawl_error(stats, state.root / "stats.json")
    documents.sort(key=lambda d: (d.meta["url"], d.id))
    stats.documents_out = len(documents)
    stats.bytes_out = sum(d.nbytes for d in documents)
    (staging / "pages").mkdir()
    # written side by side: the documents' Parquet and the WARC and page index (zstd and gzip both
    # let go of the GIL)
    with ThreadPoolExecutor(1, thread_name_prefix="documents") as pool:
        written = pool.submit(write_documents, documents, staging / "documents", config.shard_size)
        for source in [*carried, *sources]:
            pages = kept[source.name]
            write_warc(state.warc_dir, state.previous_dir, pages, staging / "warc" / f"{source.name}.warc.gz")
            write_index(pages, staging / "pages" / f"{source.name}.jsonl.gz")
            if source in sources and state.previous_pages(source.name).exists():
                stats.extra["sources"][source.name]["recrawl"] = recrawl_stats(
                    read_index(state.previous_pages(source.name)), pages)
        written.result()
    stats.write(staging)
    replace_path(staging, out)
    shutil.rmtree(state.root, ignore_errors=True)
    logger.info("crawl: %d pages fetched, %d documents in %s", stats.extra["pages_fetched"], len(documents), out)
    return stats.to_dict()


def empty_crawl_error(stats: StageStats, stats_file: Path) -> Exception:
    """A crawl that stored nothing fails: TransientError when the site did not answer (a retry may
    help), UserError when the configuration let nothing through (refused, disallowed, off-scope)."""
    why = describe_losses({"pages_tried": stats.documents_in, "dropped": stats.removed,
                           "refused": stats.extra["refused"]})
    if set(stats.removed) & TRANSIENT_REASONS or any(r.startswith("http_5") for r in stats.removed):
        return TransientError(f"crawl stored nothing: the site did not answer ({why}); details in {stats_file}")
    return UserError(f"crawl stored nothing: {why}; check the sources' start_urls, allow/deny, allowed_domains "
                     f"and allow_private (details in {stats_file})")


def describe_losses(source_stats: dict[str, Any]) -> str:
    if not source_stats["pages_tried"]:
        return "no page was tried"
    reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(source_stats["dropped"].items()))
    refused = ", ".join(f"{reason} {count}" for reason, count in sorted(source_stats.get("refused", {}).items()))
    return f"{source_stats['pages_tried']} pages tried: {reasons}" + (f" (refused addresses: {refused})" if refused else "")


def write_warc(runs: Path, previous: Path, pages: list[dict[str, Any]], path: Path) -> None:
    """The final WARC of a source: the response record of each page's chosen outcome, once, in URL
    order, copied byte for byte (each record is its own gzip member) from the runs' files (or, for
    a page carried over by a recrawl, the previous crawl's). Records that no page line points at
    (written just before a kill) and repeats are left behind. Each page's `warc` is updated to
    where its record now is."""
    handles: dict[Path, Any] = {}
    try:
        with open(path, "wb") as out:
            for page in sorted((p for p in pages if p.get("warc")), key=lambda p: canonical(p["url"])):
                ref = page["warc"]
                file = (previous if ref.get("previous") else runs) / ref["file"]
                if file not in handles:
                    handles[file] = open(file, "rb")
                handles[file].seek(ref["offset"])
                offset, remaining = out.tell(), ref["length"]
                while remaining:
                    block = handles[file].read(min(remaining, 1 << 20))
                    if not block:
                        raise TransientError(f"{file}: shorter than its page records say")
                    out.write(block)
                    remaining -= len(block)
                page["warc"] = {"file": path.name, "offset": offset, "length": ref["length"]}
    finally:
        for handle in handles.values():
            handle.close()


def write_index(pages: list[dict[str, Any]], path: Path) -> None:
    """The page records of a finished crawl (text, links, validators, WARC position): what an
    incremental recrawl starts from. Deterministic bytes (no gzip timestamp); gzip level 1
    (0.1 s for 2,000 pages against 0.4 s at level 6 and 0.5 s at 9, for 16% more bytes)."""
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0) as handle:
        for page in sorted(pages, key=lambda p: canonical(p["url"])):
            handle.write((json.dumps(page, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8"))


def recrawl_stats(previous: Iterator[dict[str, Any]], pages: list[dict[str, Any]]) -> dict[str, int]:
    """How the pages of the previous crawl fared: not due yet (fresh), not modified (304 or the
    same bytes), changed, gone (no document now); and the new pages."""
    had = {canonical(p["url"]) for p in previous if p.get("text")}
    now = {canonical(p["url"]): p for p in pages if p["text"] is not None}
    counts = Counter(p.get("recrawl") for key, p in now.items() if key in had)
    return {"fresh": counts["fresh"], "not_modified": counts["not_modified"] + counts["unchanged"],
            "changed": counts["changed"], "new": sum(key not in had for key in now), "gone": len(had - set(now))}


def outcomes(records: Iterator[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per page (canonical URL): one with text over one without, final over transient,
    earlier over later; a page fetched again after a resume is counted once."""
    best: dict[str, dict[str, Any]] = {}
    for record in records:
        key = canonical(record["url"])
        rank = (record["text"] is not None, record["final"])
        if key not in best or rank > (best[key]["text"] is not None, best[key]["final"]):
            best[key] = record
    return list(best.values())


def page_stats(pages: list[dict[str, Any]]) -> dict[str, Any]:
    fetched = [p for p in pages if counts_toward_budget(p)]
    kept = [p for p in pages if p["text"] is not None]
    return {
        "pages_tried": len(pages),
        "pages_fetched": len(fetched),
        "bytes_fetched": sum(p["bytes"] for p in fetched),
        "documents": len(kept),
        "bytes": sum(len(p["text"].encode("utf-8")) for p in kept),
        "dropped": dict(sorted(Counter(p["dropped"] for p in pages if p["text"] is None).items())),
        "refused": dict(sorted(Counter(p["refused"] for p in pages if p.get("refused")).items())),
    }


def source_documents(source: Source, pages: list[dict[str, Any]]) -> list[Document]:
    depth = link_depths(source, pages)
    return [
        Document(
            id=document_id(source.name, page["url"]),
            text=page["text"],
            meta={"url": page["url"], "canonical_url": canonical(page["url"]), "source": source.name,
                  "title": page["title"], "lang": page["lang"], "depth": depth.get(canonical(page["url"]), page["depth"]),
                  "fetched_at": page.get("fetched_at"), "status": page["status"],
                  "content_type": page.get("content_type"), "declared_charset": page.get("declared_charset"),
                  "detected_charset": page.get("detected_charset"), "content_sha256": page.get("content_sha256"),
                  "license": source.license, "source_languages": list(source.languages)},
        )
        for page in pages
        if page["text"] is not None
    ]


def link_depths(source: Source, pages: list[dict[str, Any]]) -> dict[str, int]:
    """Each page's shortest distance in links from a start URL, over the links the crawl recorded:
    unlike the depth at which a page happened to be requested, it does not depend on the order in
    which concurrent responses arrived."""
    redirect = {canonical(r): canonical(p["url"]) for p in pages for r in p["redirected_from"]}
    links = {canonical(p["url"]): [redirect.get(canonical(u), canonical(u)) for u in p["links"]] for p in pages}
    origin = served_origin(source) if source.serve is not None else ""
    starts = [canonical(without_userinfo(origin + url)) for url in source.start_urls]
    depth = {redirect.get(url, url): 0 for url in starts}
    queue = deque(depth)
    while queue:
        url = queue.popleft()
        for link in links.get(url, []):
            if link not in depth:
                depth[link] = depth[url] + 1
                queue.append(link)
    return depth


def write_documents(documents: list[Document], directory: Path, shard_size: int) -> None:
    with ShardWriter(directory, shard_size) as writer:
        writer.write_all(documents)
    if not documents:  # an empty shard, so that readers find the (empty) corpus and its columns
        types = {"depth": pa.int64(), "status": pa.int64(), "source_languages": pa.list_(pa.string())}
        schema = pa.schema([(c, types.get(c, pa.string())) for c in DOCUMENT_COLUMNS])
        pq.write_table(schema.empty_table(), directory / SHARD_PATTERN.format(0), compression="zstd")
