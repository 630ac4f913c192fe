"""GRPO by TRL against GRPO by tokenmill: same SFT model, prompts, checker, budget and judge.

    python bench/rl_libraries.py --sft examples/finetune/models/sft [--work data/bench/rl] [--seeds 1337 7]
                                 [--cores 0,1] [--steps N]

Issue 19 asks to choose, by measurement, between TRL on the Hugging Face export and tokenmill's own RL
loop. For each seed, two processes run at once, each pinned to its own core with one thread:
  ours  `tokenmill finetune grpo --base SFT --out WORK/ours-SEED` (the params' `finetune.rl` and
        `finetune.grpo` settings: the example task's recipe), then `tokenmill export` of its model;
  TRL   this script's `trl` command: `trl.GRPOTrainer` (trl 1.16.0, installed with --no-deps into
        WORK/trl-site, never into the project's venv) on `tokenmill export` of the same SFT model, with the
        same settings mapped one to one (below) and the same checker as its reward function.
Both results are then judged alike: greedy `transformers` generation on the exported models, the task's
checker on the 150 held-out prompts (the SFT model too, which must give the `held_out_accuracy` its own
stats.json has: the check that export and judge agree).

The budget, from params.yaml: `rl.steps` rounds of `grpo.prompts_per_step` prompts x `grpo.group_size`
samples (`rl.max_new_tokens`, temperature `rl.temperature`), each round's samples used for `rl.epochs`
passes in minibatches of `rl.minibatch_size`: in TRL, per_device_train_batch_size = minibatch,
steps_per_generation = samples / minibatch, num_iterations = epochs, max_steps = rounds x that x epochs.
Loss: clipped surrogate (epsilon = rl.clip) + beta = rl.kl_coef times the k3 KL to the frozen SFT model,
averaged over the minibatch's response tokens (TRL's loss_type "bnpo"), advantages scaled by the group's
standard deviation (scale_rewards "group"); AdamW with betas (0.9, 0.95), weight decay 0.01, a linear
warm-up over finetune.warmup_steps rounds, then the constant rl.lr, gradients clipped at grad_clip.
The prompts are those the tokenmill run trains on (the same hash split of rl.prompts).

One difference is the bench's to mend, not TRL's to pay: TRL's training forwards pass no position ids,
so a left-padded prompt's tokens sit at shifted positions, while `generate` derives them from the
attention mask. A model with rotary positions does not care; GPT-2's learned positions do. In the TRL
process GPT-2's backbone derives them from the mask (`position_ids_from_the_mask`), as generate does.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Run as a script, this file's folder comes first on sys.path, and bench/dataprep.py would shadow the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))
TRL_VERSION = "1.16.0"
os.environ.update(HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1")  # the judge here too: local files only


def settings():
    """The fine-tuning settings of params.yaml, as the tokenmill run reads them."""
    from pipeline.params import load_params

    return load_params(ROOT / "params.yaml").finetune


def trl_site(work: Path) -> Path:
    """trl, unpacked into WORK/trl-site with no dependencies of its own (the project's venv has them)."""
    site = work / "trl-site"
    if not (site / "trl" / "__init__.py").is_file():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site),
                        f"trl=={TRL_VERSION}"], check=True)
    return site


def one_thread() -> dict:  # the environment of a pinned process (the core itself is taskset's, in timed)
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
            "PYTHONPATH": str(ROOT)}


def export(model: Path, out: Path) -> Path:
    """`tokenmill export` of a model directory (replacing an earlier export there)."""
    subprocess.run([sys.executable, "-m", "pipeline.cli", "export", "--model", str(model), "--out", str(out),
                    "--set", "tracking.enabled=false"], check=True, cwd=ROOT, env=one_thread(), stdout=subprocess.DEVNULL)
    return out


# ---- the TRL side (runs in its own process: `python bench/rl_libraries.py trl ...`) ----

