import pytest
import torch

from training.config import ModelConfig
from training.model import GPT
from training.objectives import IGNORE_INDEX, mask_tokens, masking_generator, training_pair

VOCAB, MASK = 64, 3


def batch(rows=64, length=128, seed=0):
    ids = torch.randint(4, VOCAB, (rows, length), generator=torch.Generator().manual_seed(seed))
    ids[:, 0], ids[:, -1] = 1, 0  # BOS ... EOS
    return ids


def test_masking_selects_the_rate_and_replaces_80_10_10():
    ids = batch()
    inputs, targets = mask_tokens(ids, MASK, VOCAB, 0.15, torch.Generator().manual_seed(1))
    selected = targets != IGNORE_INDEX
    assert selected.float().mean().item() == pytest.approx(0.15, abs=0.01)
    assert torch.equal(targets[selected], ids[selected])  # targets are the original tokens
    assert torch.equal(inputs[~selected], ids[~selected])  # unselected positions are untouched
    masked = (inputs == MASK) & selected
    kept = (inputs == ids) & selected
    randomised = selected & ~masked & ~kept
    n = selected.sum().item()
    assert masked.sum().item() / n == pytest.approx(0.8, abs=0.03)
    # a random replacement can draw the original token (1 in 60): slightly fewer than 10 % change, slightly more stay
    assert randomised.sum().item() / n == pytest.approx(0.1 * 59 / 60, abs=0.02)
    assert kept.sum().item() / n == pytest.approx(0.1 + 0.1 / 60, abs=0.02)
    assert (inputs[randomised] >= 4).all()  # random replacements are ordinary tokens


def test_special_tokens_are_never_targets_and_every_row_has_one():
    ids = batch(rows=200, length=6)  # short rows: 15 % of 4 ordinary tokens is often none
    _, targets = mask_tokens(ids, MASK, VOCAB, 0.15, torch.Generator().manual_seed(2))
    assert (targets[:, 0] == IGNORE_INDEX).all() and (targets[:, -1] == IGNORE_INDEX).all()
    assert ((targets != IGNORE_INDEX).sum(dim=1) >= 1).all()


def test_masks_are_a_function_of_seed_step_and_rank():
    ids = batch()
    a = mask_tokens(ids, MASK, VOCAB, 0.15, masking_generator(7, 3, 0))
    b = mask_tokens(ids, MASK, VOCAB, 0.15, masking_generator(7, 3, 0))
    c = mask_tokens(ids, MASK, VOCAB, 0.15, masking_generator(7, 3, 1))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and not torch.equal(a[1], c[1])


def test_causal_pair_is_the_window_and_bad_objectives_are_refused():
    x, y = batch()[:, :-1], batch()[:, 1:]
    assert training_pair(x, y, "causal") == (x, y)
    with pytest.raises(ValueError, match="objective must be one of causal, masked"):
        training_pair(x, y, "prefix")
    with pytest.raises(ValueError, match="mask rate"):
        mask_tokens(x, MASK, VOCAB, 1.5)


def test_a_bidirectional_model_learns_the_masked_objective():
    """Each row repeats one token: a masked position is read off the others (on both sides)."""
    torch.manual_seed(0)
    model = GPT(ModelConfig(preset="nano", block_size=32), VOCAB, causal=False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for step in range(80):
        rows = torch.randint(4, VOCAB, (16, 1), generator=gen).repeat(1, 32)
        inputs, targets = training_pair(rows, None, "masked", MASK, VOCAB, 0.15, gen)
        _, loss = model(inputs, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[:5]) / 5 > 3.5 and sum(losses[-10:]) / 10 < 1.0, losses  # from ln(64) = 4.2
