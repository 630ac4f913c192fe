import torch

from training.config import ModelConfig
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