def position_ids_from_the_mask() -> None:
    """Make GPT-2's backbone count positions from the attention mask when it is given none (and has no
    cache), as `generate` does: TRL's training forwards (policy and reference, through its fused LM head,
    which calls the backbone directly) pass none, and would put a left-padded prompt at shifted positions."""
    import functools

    from transformers.models.gpt2.modeling_gpt2 import GPT2Model

    original = GPT2Model.forward

    @functools.wraps(original)
    def forward(self, *args, **kwargs):
        mask, cache = kwargs.get("attention_mask"), kwargs.get("cache", kwargs.get("past_key_values"))
        if (kwargs.get("position_ids") is None and mask is not None and mask.ndim == 2
                and (cache is None or cache.get_seq_length() == 0)):
            kwargs["position_ids"] = (mask.long().cumsum(-1) - 1).clamp(min=0)
        return original(self, *args, **kwargs)

    GPT2Model.forward = forward


def train_prompts(config, seed: int) -> list:
    """The prompts tokenmill's RL stages train on: rl.prompts less its hash-split held-out part."""
    from training.finetune.data import split_held_out
    from training.finetune.task import load_prompts

    prompts = load_prompts(ROOT / config.rl.prompts, need_answer=True)
    return split_held_out(prompts, config.val_fraction, seed)[0]


def run_trl(sft_hf: Path, out: Path, seed: int, steps: int | None) -> None:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from training.finetune.task import load_callable

    torch.set_num_threads(1)
    config = settings()
    rl, grpo = config.rl, config.grpo
    rounds = steps or rl.steps
    samples = grpo.prompts_per_step * grpo.group_size
    steps_per_generation = samples // rl.minibatch_size
    check = load_callable(grpo.reward, "finetune.grpo.reward")
    position_ids_from_the_mask()
    tokenizer = AutoTokenizer.from_pretrained(sft_hf)
    model = AutoModelForCausalLM.from_pretrained(sft_hf, dtype=torch.float32)
    rows = train_prompts(config, seed)
    dataset = Dataset.from_list([{"prompt": p.messages, "answer": p.answer} for p in rows])

    def exact_answer(completions, answer, **_) -> list[float]:
        return [float(check(c[0]["content"], a)) for c, a in zip(completions, answer)]

    args = GRPOConfig(
        output_dir=str(out / "trainer"), seed=seed, use_cpu=True, bf16=False, report_to="none",
        save_strategy="no", logging_steps=steps_per_generation * rl.epochs, disable_tqdm=True,
        max_steps=rounds * steps_per_generation * rl.epochs, learning_rate=rl.lr,
        lr_scheduler_type="constant_with_warmup", warmup_steps=config.warmup_steps * steps_per_generation * rl.epochs,
        adam_beta1=0.9, adam_beta2=0.95, weight_decay=0.01, max_grad_norm=config.grad_clip,
        per_device_train_batch_size=rl.minibatch_size, gradient_accumulation_steps=1,
        steps_per_generation=steps_per_generation, num_generations=grpo.group_size, num_iterations=rl.epochs,
        max_completion_length=rl.max_new_tokens, temperature=rl.temperature, top_p=1.0, top_k=0,
        beta=rl.kl_coef, epsilon=rl.clip, loss_type="bnpo", scale_rewards="group",
        dataloader_num_workers=0, shuffle_dataset=True)
    trainer = GRPOTrainer(model=model, reward_funcs=exact_answer, args=args, train_dataset=dataset,
                          processing_class=tokenizer)
    trainer.train()
    trainer.model.save_pretrained(out / "model")
    tokenizer.save_pretrained(out / "model")
    rewards = [h["reward"] for h in trainer.state.log_history if "reward" in h]
    (out / "trl.json").write_text(json.dumps({"rewards": rewards, "log": trainer.state.log_history}, indent=1))


# ---- the judge: one evaluation for every model ----

