"""Token windows from the memmaps of the tokenize stage, as a LightningDataModule.

Training sample i is the window at a start drawn from a generator seeded with (seed, i): a pure
function of (seed, i). The sampler of rank r yields i = start + r, start + r + world, ... with
start = the samples already consumed (stored in every checkpoint), so a resumed run reads exactly the
samples an uninterrupted one would, even on another number of devices, and ranks never read the same
sample. The DataLoaders have their own torch.Generator: creating their iterators draws nothing from
the global RNG, which dropout draws from (bitwise-equal resume depends on it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from tokenmill.errors import ConfigError, UserError
from training.tokenizer import read_documents_index, read_meta, read_tokens


class RandomWindows(Dataset):
    """Map-style: index i -> (x, y), block_size tokens and the same shifted by one."""

    def __init__(self, path: Path, dtype: str, block_size: int, seed: int):
        self.path, self.dtype, self.block_size, self.seed = Path(path), dtype, block_size, seed
        self.n_tokens = self.path.stat().st_size // np.dtype(dtype).itemsize
        if self.n_tokens < block_size + 1:
            raise UserError(f"{path}: {self.n_tokens} tokens, fewer than block_size + 1 = {block_size + 1}")
        self._tokens: np.memmap | None = None  # opened lazily: picklable into worker processes

    def __len__(self) -> int:
        return 2**62  # indexable without end; the sampler decides what is read

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._tokens is None:
            self._tokens = np.memmap(self.path, dtype=np.dtype(self.dtype), mode="r")
        start = int(np.random.default_rng([self.seed, i]).integers(0, self.n_tokens - self.block_size))
        return _pair(self._tokens[start:start + self.block_size + 1])


class MixtureWindows(Dataset):
    """train.mixture: sample i first draws a source with probability weight / sum(weights), then a
    window uniformly inside that source's documents, read from their concatenation (so every token of
    the window comes from the drawn source). Proportions hold whatever the sources' sizes: a small
    source is repeated, a large one subsampled. Sources absent from the mixture are not read."""

    def __init__(self, path: Path, dtype: str, block_size: int, seed: int, ranges: dict[str, np.ndarray],
                 weights: dict[str, float], document_weights: dict[str, np.ndarray] | None = None):
        self.path, self.dtype, self.block_size, self.seed = Path(path), dtype, block_size, seed
        self.names = list(weights)
        total = sum(weights.values())
        self.probabilities = np.array([weights[n] / total for n in self.names])
        self.ranges = [np.asarray(ranges[n], dtype=np.int64) for n in self.names]
        self.offsets = [np.concatenate([[0], np.cumsum(r[:, 1] - r[:, 0])]) for r in self.ranges]
        # train.rehydrate: a document of weight w is drawn as if its tokens were there w times
        self.document_weights = [None if document_weights is None else np.asarray(document_weights[n], np.int64)
                                 for n in self.names]
        self.weighted_offsets = [None if w is None else np.concatenate([[0], np.cumsum((r[:, 1] - r[:, 0]) * w)])
                                 for r, w in zip(self.ranges, self.document_weights)]
        for name, offsets in zip(self.names, self.offsets):
            if offsets[-1] < block_size + 1:
                raise UserError(f"train.mixture.{name}: {offsets[-1]} training tokens, fewer than block_size + 1")
        self._tokens: np.memmap | None = None

    def __len__(self) -> int:
        return 2**62

    def source_of(self, i: int) -> int:
        return int(np.random.default_rng([self.seed, i]).choice(len(self.names), p=self.probabilities))

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._tokens is None:
            self._tokens = np.memmap(self.path, dtype=np.dtype(self.dtype), mode="r")
        rng = np.random.default_rng([self.seed, i])
        s = int(rng.choice(len(self.names), p=self.probabilities))
        ranges, offsets = self.ranges[s], self.offsets[s]
        if self.weighted_offsets[s] is None:
            start = int(rng.integers(0, offsets[-1] - self.block_size))
        else:
            start = self.weighted_start(s, int(rng.integers(0, self.weighted_offsets[s][-1])))
        pieces, need = [], self.block_size + 1
        doc = int(np.searchsorted(offsets, start, side="right")) - 1
        within = start - offsets[doc]
        while need:
            begin = ranges[doc, 0] + within
            take = min(need, int(ranges[doc, 1] - begin))
            pieces.append(self._tokens[begin:begin + take])
            need -= take
            doc, within = doc + 1, 0
        return _pair(np.concatenate(pieces))

    def weighted_start(self, s: int, drawn: int) -> int:
        """The token (in source `s`'s concatenation) a draw over the weighted tokens lands on, moved back so
        that a whole window follows it."""
        weighted, weights = self.weighted_offsets[s], self.document_weights[s]
        doc = int(np.searchsorted(weighted, drawn, side="right")) - 1
        start = int(self.offsets[s][doc] + (drawn - weighted[doc]) // weights[doc])
        return min(start, int(self.offsets[s][-1]) - self.block_size - 1)


# FineWeb-2's rehydration (github.com/huggingface/fineweb-2, README "Deduplication"): a document that
# stood for a duplicate cluster of N documents is drawn this many times as often as a unique one:
# N = 1 → 1, 2 → 2, 3 → 3, 4 → 3, 5-99 → 5, 100-999 → 8, 1000+ → 1 (very large clusters are mostly boilerplate).
FINEWEB2_REHYDRATION = [[1, 1], [2, 2], [3, 3], [4, 3], [5, 5], [100, 8], [1000, 1]]


def rehydration_weights(cluster_sizes: np.ndarray, table: list[list[int]]) -> np.ndarray:
    """Each document's weight: that of the largest `[min_cluster_size, weight]` row its cluster size reaches."""
    bounds = np.array([row[0] for row in table], dtype=np.int64)
    weights = np.array([row[1] for row in table], dtype=np.int64)
    rows = np.searchsorted(bounds, np.maximum(np.asarray(cluster_sizes, np.int64), 1), side="right") - 1
    return weights[np.maximum(rows, 0)]


def source_ranges(tokens: Path, meta: dict, mixture: dict[str, float]) -> dict[str, np.ndarray]:
    """{source: (n, 2) token ranges in train.bin} for the sources named in train.mixture."""
    index = read_documents_index(tokens, "train", meta)
    if index is None:
        raise UserError(f"{tokens}: train.mixture needs per-source document ranges, which these token files "
                        "lack (re-run the tokenize stage)")
    if list(mixture) == [ALL_SOURCES]:
        return {ALL_SOURCES: index["ranges"]}
    known = sorted(set(index["source"]))
    for name in mixture:
        if name not in known:
            raise ConfigError(f"train.mixture.{name}: no such source in {tokens / 'meta.json'} "
                              f"(sources: {', '.join(known)})")
    return {name: index["ranges"][index["source"] == name] for name in mixture}


ALL_SOURCES = "*"  # train.rehydrate without train.mixture: every document, one source


def document_weights(tokens: Path, meta: dict, mixture: dict[str, float], table: list[list[int]]) -> dict[str, np.ndarray]:
    """{source: rehydration weight of each of its documents} from the tokenizer's train.cluster_size.npy."""
    path = Path(tokens) / "train.cluster_size.npy"
    if not path.is_file():
        raise UserError(f"{path}: train.rehydrate needs the documents' duplicate-cluster sizes, which these token "
                        "files lack (re-run the tokenize stage on a corpus prepared with near_dedup)")
    weights = rehydration_weights(np.load(path), table)
    if list(mixture) == [ALL_SOURCES]:
        return {ALL_SOURCES: weights}
    index = read_documents_index(tokens, "train", meta)
    return {name: weights[index["source"] == name] for name in mixture}


class FixedWindows(Dataset):
    """Non-overlapping windows of a token file: window j covers tokens [j*T, (j+1)*T] (+1 for y)."""

    def __init__(self, tokens: np.ndarray, block_size: int, max_windows: int | None = None):
        self.tokens, self.block_size = tokens, block_size
        count = (len(tokens) - 1) // block_size
        self.count = count if max_windows is None else min(count, max_windows)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, j: int) -> tuple[torch.Tensor, torch.Tensor]:
        start = j * self.block_size
        return _pair(self.tokens[start:start + self.block_size + 1])


