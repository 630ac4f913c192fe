"""Crawl + extraction throughput: tokenmill's crawl beside a plain Scrapy spider, in one run.

    .venv/bin/python bench/crawl.py [--site DIR] [--workers N] [--pages N]

Crawls a local site over HTTP on 127.0.0.1 three ways, each in its own process, one after the other:

  pool     tokenmill's crawl (crawler.run.crawl), each page analysed in N worker processes
           (crawl.extract_workers; crawler/analyse.py: text, links and WARC record from one parse)
  in-loop  the same crawl with extract_workers 0: that analysis in the reactor's thread (the old design)
  plain    a plain Scrapy spider that follows every link and calls trafilatura.extract per response

Both sides fetch the same pages from the same server, crawler/serve.py (http.server on 127.0.0.1,
HTTP/1.1 persistent connections, a thread per connection), with the same settings: robots.txt obeyed
(the site has none), 16 requests at once on the one host, no delay. The server runs outside the
crawling process on both sides: tokenmill's crawl serves its `serve:` source from its parent process
(Scrapy runs in a child), the plain spider's server runs in this process; on both sides its CPU
comes out of the machine's cores that the crawl uses.

It prints pages/s, MB/s of HTML and the peak RSS of each (the sum over the process and its
children, sampled every 0.1 s), with ratios against `plain`. The site is --site (e.g. the
debian-handbook's 26 language trees, `python -m crawler.sites debian-handbook DIR`, ~3,300 pages) or,
by default, one generated in a temporary directory: --pages pages (default 2,000) made of the real
articles of ../shared/data/article-extraction-benchmark, each with links to the next pages.
Then the extraction benchmark (bench/extraction.py): F1 and pages/s of our extraction, serially
and through a pool of N processes.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "article-extraction-benchmark"
SHARED_DATA = DEFAULT_DATA if DEFAULT_DATA.is_dir() else Path("/work/shared/data/article-extraction-benchmark")

PLAIN_SPIDER = r'''
import json, sys, time
import scrapy, trafilatura
from scrapy.crawler import CrawlerProcess
from scrapy.linkextractors import LinkExtractor

class Plain(scrapy.Spider):
    name = "plain"
    def __init__(self, start, **kw):
        super().__init__(**kw)
        # allowed_domains feeds Scrapy's OffsiteMiddleware (LinkExtractor's allow_domains compares host:port)
        self.start_urls, self.links, self.allowed_domains = start.split(), LinkExtractor(), ["127.0.0.1"]
        self.pages = self.bytes = self.docs = 0
    def parse(self, response):
        self.pages += 1; self.bytes += len(response.body)
        if not isinstance(response, scrapy.http.HtmlResponse):
            return
        text = trafilatura.extract(response.text, url=response.url)
        self.docs += bool(text and len(text) >= 200)
        for link in self.links.extract_links(response):
            yield response.follow(link.url, callback=self.parse)
    def closed(self, reason):
        print(json.dumps({"pages": self.pages, "bytes": self.bytes, "documents": self.docs}))

process = CrawlerProcess({"LOG_LEVEL": "ERROR", "ROBOTSTXT_OBEY": True, "CONCURRENT_REQUESTS": 16,
                          "CONCURRENT_REQUESTS_PER_DOMAIN": 16, "DOWNLOAD_DELAY": 0, "TELNETCONSOLE_ENABLED": False,
                          "DEPTH_PRIORITY": 1, "SCHEDULER_DISK_QUEUE": "scrapy.squeues.PickleFifoDiskQueue",
                          "SCHEDULER_MEMORY_QUEUE": "scrapy.squeues.FifoMemoryQueue"})
process.crawl(Plain, start=" ".join(sys.argv[1:]))
process.start()
'''

OURS = r'''
import json, sys
from pathlib import Path
from crawler.config import CrawlConfig, load_source
from crawler.run import crawl
config = CrawlConfig(download_delay=0.0, concurrent_requests=16, concurrent_requests_per_domain=16,
                     autothrottle=False, extract_workers=int(sys.argv[3]), max_response_bytes=50_000_000)
stats = crawl([load_source(sys.argv[1])], Path(sys.argv[2]), config)
print(json.dumps({"pages": stats["pages_fetched"], "bytes": stats["bytes_in"], "documents": stats["documents_out"]}))
'''


def generated_site(root: Path, pages: int, data: Path) -> str:
    """`pages` pages made of the benchmark's real articles, page i linking to the next 3: start /0.html."""
    truth = json.loads((data / "ground-truth.json").read_text(encoding="utf-8"))
    articles = [gzip.decompress((data / "html" / f"{key}.html.gz").read_bytes()).decode("utf-8", "replace")
                for key in sorted(truth)]
    for i in range(pages):
        links = "".join(f'<a href="/{j}.html">next {j}</a> ' for j in range(i + 1, min(pages, i + 4)))
        html = articles[i % len(articles)].replace(" href=", " data-href=")  # the article's own links lead nowhere here
        at = html.lower().rfind("</body>")
        html = (html[:at] + f"<nav>{links}</nav>" + html[at:]) if at >= 0 else html + f"<nav>{links}</nav>"
        (root / f"{i}.html").write_text(html, encoding="utf-8")
    return "/0.html"


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            statm = (proc / "statm").read_text().split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(proc.name))
        rss[int(proc.name)] = int(statm[1]) * os.sysconf("SC_PAGE_SIZE")
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        total += rss.get(p, 0)
        stack += children.get(p, [])
    return total