def hf_accuracy(model_dir: Path, config, tokenmill_model: Path | None = None) -> dict:
    """Held-out exact-answer accuracy of greedy `transformers` generation: prompts of one length batched
    together (no padding), stop at <|end|>, the task's checker on the decoded answer."""
    from collections import defaultdict

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.finetune.task import load_callable, load_prompts

    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    end = tokenizer.convert_tokens_to_ids("<|end|>")
    prompts = load_prompts(ROOT / config.task.held_out, need_answer=True)
    check = load_callable(config.task.checker, "finetune.task.checker")
    ids = [tokenizer.apply_chat_template(p.messages, add_generation_prompt=True, tokenize=True, return_dict=True)
           ["input_ids"] for p in prompts]
    if tokenmill_model is not None:  # the export's chat template must give tokenmill's prompt ids
        from training.finetune.model_dir import load_policy
        from training.finetune.template import ChatTemplate

        template = ChatTemplate(load_policy(tokenmill_model)[1], config.system_prompt)
        if ids != [template.prompt(p.messages) for p in prompts]:
            sys.exit(f"{model_dir}: the chat template's prompt ids differ from tokenmill's")
    by_length = defaultdict(list)
    for i, row in enumerate(ids):
        by_length[len(row)].append(i)
    answers = [""] * len(prompts)
    with torch.no_grad():
        for length, rows in by_length.items():
            batch = torch.tensor([ids[i] for i in rows])
            out = model.generate(batch, attention_mask=torch.ones_like(batch), max_new_tokens=config.task.max_new_tokens,
                                 do_sample=False, eos_token_id=end, pad_token_id=tokenizer.pad_token_id)
            for i, row in zip(rows, out[:, length:].tolist()):
                answers[i] = tokenizer.decode(row[: row.index(end)] if end in row else row, skip_special_tokens=True)
    right = [float(check(a, p.answer)) for a, p in zip(answers, prompts)]
    by_lang = defaultdict(list)
    for p, r in zip(prompts, right):
        by_lang[p.lang].append(r)
    return {"accuracy": sum(right) / len(right), "right": right,
            "by_lang": {k: round(sum(v) / len(v), 3) for k, v in sorted(by_lang.items())}}


def lines_of_code(paths: list[Path]) -> int:
    """Non-blank lines that are not comments or docstring-only lines (a rough, even count)."""
    count = 0
    for path in paths:
        in_doc = False
        for line in path.read_text(encoding="utf-8").splitlines():
            s = line.strip()
            if s.startswith(('"""', "'''")):
                if not (len(s) > 3 and s.endswith(('"""', "'''"))):
                    in_doc = not in_doc
                continue
            if in_doc or not s or s.startswith("#"):
                continue
            count += 1
    return count


def sign_test(a: list[float], b: list[float]) -> tuple[int, int, float]:
    from math import comb

    fixed = sum(1 for x, y in zip(a, b) if y > x)
    broken = sum(1 for x, y in zip(a, b) if x > y)
    n = fixed + broken
    tail = sum(comb(n, k) for k in range(0, min(fixed, broken) + 1)) / 2 ** n if n else 1.0
    return fixed, broken, min(1.0, 2 * tail)


def judge(models: list[Path], work: Path) -> None:
    """Each model exported and judged; fixed / broken prompts and the sign test against the first."""
    config = settings()
    baseline = None
    for model in models:
        judged = hf_accuracy(export(model.resolve(), work / "judged" / f"{model.resolve().parent.name}-{model.name}"), config, model.resolve())
        own = json.loads((model / "stats.json").read_text()).get("held_out_accuracy")
        versus = f"fixed/broken/p vs {models[0]}: {sign_test(baseline, judged['right'])}" if baseline else ""
        print(f"{model}: {judged['accuracy']:.3f} (own {own}) {judged['by_lang']} {versus}", flush=True)
        baseline = baseline or judged["right"]


