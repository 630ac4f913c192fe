"""Web archives (WARC, WET) -> documents, as a crawl writes them: `tokenmill ingest PATH... --out DIR`.

    PATH   a WARC/WET file (plain, .gz per record or whole), a directory of them, an s3:// (any
           fsspec) URL of either, or a listing such as Common Crawl's warc.paths.gz (one path a line;
           relative ones resolved against --base-url)

    DIR/documents/part-NNNNN.parquet   the crawl's document columns (crawler/run.py DOCUMENT_COLUMNS)
    DIR/stats.json                     records in, documents out, skipped records by reason

A `response` record of HTML goes through the crawler's own extraction (crawler.extract, decoded as
Scrapy decodes a page); a WET `conversion` record is taken as text. Everything else is counted by
reason and skipped; a damaged record is counted and one warning line names its file and offset
(crawler.warc); a file that cannot be read is one line too, and only when no file could be read
is the ingest an error.

Files are the unit of work: each is read by one task (a process pool for --workers N, Dask workers
for a scheduler address) into `DIR.partial/files/NNNNN/` (renamed there when done: a finished file
is never read again after a kill), and the output is assembled from them in the order of the
paths, so 1 and N workers give the same bytes.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import logging
import os
import re
import shutil
import zlib
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from crawler.config import CrawlConfig
from crawler.urls import canonical, document_id
from crawler.warc import Damage, NotWarc, Record, records
from tokenmill.config import to_dict
from tokenmill.documents import Document, ShardWriter, open_binary, unify_shards
from tokenmill.errors import UserError
from tokenmill.locations import is_url, url_fs
from tokenmill.stage import StageStats, check_replaceable, replace_path, write_json

logger = logging.getLogger(__name__)

ARCHIVE_SUFFIXES = (".warc", ".warc.gz", ".wet", ".wet.gz")
LISTING_SUFFIXES = (".paths", ".paths.gz")
HTML_TYPES = {"text/html", "application/xhtml+xml"}
MAX_WARNINGS = 100  # warning lines a file reports (the rest are counted)
WARC_DATE = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)")


class BadRecord(Exception):
    """A record whose HTTP message cannot be read; the message is the reason."""


# --- where the archives are ---------------------------------------------------------------------

def archive_paths(paths: list[str], base_url: str | None = None) -> list[str]:
    """Every archive file the PATHs name, in order: files as given, directories' archives by name,
    listings' lines (relative ones joined to `base_url`)."""
    found: list[str] = []
    for path in paths:
        if path.endswith(LISTING_SUFFIXES):
            found += listed_paths(path, base_url)
        elif is_directory(path):
            found += directory_archives(path)
        else:
            found.append(path)
    return found


def is_directory(path: str) -> bool:
    if not is_url(path):
        return Path(path).is_dir()
    fs, root = url_fs(path)
    try:
        return fs.isdir(root)
    except OSError:
        return False


def directory_archives(path: str) -> list[str]:
    if not is_url(path):
        files = sorted(str(p) for p in Path(path).iterdir() if p.is_file() and p.name.endswith(ARCHIVE_SUFFIXES))
    else:
        fs, root = url_fs(path)
        base = path.rstrip("/")
        files = sorted(f"{base}/{name.rstrip('/').rsplit('/', 1)[-1]}" for name in fs.ls(root.rstrip("/"), detail=False)
                       if name.endswith(ARCHIVE_SUFFIXES))
    if not files:
        raise UserError(f"{path}: no archive files ({', '.join('*' + s for s in ARCHIVE_SUFFIXES)})")
    return files


def listed_paths(listing: str, base_url: str | None) -> list[str]:
    """The paths of a listing (warc.paths.gz: one a line), relative ones joined to `base_url`."""
    try:
        with open_binary(listing) as raw:
            data = raw.read()
        text = (gzip.decompress(data) if listing.endswith(".gz") else data).decode("utf-8")
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise UserError(f"{listing}: cannot read the listing ({exc})") from None
    paths = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if is_url(line) or line.startswith("/"):
            paths.append(line)
        elif base_url:
            paths.append(base_url.rstrip("/") + "/" + line)
        else:
            raise UserError(f"{listing}:{number}: relative path {line!r} needs --base-url (e.g. s3://commoncrawl)")
    return paths