def measure(command: list[str]) -> dict:
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    peak = [0]

    def sample() -> None:
        while process.poll() is None:
            peak[0] = max(peak[0], tree_rss(process.pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = process.communicate()
    seconds = time.perf_counter() - started
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"{command[:3]} failed with status {process.returncode}")
    result = json.loads(out.strip().splitlines()[-1])
    return {**result, "seconds": seconds, "pages_per_s": result["pages"] / seconds,
            "mb_per_s": result["bytes"] / seconds / 1e6, "peak_rss_mb": peak[0] / 1e6}


def extraction_figures(data: Path, workers: int) -> dict:
    from extraction import load, overlap, score  # bench/extraction.py

    from crawler.extract import extract_page

    pages = load(data)
    started = time.perf_counter()
    serial = [extract_page(html, url) for html, url, _ in pages]
    serial_s = time.perf_counter() - started
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(extract_page, [pages[0][0]] * workers, [pages[0][1]] * workers))  # start the workers
        started = time.perf_counter()
        pooled = list(pool.map(extract_page, [p[0] for p in pages], [p[1] for p in pages], chunksize=4))
        pooled_s = time.perf_counter() - started
    assert [e.text for e in serial] == [e.text for e in pooled]
    figures = score([overlap(e.text if e else "", truth) for e, (_, _, truth) in zip(serial, pages)])
    return {**figures, "pages": len(pages), "serial_pages_per_s": len(pages) / serial_s,
            "pool_pages_per_s": len(pages) / pooled_s}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, help="a local site directory (default: generate one)")
    parser.add_argument("--start", action="append", help="start paths in --site (default: every */index.html)")
    parser.add_argument("--pages", type=int, default=2000, help="pages of the generated site")
    parser.add_argument("--workers", type=int, default=2, help="extraction processes of the pool variant")
    parser.add_argument("--data", type=Path, default=SHARED_DATA, help="article-extraction-benchmark directory")
    parser.add_argument("--skip", action="append", default=[], help="variant to leave out (pool, in-loop, plain)")
    args = parser.parse_args()
    import yaml

    with tempfile.TemporaryDirectory(prefix="bench-crawl-") as tmp:
        work = Path(tmp)
        if args.site:
            site = args.site.resolve()
            starts = args.start or sorted(f"/{p.parent.name}/index.html" for p in site.glob("*/index.html"))
        else:
            site = work / "site"
            site.mkdir()
            starts = [generated_site(site, args.pages, args.data)]
        files = sum(1 for _ in site.rglob("*.html"))
        print(f"site: {site} ({files} HTML files, {len(starts)} start URLs); CPUs: {os.cpu_count()}; "
              f"pool workers: {args.workers}", flush=True)
        source = work / "bench.yaml"
        source.write_text(yaml.safe_dump({"name": "bench", "serve": str(site), "allow_private": True,
                                          "start_urls": starts, "max_pages": 100_000, "max_depth": 10_000,
                                          "delay_s": 0, "concurrency": 16}))
        # the plain spider needs the site served too, and start URLs; serve it from this process
        from crawler.serve import serve_directory

        results = {}
        variants = {"pool": [sys.executable, "-c", OURS, str(source), str(work / "out-pool"), str(args.workers)],
                    "in-loop": [sys.executable, "-c", OURS, str(source), str(work / "out-loop"), "0"]}
        for name, command in variants.items():
            if name not in args.skip:
                results[name] = measure(command)
                print(f"  {name} done", flush=True)
        if "plain" not in args.skip:
            with serve_directory(site) as port:
                plain = work / "plain.py"
                plain.write_text(PLAIN_SPIDER)
                results["plain"] = measure([sys.executable, str(plain),
                                            *(f"http://127.0.0.1:{port}{start}" for start in starts)])
                print("  plain done", flush=True)
    print(f"{'variant':8s} {'pages':>6s} {'docs':>6s} {'seconds':>8s} {'pages/s':>8s} {'MB/s':>6s} {'peak RSS':>9s}"
          f" {'vs plain':>8s}")
    for name, r in results.items():
        ratio = r["pages_per_s"] / results["plain"]["pages_per_s"] if "plain" in results else float("nan")
        print(f"{name:8s} {r['pages']:6d} {r['documents']:6d} {r['seconds']:8.1f} {r['pages_per_s']:8.1f} "
              f"{r['mb_per_s']:6.2f} {r['peak_rss_mb']:7.0f}MB {ratio:7.2f}x")
    if (args.data / "ground-truth.json").exists():
        e = extraction_figures(args.data, args.workers)
        print(f"extraction on {e['pages']} benchmark pages: P {e['precision']:.3f} R {e['recall']:.3f} "
              f"F1 {e['f1']:.3f}; {e['serial_pages_per_s']:.1f} pages/s serially, {e['pool_pages_per_s']:.1f} "
              f"pages/s with {args.workers} processes ({e['pool_pages_per_s'] / e['serial_pages_per_s']:.2f}x)")
    else:
        print(f"{args.data}: extraction benchmark not found")
    return 0


if __name__ == "__main__":
    sys.exit(main())
