"""The one list of prepare steps: every step registers itself here from its own file.

A step is one module under `dataprep/steps/`; `discover()` imports them all, and each step class
registers with `@register_step(name, ...)`. "Known" (registered) and "enabled by default"
(`default=True`, in `order`) are separate. The pipeline, `PrepareConfig`, the CLI groups
(`tokenmill filter|dedup|scrub`) and `--help` all read this registry.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any, Callable

GROUPS = {  # CLI group → what it does (its --help line)
    "normalize": "Unicode, mojibake and whitespace normalisation",
    "filter": "language, URL, Gopher/C4/FineWeb quality and decontamination filters",
    "dedup": "exact and MinHash near-duplicate removal",
    "scrub": "PII scrubbing (e-mail, phone, IP, card, IBAN) into typed placeholders",
}


@dataclass(frozen=True)
class StepSpec:
    name: str  # step name in prepare.steps, --steps, removal reasons and params.yaml prepare.<name>
    cls: type  # built as cls(config_section, on_remove)
    config: type | None  # dataclass of its params.yaml section (None: no settings)
    group: str  # CLI group
    order: int  # position among the steps (default order)
    default: bool  # enabled in the default prepare.steps
    help: str


_STEPS: dict[str, StepSpec] = {}
_discovered = False


def register_step(
    name: str, *, group: str, order: int, config: type | None = None, default: bool = True, help: str = ""
) -> Callable[[type], type]:
    """Class decorator: make `cls` the step `name`."""
    if group not in GROUPS:
        raise ValueError(f"step {name}: unknown group {group!r} (known: {', '.join(GROUPS)})")

    def decorate(cls: type) -> type:
        if name in _STEPS and _STEPS[name].cls is not cls:
            raise ValueError(f"step {name!r} registered twice ({_STEPS[name].cls.__module__}, {cls.__module__})")
        cls.name = name
        _STEPS[name] = StepSpec(name, cls, config, group, order, default, help or (cls.__doc__ or "").split("\n")[0])
        return cls

    return decorate


def discover() -> None:
    """Import every module of `dataprep.steps` once (each registers its steps)."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    import dataprep.steps as package

    for module in sorted(m.name for m in pkgutil.iter_modules(package.__path__)):
        importlib.import_module(f"{package.__name__}.{module}")


def steps() -> dict[str, StepSpec]:
    """Every known step, in default order."""
    discover()
    return dict(sorted(_STEPS.items(), key=lambda item: (item[1].order, item[0])))


def default_steps() -> list[str]:
    return [name for name, spec in steps().items() if spec.default]


def group_steps(group: str) -> list[str]:
    """The default-enabled steps of a CLI group, in order."""
    return [name for name, spec in steps().items() if spec.group == group and spec.default]


def build_step(name: str, section: Any, on_remove: Callable | None) -> Any:
    spec = steps()[name]
    return spec.cls(section, on_remove) if spec.config is not None else spec.cls(on_remove=on_remove)


def describe() -> str:
    """One line per step for --help: name, group, default or not, what it does."""
    lines = []
    for name, spec in steps().items():
        flag = "on " if spec.default else "off"
        lines.append(f"  {name:<14} {flag} [{spec.group}] {spec.help}")
    return "\n".join(lines)
