"""pyproject.toml: the package metadata setuptools reads without deprecation banners (`pip install -e .`
printed three 14-line ones for a TOML-table `project.license`)."""

from __future__ import annotations

import os
import tomllib
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_license_is_an_spdx_expression():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "Apache-2.0"


def test_setuptools_reads_the_metadata_without_warnings():
    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution

    cwd = os.getcwd()
    os.chdir(ROOT)  # readme and package discovery are relative to the project
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            dist = apply_configuration(Distribution(), ROOT / "pyproject.toml")
    finally:
        os.chdir(cwd)
    banners = [str(w.message)[:200] for w in caught if "license" in str(w.message).lower()]
    assert not banners, banners
    assert dist.metadata.license_expression == "Apache-2.0"
