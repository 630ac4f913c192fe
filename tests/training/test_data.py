import numpy as np
import torch

from training.data import FixedWindows, RandomWindows, StridedSampler


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
