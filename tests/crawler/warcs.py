"""Tiny WARC and WET files for the ingest tests, written by hand record by record (gzip per record,
whole-file gzip or plain), so that the tests can damage exactly the bytes they mean to."""

from __future__ import annotations

import gzip
import uuid
import zlib

PARAGRAPH = ("Archived pages are read again years after the crawl that fetched them, so the reader must "
             "take whatever the archive holds and keep going when a record is damaged. ")


def html_page(title: str, lang: str = "en", paragraphs: int = 3) -> str:
    body = "".join(f"<p>{title}, part {i}: {PARAGRAPH}</p>" for i in range(paragraphs))
    return (f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8"><title>{title}</title></head>'
            f"<body><article><h1>{title}</h1>{body}</article></body></html>")


def record(kind: str, url: str, block: bytes, content_type: str, extra: dict[str, str] | None = None,
           length: int | None = None, date: str = "2024-05-01T12:00:00Z") -> bytes:
    """One WARC record, uncompressed; `length`: a Content-Length other than the block's (damage)."""
    headers = {"WARC-Type": kind, "WARC-Record-ID": f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, kind + url)}>",
               "WARC-Date": date, "WARC-Target-URI": url, "Content-Type": content_type,
               "Content-Length": str(len(block) if length is None else length), **(extra or {})}
    head = "WARC/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return head.encode("utf-8") + block + b"\r\n\r\n"


def http_response(body: bytes, status: str = "200 OK", content_type: str | None = "text/html; charset=utf-8",
                  headers: dict[str, str] | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status}"] + ([f"Content-Type: {content_type}"] if content_type else [])
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(body: bytes, size: int = 100) -> bytes:
    parts = [b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size]) for i in range(0, len(body), size)]
    return b"".join(parts) + b"0\r\n\r\n"


def response(url: str, html: str, **kwargs) -> bytes:
    return record("response", url, http_response(html.encode("utf-8"), **kwargs), "application/http; msgtype=response")


def conversion(url: str, text: str, language: str = "eng") -> bytes:
    return record("conversion", url, text.encode("utf-8"), "text/plain",
                  {"WARC-Identified-Content-Language": language})


def member(data: bytes) -> bytes:
    """One gzip member (no timestamp: the same bytes every time)."""
    return gzip.compress(data, mtime=0)


def gzip_per_record(records: list[bytes]) -> bytes:
    return b"".join(member(r) for r in records)


def whole_gzip(records: list[bytes]) -> bytes:
    return member(b"".join(records))


def corrupt(member_bytes: bytes) -> bytes:
    """A gzip member whose deflate data is damaged in the middle (its header intact)."""
    data = bytearray(member_bytes)
    middle = len(data) // 2
    data[middle:middle + 8] = b"\xff" * 8
    try:
        zlib.decompress(bytes(data), zlib.MAX_WBITS | 16)
    except zlib.error:
        return bytes(data)
    raise AssertionError("the damage did not break the member")
