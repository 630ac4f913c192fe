"""Install a local copy of a real web site to crawl offline.

    python -m crawler.sites debian-handbook DEST

fetches the Debian package debian-handbook (the Debian Administrator's Handbook as HTML, 26
languages) through apt, without touching the system's apt state, and moves its html/ tree to DEST.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tokenmill.errors import UserError

SITES = {"debian-handbook": ("debian-handbook", "usr/share/doc/debian-handbook/html")}  # name -> package, tree


def fetch_site(name: str, dest: Path) -> Path:
    """Install site `name` at `dest`; a site already there is kept (this is a cache)."""
    if name not in SITES:
        raise UserError(f"unknown site '{name}' (known: {', '.join(sorted(SITES))})")
    dest = Path(dest)
    if dest.exists():
        return dest
    package, tree = SITES[name]
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{dest.name}.", dir=dest.parent) as tmp:
        work = Path(tmp)
        deb = download_deb(package, work)
        run(["dpkg", "-x", str(deb), str(work / "x")], package)
        html = work / "x" / tree
        if not html.is_dir():
            raise UserError(f"{deb.name} has no {tree}; point a source at a real site with start_urls instead")
        os.rename(html, dest)  # same file system: the site appears whole or not at all
    return dest


def download_deb(package: str, work: Path) -> Path:
    """apt-get download with private package lists and cache (as root apt warns that it cannot
    drop privileges to _apt for this directory: harmless)."""
    for sub in ("lists/partial", "cache/archives/partial"):
        (work / sub).mkdir(parents=True)
    options = ["-o", f"Dir::State::Lists={work / 'lists'}", "-o", f"Dir::Cache={work / 'cache'}"]
    run(["apt-get", *options, "update"], package, cwd=work)
    run(["apt-get", *options, "download", package], package, cwd=work)
    debs = sorted(work.glob(f"{package}_*.deb"))
    if not debs:
        raise UserError(f"apt-get download {package} gave no .deb; point a source at a real site with start_urls")
    return debs[-1]


def run(command: list[str], package: str, cwd: Path | None = None) -> None:
    try:
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise UserError(f"{command[0]} not found: the Debian package {package} needs apt and dpkg; "
                        "point a source at a real site with start_urls instead") from None
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise UserError(f"`{' '.join(command[:1] + command[-2:])}` failed ({detail}); fetch the Debian package "
                        f"{package} by hand (apt-get download {package}; dpkg -x) or point a source at a "
                        "real site with start_urls")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m crawler.sites SITE DEST   (sites: " + ", ".join(sorted(SITES)) + ")",
              file=sys.stderr)
        return 2
    try:
        dest = fetch_site(argv[0], Path(argv[1]))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{argv[0]}: {dest}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
