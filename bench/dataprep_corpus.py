"""The dataprep bench corpus: real text from Debian documentation packages, fetched as data.

    python bench/dataprep_corpus.py [--dir data/bench]

Downloads (apt-get with its own lists and cache under DIR, no root needed for the download itself)
and unpacks (`dpkg -x`) the debian-handbook (HTML, all its languages), the Python 3 documentation
(HTML) and man pages in several languages (roff), and writes one document per page or man page to
DIR/corpus/part-NNN.jsonl (`id`, `text`, `lang`, `source`), about 5 MB per shard. Cached: a second
run only reads what is there.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterator

PACKAGES = [
    "debian-handbook", "python3.11-doc",
    "manpages", "manpages-de", "manpages-fr", "manpages-pl", "manpages-es", "manpages-ru", "manpages-it",
    "manpages-pt-br", "manpages-nl", "manpages-ja", "manpages-cs", "manpages-fi", "manpages-hu", "manpages-ro",
]
SHARD_BYTES = 5_000_000


def apt(directory: Path, *args: str) -> None:
    options = ["-o", f"Dir::State::Lists={directory}/lists", "-o", f"Dir::Cache={directory}/cache"]
    (directory / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (directory / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", *options, *args], check=True, cwd=directory / "debs", stdout=subprocess.DEVNULL)


def fetch(directory: Path) -> Path:
    """Download and unpack the packages (once); returns the unpacked root."""
    debs, root = directory / "debs", directory / "root"
    debs.mkdir(parents=True, exist_ok=True)
    missing = [p for p in PACKAGES if not list(debs.glob(f"{p}_*.deb"))]
    if missing:
        apt(directory, "update")
        for package in missing:
            apt(directory, "download", package)
    root.mkdir(exist_ok=True)
    for deb in sorted(debs.glob("*.deb")):
        marker = root / f".{deb.name}.done"
        if not marker.exists():
            subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
            marker.touch()
    return root


def html_text(path: Path) -> str:
    import lxml.html

    tree = lxml.html.fromstring(path.read_bytes())
    for bad in tree.xpath("//script|//style|//nav|//head"):
        bad.drop_tree()
    for block in tree.xpath("//p|//div|//li|//h1|//h2|//h3|//h4|//pre|//tr|//br|//dt|//dd|//section"):
        block.tail = "\n" + (block.tail or "")
    lines = (" ".join(line.split()) for line in tree.text_content().splitlines())
    return "\n".join(line for line in lines if line)


ROFF_ESCAPE = re.compile(r"\\f[BIRPC]|\\f\(..|\\f\[[^\]]*\]|\\\(..|\\\[[^\]]*\]|\\[&|^%:]|\\s[-+]?\d|\\\*\(..|\\\*.")


def man_text(path: Path) -> str:
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    out = []
    for line in raw.decode("utf-8", errors="replace").splitlines():
        if line.startswith(('.\\"', "'\\\"", '.\\\\"')):
            continue
        if line.startswith((".", "'")):
            macro, _, rest = line[1:].partition(" ")
            if macro in {"SH", "SS", "B", "I", "BR", "IR", "RB", "RI", "BI", "IB", "TP", "IP", "Nm", "Nd", "Sh"}:
                line = rest.replace('"', "")
            else:
                continue
        line = ROFF_ESCAPE.sub("", line).replace("\\-", "-").replace("\\e", "\\").replace("\\ ", " ")
        if line.strip():
            out.append(line.strip())
    return "\n".join(out)


def documents(root: Path) -> Iterator[dict]:
    handbook = root / "usr/share/doc/debian-handbook/html"
    for page in sorted(handbook.glob("*/*.html")) if handbook.exists() else []:
        lang = page.parent.name
        yield {"id": f"handbook/{lang}/{page.stem}", "text": html_text(page), "lang": lang, "source": "debian-handbook"}
    for page in sorted((root / "usr/share/doc").glob("python3.*/html/**/*.html")):
        rel = page.relative_to(root / "usr/share/doc")
        yield {"id": f"python-doc/{rel.with_suffix('')}", "text": html_text(page), "lang": "en", "source": "python3-doc"}
    man = root / "usr/share/man"
    for page in sorted(man.glob("**/man[1-8]/*")):
        rel = page.relative_to(man)
        lang = rel.parts[0] if not rel.parts[0].startswith("man") else "en"
        yield {"id": f"man/{rel}", "text": man_text(page), "lang": lang, "source": "manpages"}


def build(directory: Path) -> Path:
    corpus = directory / "corpus"
    if (corpus / "done").exists():
        return corpus
    root = fetch(directory)
    corpus.mkdir(parents=True, exist_ok=True)
    shard, size, handle = 0, 0, None
    for doc in documents(root):
        if not doc["text"].strip() or Path(doc["id"]).is_symlink():
            continue
        if handle is None or size >= SHARD_BYTES:
            if handle:
                handle.close()
            handle = open(corpus / f"part-{shard:03d}.jsonl", "w", encoding="utf-8")
            shard, size = shard + 1, 0
        line = json.dumps(doc, ensure_ascii=False) + "\n"
        handle.write(line)
        size += len(doc["text"].encode("utf-8"))
    if handle:
        handle.close()
    (corpus / "done").touch()
    return corpus


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("data/bench"))
    args = parser.parse_args(argv)
    corpus = build(args.dir.resolve())
    files = sorted(corpus.glob("part-*.jsonl"))
    docs = sum(1 for f in files for _ in open(f, encoding="utf-8"))
    text = sum(len(json.loads(line)["text"].encode()) for f in files for line in open(f, encoding="utf-8"))
    print(f"{corpus}: {len(files)} shards, {docs} documents, {text / 1e6:.1f} MB of text")
    return 0


if __name__ == "__main__":
    sys.exit(main())
