"""Post-training: supervised fine-tuning (full or LoRA), a reward model from rankings, DPO, PPO against
the reward model and GRPO with a checker or a reward model.

`run.finetune(...)` is the entry point (`tokenmill finetune STAGE`); the stages are classes registered
in registry.py, one module each (sft, reward, dpo, ppo, grpo). Each reads JSONL (data.py, task.py),
puts it through the chat template (template.py), trains with a plain PyTorch loop (loop.py; rollout.py
for PPO and GRPO) and writes a model directory that training.train.load_model reads (model_dir.py).
"""
