"""The evaluation set: frozen once, kept across corpus versions, the validation split, never trained on."""

import json
import shutil

import numpy as np
import pytest

from tokenmill.documents import Document, ShardWriter, read_documents
from tokenmill.errors import UserError
from training.config import EvalSetConfig, TokenizeConfig
from training.evalset import load_evalset, make_evalset, text_key
from training.evaluate import evaluation_set
from training.tokenizer import is_validation, load_tokenizer, read_documents_index, read_meta, read_tokens, tokenize

CONFIG = EvalSetConfig(fraction=0.2, seed=1337)
TOKENIZE = TokenizeConfig(vocab_size=400, val_fraction=0.2, min_frequency=2)


def split_texts(tokens, split):
    """The text of every document of a split, decoded from the token files."""
    meta = read_meta(tokens)
    stream, index = read_tokens(tokens, split, meta), read_documents_index(tokens, split, meta)
    tokenizer = load_tokenizer(tokens / "tokenizer.json")
    return tokenizer.decode_batch([np.asarray(stream[a + 1:b - 1]).tolist() for a, b in index["ranges"]])  # no BOS, EOS


@pytest.fixture(scope="module")
def evalset(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("evalset") / "evalset"
    make_evalset(corpus, out, CONFIG)
    return out


def test_first_set_is_the_id_hash_split_frozen(corpus, evalset):
    frozen = load_evalset(evalset)
    expected = [d.id for d in read_documents(corpus) if is_validation(d.id, TokenizeConfig(val_fraction=0.2))]
    assert sorted(d.id for d in frozen.documents) == sorted(expected) and len(expected) > 5
    stats = json.loads((evalset / "stats.json").read_text())
    assert stats["stage"] == "evalset" and stats["documents_in"] == 90 and stats["documents_out"] == len(expected)


def test_two_corpus_versions_evaluate_on_the_same_documents(corpus, evalset, tmp_path):
    # version 2: a third of the documents gone, 90 new ones, and its own tokenizer
    v2 = tmp_path / "v2"
    with ShardWriter(v2, shard_size=25) as writer:
        writer.write_all(d for i, d in enumerate(read_documents(corpus)) if i % 3)
        writer.write_all(Document(f"new-{d.id}", d.text.upper(), d.meta) for d in read_documents(corpus))
    before = (evalset / "documents.jsonl").read_bytes()
    assert make_evalset(v2, evalset, CONFIG)["kept"]  # a new corpus leaves the set as it is
    assert (evalset / "documents.jsonl").read_bytes() == before

    one, two, same_tokenizer = tmp_path / "t1", tmp_path / "t2", tmp_path / "t2-own"
    tokenize(corpus, one, TOKENIZE, eval_set=evalset)
    tokenize(v2, two, TOKENIZE, eval_set=evalset)
    tokenize(v2, same_tokenizer, TOKENIZE, tokenizer=one / "tokenizer.json", eval_set=evalset)
    metas = [read_meta(t) for t in (one, two, same_tokenizer)]
    assert (one / "tokenizer.json").read_bytes() != (two / "tokenizer.json").read_bytes()
    assert metas[0]["eval_set"]["digest"] == metas[1]["eval_set"]["digest"] == load_evalset(evalset).digest
    # the same documents, in the same order, whichever tokenizer encoded them
    frozen_texts = [d.text for d in load_evalset(evalset).documents]
    assert split_texts(one, "val") == split_texts(two, "val") == frozen_texts
    assert metas[1]["train"]["documents"] != metas[0]["train"]["documents"]
    # with the same tokenizer, the very same validation tokens
    assert (same_tokenizer / "val.bin").read_bytes() == (one / "val.bin").read_bytes()
    # and evaluation names them the same evaluation set: the promotion gate compares the two
    digests = {evaluation_set(t, m, 10**6, load_tokenizer(t / "tokenizer.json")).digest
               for t, m in ((one, metas[0]), (two, metas[1]), (same_tokenizer, metas[2]))}
    assert digests == {load_evalset(evalset).digest}


def test_an_evaluation_document_back_in_the_corpus_never_lands_in_train(corpus, evalset, tmp_path):
    frozen = load_evalset(evalset).documents
    recrawled = tmp_path / "recrawled"
    with ShardWriter(recrawled) as writer:
        writer.write_all(read_documents(corpus))  # every evaluation document under its own id
        # the same page recrawled under another URL (id), lines re-wrapped
        writer.write(Document("recrawl/1", "\n  ".join(frozen[0].text.split(" ")) + "\n", {"lang": "en"}))
        writer.write(Document("recrawl/2", frozen[1].text, {"lang": "fa"}))
    out = tmp_path / "tokens"
    result = tokenize(recrawled, out, TOKENIZE, eval_set=evalset)
    train = split_texts(out, "train")
    assert not {text_key(t) for t in train} & {text_key(d.text) for d in frozen}
    assert len(train) == 90 - len(frozen)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["removed"] == {"in_eval_set_by_id": len(frozen), "in_eval_set_by_text": 2}
    assert result["eval_set"]["excluded_from_train"] == {"by_id": len(frozen), "by_text": 2}
    # the tokenizer was trained without them too: a tokenizer trained on train alone is the same file
    alone = tmp_path / "alone"
    with ShardWriter(alone) as writer:
        writer.write_all(d for d in read_documents(corpus) if d.id not in {f.id for f in frozen})
    tokenize(alone, tmp_path / "tokens-alone", TOKENIZE, eval_set=evalset)
    assert (tmp_path / "tokens-alone" / "tokenizer.json").read_bytes() == (out / "tokenizer.json").read_bytes()


def test_refresh_remakes_it_from_the_current_corpus(corpus, tmp_path, capsys):
    out = tmp_path / "evalset"
    first = make_evalset(corpus, out, CONFIG)
    other = EvalSetConfig(fraction=0.3, seed=7)
    kept = make_evalset(corpus, out, other)
    assert kept["kept"] and kept["digest"] == first["digest"]
    assert "keeping" in capsys.readouterr().err  # the params asked for another set: said, not done
    remade = make_evalset(corpus, out, other, refresh=True)
    assert not remade["kept"] and remade["digest"] != first["digest"] and remade["rule"]["seed"] == 7
    # deterministic: the same rule on the same corpus makes the same bytes
    again = tmp_path / "again"
    make_evalset(corpus, again, other)
    assert (again / "documents.jsonl").read_bytes() == (out / "documents.jsonl").read_bytes()


def test_a_source_file_instead_of_the_corpus_and_its_cap(corpus, tmp_path):
    source = tmp_path / "held-out.jsonl"
    source.write_text("".join(json.dumps({"id": f"q{i}", "text": f"question {i} about the river"}) + "\n"
                              for i in range(10)), encoding="utf-8")
    made = make_evalset(corpus, tmp_path / "evalset", EvalSetConfig(source=str(source), max_documents=4))
    assert made["documents"] == 4 and made["made_from"] == source.as_posix()


def test_bad_evaluation_sets_are_one_line_errors(corpus, evalset, tmp_path):
    with pytest.raises(UserError, match="no evaluation set here"):
        tokenize(corpus, tmp_path / "t", TOKENIZE, eval_set=tmp_path / "missing")
    edited = tmp_path / "edited"
    shutil.copytree(evalset, edited)
    with open(edited / "documents.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"id": "x", "text": "added by hand"}) + "\n")
    with pytest.raises(UserError, match="does not match meta.json's digest"):
        load_evalset(edited)
    with pytest.raises(UserError, match="no document's id hash fell below"):
        make_evalset(corpus, tmp_path / "e", EvalSetConfig(fraction=0.001))


def test_a_corpus_that_is_all_evaluation_set_is_a_one_line_error(corpus, evalset, tmp_path):
    only = tmp_path / "only"
    with ShardWriter(only) as writer:
        writer.write_all(load_evalset(evalset).documents)
    with pytest.raises(UserError, match="every document is in the evaluation set"):
        tokenize(only, tmp_path / "t", TOKENIZE, eval_set=evalset)