# --- one record ---------------------------------------------------------------------------------

@dataclass
class Outcome:
    """What one record gave: a page (with text when it is a document), or why it gave none."""

    reason: str | None  # why it is no document (None: a document)
    page: dict[str, Any] | None = None  # the crawl's page record (crawler.items.Page), for records with a URL


def record_outcome(record: Record, config: CrawlConfig, source: str) -> Outcome:
    kind = record.headers.get("warc-type", "unknown")
    if kind not in ("response", "conversion"):
        return Outcome(kind)
    if "warc-truncated" in record.headers:
        return Outcome("warc_truncated")
    if record.block is None:
        return Outcome("too_large")
    url = record.headers.get("warc-target-uri", "").strip("<>")
    if not url:
        return Outcome("no_url")
    page = new_page(source, url, warc_date(record.headers.get("warc-date")))
    if kind == "conversion":
        return conversion_outcome(record, page, config)
    try:
        return response_outcome(record, page, config)
    except BadRecord as exc:
        return Outcome(str(exc), page)


def new_page(source: str, url: str, fetched_at: str | None) -> dict[str, Any]:
    """A page record as the crawl keeps them (crawler.items.Page.record()), not fetched by us."""
    return {"source": source, "url": url, "depth": None, "status": None, "dropped": None, "refused": None,
            "final": True, "redirected_from": [], "links": [], "bytes": 0, "fetched_at": fetched_at,
            "content_type": None, "declared_charset": None, "detected_charset": None, "content_sha256": None,
            "etag": None, "last_modified": None, "crawled_at": None, "recrawl": None, "warc": None,
            "text": None, "title": None, "lang": None}


def warc_date(value: str | None) -> str | None:
    """WARC-Date as the crawl writes fetched_at: seconds, UTC, `Z` (WARC 1.1 may add fractions)."""
    match = WARC_DATE.match(value or "")
    return match.group(1) + "Z" if match else None


def conversion_outcome(record: Record, page: dict[str, Any], config: CrawlConfig) -> Outcome:
    """A WET record: the text Common Crawl extracted, as it is."""
    text = record.block.decode("utf-8", "replace")
    page.update(status=200, bytes=len(record.block), content_type=record.headers.get("content-type"),
                content_sha256=hashlib.sha256(record.block).hexdigest(), detected_charset="utf-8",
                lang=(record.headers.get("warc-identified-content-language") or "").split(",")[0] or None)
    return keep_text(page, tidy_lines(text), config)


def response_outcome(record: Record, page: dict[str, Any], config: CrawlConfig) -> Outcome:
    """A WARC response: its HTTP message, then the crawler's extraction for HTML."""
    if not record.headers.get("content-type", "").startswith("application/http"):
        return Outcome("not_http", None)
    status, headers, body = http_message(record.block)
    content_type = headers.get("content-type")
    page.update(status=status, bytes=len(body), content_type=content_type,
                content_sha256=hashlib.sha256(body).hexdigest(), etag=headers.get("etag"),
                last_modified=headers.get("last-modified"))
    if not 200 <= status < 300:
        return dropped(page, f"http_{status}")
    if not is_html(content_type, body):
        return dropped(page, "not_html")
    extracted, encoding = extract_html(body, page["url"], content_type)
    page.update(declared_charset=declared_charset(content_type, body), detected_charset=detected_charset(body, encoding))
    if extracted is None:
        return dropped(page, "not_html")
    page.update(title=extracted.title, lang=extracted.lang)
    return keep_text(page, extracted.text, config)


def dropped(page: dict[str, Any], reason: str) -> Outcome:
    page["dropped"] = reason
    return Outcome(reason, page)


