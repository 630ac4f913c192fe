from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from tokenmill.config import build, flatten, load_yaml
from tokenmill.errors import ConfigError


@dataclass
class Inner:
    rate: float = 0.5
    mode: Literal["a", "b"] = "a"


@dataclass
class Outer:
    name: str
    sizes: list[int] = field(default_factory=list)
    inner: Inner = field(default_factory=Inner)
    limit: int | None = None

    def __post_init__(self):
        if self.limit is not None and self.limit < 0:
            raise ValueError("limit must be >= 0")


def test_build_nested_with_types_and_defaults():
    obj = build(Outer, {"name": "x", "sizes": [1, 2], "inner": {"rate": 1, "mode": "b"}}, "f.yaml")
    assert obj == Outer(name="x", sizes=[1, 2], inner=Inner(rate=1.0, mode="b"))
    assert flatten(obj)["inner.mode"] == "b"


@pytest.mark.parametrize(
    "data, message",
    [
        ({"name": "x", "colour": 1}, "f.yaml: unknown key 'colour'"),
        ({}, "f.yaml: missing required key 'name'"),
        ({"name": 3}, "f.yaml: name: expected str"),
        ({"name": "x", "sizes": [1, "two"]}, r"f.yaml: sizes\[1\]: expected int"),
        ({"name": "x", "inner": {"mode": "c"}}, "f.yaml: inner.mode: expected one of 'a', 'b'"),
        ({"name": "x", "inner": {"rate": True}}, "f.yaml: inner.rate: expected float"),
        ({"name": "x", "limit": -1}, "f.yaml: limit must be >= 0"),
    ],
)
def test_build_errors_name_the_key(data, message):
    with pytest.raises(ConfigError, match=message) as info:
        build(Outer, data, "f.yaml")
    assert "\n" not in str(info.value)


def test_yaml_syntax_error_names_the_line(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text("a: 1\nb: [unclosed\nc: 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+:"):
        load_yaml(path)
