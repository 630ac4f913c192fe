"""Locations of stage inputs and outputs: a local path, or a URL (`s3://bucket/prefix`, any `proto://`
fsspec knows) kept as the str it is. Light to import (fsspec only when a URL is used): the CLI and every
stage's output check need it before any heavy library loads."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tokenmill.errors import UserError


def is_url(path: str | Path) -> bool:
    """`proto://...`: a location fsspec resolves (keep it a str: Path("s3://b/x") collapses the //)."""
    return isinstance(path, str) and "://" in path


def without_credentials(uri: str) -> str:
    """`uri` without its `user:token@` (everything else, the query included, kept as it is): the form
    that may be written to run.json, params and logs. Anything that is not a URL is returned as it is."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return uri
    if not parts.scheme or "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def url_fs(url: str) -> tuple[Any, str]:
    """(fsspec filesystem, path without the protocol) of a URL; an unknown protocol or a missing
    backend (s3fs for s3://) is a one-line UserError."""
    import fsspec.core

    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise UserError(f"{url}: {exc}") from None


def location(path: str | Path) -> str | Path:
    """A URL kept as the str it is, anything else a Path."""
    return path if is_url(path) else Path(path)


def join(base: str | Path, *names: str) -> str | Path:
    """`base`/names for a local path or a URL."""
    return "/".join([base.rstrip("/"), *names]) if is_url(base) else Path(base).joinpath(*names)
