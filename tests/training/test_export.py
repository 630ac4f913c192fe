"""The Hugging Face export, checked with transformers itself (offline): same tokens, same logits (fp32,
1e-4), same greedy text as tokenmill for the bpe and char tokenizers; chat template and LoRA merged for
fine-tuned models; a masked-LM model refused."""

from __future__ import annotations

import json
import os

import pytest
import torch

from tokenmill.errors import UserError
from training.config import ModelConfig, TokenizeConfig
from training.export import export_gpt, export_hf
from training.finetune.config import LoraConfig
from training.finetune.lora import apply_lora
from training.finetune.model_dir import load_policy, save_policy
from training.finetune.template import ChatTemplate, add_chat_tokens, resize_vocab
from training.model import GPT
from training.tokenizer import special_ids, train_tokenizer

from tests.training.conftest import EN, FA, PL

os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = pytest.importorskip("transformers")

PROMPTS = ["The river runs through", "این شهر پل قدیمی", "Zażółć gęślą jaźń"]


def texts() -> list[str]:
    return [s.format(n=i) for i in range(20) for s in EN + FA + PL]


def random_gpt(vocab_size: int, causal: bool = True, seed: int = 0) -> GPT:
    """A small GPT with biases and weights far from init, so logits are peaked and every weight matters."""
    torch.manual_seed(seed)
    gpt = GPT(ModelConfig(preset=None, n_layer=2, n_head=2, n_embd=32, block_size=64, bias=True), vocab_size,
              causal=causal).eval()
    with torch.no_grad():
        for p in gpt.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return gpt


@pytest.fixture(scope="module", params=["bpe", "char"])
def exported(request, tmp_path_factory):
    tokenizer = train_tokenizer(texts(), TokenizeConfig(kind=request.param, vocab_size=400, min_frequency=1))
    gpt = random_gpt(tokenizer.get_vocab_size())
    out = tmp_path_factory.mktemp(request.param) / "hf"
    export_gpt(gpt, tokenizer, out)
    return gpt, tokenizer, out


def prompt_ids(tokenizer, prompt: str) -> list[int]:
    """What tokenmill feeds the model for a prompt (training/evaluate.py, the pyfunc): BOS + text."""
    return [special_ids(tokenizer)["bos"]] + tokenizer.encode(prompt, add_special_tokens=False).ids


def test_transformers_loads_it_and_agrees(exported):
    gpt, tokenizer, out = exported
    hf = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    assert type(hf).__name__ == "GPT2LMHeadModel"
    ids = special_ids(tokenizer)
    assert (hf_tokenizer.eos_token_id, hf_tokenizer.pad_token_id, hf_tokenizer.bos_token_id) == \
        (ids["eos"], ids["pad"], ids["bos"])
    for prompt in PROMPTS:
        ours = prompt_ids(tokenizer, prompt)
        assert hf_tokenizer(prompt)["input_ids"] == ours
        x = torch.tensor([ours])
        with torch.no_grad():
            expected, actual = gpt(x)[0], hf(x).logits
        assert torch.allclose(actual, expected, atol=1e-4, rtol=0), prompt
        greedy = gpt.generate(x, 24, temperature=0)
        generated = hf.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=24, do_sample=False,
                                eos_token_id=None)
        assert generated.tolist() == greedy.tolist(), prompt
        assert hf_tokenizer.decode(generated[0, len(ours):]) == tokenizer.decode(greedy[0, len(ours):].tolist())


def test_written_files_are_plain_gpt2(exported):
    _, tokenizer, out = exported
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["GPT2LMHeadModel"] and config["activation_function"] == "gelu"
    assert config["tie_word_embeddings"] is True and config["layer_norm_epsilon"] == 1e-5
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    generation = json.loads((out / "generation_config.json").read_text())
    assert generation["eos_token_id"] == special_ids(tokenizer)["eos"]


