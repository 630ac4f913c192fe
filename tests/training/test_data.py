import numpy as np
import pytest
import torch

from tokenmill.errors import ConfigError
from training.config import TokenizeConfig
from training.data import FixedWindows, MixtureWindows, RandomWindows, StridedSampler, source_ranges
from training.tokenizer import read_meta


def test_sample_is_a_pure_function_of_seed_and_index(tokens):
    a = RandomWindows(tokens / "train.bin", "uint16", 16, seed=7)
    b = RandomWindows(tokens / "train.bin", "uint16", 16, seed=7)
    x, y = a[12345]
    assert torch.equal(x, b[12345][0]) and torch.equal(x[1:], y[:-1]) and x.shape == (16,)
    assert not torch.equal(a[1][0], RandomWindows(tokens / "train.bin", "uint16", 16, seed=8)[1][0])


def test_ranks_see_disjoint_samples_and_resume_continues_the_stream():
    world, per_step = 2, 4 * 2 * 2  # batch 4, accumulate 2, 2 ranks
    ranks = [list(zip(range(20), StridedSampler(0, r, world))) for r in range(world)]
    seen = [i for rank in ranks for _, i in rank]
    assert len(seen) == len(set(seen)) and sorted(seen) == list(range(40))
    after_three_steps = [i for _, i in zip(range(8), StridedSampler(3 * per_step, 1, world))]
    assert after_three_steps[0] == 3 * per_step + 1 and after_three_steps[1] == 3 * per_step + 3


def test_validation_windows_do_not_overlap():
    tokens = np.arange(100, dtype=np.uint16)
    windows = FixedWindows(tokens, 10)
    assert len(windows) == 9
    x, y = windows[2]
    assert x.tolist() == list(range(20, 30)) and y.tolist() == list(range(21, 31))
    assert len(FixedWindows(tokens, 10, max_windows=3)) == 3


@pytest.fixture(scope="module")
def two_sources(tmp_path_factory, tokenize_config):
    """A big source (60 documents) and a small one (6) with different words, tokenized."""
    from tokenmill.documents import Document, ShardWriter
    from training.tokenizer import tokenize

    root = tmp_path_factory.mktemp("sources")
    with ShardWriter(root / "corpus", shard_size=100) as writer:
        for i in range(66):
            source = "big" if i < 60 else "small"
            words = "river bridge city library" if source == "big" else "Zażółć gęślą jaźń żółw"
            writer.write(Document(f"{source}-{i:03d}", f"{words} {i} " * 12, {"lang": "en", "source": source}))
    tokenize(root / "corpus", root / "tokens", TokenizeConfig(vocab_size=300, val_fraction=0.2))
    return root / "tokens"


def test_mixture_samples_sources_in_fixed_proportions_whatever_their_sizes(two_sources):
    meta = read_meta(two_sources)
    ranges = source_ranges(two_sources, meta, {"big": 1.0, "small": 3.0})
    sizes = {name: int((r[:, 1] - r[:, 0]).sum()) for name, r in ranges.items()}
    assert sizes["big"] > 3 * sizes["small"]
    windows = MixtureWindows(two_sources / "train.bin", meta["dtype"], 16, 7, ranges, {"big": 1.0, "small": 3.0})
    sources = [windows.names[windows.source_of(i)] for i in range(2000)]
    assert abs(sources.count("small") / 2000 - 0.75) < 0.03  # 3:1 although "small" has a third of the tokens
    train = np.memmap(two_sources / "train.bin", dtype=meta["dtype"], mode="r")
    vocab = {name: set(np.concatenate([train[a:b] for a, b in r]).tolist()) for name, r in ranges.items()}
    for i in range(200):  # every token of a window comes from the source drawn for it
        x, y = windows[i]
        assert set(x.tolist()) | set(y.tolist()) <= vocab[sources[i]]
    assert vocab["small"] - vocab["big"] and vocab["big"] - vocab["small"]  # the check above can fail
    assert torch.equal(windows[5][0], MixtureWindows(two_sources / "train.bin", meta["dtype"], 16, 7, ranges,
                                                     {"big": 1.0, "small": 3.0})[5][0])


def test_mixture_naming_an_unknown_source_is_a_one_line_config_error(two_sources):
    with pytest.raises(ConfigError, match=r"train.mixture.wiki: no such source .* \(sources: big, small\)"):
        source_ranges(two_sources, read_meta(two_sources), {"wiki": 1.0})


def test_training_reads_the_mixture(two_sources, nano, tiny_train, tmp_path):
    from training.config import TrackingConfig
    from training.train import train

    result = train(two_sources, tmp_path / "model", tiny_train(max_steps=4, mixture={"big": 1.0, "small": 1.0}),
                   nano, TrackingConfig(enabled=False))
    assert result["steps"] == 4 and result["train_loss"] < 6.0
