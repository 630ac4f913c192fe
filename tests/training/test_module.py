import pytest

from training.config import TrainConfig
from training.module import lr_at


def test_lr_warmup_then_cosine_to_min_lr():
    config = TrainConfig(lr=1e-3, min_lr=1e-4, warmup_steps=10, max_steps=110)
    assert lr_at(0, config) == pytest.approx(1e-4)  # 1/10 of the peak
    assert lr_at(9, config) == pytest.approx(1e-3)
    assert lr_at(10, config) == pytest.approx(1e-3)
    assert lr_at(60, config) == pytest.approx(5.5e-4)  # halfway: the mean of lr and min_lr
    assert lr_at(110, config) == pytest.approx(1e-4) and lr_at(500, config) == pytest.approx(1e-4)
    steps = [lr_at(s, config) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(steps, steps[1:]))
