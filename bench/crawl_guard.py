"""Per-request cost of the address guard's check (bench/README.md, "Crawl security"): the per-source check
(crawler.addresses.SourceScope: scheme, scope, IP literal) against the one before it (scheme and IP
literal by the process policy, plus Scrapy's OffsiteMiddleware regex), on the same 1,000 requests.

    .venv/bin/python bench/crawl_guard.py
"""
import ipaddress, re, statistics, sys, timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scrapy.http import Request
from scrapy.utils.httpobj import urlparse_cached
from crawler.addresses import AddressPolicy, SourceScope, scheme_refusal
scope = SourceScope.of_domains(["example.org", "127.0.0.2"], ["127.0.0.2"])
policy = AddressPolicy.from_sources([(["example.org", "127.0.0.2"], ["127.0.0.2"])])
offsite = re.compile(r"^(.*\.)?(example\.org|127\.0\.0\.2)$")
urls = [f"https://www{i%3}.example.org/wiki/Page_{i}?a={i}" for i in range(500)] + [f"http://127.0.0.2:8080/p{i}.html" for i in range(500)]
reqs = [Request(u) for u in urls]
for r in reqs: urlparse_cached(r)
def new():
    for r in reqs:
        r.meta.setdefault("source", "s")
        p = urlparse_cached(r)
        scope.refusal(p.scheme, p.hostname or "", p.port)
def old():
    for r in reqs:
        p = urlparse_cached(r)
        offsite.search(p.hostname or "")
        scheme_refusal(p.scheme)
        host = p.hostname or ""
        try:
            literal = ipaddress.ip_address(host.split("%")[0])
        except ValueError:
            continue
        policy.allowance(host).refusal(literal)
res = {"new": [], "old": []}
for _ in range(7):
    for name, f in (("old", old), ("new", new)):
        res[name].append(min(timeit.repeat(f, number=5, repeat=3)) / (5 * len(reqs)) * 1e6)
for name, runs in res.items():
    print(f"{name}: median {statistics.median(runs):.2f} us/request (runs {', '.join(f'{r:.2f}' for r in runs)})")
