"""Batched sampling with the KV cache (training/generate.py) and `tokenmill generate`."""

import pytest
import torch

from pipeline.cli import main
from training.config import ModelConfig, TrackingConfig
from training.generate import BatchDecoder, SamplingParams, TextStream, generate
from training.language_model import load_language_model
from training.model import GPT


def _decode_all(decoder: BatchDecoder, steps: int, finish_at: dict | None = None) -> dict[int, list[int]]:
    out = {row: [] for row in range(len(decoder.rows))}
    for step in range(steps):
        for row, token in decoder.step().items():
            out[row].append(token)
        for row in (finish_at or {}).get(step, []):
            decoder.finish(row)
    return out


def test_prompts_of_different_lengths_batched_give_what_each_gives_alone():
    torch.manual_seed(0)
    model = GPT(ModelConfig(preset="nano"), 300).eval()
    prompts = [[1, 5, 6, 7, 8, 9, 10], [1, 20], [1, 30, 31, 32]]
    alone = [generate(model, torch.tensor([p]), 20, temperature=0)[0, len(p):].tolist() for p in prompts]
    batched = _decode_all(BatchDecoder(model, prompts, [SamplingParams(temperature=0)] * 3), 20, {5: [1]})
    assert batched[0] == alone[0] and batched[2] == alone[2]
    assert batched[1] == alone[1][:6]  # finished after step 5: left the batch, the others carried on

    sampled = [SamplingParams(temperature=0.9, top_k=20, top_p=0.9, seed=s) for s in (1, 2, 1)]
    twice = [_decode_all(BatchDecoder(model, prompts, sampled), 12) for _ in range(2)]
    assert twice[0] == twice[1]  # a seed per row: the same draws again


def test_the_window_slides_past_block_size_as_generate_does():
    torch.manual_seed(0)
    model = GPT(ModelConfig(preset="nano"), 300).eval()
    long = list(range(1, 60))  # longer than block_size (32): read as its last 32 tokens
    steps = model.config.block_size
    alone = generate(model, torch.tensor([long]), steps, temperature=0)[0, len(long):].tolist()
    batched = _decode_all(BatchDecoder(model, [long, [1, 2]], [SamplingParams(temperature=0)] * 2), steps)
    assert batched[0] == alone


def test_text_stream_cuts_at_a_stop_string_and_holds_back_what_may_become_one():
    pieces = ["Hel", "lo\nUs", "er: hi"]
    stream = TextStream(lambda ids: "".join(pieces[:len(ids)]), stop=("\nUser:",))
    assert stream.push(0) == "Hel"
    assert stream.push(1) == "lo"  # "\nUs" may be the start of the stop string
    assert stream.push(2) == "" and stream.stopped and stream.text == "Hello"
    half = TextStream(lambda ids: "ab\ufffd" if len(ids) == 1 else "abé")
    assert half.push(0) == "ab" and half.push(1) == "é"  # a character split across tokens waits for its end


@pytest.mark.parametrize("bad", [dict(temperature=-1), dict(top_k=0), dict(top_p=1.5), dict(stop=("",))])
def test_sampling_params_refuse_impossible_values(bad):
    with pytest.raises(ValueError):
        SamplingParams(**bad)


def test_tokenmill_generate_prints_the_greedy_continuation(gpt_dir, capsys):
    lm = load_language_model(gpt_dir, TrackingConfig(enabled=False))
    prompt = lm.encode_prompt("Biblioteka w Łodzi")
    ids = generate(lm.model, torch.tensor([prompt]), 12, temperature=0, stop=lm.eos)[0, len(prompt):].tolist()
    expected = lm.decode(ids[: ids.index(lm.eos)] if lm.eos in ids else ids)
    command = ["generate", "--model", str(gpt_dir), "--prompt", "Biblioteka w Łodzi", "--max-new-tokens", "12",
               "--temperature", "0"]
    assert main(command) == 0
    assert capsys.readouterr().out == expected + "\n"
    assert main(command[:-2] + ["--temperature", "-1"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("tokenmill generate: error: temperature")
