"""crawler/queues.py: the JOBDIR queue keeps requests in memory, spills past its limit, saves on close."""

from types import SimpleNamespace

import pytest
import scrapy
from queuelib.queue import FifoDiskQueue
from scrapy.http import Request

from crawler.queues import BufferedPickleFifoDiskQueue, request_dict


class Spider(scrapy.Spider):
    name = "queued"

    def parse(self, response):
        pass

    def failed(self, failure):
        pass

    also_parse = parse  # an alias: Scrapy's search finds it under either name


def requests(start: int, stop: int, spider: Spider) -> list[Request]:
    return [Request(f"http://site.localhost/{i}.html", callback=spider.parse, meta={"depth": i}) for i in range(start, stop)]


def urls(queue: BufferedPickleFifoDiskQueue, count: int) -> list[str]:
    return [queue.pop().url for _ in range(count)]


@pytest.mark.parametrize("memory_items", [100, 3])  # all in memory; spilled to disk
def test_fifo_in_memory_and_spilled_saved_on_close_and_reopened(tmp_path, monkeypatch, memory_items):
    monkeypatch.setattr(BufferedPickleFifoDiskQueue, "MEMORY_ITEMS", memory_items)
    spider = Spider()
    crawler = SimpleNamespace(spider=spider)
    key = str(tmp_path / "requests.queue" / "127.0.0.1" / "-1")
    queue = BufferedPickleFifoDiskQueue.from_crawler(crawler, key)
    for request in requests(0, 8, spider):
        queue.push(request)
    assert len(queue) == 8 and (tmp_path / "requests.queue").exists() == (memory_items < 8)
    assert queue.peek().url == "http://site.localhost/0.html"
    assert urls(queue, 2) == ["http://site.localhost/0.html", "http://site.localhost/1.html"]
    for request in requests(8, 10, spider):
        queue.push(request)
    queue.close()  # a graceful stop: what is left is saved, in order
    assert FifoDiskQueue(key).__len__() == 8

    again = BufferedPickleFifoDiskQueue.from_crawler(crawler, key)
    assert len(again) == 8
    again.push(requests(10, 11, spider)[0])
    popped = [again.pop() for _ in range(9)]
    assert [r.url.rsplit("/", 1)[1] for r in popped] == [f"{i}.html" for i in range(2, 11)]
    assert popped[0].callback == spider.parse and popped[0].meta["depth"] == 2
    assert again.pop() is None and len(again) == 0
    again.close()
    assert not (tmp_path / "requests.queue" / "127.0.0.1" / "-1").exists()  # nothing left: nothing on disk


def test_a_request_that_cannot_be_pickled_is_refused_as_by_scrapys_queue(tmp_path):
    spider = Spider()
    queue = BufferedPickleFifoDiskQueue(SimpleNamespace(spider=spider), str(tmp_path / "q"))
    with pytest.raises(ValueError):  # Scrapy's scheduler then keeps it in its memory queue
        queue.push(Request("http://site.localhost/", callback=lambda response: None))
    assert len(queue) == 0


def test_request_dict_is_scrapys_to_dict():
    spider = Spider()
    for request in [Request("http://site.localhost/a", callback=spider.parse, errback=spider.failed, priority=-3,
                            meta={"depth": 3, "handle_httpstatus_list": [304]}, headers={"If-None-Match": "x"}),
                    Request("http://site.localhost/b"), Request("http://site.localhost/c", callback=spider.also_parse),
                    scrapy.FormRequest("http://site.localhost/d", formdata={"q": "1"}, callback=spider.parse)]:
        ours, scrapys = request_dict(request, spider), request.to_dict(spider=spider)
        for field in ("callback", "errback"):  # a method's own name; Scrapy's search may give an alias
            assert (getattr(spider, ours.pop(field)) if ours[field] else None) == \
                (getattr(spider, scrapys.pop(field)) if scrapys[field] else None)
        assert ours == scrapys
    with pytest.raises(ValueError):
        request_dict(Request("http://site.localhost/", callback=lambda response: None), spider)