def keep_text(page: dict[str, Any], text: str, config: CrawlConfig) -> Outcome:
    if len(text) < config.min_text_chars:
        return dropped(page, "too_short")
    page["text"] = text
    return Outcome(None, page)


def tidy_lines(text: str) -> str:
    from crawler.extract import tidy_lines as tidy

    return tidy(text)


def http_message(block: bytes) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names, first of each) and body of an HTTP response, its
    transfer and content encodings undone (the body as a client receives it)."""
    end, gap = block.find(b"\r\n\r\n"), 4
    if end < 0:
        end, gap = block.find(b"\n\n"), 2
    if end < 0:
        raise BadRecord("bad_http")
    lines = block[:end].decode("latin-1").splitlines()
    parts = lines[0].split(None, 2) if lines else []
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise BadRecord("bad_http")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers.setdefault(name.strip().lower(), value.strip())
    body = block[end + gap:]
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = dechunk(body)
    return int(parts[1]), headers, decode_content(body, headers.get("content-encoding", "").strip().lower())


def dechunk(body: bytes) -> bytes:
    """A body in chunked transfer encoding, decoded; BadRecord("bad_chunk") when it is not valid."""
    out, at = bytearray(), 0
    while True:
        line_end = body.find(b"\r\n", at)
        if line_end < 0:
            raise BadRecord("bad_chunk")
        try:
            size = int(body[at:line_end].split(b";")[0].strip(), 16)
        except ValueError:
            raise BadRecord("bad_chunk") from None
        if size == 0:
            return bytes(out)
        start = line_end + 2
        if start + size + 2 > len(body) or body[start + size:start + size + 2] != b"\r\n":
            raise BadRecord("bad_chunk")
        out += body[start:start + size]
        at = start + size + 2


def decode_content(body: bytes, encoding: str) -> bytes:
    try:
        if encoding in ("gzip", "x-gzip"):
            return zlib.decompress(body, zlib.MAX_WBITS | 16)
        if encoding == "deflate":
            try:
                return zlib.decompress(body)
            except zlib.error:
                return zlib.decompress(body, -zlib.MAX_WBITS)  # raw deflate, as some servers send it
    except zlib.error:
        raise BadRecord("bad_content_encoding") from None
    if encoding in ("", "identity"):
        return body
    raise BadRecord("unsupported_content_encoding")


def is_html(content_type: str | None, body: bytes) -> bool:
    """What Scrapy makes an HtmlResponse of: an HTML media type, or (without one) a body that looks it."""
    if content_type:
        return content_type.split(";")[0].strip().lower() in HTML_TYPES
    head = body[:512].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html"))


def extract_html(body: bytes, url: str, content_type: str | None) -> tuple[Any, str]:
    """The crawler's extraction of a page (crawler.analyse.analyse_page) and the encoding it was
    decoded with: the one Scrapy finds (BOM, Content-Type, <meta>, else UTF-8 or cp1252)."""
    from trafilatura.utils import load_html
    from w3lib.encoding import html_to_unicode

    from crawler.extract import extract_tree

    encoding, text = html_to_unicode(content_type or "", body, auto_detect_fun=auto_detect)
    tree = load_html(text)
    return (extract_tree(tree, url, text) if tree is not None else None), encoding


def auto_detect(body: bytes) -> str | None:
    """Scrapy's guess for a page that declares no encoding (TextResponse._auto_detect_fun)."""
    for encoding in ("utf-8", "cp1252"):
        try:
            body.decode(encoding)
        except UnicodeError:
            continue
        return encoding
    return None


def declared_charset(content_type: str | None, body: bytes) -> str | None:
    """As crawler.spiders.source.declared_charset: Content-Type's charset, else the page's <meta>."""
    from w3lib.encoding import html_body_declared_encoding, http_content_type_encoding

    charset = http_content_type_encoding(content_type) if content_type else None
    if charset is None and content_type and "html" in content_type:
        charset = html_body_declared_encoding(body)
    return charset.lower() if charset else None


