"""Post-training: supervised fine-tuning (full or LoRA), a reward model from rankings, and DPO.

`run.finetune(...)` is the entry point (`tokenmill finetune sft|reward|dpo`). Each stage reads JSONL
(data.py), puts it through the chat template (template.py), trains with a plain PyTorch loop (loop.py)
and writes a model directory that training.train.load_model reads (io.py).
"""
