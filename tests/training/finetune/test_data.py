import pytest
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from finetune_samples import write_jsonl

from tokenmill.errors import UserError
from training.finetune.data import (IGNORE, encode_pairs, encode_sft, lm_batch, load_preferences, load_sft,
                                    split_held_out)
from training.finetune.model_dir import load_policy
from training.finetune.sft import response_loss
from training.finetune.template import CHAT_TOKENS, END, USER, ChatTemplate, add_chat_tokens, resize_vocab


def chat(base_dir):
    gpt, tokenizer, _ = load_policy(base_dir)
    tokenizer, _ = add_chat_tokens(tokenizer)
    return resize_vocab(gpt, tokenizer.get_vocab_size()), tokenizer, ChatTemplate(tokenizer)


def test_sft_loader_reads_pairs_and_chats(tmp_path):
    path = write_jsonl(tmp_path / "sft.jsonl", [
        {"prompt": "Where are config files?", "response": "In /etc.", "source": "ignored"},
        "",
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                      {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye"},
                      {"role": "assistant", "content": "Bye."}]},
    ])
    first, second = load_sft(path)
    assert first.messages == [{"role": "user", "content": "Where are config files?"},
                              {"role": "assistant", "content": "In /etc."}]
    assert first.where == f"{path}:1" and second.where == f"{path}:3" and len(second.messages) == 5


@pytest.mark.parametrize("row, message", [
    ({"prompt": "Q"}, ":1: missing field 'response'"),
    ({"prompt": "Q", "response": "  "}, ":1: field 'response' is empty"),
    ({"prompt": 3, "response": "A"}, ":1: field 'prompt' must be a string, got int"),
    ('{"prompt": "Q", ', ":1: invalid JSON"),
    ('["Q", "A"]', ":1: expected a JSON object, got list"),
    ({"messages": [{"role": "user", "content": "Q"}]}, ":1: the last message must be the assistant's"),
    ({"messages": [{"role": "bot", "content": "Q"}]}, ":1: messages[0]: needs a 'role' of system, user, assistant"),
    ({"messages": [{"role": "assistant", "content": ""}]}, ":1: messages[0]: field 'content' is empty"),
])
def test_bad_sft_lines_name_file_and_line(tmp_path, row, message):
    path = write_jsonl(tmp_path / "bad.jsonl", [row])
    with pytest.raises(UserError) as error:
        load_sft(path)
    assert str(error.value).startswith(f"{path}{message}") and "\n" not in str(error.value)


def test_preferences_from_pairs_and_rankings(tmp_path):
    path = write_jsonl(tmp_path / "prefs.jsonl", [
        {"prompt": "Q1", "chosen": "good", "rejected": "bad"},
        {"prompt": "Q2", "ranking": ["best", "middle", "worst"]},
    ])
    pairs = load_preferences(path)
    assert [(p.chosen, p.rejected) for p in pairs] == [
        ("good", "bad"), ("best", "middle"), ("best", "worst"), ("middle", "worst")]
    assert len({p.key for p in pairs[1:]}) == 1  # one ranking, one split key


@pytest.mark.parametrize("row, message", [
    ({"prompt": "Q", "chosen": "A"}, ":2: missing field 'rejected'"),
    ({"prompt": "Q", "chosen": "A", "rejected": "A"}, ":2: 'chosen' and 'rejected' are the same answer"),
    ({"prompt": "Q", "ranking": ["only"]}, ":2: field 'ranking' must list at least two answers"),
    ({"prompt": "Q", "ranking": ["a", ""]}, ":2: field 'ranking' is empty"),
    ({"chosen": "A", "rejected": "B"}, ":2: missing field 'prompt'"),
])
def test_bad_preference_lines(tmp_path, row, message):
    path = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "Q", "chosen": "A", "rejected": "B"}, row])
    with pytest.raises(UserError, match="^" + str(path) + message.replace("(", r"\(").replace(")", r"\)")):
        load_preferences(path)


def test_held_out_split_is_stable_and_keeps_rankings_together(tmp_path):
    rows = [{"prompt": f"Q{i}", "ranking": ["a", "b", "c"]} for i in range(20)]
    pairs = load_preferences(write_jsonl(tmp_path / "p.jsonl", rows))
    train, held = split_held_out(pairs, 0.25, seed=1)
    assert train and held and len(train) + len(held) == 60
    assert not {p.key for p in train} & {p.key for p in held}
    again = load_preferences(write_jsonl(tmp_path / "q.jsonl", rows + [{"prompt": "new", "chosen": "x", "rejected": "y"}]))
    assert {p.where.split(":")[-1] for p in split_held_out(again, 0.25, seed=1)[1]} >= {
        p.where.split(":")[-1] for p in held}  # adding a line moves no existing line across the split
    assert split_held_out(pairs[:1], 0.5, seed=1) == (pairs[:1], [])


