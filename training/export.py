"""Export a trained GPT to the Hugging Face format: `transformers` loads it with no custom code.

The GPT here is GPT-2 shaped, so the export is a `GPT2LMHeadModel`:
  - pre-norm blocks, LayerNorm eps 1e-5 (PyTorch's default, GPT-2's `layer_norm_epsilon`), learned
    positions, exact (erf) GELU (`activation_function: "gelu"`, not GPT-2's tanh `gelu_new`), tied
    input and output embeddings, attention scaled by 1/sqrt(head_dim);
  - GPT-2's Conv1D layers hold (in, out) matrices where nn.Linear holds (out, in): every Linear weight is
    transposed; a model trained without biases (`model.bias: false`) gets zero biases, which changes nothing.

The tokenizer becomes a `PreTrainedTokenizerFast` over the same tokenizer.json, with two differences that
make `AutoTokenizer.from_pretrained(DIR)(prompt)` give what tokenmill feeds the model for a prompt:
  - the post-processor adds BOS only (tokenmill's adds BOS + EOS: a whole document);
  - the special tokens (EOS, BOS, PAD, MASK and, for fine-tuned models, the chat markers) are registered as
    special tokens, so that a chat template's markers encode to their ids. As everywhere in transformers, a
    prompt that literally contains "<|endoftext|>" then encodes it as EOS (tokenmill keeps it as text).
Fine-tuned models (their tokenizer has the chat markers of training/finetune/template.py) carry that
template as `tokenizer.chat_template`; LoRA directories are merged on load.

Directory written (atomically, with a stats.json of stage "export"):
  config.json  model.safetensors  generation_config.json
  tokenizer.json  tokenizer_config.json  special_tokens_map.json (or their transformers-version equivalents)
  tokenmill.json  what was exported: source, run id, tokenizer kind, chat template or not

A masked-LM (bidirectional) model has no standard causal class to map to and is refused with one line.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from typing import TYPE_CHECKING

from tokenmill.errors import UserError
from tokenmill.stage import StageStats, atomic_directory, write_json
from training.config import EvalConfig, TrackingConfig

if TYPE_CHECKING:  # torch, tokenizers and transformers load when a model is exported, not with the CLI
    import torch
    from tokenizers import Tokenizer

    from training.model import GPT

FORMATS = ("hf",)
LAYER_NORM_EPS = 1e-5  # nn.LayerNorm's default, which training/model.py uses
ARTIFACT_PATH = "hf"  # where the export goes in the model's MLflow run
CHAT_MARKERS = ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>")  # training/finetune/template.py


def hf_config(model: GPT, ids: dict):
    """A GPT2Config with exactly the model's shape and numerics."""
    from transformers import GPT2Config

    c = model.config
    return GPT2Config(vocab_size=model.vocab_size, n_positions=c.block_size, n_embd=c.n_embd, n_layer=c.n_layer,
                      n_head=c.n_head, n_inner=4 * c.n_embd, activation_function="gelu",
                      resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=LAYER_NORM_EPS,
                      tie_word_embeddings=True, scale_attn_weights=True,
                      bos_token_id=ids["bos"], eos_token_id=ids["eos"], pad_token_id=ids["pad"])


def hf_state_dict(model: GPT) -> dict[str, torch.Tensor]:
    """tokenmill's weights under GPT2LMHeadModel's names; Linear (out, in) -> Conv1D (in, out)."""
    import torch

    state = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}

    def bias(name: str, size: int) -> torch.Tensor:  # model.bias: false -> zeros, which add nothing
        return state.get(name, torch.zeros(size))

    out = {"transformer.wte.weight": state["wte.weight"], "transformer.wpe.weight": state["wpe.weight"],
           "transformer.ln_f.weight": state["ln_f.weight"],
           "transformer.ln_f.bias": bias("ln_f.bias", model.config.n_embd)}
    for i in range(model.config.n_layer):
        ours, theirs = f"blocks.{i}.", f"transformer.h.{i}."
        for a, b in (("ln_1", "ln_1"), ("ln_2", "ln_2")):
            out[theirs + b + ".weight"] = state[ours + a + ".weight"]
            out[theirs + b + ".bias"] = bias(ours + a + ".bias", model.config.n_embd)
        for a, b in (("attn.qkv", "attn.c_attn"), ("attn.proj", "attn.c_proj"), ("mlp.fc", "mlp.c_fc"),
                     ("mlp.proj", "mlp.c_proj")):
            weight = state[ours + a + ".weight"]
            out[theirs + b + ".weight"] = weight.t().contiguous()
            out[theirs + b + ".bias"] = bias(ours + a + ".bias", weight.size(0))
    return out


