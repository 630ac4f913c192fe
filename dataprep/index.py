"""A persistent dedup index (`--index DIR`): the signatures of every batch deduplicated through it.

    DIR/manifest.json        format, signature fingerprints per step, the recorded batches
    DIR/batch-00000.npz      one batch's survivors: ids, lengths, one signature array per dedup step

A new batch is clustered together with every recorded batch (their signatures are read, never
recomputed); a new document in a cluster with a recorded one is removed as its duplicate. The
batch's survivors are then recorded: the batch file is written under a temporary name and renamed,
then the manifest is replaced the same way, all under an exclusive lock, so a crash leaves the index
as it was. Recording the same batch again (same ids and signatures: a rerun) replaces its entry
instead of deduplicating it against itself.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from dataprep.dedup import Decisions, Dedup, IndexRows, Signed
from dataprep.dedup_disk import ShardState, load, save_state
from tokenmill.errors import ConfigError, UserError
from tokenmill.stage import atomic_write_text, exclusive_temp_file

FORMAT = "tokenmill-dedup-index-1"


class DedupIndex:
    def __init__(self, directory: str | Path, steps: Sequence[Dedup]):
        self.directory = Path(directory)
        self.fingerprints = {s.name: s.fingerprint() for s in steps}
        self.directory.mkdir(parents=True, exist_ok=True)
        manifest = self.manifest()
        for name, recorded in manifest["fingerprints"].items():
            if name in self.fingerprints and recorded != self.fingerprints[name]:
                changed = sorted(k for k in recorded if recorded.get(k) != self.fingerprints[name].get(k))
                raise ConfigError(
                    f"{self.directory}: index built with {name} {', '.join(f'{k}={recorded.get(k)}' for k in changed)};"
                    f" this run has {', '.join(f'{k}={self.fingerprints[name].get(k)}' for k in changed)}"
                )

    def manifest(self) -> dict:
        path = self.directory / "manifest.json"
        if not path.exists():
            return {"format": FORMAT, "fingerprints": {}, "batches": []}
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: not a dedup index manifest ({exc.msg})") from None
        if manifest.get("format") != FORMAT:
            raise UserError(f"{path}: not a dedup index of this version (format {manifest.get('format')!r})")
        return manifest

    @staticmethod
    def batch_key(batch: Signed | Sequence[ShardState], names: Sequence[str]) -> str:
        """Identifies a batch by its documents' ids and signatures (in memory, or pass one's state on disk)."""
        digest = hashlib.blake2b(digest_size=16)
        if isinstance(batch, Signed):
            digest.update("\x00".join(batch.ids).encode("utf-8"))
            for name in names:
                digest.update(np.ascontiguousarray(batch.signature_array(name)).tobytes())
            return digest.hexdigest()
        first = True
        for state in batch:
            for encoded in state_ids(state):
                digest.update(encoded if first else b"\x00" + encoded)
                first = False
        for name in names:
            for state in batch:
                if state.documents:
                    digest.update(np.ascontiguousarray(load(state.directory, f"sig-{name}")).tobytes())
        return digest.hexdigest()

    def states(self, steps: Sequence[Dedup], skip_key: str | None, directory: Path) -> list[ShardState]:
        """Every recorded batch (but `skip_key`) as pass-one state on disk, one batch in memory at a time."""
        found = []
        for number, batch in enumerate(self.manifest()["batches"]):
            if batch["key"] == skip_key:
                continue
            with np.load(self.directory / batch["file"], allow_pickle=False) as data:
                signatures = {s.name: data[f"sig:{s.name}"] for s in steps if f"sig:{s.name}" in data}
                if signatures:
                    found.append(save_state(steps, directory / f"batch-{number:05d}", data["ids"].tolist(),
                                            data["lengths"], signatures, new=False))
        return found

    def rows(self, names: Sequence[str], skip_key: str | None = None) -> dict[str, IndexRows]:
        """Every recorded batch's survivors, per step (the batch `skip_key` left out)."""
        found: dict[str, list] = {name: [] for name in names}
        for batch in self.manifest()["batches"]:
            if batch["key"] == skip_key:
                continue
            with np.load(self.directory / batch["file"], allow_pickle=False) as data:
                for name in names:
                    if f"sig:{name}" in data:
                        found[name].append((data["ids"].tolist(), data["lengths"], data[f"sig:{name}"]))
        rows = {}
        for name, batches in found.items():
            if batches:
                rows[name] = IndexRows(
                    [i for ids, _, _ in batches for i in ids],
                    np.concatenate([lengths for _, lengths, _ in batches]),
                    np.concatenate([sig for _, _, sig in batches]),
                )
        return rows

    def record(self, key: str, signed: Signed, decisions: Decisions, names: Sequence[str]) -> None:
        """Add this batch's survivors (atomically; replaces an earlier record of the same batch)."""
        kept = np.flatnonzero(decisions.removed_by < 0)
        arrays = {f"sig:{n}": signed.signature_array(n)[kept] for n in names}
        self.write_batch(key, [signed.ids[i] for i in kept], signed.length_array()[kept], arrays, names)

    def record_kept(self, key: str, kept: Iterable[tuple[ShardState, np.ndarray]], names: Sequence[str]) -> None:
        """`record` from pass one's state on disk: (shard state, its kept rows) in order."""
        ids: list[str] = []
        lengths, arrays = [], {f"sig:{n}": [] for n in names}
        for state, rows in kept:
            all_ids = state_ids(state)
            ids.extend(all_ids[r].decode("utf-8") for r in rows.tolist())
            lengths.append(np.load(Path(state.directory) / "lengths.npy")[rows])
            for n in names:
                arrays[f"sig:{n}"].append(np.load(Path(state.directory) / f"sig-{n}.npy")[rows])
        self.write_batch(key, ids, np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64),
                         {k: np.concatenate(v) for k, v in arrays.items() if v}, names)

    def write_batch(self, key: str, ids: list[str], lengths: np.ndarray, arrays: dict[str, np.ndarray],
                    names: Sequence[str]) -> None:
        with self.lock():
            manifest = self.manifest()
            batches = [b for b in manifest["batches"] if b["key"] != key]
            number = 1 + max((int(b["file"][6:11]) for b in manifest["batches"]), default=-1)
            name = f"batch-{number:05d}.npz"
            fd, tmp = exclusive_temp_file(self.directory / name)  # never a name someone planted
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, ids=np.array(ids, dtype=str), lengths=lengths, **arrays)
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.directory / name)
            batches.append({"file": name, "key": key, "documents": len(ids), "steps": list(names)})
            manifest.update(batches=batches, fingerprints={**manifest["fingerprints"], **{
                n: self.fingerprints[n] for n in names}})
            atomic_write_text(self.directory / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
            live = {b["file"] for b in batches}
            for old in self.directory.glob("batch-*.npz"):
                if old.name not in live:
                    old.unlink()

    @contextmanager
    def lock(self) -> Iterator[None]:
        fd = os.open(self.directory / ".lock", os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644)  # no planted link
        with os.fdopen(fd, "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def state_ids(state: ShardState) -> list[bytes]:
    """A shard state's ids, UTF-8 encoded."""
    if not state.documents:
        return []
    offsets, blob = np.asarray(load(state.directory, "id_offsets")), load(state.directory, "ids")
    data = bytes(blob)
    return [data[offsets[i] : offsets[i + 1]] for i in range(state.documents)]
