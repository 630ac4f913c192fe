from pathlib import Path

import pytest

from crawler.config import CrawlConfig, load_source
from tokenmill.config import build
from tokenmill.errors import ConfigError, UserError

GOOD = "name: site\nstart_urls: [https://example.org/]\nallowed_domains: [example.org]\nmax_pages: 10\nmax_depth: 1\n"


def write(tmp_path: Path, text: str, name: str = "site") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def one_line_error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_source(str(write(tmp_path, text)))
    message = str(caught.value)
    assert "\n" not in message and str(tmp_path / "site.yaml") in message
    return message


def test_load_by_name_and_by_path(tmp_path):
    path = write(tmp_path, GOOD)
    by_name = load_source("site", sources_dir=tmp_path)
    assert by_name == load_source(str(path))
    assert by_name.allow_private is False and by_name.serve is None and by_name.allow == []


def test_unknown_name_lists_the_available_sources(tmp_path):
    write(tmp_path, GOOD, "alpha")
    write(tmp_path, GOOD, "beta")
    with pytest.raises(UserError, match="unknown source 'gamma'.*available: alpha, beta"):
        load_source("gamma", sources_dir=tmp_path)


def test_unknown_key(tmp_path):
    assert "unknown key 'max_page'" in one_line_error(tmp_path, GOOD.replace("max_pages", "max_page"))


def test_wrong_type(tmp_path):
    message = one_line_error(tmp_path, GOOD.replace("max_pages: 10", "max_pages: many"))
    assert "max_pages" in message and "expected int" in message


def test_yaml_syntax_error_names_the_line(tmp_path):
    message = one_line_error(tmp_path, GOOD + "allow: [unclosed\n")
    assert f"{tmp_path / 'site.yaml'}:" in message


@pytest.mark.parametrize("change, key", [
    (("max_pages: 10", "max_pages: 0"), "max_pages"),
    (("max_depth: 1", "max_depth: -1"), "max_depth"),
    (("https://example.org/", "example.org"), "start_urls"),
    (("allowed_domains: [example.org]\n", ""), "allowed_domains"),
    (("max_depth: 1\n", "max_depth: 1\ndeny: ['(']\n"), "deny"),
])
def test_bad_values_name_the_key(tmp_path, change, key):
    assert key in one_line_error(tmp_path, GOOD.replace(*change))


def test_serve_needs_allow_private(tmp_path):
    text = "name: site\nserve: data/sites/x\nstart_urls: [/index.html]\nmax_pages: 5\nmax_depth: 1\n"
    assert "serve" in one_line_error(tmp_path, text)
    served = load_source(str(write(tmp_path, text + "allow_private: true\n")))
    assert served.allowed_domains == [] and served.start_urls == ["/index.html"]


def test_repo_source_is_valid():
    source = load_source("debian-handbook", sources_dir=Path(__file__).parents[2] / "sources")
    assert {"/en-US/index.html", "/fa-IR/index.html", "/pl-PL/index.html"} <= set(source.start_urls)
    assert source.allow_private and source.max_pages >= 381


def test_crawl_config_defaults_and_validation():
    config = build(CrawlConfig, {}, where="params.yaml: crawl")
    assert config.sources == ["debian-handbook"] and config.obey_robots and "tokenmill" in config.user_agent
    with pytest.raises(ConfigError, match="params.yaml: crawl: concurrent_requests"):
        build(CrawlConfig, {"concurrent_requests": 0}, where="params.yaml: crawl")
    with pytest.raises(ConfigError, match="unknown key 'delay'"):
        build(CrawlConfig, {"delay": 1}, where="params.yaml: crawl")