def test_finetuned_lora_exports_merged_with_its_chat_template(tmp_path):
    base_tokenizer = train_tokenizer(texts(), TokenizeConfig(vocab_size=400, min_frequency=1))
    tokenizer, _ = add_chat_tokens(base_tokenizer)
    gpt = resize_vocab(random_gpt(base_tokenizer.get_vocab_size()), tokenizer.get_vocab_size()).eval()
    base_state = {"state_dict": {k: v.clone() for k, v in gpt.state_dict().items()},
                  "model_config": {"preset": None, "n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 64,
                                   "bias": True}, "vocab_size": gpt.vocab_size}
    lora = LoraConfig(rank=2, alpha=4, targets=["attn.qkv", "mlp.fc"])
    apply_lora(gpt, lora)
    with torch.no_grad():
        for name, p in gpt.named_parameters():
            if name.endswith("lora_b"):
                p.normal_(0, 0.5)  # an adapter that changes the outputs
    model_dir = tmp_path / "sft"
    model_dir.mkdir()
    save_policy(model_dir, gpt, tokenizer, special_ids(tokenizer)["eos"], 1, base_state, lora,
                base_tokenizer.get_vocab_size())
    merged, _, _ = load_policy(model_dir)
    result = export_hf(model_dir, tmp_path / "hf")
    assert result["chat_template"] is True
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Gdzie jest Łódź?"}]
    ids = hf_tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)
    assert ids["input_ids"] == ChatTemplate(tokenizer).prompt(messages)
    x = torch.tensor([ids["input_ids"]])
    with torch.no_grad():
        assert torch.allclose(hf(x).logits, merged(x)[0], atol=1e-4, rtol=0)


def test_masked_lm_is_refused_in_one_line(tmp_path):
    tokenizer = train_tokenizer(texts(), TokenizeConfig(vocab_size=400, min_frequency=1))
    gpt = random_gpt(tokenizer.get_vocab_size(), causal=False)
    with pytest.raises(UserError, match="masked-LM") as error:
        export_gpt(gpt, tokenizer, tmp_path / "hf")
    assert "\n" not in str(error.value)
    assert not (tmp_path / "hf").exists()


def save_model_dir(directory, gpt: GPT, tokenizer, objective: str = "causal", run_id: str | None = None):
    """A model directory as the train stage writes it (model.pt, tokenizer.json, run.json)."""
    from tokenmill.config import to_dict

    directory.mkdir(parents=True)
    torch.save({"state_dict": gpt.state_dict(), "model_config": to_dict(gpt.config), "vocab_size": gpt.vocab_size,
                "objective": objective}, directory / "model.pt")
    tokenizer.save(str(directory / "tokenizer.json"))
    if run_id:
        (directory / "run.json").write_text(json.dumps({"run_id": run_id}))
    return directory


def test_cli_exports_to_the_models_run_and_refuses_a_masked_lm_in_one_line(tracking, tmp_path, capsys):
    import yaml

    from pipeline.cli import main
    from training import tracking as mlf

    tokenizer = train_tokenizer(texts(), TokenizeConfig(kind="char", vocab_size=300, min_frequency=1))
    run_id = mlf.start_run(tracking, "export test")
    causal = save_model_dir(tmp_path / "causal", random_gpt(tokenizer.get_vocab_size()), tokenizer, run_id=run_id)
    masked = save_model_dir(tmp_path / "masked", random_gpt(tokenizer.get_vocab_size(), causal=False), tokenizer,
                            "masked")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"tracking": {k: getattr(tracking, k) for k in
                                                   ("tracking_uri", "experiment", "artifact_location")}}))
    assert main(["export", "--params", str(params), "--model", str(causal), "--out", str(tmp_path / "hf")]) == 0
    artifacts = {a.path for a in mlf.client(tracking).list_artifacts(run_id, "hf")}
    assert {"hf/config.json", "hf/model.safetensors", "hf/tokenizer.json"} <= artifacts
    assert mlf.client(tracking).get_run(run_id).data.tags["export.hf"] == f"runs:/{run_id}/hf"
    capsys.readouterr()
    assert main(["export", "--params", str(params), "--model", str(masked), "--out", str(tmp_path / "no")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error[-1].startswith("tokenmill export: error: ") and "masked-LM" in error[-1] and len(error) == 1
    assert not (tmp_path / "no").exists()