def detected_charset(body: bytes, encoding: str) -> str | None:
    """As crawler.spiders.source.detected_charset: utf-8 when the body decodes so, else what it was decoded with."""
    try:
        body.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        return encoding.lower() if encoding else None


# --- one file -----------------------------------------------------------------------------------

@dataclass
class FileResult:
    """What reading one archive file gave (the counts stats.json adds up)."""

    path: str
    bytes_in: int = 0
    records: int = 0  # records read, damaged ones included
    documents: int = 0
    bytes_out: int = 0
    removed: Counter = field(default_factory=Counter)  # records that gave no document, by reason
    unreadable: str | None = None  # why the file could not be read at all
    warnings: list[str] = field(default_factory=list)  # one line per damaged record (MAX_WARNINGS at most)


class CountingReader:
    """A binary file that counts the bytes read from it."""

    def __init__(self, handle: Any):
        self.handle, self.count = handle, 0

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.count += len(data)
        return data


def read_archive(path: str, config: CrawlConfig, source: str, on_page: Callable[[dict[str, Any]], None]) -> FileResult:
    """Every record of one archive file, each page (with a URL) passed to `on_page` in file order:
    documents (text set) and dropped pages. The first capture of a URL in the file wins."""
    result = FileResult(path)
    seen: set[str] = set()
    try:
        with open_binary(path) as handle:
            raw = CountingReader(handle)
            try:
                for item in records(raw, config.max_response_bytes):
                    result.records += 1
                    if isinstance(item, Damage):
                        damaged(result, item.offset, item.reason)
                        continue
                    try:
                        outcome = record_outcome(item, config, source)
                    except Exception as exc:  # noqa: BLE001 - one page the parser chokes on must not end a long run
                        damaged(result, item.offset, f"extract_error ({type(exc).__name__})")
                        continue
                    if outcome.reason is None and canonical(outcome.page["url"]) in seen:
                        outcome.page["text"] = None
                        outcome = dropped(outcome.page, "repeated_url")
                    if outcome.reason is not None:
                        result.removed[outcome.reason] += 1
                    else:
                        seen.add(canonical(outcome.page["url"]))
                        result.documents += 1
                        result.bytes_out += len(outcome.page["text"].encode("utf-8"))
                    if outcome.page is not None:
                        on_page(outcome.page)
            finally:
                result.bytes_in = raw.count
    except NotWarc as exc:
        result.unreadable = str(exc)
    except OSError as exc:
        if result.records == 0:
            result.unreadable = f"cannot read it ({exc.strerror or exc})"
        else:  # the connection or the disk failed mid-file: what was read stands
            damaged(result, result.bytes_in, "read_error")
    return result


def damaged(result: FileResult, offset: int, reason: str) -> None:
    result.removed[reason.split(" ")[0]] += 1
    if len(result.warnings) < MAX_WARNINGS:
        result.warnings.append(f"{result.path}: offset {offset}: {reason}, record skipped")


def page_document(page: dict[str, Any], license: str | None, languages: list[str]) -> Document:
    """The document of a page, with the columns of a crawl's (crawler.run.source_documents)."""
    meta = {"url": page["url"], "canonical_url": canonical(page["url"]), "source": page["source"],
            "title": page["title"], "lang": page["lang"], "depth": page["depth"], "fetched_at": page["fetched_at"],
            "status": page["status"], "content_type": page["content_type"],
            "declared_charset": page["declared_charset"], "detected_charset": page["detected_charset"],
            "content_sha256": page["content_sha256"], "license": license, "source_languages": list(languages)}
    return Document(id=document_id(page["source"], page["url"]), text=page["text"], meta=meta)


@dataclass
class Task:
    """How every file of one ingest is read, and where its part goes."""

    work: str  # the partial directory
    config: CrawlConfig
    source: str  # names the documents (`<source>/<hash>` ids)
    license: str | None = None
    languages: list[str] = field(default_factory=list)
    pages: bool = False  # write page records (a crawl source) instead of document shards

    def part(self, number: int) -> Path:
        return Path(self.work) / "files" / f"{number:05d}"


