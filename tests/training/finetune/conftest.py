"""Fixtures of the fine-tuning tests (helpers live in finetune_samples.py)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # for finetune_samples, as tests/conftest.py does for tests/

from finetune_samples import make_base  # noqa: E402


@pytest.fixture(scope="session")
def base_dir(tmp_path_factory) -> Path:
    """A random tiny GPT (2 layers, 32 wide, context 64) with a 320-token BPE, as a model directory."""
    return make_base(tmp_path_factory.mktemp("base") / "gpt")
