"""URL block list and n-gram decontamination against an evaluation set."""

import json

import pytest
from dataprep_samples import ENGLISH, ENGLISH_OTHER, PERSIAN

from dataprep.config import PrepareConfig
from dataprep.pipeline import run
from dataprep.steps.decontaminate import DecontaminateConfig, Decontaminate
from dataprep.steps.url_filter import URLFilter, URLFilterConfig, host_of
from tokenmill.config import build
from tokenmill.documents import Document
from tokenmill.errors import ConfigError


def reasons(step, docs):
    removed = []
    step.on_remove = lambda doc, reason: removed.append((doc.id, reason))
    kept = [d.id for d in step.run(docs)]
    return kept, removed


def test_blocked_domains_and_their_subdomains_are_removed(tmp_path):
    listed = tmp_path / "block.txt"
    listed.write_text("# spam\nspam.example\nhttps://www.ads.test/path\n\n", encoding="utf-8")
    docs = [Document(i, "x", {"url": url}) for i, url in [
        ("a", "https://spam.example/page"), ("b", "http://news.spam.example/x"), ("c", "https://ads.test/"),
        ("d", "https://notspam.example/"), ("e", "https://example.org/spam.example"),
    ]] + [Document("f", "no url")]
    kept, removed = reasons(URLFilter(URLFilterConfig(str(listed))), docs)
    assert kept == ["d", "e", "f"] and [r for _, r in removed] == ["url_filter:blocked"] * 3


def test_missing_blocklist_is_a_one_line_config_error(tmp_path):
    with pytest.raises(ConfigError, match="url_filter.blocklist: .*nope.txt: file not found"):
        URLFilter(URLFilterConfig(str(tmp_path / "nope.txt")))


def test_host_of():
    assert host_of("HTTPS://Sub.Example.COM:8080/x") == "sub.example.com" and host_of("example.com") == "example.com"


def test_documents_sharing_a_13_gram_with_the_eval_set_are_removed(tmp_path):
    eval_set = tmp_path / "eval.jsonl"
    question = "The stable release is tested for a long time before it is published, which is why many companies"
    eval_set.write_text(json.dumps({"id": "q1", "text": question}) + "\n", encoding="utf-8")
    docs = [Document("en", ENGLISH), Document("other", ENGLISH_OTHER), Document("fa", PERSIAN)]
    step = Decontaminate(DecontaminateConfig(str(eval_set)))
    kept, removed = reasons(step, docs)
    assert kept == ["other", "fa"] and removed == [("en", "decontaminate")]
    assert step.summary() == {"decontaminated": 1}


def test_a_twelve_word_overlap_is_not_contamination_at_n_13(tmp_path):
    eval_set = tmp_path / "eval.txt"
    eval_set.write_text("the stable release is tested for a long time before it is\n", encoding="utf-8")
    kept, removed = reasons(Decontaminate(DecontaminateConfig(str(eval_set))), [Document("en", ENGLISH)])
    assert removed == []
    kept, removed = reasons(Decontaminate(DecontaminateConfig(str(eval_set), ngram_size=12)), [Document("en", ENGLISH)])
    assert removed == [("en", "decontaminate")]


def test_decontamination_in_the_pipeline_is_counted(tmp_path):
    (tmp_path / "eval.txt").write_text(" ".join(ENGLISH.split()[:20]) + "\n", encoding="utf-8")
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in [("a", ENGLISH), ("b", ENGLISH_OTHER)]))
    config = build(PrepareConfig, {"steps": ["decontaminate"], "decontaminate": {"eval_path": str(tmp_path / "eval.txt")}},
                   "params.yaml: prepare")
    stats = run(src, tmp_path / "out", config)
    assert stats["removed"] == {"decontaminate": 1} and stats["decontaminated"] == 1


def test_missing_eval_set_is_a_one_line_config_error(tmp_path):
    with pytest.raises(ConfigError, match="decontaminate.eval_path: .*missing: no such file"):
        Decontaminate(DecontaminateConfig(str(tmp_path / "missing")))