def ingest_file(number: int, path: str, task: Task) -> FileResult:
    """One archive file into its part directory, renamed into place when complete."""
    done = task.part(number)
    if (done / "result.json").exists():
        return load_result(done)
    tmp = done.with_name(done.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if task.pages:
        with open(tmp / "pages.jsonl", "w", encoding="utf-8") as handle:
            result = read_archive(path, task.config, task.source,
                                  lambda page: handle.write(json.dumps(page, ensure_ascii=False, sort_keys=True) + "\n"))
    else:
        with ShardWriter(tmp / "documents", task.config.shard_size) as writer:
            result = read_archive(path, task.config, task.source, lambda page: page["text"] is not None and writer.write(
                page_document(page, task.license, task.languages)))
    if result.unreadable:  # not marked done: a run after the file is fixed (or the store is back) reads it
        shutil.rmtree(tmp, ignore_errors=True)
        return result
    write_json(tmp / "result.json", {**result.__dict__, "removed": dict(sorted(result.removed.items()))})
    shutil.rmtree(done, ignore_errors=True)
    os.replace(tmp, done)
    return result


def load_result(part: Path) -> FileResult:
    data = json.loads((part / "result.json").read_text(encoding="utf-8"))
    return FileResult(**{**data, "removed": Counter(data["removed"]), "warnings": []})  # warned when read


# --- many files ---------------------------------------------------------------------------------

def run_files(files: list[str], task: Task, workers: int = 1, dask_address: str = "") -> list[FileResult]:
    """Every file through ingest_file (in this process, a pool of `workers` processes, or on the
    Dask scheduler at `dask_address`); the results in the files' order, warnings logged as they come."""
    results: dict[int, FileResult] = {}
    todo = [(n, f) for n, f in enumerate(files) if not (task.part(n) / "result.json").exists()]
    for number, _ in set(enumerate(files)) - set(todo):
        results[number] = load_result(task.part(number))
    if todo:
        logger.info("ingest: %d archive files to read (%d done before)", len(todo), len(files) - len(todo))
    for number, result in run_tasks(todo, task, workers, dask_address):
        for line in result.warnings:
            logger.warning("%s", line)
        if result.unreadable:
            logger.warning("%s: %s", result.path, result.unreadable)
        results[number] = result
    return [results[n] for n in range(len(files))]


def run_tasks(todo: list[tuple[int, str]], task: Task, workers: int, dask_address: str) -> Iterator[tuple[int, FileResult]]:
    if dask_address:
        from dask.distributed import Client
        from dask.distributed import as_completed as dask_completed

        with Client(dask_address) as client:
            futures = {client.submit(ingest_file, n, f, task, pure=False): n for n, f in todo}
            for future in dask_completed(futures):
                yield futures[future], future.result()
        return
    if workers <= 1 or len(todo) <= 1:
        for number, path in todo:
            yield number, ingest_file(number, path, task)
        return
    with ProcessPoolExecutor(min(workers, len(todo)), mp_context=pool_context()) as pool:
        futures = {pool.submit(ingest_file, n, f, task): n for n, f in todo}
        for future in as_completed(futures):
            yield futures[future], future.result()


def pool_context() -> Any:
    """Workers forked by a fork server that has imported the extraction (trafilatura, lxml) once."""
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__, "crawler.extract"])
    return context


def start_or_resume(work: Path, spec: dict[str, Any]) -> None:
    """Resume the partial ingest of the same job in `work`, or start afresh there."""
    job = work / "job.json"
    if job.exists():
        if json.loads(job.read_text(encoding="utf-8")) == spec:
            logger.info("ingest: resuming in %s", work)
            return
        logger.warning("ingest: %s holds another ingest; starting afresh", work)
    elif work.exists() and any(work.iterdir()):
        raise UserError(f"{work}: exists and is not an ingest in progress (no job.json); move it away")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    write_json(job, spec)


