"""bench/ scripts run as `python bench/NAME.py`, which puts bench/ first on sys.path: a script named like a
standard-library module (select, random, ...) would be imported in its place by every other bench script."""

import sys
from pathlib import Path


def test_no_bench_script_shadows_the_standard_library():
    bench = Path(__file__).resolve().parents[1] / "bench"
    names = {p.stem for p in bench.glob("*.py")}
    assert names and not names & set(sys.stdlib_module_names)
