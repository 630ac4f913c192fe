import pytest
import torch

from training.config import ModelConfig
from training.generate import filter_logits, sample_next
from training.model import GPT


def make(vocab=97, **kw) -> GPT:
    torch.manual_seed(0)
    return GPT(ModelConfig(preset="nano", **kw), vocab).eval()


def test_shapes_and_loss():
    model = make()
    idx = torch.randint(0, 97, (3, 16))
    logits, loss = model(idx, idx)
    assert logits.shape == (3, 16, 97) and loss.ndim == 0
    assert abs(loss.item() - torch.log(torch.tensor(97.0)).item()) < 0.5  # GPT-2 init: near uniform


def test_weight_tying():
    model = make()
    assert model.lm_head.weight is model.wte.weight
    assert model.num_parameters() == sum(p.numel() for n, p in model.named_parameters())  # counted once


def test_causal_future_tokens_do_not_change_past_logits():
    model = make()
    a = torch.randint(0, 97, (1, 20))
    b = a.clone()
    b[0, 12:] = (b[0, 12:] + 1) % 97
    assert torch.allclose(model(a)[0][0, :12], model(b)[0][0, :12], atol=1e-6)
    assert not torch.allclose(model(a)[0][0, 12:], model(b)[0][0, 12:])


def test_no_weight_decay_on_biases_norms_embeddings():
    model = make(bias=True)
    decay, rest = model.param_groups(0.1)
    decayed = {id(p) for p in decay["params"]}
    assert id(model.wte.weight) not in decayed and id(model.wpe.weight) not in decayed
    assert id(model.blocks[0].attn.qkv.weight) in decayed and id(model.blocks[0].attn.qkv.bias) not in decayed
    assert id(model.ln_f.weight) not in decayed
    assert len(decay["params"]) + len(rest["params"]) == len(list(model.parameters()))


def test_generate_appends_tokens_reproducibly():
    model = make()
    idx = torch.zeros((2, 3), dtype=torch.long)
    a = model.generate(idx, 40, temperature=0.9, top_k=5, generator=torch.Generator().manual_seed(1))
    b = model.generate(idx, 40, temperature=0.9, top_k=5, generator=torch.Generator().manual_seed(1))
    assert a.shape == (2, 43) and torch.equal(a, b) and torch.equal(a[:, :3], idx)


def test_bidirectional_model_sees_future_tokens():
    torch.manual_seed(0)
    model = GPT(ModelConfig(preset="nano"), 97, causal=False).eval()
    a = torch.randint(0, 97, (1, 20))
    b = a.clone()
    b[0, 12:] = (b[0, 12:] + 1) % 97
    assert not torch.allclose(model(a)[0][0, :12], model(b)[0][0, :12])
    with pytest.raises(ValueError, match="masked-LM"):
        model.generate(a, 3)


def test_kv_cache_logits_equal_a_full_forward():
    model = make()
    idx = torch.randint(0, 97, (2, 20))
    cache = model.new_cache()
    prefix = model(idx[:, :12], cache=cache)[0]
    steps = [model(idx[:, t:t + 1], cache=cache)[0] for t in range(12, 20)]
    full = model(idx)[0]
    assert len(cache) == 20
    assert torch.allclose(torch.cat([prefix, *steps], dim=1), full, atol=1e-5)


@pytest.mark.parametrize("new_tokens", [10, 60])  # within block_size 32, and past it (the window slides)
def test_greedy_generation_with_kv_cache_equals_without(new_tokens):
    model = make()
    idx = torch.randint(0, 97, (3, 5), generator=torch.Generator().manual_seed(3))
    cached = model.generate(idx, new_tokens, temperature=0, use_cache=True)
    plain = model.generate(idx, new_tokens, temperature=0, use_cache=False)
    assert cached.shape == (3, 5 + new_tokens) and torch.equal(cached, plain)
    sampled = [model.generate(idx, new_tokens, temperature=0.9, top_k=20, top_p=0.9, use_cache=c,
                              generator=torch.Generator().manual_seed(5)) for c in (True, False)]
    assert torch.equal(*sampled)


def test_top_k_and_top_p_keep_the_most_likely_tokens():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isfinite(filter_logits(logits, top_p=0.7)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.8)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.81)).tolist() == [[True, True, True, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.01)).tolist() == [[True, False, False, False]]
    assert torch.isfinite(filter_logits(logits, top_k=3)).tolist() == [[True, True, True, False]]
    draws = torch.cat([sample_next(logits.repeat(500, 1), 1.0, top_p=0.7, generator=torch.Generator().manual_seed(0))])
    assert set(draws.flatten().tolist()) == {0, 1}


def test_generation_stops_when_every_row_has_stopped():
    model = make()
    idx = torch.zeros((2, 3), dtype=torch.long)
    first = model.generate(idx, 1, temperature=0)[:, -1]
    out = model.generate(idx, 40, temperature=0, stop=int(first[0]))
    assert out[0, 3] == first[0] and (out[0, 3:] == first[0]).all()  # a stopped row is filled with the stop token
