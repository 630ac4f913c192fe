"""crawler/analyse.py: a page's text, links and WARC record, in a pool of worker processes."""

import asyncio
import os
import subprocess
import sys
import time

from crawler.analyse import Analyser, rules_of

from .conftest import page


def test_a_worker_that_dies_is_replaced_and_the_page_still_analysed():
    html = page("Pool", ["a.html", "b.html"]).encode("utf-8")
    args = (html, "http://site.localhost/p.html", "http://127.0.0.1:9/p.html", "utf-8", rules_of(None, None), None)
    analyser = Analyser(workers=1)
    try:
        before = asyncio.run(analyser.run(*args))
        dead = analyser.pool
        dead.submit(os._exit, 1)  # as a worker killed by the OOM killer: the whole pool breaks
        after = asyncio.run(analyser.run(*args))
        assert analyser.pool is not dead
        assert after.extracted.text == before.extracted.text and "Pool" in after.extracted.text
        assert after.links == before.links == ["http://127.0.0.1:9/a.html", "http://127.0.0.1:9/b.html"]
    finally:
        analyser.close()


def test_workers_die_with_the_crawl_process(tmp_path):
    """A crawl process killed outright (SIGKILL) leaves no extraction worker behind."""
    script = ("import sys, time; from crawler.analyse import Analyser; a = Analyser(workers=2); "
              "print(*[p.pid for p in (a.pool.submit(time.sleep, 0.2).result() or a.pool._processes.values())], "
              "flush=True); time.sleep(60)")
    crawl = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        workers = [int(pid) for pid in crawl.stdout.readline().split()]
        assert len(workers) == 2
    finally:
        crawl.kill()
        crawl.wait()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in workers):
        assert time.monotonic() < deadline, "a worker outlived the crawl process"
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