def test_chat_tokens_keep_every_base_id(base_dir):
    gpt, tokenizer, _ = load_policy(base_dir)
    text = "Install the package — Zażółć gęślą jaźń, بسته‌ها نصب می‌شوند."
    before, vocab_before = tokenizer.encode(text).ids, tokenizer.get_vocab()
    tokenizer, added = add_chat_tokens(tokenizer)
    assert added == list(CHAT_TOKENS) and add_chat_tokens(tokenizer) == (tokenizer, [])  # idempotent
    assert tokenizer.encode(text).ids == before
    assert {t: i for t, i in tokenizer.get_vocab().items() if t in vocab_before} == vocab_before
    assert sorted(tokenizer.token_to_id(t) for t in CHAT_TOKENS) == list(range(gpt.vocab_size, gpt.vocab_size + 4))

    resized = resize_vocab(gpt, tokenizer.get_vocab_size())
    ids = torch.tensor([before[:20]])
    assert resized.lm_head.weight is resized.wte.weight
    assert torch.equal(resized(ids)[0][..., : gpt.vocab_size], gpt(ids)[0])  # old tokens: same outputs


def test_template_masks_all_but_assistant_text_and_ignores_markers_in_text(base_dir):
    _, tokenizer, template = chat(base_dir)
    ids, mask = template.encode([{"role": "user", "content": "say <|user|> hi"},
                                 {"role": "assistant", "content": "hi"}])
    user, end = tokenizer.token_to_id(USER), tokenizer.token_to_id(END)
    assert ids.count(user) == 1 and ids[:2] == [tokenizer.token_to_id("<|bos|>"), user]  # typed marker: text
    reloaded = Tokenizer.from_str(tokenizer.to_str())  # so it stays after a save
    assert user not in reloaded.encode("say <|user|> hi").ids
    answer = template.text_ids("hi") + [end]
    assert ids[-len(answer):] == answer and mask == [0] * (len(ids) - len(answer)) + [1] * len(answer)
    assert template.decode(template.text_ids("hi") + [end, 5, 6]) == "hi"


def test_sft_loss_counts_response_tokens_only(base_dir, tmp_path):
    gpt, tokenizer, template = chat(base_dir)
    rows = [{"prompt": "Where are the config files kept?", "response": "In etc."},
            {"prompt": "Q", "response": "Backups are useful only when a restore has been tested."}]
    encoded = encode_sft(load_sft(write_jsonl(tmp_path / "s.jsonl", rows)), template, 64)
    x, y = lm_batch(encoded, pad_id=template.end_id)
    for row, target in zip(rows, y):
        kept = target[target != IGNORE].tolist()
        assert kept == template.text_ids(row["response"]) + [template.end_id]
    logits, _ = gpt(x)
    picked = [(b, t) for b in range(2) for t in range(x.size(1)) if y[b, t] != IGNORE]
    manual = torch.stack([F.cross_entropy(logits[b, t], y[b, t]) for b, t in picked]).mean()
    assert torch.allclose(response_loss(gpt, x, y), manual)
    # Changing the prompt's tokens changes the inputs, never the targets
    y_other = lm_batch(encode_sft(load_sft(write_jsonl(tmp_path / "t.jsonl", [
        {"prompt": "A different and longer question entirely", "response": rows[0]["response"]}])), template, 64),
        template.end_id)[1]
    assert y_other[0][y_other[0] != IGNORE].tolist() == y[0][y[0] != IGNORE].tolist()


def test_prompt_longer_than_context_names_the_line(base_dir, tmp_path):
    _, _, template = chat(base_dir)
    long = " ".join(["firewall"] * 80)
    sft = write_jsonl(tmp_path / "s.jsonl", [{"prompt": "ok", "response": "ok"}, {"prompt": long, "response": "A"}])
    with pytest.raises(UserError, match=rf"^{sft}:2: prompt is \d+ tokens .*context of 64$"):
        encode_sft(load_sft(sft), template, 64)
    prefs = write_jsonl(tmp_path / "p.jsonl", [{"prompt": long, "chosen": "A", "rejected": "B"}])
    with pytest.raises(UserError, match=rf"^{prefs}:1: prompt is"):
        encode_pairs(load_preferences(prefs), template, 64)
    # a long answer is cut to the context, not refused
    (cut,) = encode_sft(load_sft(write_jsonl(tmp_path / "c.jsonl", [{"prompt": "Q", "response": long}])), template, 64)
    assert len(cut.ids) == 65 and cut.ids[-1] != template.end_id
