"""WARC records out of a file as it comes, damage and all: plain, gzip per record (Common Crawl, our
crawler) or one gzip stream for the whole file.

A long ingest must not stop at a bad record, and must say where it was: the reader yields every
record with its byte offset (for a gzipped file: the offset of the gzip member it starts in, which
is the record's own for per-record gzip; in a file gzipped whole, its offset in the decompressed
bytes), and every damage as a `Damage(offset, reason)`, then picks
up at the next record it can find:

    garbage         bytes that are not a record (or a gzip member) where one should start
    bad_gzip        a gzip member whose compressed data is corrupt
    truncated_gzip  the file ends inside a gzip member
    bad_header      a record header that cannot be read (no Content-Length, too long)
    bad_length      the bytes after a record's block are not the end of a record (wrong Content-Length)
    truncated       the file ends inside a record

Why not warcio or fastwarc: on garbage between records, a corrupt gzip member or a wrong
Content-Length both stop at the fault (warcio raises ArchiveLoadFailed, fastwarc OSError; tried on
the damaged files of tests/crawler/test_ingest.py), and neither can go on after it. Their speed was
measured too (bench/ingest.py, bench/README.md "Ingest"): fastwarc frames records ~2x as fast as
this reader and warcio, which are close; against the extraction of each page it is a small share.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import IO, Iterator, Union

GZIP_MAGIC = b"\x1f\x8b\x08"
READ_SIZE = 1 << 20
FEED_SIZE = 1 << 16  # compressed bytes given to zlib at once
MAX_OUT = 1 << 22  # decompressed bytes taken from zlib at once (a bound on a gzip bomb's step)
MAX_HEADER_BYTES = 1 << 16
RECORD_START = b"WARC/"


class NotWarc(Exception):
    """The file is not a WARC file (what it starts with is in the message)."""


@dataclass
class Record:
    offset: int  # of the record, or of the gzip member it starts in
    headers: dict[str, str]  # WARC headers, names in lower case (the first of repeated names)
    block: bytes | None  # None: skipped, longer than the size limit


@dataclass
class Damage:
    offset: int
    reason: str


Item = Union[Record, Damage]


class Inflated:
    """The decompressed bytes of a file, taken from the front of `buffer`; `fill` adds more. Damage
    to the compression (reported in `damage`) is a break: bytes before `break_at` (a position in
    the whole decompressed stream) belong to a record that cannot be trusted."""

    def __init__(self, raw: IO[bytes]):
        self.raw = raw
        self.pending = raw.read(READ_SIZE)  # compressed bytes read, not yet decompressed from `pos` on
        self.pos = 0
        self.gzipped = self.pending[:2] == GZIP_MAGIC[:2]
        self.pending_at = 0  # file offset of pending[pos]
        self.buffer = bytearray()
        self.start = 0  # stream position of buffer[0]
        self.break_at = 0
        self.members: list[tuple[int, int]] = [(0, 0)]  # (stream position, file offset of its member)
        self.inflater = None
        self.ended = False  # of the raw file
        self.damage: list[Damage] = []
        self.quiet = False  # the bytes now at the front follow a damage already reported

    def offset_of(self, position: int) -> int:
        """The file offset a stream position comes from (gzip: its member's)."""
        for start, member in self.members if self.gzipped else ():
            if start == position:
                return member
        return position  # plain: the file offset; inside a gzip member: the decompressed offset

    def drop(self, count: int) -> None:
        del self.buffer[:count]  # a bytearray drops its front in O(1)
        self.start += count
        if len(self.members) > 1 and self.members[1][0] <= self.start:
            earlier = [m for m in self.members if m[0] <= self.start]
            self.members = earlier[-1:] + [m for m in self.members if m[0] > self.start]

    def unread(self) -> int:
        return len(self.pending) - self.pos

    def advance(self, count: int) -> None:
        self.pos += count
        self.pending_at += count

    def read_raw(self) -> bool:
        if self.ended:
            return False
        data = self.raw.read(READ_SIZE)
        if not data:
            self.ended = True
            return False
        self.pending = self.pending[self.pos:] + data
        self.pos = 0
        return True

    def fill(self) -> bool:
        """More decompressed bytes at the end of `buffer`; False when the file has no more."""
        if not self.gzipped:
            if not self.unread() and not self.read_raw():
                return False
            self.buffer += memoryview(self.pending)[self.pos:]
            self.advance(self.unread())
            return True
        while True:
            if self.inflater is None and not self.start_member():
                return False
            if not self.unread() and not self.read_raw():
                self.broken(self.members[-1][1], "truncated_gzip")
                self.inflater = None
                return False
            # fed in small pieces: what is left of a piece when a member ends is copied (unused_data)
            feed = memoryview(self.pending)[self.pos:self.pos + FEED_SIZE]
            try:
                out = self.inflater.decompress(feed, MAX_OUT)
            except zlib.error:
                self.broken(self.members[-1][1], "bad_gzip")
                self.inflater = None
                self.skip_pending(1)
                continue
            rest = self.inflater.unused_data if self.inflater.eof else self.inflater.unconsumed_tail
            self.advance(len(feed) - len(rest))
            if self.inflater.eof:
                self.inflater = None
            if out:
                self.buffer += out
                return True

    def start_member(self) -> bool:
        """Open the gzip member that starts at `pending` (after any garbage); False at the file's end."""
        while self.unread() < len(GZIP_MAGIC) and self.read_raw():
            pass
        if not self.unread():
            return False
        if not self.pending.startswith(GZIP_MAGIC, self.pos):
            self.broken(self.pending_at, "garbage")
            self.skip_pending(0)
            return self.start_member()
        self.inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        self.members.append((self.start + len(self.buffer), self.pending_at))
        return True

    def skip_pending(self, start: int) -> None:
        """Drop compressed bytes up to the next gzip magic found from `start` (or all of them)."""
        while True:
            found = self.pending.find(GZIP_MAGIC, self.pos + start)
            if found >= 0:
                self.advance(found - self.pos)
                return
            self.advance(max(0, self.unread() - (len(GZIP_MAGIC) - 1)))  # a magic may straddle two reads
            start = 0
            if not self.read_raw():
                self.advance(self.unread())
                return

    def broken(self, offset: int, reason: str) -> None:
        """A damaged gzip member: its bytes leave the buffer (where they are still there), and a record
        that began before it and reaches into it is lost with it (`break_at`)."""
        self.damage.append(Damage(offset, reason))
        member_start = self.members[-1][0] if reason == "bad_gzip" else self.start + len(self.buffer)
        if member_start >= self.start:
            del self.buffer[member_start - self.start:]
            self.members = [m for m in self.members if m[0] < member_start] or [(member_start, offset)]
        self.break_at = max(self.break_at, min(member_start, self.start + len(self.buffer)))
        self.quiet = True

    def at_end(self) -> bool:
        return self.ended and not self.unread() and self.inflater is None

    def broke(self, position: int, end: int) -> bool:
        """Whether a break fell inside the record from stream `position` to `end` (relative to the buffer)."""
        return position < self.break_at < self.start + end


BROKEN = object()


def records(raw: IO[bytes], max_block_bytes: int) -> Iterator[Item]:
    """Every record (and every damage) of a WARC file in order; NotWarc when it is not one."""
    stream = Inflated(raw)
    while len(stream.buffer) < len(RECORD_START) and stream.fill():
        pass
    if not stream.buffer.startswith(RECORD_START):
        what = "its gzip data starts" if stream.gzipped else "it starts"
        raise NotWarc(f"not a WARC file ({what} with {bytes(stream.buffer[:16])!r})")
    while True:
        item = next_record(stream, max_block_bytes)
        yield from stream.damage
        stream.damage.clear()
        if item is None:
            return
        if isinstance(item, Record) or item.reason != "broken":
            yield item


def next_record(stream: Inflated, max_block_bytes: int) -> Item | None:
    """The next record at the front of the stream (after any garbage), a damage, or None at the end."""
    if not find_record_start(stream):
        return None
    position = stream.start
    offset = stream.offset_of(position)
    header_end = read_until(stream, b"\r\n\r\n", MAX_HEADER_BYTES, position)
    if header_end is BROKEN:
        return skip_to_break(stream, offset)
    if header_end is None:
        return lost(stream, offset, "truncated" if stream.at_end() else "bad_header")
    headers = parse_headers(bytes(stream.buffer[:header_end]))
    length = content_length(headers)
    if length < 0:
        return lost(stream, offset, "bad_header")
    block_end = header_end + 4 + length
    if length <= max_block_bytes:
        if fill_to(stream, block_end, position) is BROKEN:
            return skip_to_break(stream, offset)
        if len(stream.buffer) < block_end:
            stream.drop(len(stream.buffer))
            return Damage(offset, "truncated")
        block = bytes(stream.buffer[header_end + 4:block_end])
    else:  # read past, never held
        stream.drop(header_end + 4)
        if skip(stream, length, position) is BROKEN:
            return skip_to_break(stream, offset)
        if stream.start - position < block_end:
            return Damage(offset, "truncated")
        block, block_end = None, 0
    fill_to(stream, block_end + 4 + len(RECORD_START), None)
    trailer = record_end(stream.buffer, block_end, stream.at_end())
    if trailer is None:
        return lost(stream, offset, "bad_length")
    stream.drop(block_end + trailer)
    stream.quiet = False
    return Record(offset, headers, block)


def content_length(headers: dict[str, str]) -> int:
    try:
        return int(headers.get("content-length", ""))
    except ValueError:
        return -1


def lost(stream: Inflated, offset: int, reason: str) -> Damage:
    """A record that cannot be read: look for the next one after its first bytes, quietly."""
    stream.drop(min(len(RECORD_START), len(stream.buffer)))
    stream.quiet = True
    return Damage(offset, reason)


def skip_to_break(stream: Inflated, offset: int) -> Damage:
    """A record cut by damage to the compression (reported there): go on after the break."""
    stream.drop(max(0, min(stream.break_at - stream.start, len(stream.buffer))))
    stream.quiet = True
    return Damage(offset, "broken")


def find_record_start(stream: Inflated) -> bool:
    """Drop bytes up to the next record's start (reported as garbage unless the bytes follow a
    damage already reported); False at the end."""
    while True:
        while len(stream.buffer) < len(RECORD_START) and stream.fill():
            pass
        if not stream.buffer:
            return False
        if stream.buffer.startswith(RECORD_START):
            return True
        if stream.buffer.strip(b"\r\n") == b"" and stream.at_end():
            stream.drop(len(stream.buffer))
            return False
        if not stream.quiet:
            stream.damage.append(Damage(stream.offset_of(stream.start), "garbage"))
            stream.quiet = True
        found = stream.buffer.find(b"\n" + RECORD_START)
        while found < 0:
            stream.drop(max(0, len(stream.buffer) - len(RECORD_START)))
            if not stream.fill():
                stream.drop(len(stream.buffer))
                return False
            found = stream.buffer.find(b"\n" + RECORD_START)
        stream.drop(found + 1)


def read_until(stream: Inflated, marker: bytes, limit: int, position: int) -> object:
    """The index of `marker` in the buffer, reading more as needed, up to `limit` bytes (None:
    not found; BROKEN: the compression broke meanwhile)."""
    searched = 0
    while True:
        found = stream.buffer.find(marker, max(0, searched - len(marker)))
        if found >= 0:
            return found
        searched = len(stream.buffer)
        if searched > limit or not stream.fill():
            return BROKEN if stream.broke(position, len(stream.buffer) + 1) else None
        if stream.broke(position, len(stream.buffer)):
            return BROKEN


def fill_to(stream: Inflated, size: int, position: int | None) -> object:
    """Read until the buffer holds `size` bytes or the stream ends; BROKEN: a break fell before `size`
    in the record from `position`."""
    while len(stream.buffer) < size:
        if not stream.fill():
            break
        if position is not None and stream.broke(position, size):
            return BROKEN
    if position is not None and stream.broke(position, min(size, len(stream.buffer) + 1)):
        return BROKEN
    return None


def skip(stream: Inflated, length: int, position: int) -> object:
    """Read past `length` bytes without holding them."""
    remaining = length
    while remaining:
        if not stream.buffer and not stream.fill():
            return None
        if stream.broke(position, remaining + 1):
            return BROKEN
        step = min(remaining, len(stream.buffer))
        stream.drop(step)
        remaining -= step
    return None


def record_end(buffer: bytearray, at: int, ended: bool) -> int | None:
    """The length of the CR/LF run after a block when the next record (or the file's end) follows it;
    None when something else does (the block's Content-Length is wrong)."""
    skipped = 0
    while skipped < 4 and buffer[at + skipped:at + skipped + 1] in (b"\r", b"\n"):
        skipped += 1
    following = bytes(buffer[at + skipped:at + skipped + len(RECORD_START)])
    if skipped == 4 or following == RECORD_START or (not following and ended):
        return skipped
    return None


def parse_headers(data: bytes) -> dict[str, str]:
    """The named fields of a WARC header (its first line is the version)."""
    headers: dict[str, str] = {}
    for line in data.decode("utf-8", "replace").split("\r\n")[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers.setdefault(name.strip().lower(), value.strip())
    return headers