def _pair(window: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    window = torch.from_numpy(window.astype(np.int64))
    return window[:-1], window[1:]


class StridedSampler(Sampler[int]):
    """Endless global sample indices start + rank, start + rank + world_size, ..."""

    def __init__(self, start: int, rank: int, world_size: int, stop: int | None = None):
        self.start, self.rank, self.world_size, self.stop = start, rank, world_size, stop

    def __iter__(self) -> Iterator[int]:
        i = self.start + self.rank
        while self.stop is None or i < self.stop:
            yield i
            i += self.world_size

    def __len__(self) -> int:
        if self.stop is None:
            raise TypeError("endless sampler")  # DataLoader/Lightning then treat the epoch as endless
        return len(range(self.start + self.rank, self.stop, self.world_size))


class TokenDataModule(L.LightningDataModule):
    def __init__(self, tokens: Path, block_size: int, batch_size: int, accumulate: int, seed: int,
                 val_batches: int, num_workers: int = 0, mixture: dict[str, float] | None = None,
                 rehydration: list[list[int]] | None = None):
        super().__init__()
        self.tokens, self.block_size, self.batch_size = Path(tokens), block_size, batch_size
        self.accumulate, self.seed, self.val_batches, self.num_workers = accumulate, seed, val_batches, num_workers
        self.meta = read_meta(self.tokens)
        self.mixture = dict(mixture or {})
        if rehydration is not None and not self.mixture:  # all sources as one, weighted by cluster size
            self.mixture = {ALL_SOURCES: 1.0}
        self.ranges = source_ranges(self.tokens, self.meta, self.mixture) if self.mixture else None
        self.document_weights = (document_weights(self.tokens, self.meta, self.mixture, rehydration)
                                 if rehydration is not None else None)

    def samples_per_step(self, world_size: int) -> int:
        return self.batch_size * self.accumulate * world_size

    def train_dataloader(self) -> DataLoader:
        trainer, world = self.trainer, self.trainer.world_size
        dataset = self.train_dataset()
        start = getattr(trainer.lightning_module, "samples_seen", trainer.global_step * self.samples_per_step(world))
        sampler = StridedSampler(start, trainer.global_rank, world)
        return self._loader(dataset, sampler)

    def train_dataset(self) -> Dataset:
        path, dtype = self.tokens / "train.bin", self.meta["dtype"]
        if self.mixture:
            return MixtureWindows(path, dtype, self.block_size, self.seed, self.ranges, self.mixture,
                                  self.document_weights)
        return RandomWindows(path, dtype, self.block_size, self.seed)

    def val_dataloader(self) -> DataLoader:
        world = self.trainer.world_size
        windows = self.val_batches * self.batch_size * world
        dataset = FixedWindows(read_tokens(self.tokens, "val", self.meta), self.block_size, windows)
        if len(dataset) == 0:
            raise UserError(f"{self.tokens / 'val.bin'}: fewer than block_size + 1 tokens")
        sampler = StridedSampler(0, self.trainer.global_rank, world, stop=len(dataset))
        return self._loader(dataset, sampler)

    def _loader(self, dataset: Dataset, sampler: Sampler) -> DataLoader:
        return DataLoader(dataset, batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers,
                          generator=torch.Generator().manual_seed(self.seed),
                          pin_memory=torch.cuda.is_available(), persistent_workers=self.num_workers > 0)