def timed(cmd: list[str], core: int, log: Path, env: dict) -> subprocess.Popen:
    handle = log.open("w")
    process = subprocess.Popen(["taskset", "-c", str(core), *cmd], cwd=ROOT, env=env, stdout=handle,
                               stderr=subprocess.STDOUT)
    process.started = time.perf_counter()
    return process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    t = sub.add_parser("trl", help="one TRL run (what the bench starts, pinned)")
    t.add_argument("--sft-hf", type=Path, required=True)
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--seed", type=int, required=True)
    t.add_argument("--steps", type=int)
    j = sub.add_parser("judge", help="judge tokenmill model directories alike (the first is the baseline of the sign tests)")
    j.add_argument("models", type=Path, nargs="+")
    parser.add_argument("--sft", type=Path, help="the SFT model directory (tokenmill finetune sft's --out)")
    parser.add_argument("--work", type=Path, default=ROOT / "data" / "bench" / "rl")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1337, 7])
    parser.add_argument("--cores", default="0,1", help="ours,TRL")
    parser.add_argument("--steps", type=int, help="RL rounds (default: params' finetune.rl.steps)")
    args = parser.parse_args()
    if args.command == "trl":
        return run_trl(args.sft_hf, args.out, args.seed, args.steps)
    if args.command == "judge":
        return judge(args.models, args.work.resolve())
    if args.sft is None:
        parser.error("--sft is required")

    config = settings()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    site = trl_site(work)
    ours_core, trl_core = (int(c) for c in args.cores.split(","))
    sft_hf = export(args.sft.resolve(), work / "sft-hf")
    sft = hf_accuracy(sft_hf, config, args.sft.resolve())
    sft_stats = json.loads((args.sft / "stats.json").read_text())
    print(f"SFT: judged {sft['accuracy']:.3f} (its stats.json: {sft_stats.get('held_out_accuracy')}) {sft['by_lang']}",
          flush=True)
    steps = ["--set", f"finetune.rl.steps={args.steps}"] if args.steps else []
    results = []
    for seed in args.seeds:
        ours_out, trl_out = work / f"ours-{seed}", work / f"trl-{seed}"
        ours = timed([sys.executable, "-m", "pipeline.cli", "finetune", "grpo", "--base", str(args.sft.resolve()),
                      "--out", str(ours_out), "--set", f"finetune.seed={seed}", "--set", "tracking.enabled=false",
                      *steps], ours_core, work / f"ours-{seed}.log", one_thread())
        trl = timed([sys.executable, str(Path(__file__).resolve()), "trl", "--sft-hf", str(sft_hf), "--out",
                     str(trl_out), "--seed", str(seed), *(["--steps", str(args.steps)] if args.steps else [])],
                    trl_core, work / f"trl-{seed}.log",
                    {**one_thread(), "PYTHONPATH": f"{ROOT}{os.pathsep}{site}"})
        walls = {}
        for name, process in (("ours", ours), ("trl", trl)):
            if process.wait() != 0:
                sys.exit(f"{name} (seed {seed}) failed: see {work / f'{name}-{seed}.log'}")
            walls[name] = time.perf_counter() - process.started
        ours_judged = hf_accuracy(export(ours_out, work / f"ours-{seed}-hf"), config)
        trl_judged = hf_accuracy(trl_out / "model", config)
        own = json.loads((ours_out / "stats.json").read_text())
        trl_rewards = json.loads((trl_out / "trl.json").read_text())["rewards"]
        row = {"seed": seed, "ours": ours_judged["accuracy"], "ours_own": own["held_out_accuracy"],
               "ours_by_lang": ours_judged["by_lang"], "ours_wall_s": walls["ours"],
               "ours_vs_sft": sign_test(sft["right"], ours_judged["right"]),
               "trl": trl_judged["accuracy"], "trl_by_lang": trl_judged["by_lang"], "trl_wall_s": walls["trl"],
               "trl_vs_sft": sign_test(sft["right"], trl_judged["right"]),
               "trl_vs_ours": sign_test(ours_judged["right"], trl_judged["right"]),
               "trl_reward_first_last": [trl_rewards[0], trl_rewards[-1]] if trl_rewards else None}
        results.append(row)
        print(json.dumps(row), flush=True)

    ours_code = lines_of_code([ROOT / "training/finetune" / f for f in ("grpo.py", "rollout.py")])
    trl_code = lines_of_code([Path(__file__).resolve()])  # this script's TRL side is the user's share
    trl_lib = lines_of_code([site / "trl/trainer/grpo_trainer.py", site / "trl/trainer/grpo_config.py"])
    print(f"\nSFT judged {sft['accuracy']:.3f}; seed | tokenmill GRPO (fixed/broken vs SFT, p) wall | TRL GRPO ... wall"
          " | TRL fixed/broken against tokenmill (p)")
    for r in results:
        print(f"{r['seed']} | {r['ours']:.3f} (own figure {r['ours_own']:.3f}; {r['ours_vs_sft']}) {r['ours_wall_s']:.0f} s"
              f" | {r['trl']:.3f} ({r['trl_vs_sft']}) {r['trl_wall_s']:.0f} s | TRL vs tokenmill {r['trl_vs_ours']}")
    print(f"lines of code: tokenmill grpo.py + rollout.py {ours_code} (rollout.py shared with PPO); "
          f"TRL: {trl_lib} in trl's grpo_trainer.py + grpo_config.py, this whole script {trl_code}")
    (work / "results.json").write_text(json.dumps({"sft": sft["accuracy"], "runs": results}, indent=1))


if __name__ == "__main__":
    main()
