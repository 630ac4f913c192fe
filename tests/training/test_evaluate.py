import math

import numpy as np
import pytest
import torch

from training.config import ModelConfig
from training.evaluate import bits_per_byte, loss_sums, unigram_log_probs
from training.model import GPT


def test_bits_per_byte_on_a_hand_computed_case():
    # A model with all weights zero predicts the uniform distribution: every target costs ln 4 nats.
    model = GPT(ModelConfig(preset="nano", block_size=4), vocab_size=4).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    tokens = np.array([1, 2, 3, 0, 1, 2], dtype=np.uint16)  # one window of 4: targets 2, 3, 0(eot), 1
    byte_lengths = np.array([0, 1, 2, 3])  # eot stands for no bytes
    sums = loss_sums(model, tokens, byte_lengths, block_size=4, batch_size=8, unigram=np.log(np.full(4, 0.25)))
    assert sums["tokens"] == 4 and sums["bytes"] == 3 + 0 + 1 + 2
    assert sums["nats"] == pytest.approx(4 * math.log(4)) and sums["unigram_nats"] == pytest.approx(4 * math.log(4))
    # 4 targets x 2 bits over 6 bytes
    assert bits_per_byte(sums["nats"], sums["bytes"]) == pytest.approx(8 / 6)


def test_unigram_baseline_is_add_one_smoothed_frequency():
    logp = unigram_log_probs(np.array([0, 0, 1], dtype=np.uint16), vocab_size=3)
    assert np.exp(logp).tolist() == pytest.approx([3 / 6, 2 / 6, 1 / 6])
