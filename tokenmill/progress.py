"""Progress for long loops: a tqdm bar in a terminal, plain periodic lines when output is a file.

A redrawn bar piped to a file (or to Prefect's log) becomes thousands of lines; when stderr is not a
terminal we print one plain line every `every_s` seconds instead, with count, rate and ETA.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Iterable, Iterator, TextIO


def is_terminal(stream: TextIO | None = None) -> bool:
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class PlainProgress:
    """The part of tqdm's interface the stages use, printing `desc: n/total unit (rate/s, ETA …)`."""

    def __init__(self, iterable: Iterable | None = None, *, total: float | None = None, desc: str = "",
                 unit: str = "it", every_s: float = 10.0, file: TextIO | None = None, **_: Any):
        self.iterable = iterable
        self.total = total if total is not None else _len(iterable)
        self.desc, self.unit, self.every_s = desc, unit, every_s
        self.file = file or sys.stderr
        self.n = 0
        self.postfix: dict[str, Any] = {}
        self.start = self.last = time.monotonic()
        self.closed = False

    def __iter__(self) -> Iterator:
        for item in self.iterable or ():
            yield item
            self.update(1)
        self.close()

    def __enter__(self) -> "PlainProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def update(self, n: float = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            self.file.write(self.line() + "\n")
            self.file.flush()

    def set_postfix(self, ordered_dict: dict[str, Any] | None = None, refresh: bool = True, **kwargs: Any) -> None:
        self.postfix = {**(ordered_dict or {}), **kwargs}

    def set_description(self, desc: str, refresh: bool = True) -> None:
        self.desc = desc

    def line(self) -> str:
        elapsed = time.monotonic() - self.start
        rate = self.n / elapsed if elapsed > 0 else 0.0
        count = f"{self.n:g}/{self.total:g}" if self.total else f"{self.n:g}"
        parts = [f"{count} {self.unit}", f"{rate:.1f} {self.unit}/s", f"elapsed {format_duration(elapsed)}"]
        if self.total and rate > 0:
            parts.append(f"ETA {format_duration((self.total - self.n) / rate)}")
        parts += [f"{k} {v}" for k, v in self.postfix.items()]
        return f"{self.desc}: " + ", ".join(parts)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.n:
                self.file.write(self.line() + " (done)\n")
                self.file.flush()


def progress(iterable: Iterable | None = None, *, total: float | None = None, desc: str = "",
             unit: str = "it", every_s: float = 10.0, disable: bool = False, **kwargs: Any) -> Any:
    """A progress bar over `iterable` (or a manual one with `update`); see the module docstring."""
    if not disable and not is_terminal():
        return PlainProgress(iterable, total=total, desc=desc, unit=unit, every_s=every_s)
    from tqdm import tqdm  # only here: its import is ~15-30 ms of every command (importlib.metadata)
    if disable:
        return tqdm(iterable, total=total, disable=True)
    return tqdm(iterable, total=total, desc=desc, unit=unit, dynamic_ncols=True, **kwargs)


def _len(iterable: Iterable | None) -> float | None:
    try:
        return len(iterable)  # type: ignore[arg-type]
    except TypeError:
        return None