def ingest(paths: list[str], out: Path, config: CrawlConfig, source: str = "warc", workers: int = 1,
           dask_address: str = "", limit: int | None = None, base_url: str | None = None) -> dict:
    """Archives -> `out`/documents and `out`/stats.json (the module docstring); returns the stats."""
    from crawler.config import NAME_PATTERN
    from crawler.run import log_to_stderr_unless_configured

    out = Path(out)
    if not NAME_PATTERN.fullmatch(source):
        raise UserError(f"--source: {source!r} must be letters, digits, '.', '_' or '-'")
    check_replaceable(out, "ingest")
    files = archive_paths(paths, base_url)
    if limit is not None:
        if limit < 1:
            raise UserError(f"--limit must be at least 1, got {limit}")
        files = files[:limit]
    if not files:
        raise UserError("ingest: no archive files given")
    work = out.with_name(out.name + ".partial")
    task = Task(str(work), config, source)
    start_or_resume(work, {"files": files, "config": to_dict(config), "source": source})
    with log_to_stderr_unless_configured():
        results = run_files(files, task, workers, dask_address)
        return assemble(work, out, task, results)


def summed(stats: StageStats, results: list[FileResult]) -> None:
    for result in results:
        stats.bytes_in += result.bytes_in
        stats.documents_in += result.records
        stats.documents_out += result.documents
        stats.bytes_out += result.bytes_out
        stats.removed.update(result.removed)
    unreadable = {r.path: r.unreadable for r in results if r.unreadable}
    stats.extra.update(files=len(results), files_unreadable=unreadable)


def assemble(work: Path, out: Path, task: Task, results: list[FileResult]) -> dict:
    """The output from the files' parts, in the files' order, renamed into place at once."""
    stats = StageStats("ingest", extra={"source": task.source})
    summed(stats, results)
    if all(r.unreadable for r in results):
        raise UserError(f"ingest: no file could be read ({len(results)} tried; each is named above)")
    staging = work / "final"
    shutil.rmtree(staging, ignore_errors=True)
    documents = staging / "documents"
    documents.mkdir(parents=True)
    shards = [shard for n in range(len(results)) for shard in sorted((task.part(n) / "documents").glob("part-*.parquet"))]
    for number, shard in enumerate(shards):
        os.link(shard, documents / f"part-{number:05d}.parquet")
    if shards:
        unify_shards(documents)
    else:
        from crawler.run import write_documents

        write_documents([], documents, 1)
    stats.write(staging)
    replace_path(staging, out)
    shutil.rmtree(work, ignore_errors=True)
    logger.info("ingest: %d archive files, %d documents in %s", len(results), stats.documents_out, out)
    return stats.to_dict()


# --- a crawl source that names archives -----------------------------------------------------------

def ingest_source(source: Any, config: CrawlConfig, pages_file: Path, closed_file: Path) -> None:
    """The archives of a crawl source (`warc:` in its YAML) as the page records a crawl of it would
    leave (crawler/run.py finalises them like any other source's): read in `crawl.extract_workers`
    processes, file by file, resumable (the parts are kept beside `pages_file` until the crawl ends)."""
    files = archive_paths(source.warc, source.warc_base_url)
    task = Task(str(pages_file.parent / "archives"), config, source.name, source.license, list(source.languages),
                pages=True)
    results = run_files(files, task, max(1, config.extract_workers))
    if all(r.unreadable for r in results):
        raise UserError(f"{source.name}: no archive file could be read ({len(results)} tried; each is named above)")
    removed = sum((r.removed for r in results), Counter())
    logger.info("%s: %d archive files, %d records, %d documents; skipped %s", source.name, len(files),
                sum(r.records for r in results), sum(r.documents for r in results), dict(sorted(removed.items())))
    tmp = pages_file.with_name(pages_file.name + ".tmp")
    with open(tmp, "wb") as out:
        for number in (n for n, result in enumerate(results) if not result.unreadable):
            with open(task.part(number) / "pages.jsonl", "rb") as part:
                shutil.copyfileobj(part, out)
    os.replace(tmp, pages_file)
    closed_file.write_text(json.dumps({"reason": "finished"}) + "\n", encoding="utf-8")
