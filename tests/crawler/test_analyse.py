"""crawler/analyse.py: a page's text, links and WARC record, in a pool of worker processes."""

import asyncio
import os

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