def hf_tokenizer(tokenizer: Tokenizer):
    """A PreTrainedTokenizerFast that encodes a prompt as BOS + text and knows EOS, PAD (and the chat
    markers and template for a fine-tuned tokenizer)."""
    from tokenizers import Tokenizer, processors
    from transformers import PreTrainedTokenizerFast

    from training.tokenizer import special_ids

    ids = special_ids(tokenizer)
    tokens = {name: tokenizer.id_to_token(i) for name, i in ids.items() if i is not None}
    fast = Tokenizer.from_str(tokenizer.to_str())
    if "bos" in tokens:
        fast.post_processor = processors.TemplateProcessing(
            single=f"{tokens['bos']} $A", pair=f"{tokens['bos']} $A $B:1",
            special_tokens=[(tokens["bos"], ids["bos"])])
    else:
        fast.post_processor = None
    markers = [t for t in CHAT_MARKERS if tokenizer.token_to_id(t) is not None]
    hf = PreTrainedTokenizerFast(tokenizer_object=fast, bos_token=tokens.get("bos"), eos_token=tokens.get("eos"),
                                 pad_token=tokens.get("pad"), mask_token=tokens.get("mask"),
                                 additional_special_tokens=markers, clean_up_tokenization_spaces=False,
                                 model_max_length=None)
    if len(markers) == len(CHAT_MARKERS):
        hf.chat_template = chat_template(tokens.get("bos"))
    return hf


def chat_template(bos_token: str | None) -> str:
    """training/finetune/template.py's format as Jinja: [BOS] <|role|> text <|end|> ... [<|assistant|>]."""
    start = "{{ bos_token }}" if bos_token else ""
    return (start + "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}<|end|>"
            "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}")


def generation_config(model: GPT, tokenizer: Tokenizer, sampling: EvalConfig):
    """Sampling defaults as tokenmill's evaluation samples; stops at EOS (and <|end|> for chat models)."""
    from transformers import GenerationConfig

    from training.tokenizer import special_ids

    ids = special_ids(tokenizer)
    stops = [i for i in (ids["eos"], tokenizer.token_to_id("<|end|>")) if i is not None]
    return GenerationConfig(bos_token_id=ids["bos"], eos_token_id=stops if len(stops) > 1 else stops[0],
                            pad_token_id=ids["pad"], do_sample=True,
                            temperature=sampling.temperature, top_k=sampling.top_k or 0,
                            top_p=sampling.top_p if sampling.top_p is not None else 1.0)


def refuse_unexportable(model: GPT, source: str) -> None:
    if not getattr(model, "causal", True):
        raise UserError(f"{source}: a masked-LM (bidirectional) model has no standard transformers causal-LM "
                        f"class to export to (only causal models export to --format hf)")


