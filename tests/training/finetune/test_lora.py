import copy

import torch
from finetune_samples import tiny_finetune, toy_sft, write_jsonl

from training.finetune.config import LoraConfig
from training.finetune.data import encode_sft, load_sft
from training.finetune.lora import LoRALinear, apply_lora, lora_parameters, merge_lora
from training.finetune.model_dir import load_policy
from training.finetune.run import finetune
from training.finetune.template import ChatTemplate, add_chat_tokens, resize_vocab
from training.train import load_model


def test_apply_lora_targets_and_starts_at_the_base_model(base_dir):
    gpt, _, _ = load_policy(base_dir)
    ids = torch.randint(0, gpt.vocab_size, (2, 16))
    before = gpt(ids)[0]
    names = apply_lora(gpt, LoraConfig(rank=4, targets=["attn.qkv", "mlp.fc"]))
    assert names == ["blocks.0.attn.qkv", "blocks.0.mlp.fc", "blocks.1.attn.qkv", "blocks.1.mlp.fc"]
    assert isinstance(gpt.blocks[0].attn.qkv, LoRALinear) and not isinstance(gpt.blocks[0].attn.proj, LoRALinear)
    assert {n for n, p in gpt.named_parameters() if p.requires_grad} == set(lora_parameters(gpt))
    assert torch.equal(gpt(ids)[0], before)  # B = 0


def test_lora_sft_changes_only_adapters_and_new_token_rows(base_dir, tmp_path):
    """Trains through the real stage, then compares every base tensor with the saved base."""
    data = write_jsonl(tmp_path / "sft.jsonl", toy_sft())
    finetune("sft", data, str(base_dir), tmp_path / "sft", tiny_finetune(max_steps=10))
    base, adapter = (torch.load(tmp_path / "sft" / f, weights_only=True) for f in ("base.pt", "adapter.pt"))
    original = torch.load(base_dir / "model.pt", weights_only=True)["state_dict"]
    old_vocab = original["wte.weight"].size(0)
    for name, tensor in original.items():  # base.pt holds the base weights, untouched by training
        kept = base["state_dict"][name][:old_vocab] if name in ("wte.weight", "lm_head.weight") else base["state_dict"][name]
        assert torch.equal(kept, tensor), name
    targets = ("attn.qkv", "attn.proj", "mlp.fc", "mlp.proj")
    assert set(adapter["state_dict"]) == {f"blocks.{i}.{m}.{p}" for i in range(2) for m in targets
                                          for p in ("lora_a", "lora_b")}
    assert all(adapter["state_dict"][k].abs().sum() > 0 for k in adapter["state_dict"] if k.endswith("lora_b"))
    new_rows = adapter["new_token_rows"]
    assert new_rows.shape == (4, 32) and not torch.equal(new_rows, base["state_dict"]["wte.weight"][old_vocab:])


def test_lora_training_step_leaves_every_base_weight_bit_equal(base_dir, tmp_path):
    """The trainable() set-up used by the stages: after optimizer steps only LoRA tensors and the
    added rows of the embedding differ."""
    from training.finetune.loop import fit
    from training.finetune.lora import trainable
    from training.finetune import sft

    gpt, tokenizer, _ = load_policy(base_dir)
    tokenizer, _ = add_chat_tokens(tokenizer)
    old_vocab = gpt.vocab_size
    gpt = resize_vocab(gpt, tokenizer.get_vocab_size())
    before = {k: v.clone() for k, v in gpt.state_dict().items()}
    config = tiny_finetune(max_steps=5, weight_decay=0.1)
    template = ChatTemplate(tokenizer)
    rows = encode_sft(load_sft(write_jsonl(tmp_path / "s.jsonl", toy_sft(8))), template, 64)
    groups = trainable(gpt, config, old_vocab)
    fit(gpt, groups, rows, lambda b: sft.batch_loss(gpt, b, template.end_id, torch.device("cpu")),
        lambda: {}, config, torch.device("cpu"), "test")
    after = gpt.state_dict()
    for name, tensor in before.items():
        now = after[name.replace(".weight", ".base.weight")] if name not in after else after[name]
        if name in ("wte.weight", "lm_head.weight"):
            assert torch.equal(now[:old_vocab], tensor[:old_vocab]) and not torch.equal(now[old_vocab:], tensor[old_vocab:])
        else:
            assert torch.equal(now, tensor), name
    assert all(not torch.equal(p, torch.zeros_like(p)) for n, p in lora_parameters(gpt).items() if "lora_b" in n)


def test_merge_reproduces_the_adapted_outputs(base_dir, tmp_path):
    data = write_jsonl(tmp_path / "sft.jsonl", toy_sft())
    finetune("sft", data, str(base_dir), tmp_path / "adapter", tiny_finetune(max_steps=10))
    finetune("sft", data, str(base_dir), tmp_path / "merged", tiny_finetune(max_steps=10), merge=True)
    assert not (tmp_path / "merged" / "adapter.pt").exists()
    merged = load_model(tmp_path / "merged")  # a plain model of the base architecture
    assert type(merged).__name__ == "GPT" and not any(isinstance(m, LoRALinear) for m in merged.modules())

    # the adapted model itself: base + LoRA modules, evaluated without merging
    gpt, _, _ = load_policy(base_dir)
    adapter = torch.load(tmp_path / "adapter" / "adapter.pt", weights_only=True)
    adapted = resize_vocab(gpt, gpt.vocab_size + 4)
    with torch.no_grad():
        adapted.wte.weight[gpt.vocab_size:] = adapter["new_token_rows"]
    apply_lora(adapted, LoraConfig(**adapter["lora"]))
    adapted.load_state_dict(adapter["state_dict"], strict=False)
    adapted.eval()
    ids = torch.randint(0, adapted.vocab_size, (3, 40))
    expected = adapted(ids)[0]
    assert torch.allclose(merged(ids)[0], expected, atol=1e-5)
    assert torch.allclose(load_policy(tmp_path / "adapter")[0](ids)[0], expected, atol=1e-5)
    assert torch.allclose(merge_lora(copy.deepcopy(adapted))(ids)[0], expected, atol=1e-5)
    assert not torch.allclose(load_policy(base_dir)[0](ids[:, :8].clamp(max=gpt.vocab_size - 1))[0],
                              merged(ids[:, :8].clamp(max=gpt.vocab_size - 1))[0][..., : gpt.vocab_size], atol=1e-3)
