"""URL block list: documents whose `url` host (or a parent domain of it) is listed are removed.

The list is a text file named by `prepare.url_filter.blocklist`: one domain or URL per line, '#'
comments and blank lines ignored ('example.com' blocks example.com and every subdomain). A missing
file is a one-line configuration error naming it. Documents without a `url` are kept. On by
default: with no `blocklist` it keeps every document.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from dataprep.registry import register_step
from dataprep.step import Filter, RemoveCallback
from tokenmill.documents import Document
from tokenmill.errors import ConfigError


@dataclass
class URLFilterConfig:
    blocklist: str = ""  # path of the block-list file ("" : nothing is blocked)


def host_of(url: str) -> str:
    url = url.strip()
    if "//" not in url:
        url = "//" + url
    return (urlsplit(url).hostname or "").lower().rstrip(".")


@functools.cache
def load_blocklist(path: str) -> frozenset[str]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ConfigError(f"prepare.url_filter.blocklist: {path}: file not found") from None
    except UnicodeDecodeError:
        raise ConfigError(f"prepare.url_filter.blocklist: {path}: not UTF-8 text") from None
    hosts = (host_of(line.split("#", 1)[0]) for line in lines if line.split("#", 1)[0].strip())
    return frozenset(h.removeprefix("www.") for h in hosts if h)


@register_step("url_filter", config=URLFilterConfig, group="filter", order=25, default=True,
               help="URL block list (prepare.url_filter.blocklist)")
class URLFilter(Filter):
    """Removes documents from blocked domains as 'url_filter:blocked'."""

    def __init__(self, config: URLFilterConfig, on_remove: RemoveCallback | None = None):
        super().__init__(on_remove)
        self.config = config
        if config.blocklist:
            load_blocklist(config.blocklist)  # a missing file fails before any document is read

    def reject(self, doc: Document) -> str | None:
        url = doc.meta.get("url")
        if not self.config.blocklist or not isinstance(url, str) or not url:
            return None
        blocked = load_blocklist(self.config.blocklist)
        labels = host_of(url).split(".")
        for i in range(len(labels) - 1):
            if ".".join(labels[i:]) in blocked:
                return "url_filter:blocked"
        return None