def export_gpt(model: GPT, tokenizer: Tokenizer, out: Path, source: str = "model", run_id: str | None = None,
               sampling: EvalConfig | None = None) -> dict:
    """Write `out` (see the module docstring) from a GPT and its tokenizer; returns what was written."""
    from transformers import GPT2LMHeadModel

    from training.tokenizer import special_ids, tokenizer_kind

    refuse_unexportable(model, source)
    ids = special_ids(tokenizer)
    hf_model = GPT2LMHeadModel(hf_config(model, ids))
    missing, unexpected = hf_model.load_state_dict(hf_state_dict(model), strict=False)
    if unexpected or [k for k in missing if k != "lm_head.weight"]:  # lm_head is tied to wte
        raise RuntimeError(f"weight names do not map: missing {missing}, unexpected {unexpected}")
    hf_model.tie_weights()
    tokenizer_hf = hf_tokenizer(tokenizer)
    info = {"format": "hf", "class": "GPT2LMHeadModel", "source": source, "run_id": run_id,
            "tokenizer_kind": tokenizer_kind(tokenizer), "vocab_size": model.vocab_size,
            "block_size": model.config.block_size, "chat_template": tokenizer_hf.chat_template is not None,
            "parameters": model.num_parameters()}
    with atomic_directory(out, "export") as tmp:
        hf_model.save_pretrained(tmp, safe_serialization=True)
        generation_config(model, tokenizer, sampling or EvalConfig()).save_pretrained(tmp)
        tokenizer_hf.save_pretrained(tmp)
        write_json(tmp / "tokenmill.json", info)
        StageStats("export", extra=info).write(tmp)
    return {"stage": "export", "out": Path(out).as_posix(), **info}


def load_exportable(spec: str, tracking: TrackingConfig, workdir: Path,
                    tokenizer_file: Path | None = None) -> tuple[GPT, Tokenizer, str | None]:
    """(model, tokenizer, MLflow run id) of SPEC: a model directory (pre-trained, fine-tuned or LoRA), a .ckpt
    checkpoint, an MLflow run id / runs:/ID or models:/NAME@ALIAS (as `tokenmill evaluate --model`)."""
    from training.model_spec import load_for_evaluation
    from training.finetune.model_dir import load_policy
    from training.tokenizer import load_tokenizer

    path = Path(spec)
    if path.is_dir():
        run_file = path / "run.json"
        run_id = json.loads(run_file.read_text(encoding="utf-8")).get("run_id") if run_file.is_file() else None
        model, tokenizer, _ = load_policy(path)
        return model, tokenizer, run_id
    run_dir = _finetuned_run_dir(spec, tracking, workdir)
    if run_dir is not None:
        model, tokenizer, _ = load_policy(run_dir[0])
        return model, tokenizer, run_dir[1]
    loaded = load_for_evaluation(spec, tracking, "cpu", workdir)
    found = tokenizer_file or loaded.tokenizer_file or _beside(path)
    if found is None:
        raise UserError(f"{spec}: no tokenizer.json known for this model (pass --tokenizer FILE)")
    return loaded.model, load_tokenizer(Path(found)), loaded.run_id


def _beside(checkpoint: Path) -> Path | None:
    """A tokenizer.json beside a checkpoint or one directory up (a run's checkpoints/ folder)."""
    for folder in (checkpoint.parent, checkpoint.parent.parent):
        if (folder / "tokenizer.json").is_file():
            return folder / "tokenizer.json"
    return None


def _finetuned_run_dir(spec: str, tracking: TrackingConfig, workdir: Path) -> tuple[Path, str] | None:
    """A fine-tuning run (its model directory logged under artifact `model/`) downloaded, with its run id;
    None for anything else (a pre-training run keeps model.pt at the top)."""
    from training import tracking as mlf

    if not tracking.enabled or not (spec.startswith(("models:/", "runs:/")) or _looks_like_run_id(spec)):
        return None
    if spec.startswith("models:/"):
        from training.registry import model_uri_run_id

        run_id = model_uri_run_id(tracking, spec)
    else:
        run_id = spec.removeprefix("runs:/").strip("/").split("/")[0]
    if mlf.existing_run(tracking, run_id) is None:
        return None
    client = mlf.client(tracking)
    top = {a.path for a in client.list_artifacts(run_id)}
    if "model.pt" in top or "model" not in top:
        return None
    inside = {Path(a.path).name for a in client.list_artifacts(run_id, "model")}
    if "tokenizer.json" not in inside:
        return None
    return Path(client.download_artifacts(run_id, "model", str(workdir))), run_id


