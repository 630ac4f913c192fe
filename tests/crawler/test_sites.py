import pytest

from crawler.sites import fetch_site, main
from tokenmill.errors import UserError


def test_an_installed_site_is_kept(tmp_path):
    dest = tmp_path / "debian-handbook"
    (dest / "en-US").mkdir(parents=True)
    assert fetch_site("debian-handbook", dest) == dest  # no apt, no network: it is a cache
    assert (dest / "en-US").is_dir()


def test_unknown_site(tmp_path, capsys):
    with pytest.raises(UserError, match="unknown site 'nope'"):
        fetch_site("nope", tmp_path / "x")
    assert main(["nope", str(tmp_path / "x")]) == 1
    assert capsys.readouterr().err.count("\n") == 1