def _looks_like_run_id(text: str) -> bool:
    return len(text) == 32 and all(c in "0123456789abcdef" for c in text) and not Path(text).exists()


def export_hf(model: str | Path, out: str | Path, tracking: TrackingConfig | None = None,
              tokenizer_file: Path | None = None, register: bool = False, sampling: EvalConfig | None = None) -> dict:
    """Export the model SPEC to a Hugging Face directory `out`; log it to the model's MLflow run when
    tracking is enabled and the run is known, and with `register` also as a `transformers`-flavor model
    (registered as `<tracking.registered_model>-hf`). Returns the export's description."""
    tracking = tracking or TrackingConfig(enabled=False)
    with tempfile.TemporaryDirectory(prefix="tokenmill-export-") as workdir:
        gpt, tokenizer, run_id = load_exportable(str(model), tracking, Path(workdir), tokenizer_file)
        result = export_gpt(gpt, tokenizer, Path(out), str(model), run_id, sampling)
    result["logged"] = _log_export(tracking, run_id, Path(out))
    if register:
        if not result["logged"]:
            raise UserError(f"{model}: no MLflow run known for this model (or tracking is off): cannot register it")
        result["registered"] = register_transformers(tracking, run_id, Path(out))
    return result


def _log_export(tracking: TrackingConfig, run_id: str | None, out: Path) -> bool:
    from training import tracking as mlf

    if not tracking.enabled or run_id is None:
        return False
    if mlf.existing_run(tracking, run_id) is None:
        print(f"warning: MLflow run {run_id} not in {tracking.tracking_uri}; export not logged", file=sys.stderr)
        return False
    client = mlf.client(tracking)
    client.log_artifacts(run_id, str(out), ARTIFACT_PATH)
    client.set_tag(run_id, "export.hf", f"runs:/{run_id}/{ARTIFACT_PATH}")
    return True


def register_transformers(tracking: TrackingConfig, run_id: str, out: Path) -> str:
    """Log `out` on the run as an MLflow `transformers` flavor model (text-generation) and register it
    as `<registered_model>-hf`; returns models:/NAME/VERSION."""
    import mlflow
    import mlflow.transformers

    from training import tracking as mlf

    from importlib.metadata import version

    from transformers import pipeline

    mlflow.set_tracking_uri(mlf.store_uri(tracking.tracking_uri))
    name = f"{tracking.registered_model}-hf"
    # A pipeline object, not the directory's path: MLflow's path route fails on transformers 5 (MLflow 3.17),
    # and its guessed requirements import torchvision; the requirements are these.
    requirements = [f"{p}=={version(p)}" for p in ("transformers", "torch", "tokenizers", "safetensors")]
    with mlflow.start_run(run_id=run_id):
        info = mlflow.transformers.log_model(transformers_model=pipeline("text-generation", model=str(out)),
                                             name="hf-model", registered_model_name=name,
                                             pip_requirements=requirements)
    return f"models:/{name}/{info.registered_model_version}"


def add_export_arguments(p) -> None:
    """`tokenmill export`'s options (pipeline/cli.py adds the subcommand)."""
    p.add_argument("--model", help="model directory, .ckpt checkpoint, MLflow run id, runs:/ID or "
                                    "models:/NAME@ALIAS (default: paths.model)")
    p.add_argument("--format", choices=FORMATS, default="hf", help="hf: a transformers GPT2LMHeadModel directory")
    p.add_argument("--out", type=Path, help="directory to write (default: paths.export)")
    p.add_argument("--tokenizer", type=Path, help="tokenizer.json (only for a checkpoint with none beside it)")
    p.add_argument("--register", action="store_true",
                   help="also log it as an MLflow transformers-flavor model, registered as <tracking.registered_model>-hf")
