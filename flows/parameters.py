"""What a deployment's run may be told: parameters checked before any work (SECURITY.md).

Anyone who can reach the Prefect API can start a deployment with parameters of their choosing. A
free-form parameter must not point the flow at another machine or outside the project: a Dask
scheduler elsewhere (it sends pickles to unpickle), another tracking server, a params file or source
YAML anywhere on disk. So a run started from a deployment accepts
  params_path  a .yaml file inside the project directory (the served process's working directory)
  overrides    `section.key=value` whose values are numbers, booleans, or plain words: no address,
               URI or path (nothing with / \\ : ~ or ..), and never an address or URI setting at all
  names        (source, corpus version, registered model) plain words
and refuses anything else with a one-line UserError. Runs started on the command line
(`python -m flows.pipeline --set ...`) are the user's own and are not restricted.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tokenmill.errors import UserError

KEY = re.compile(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)+")
PLAIN_NAME = re.compile(r"[\w][\w.+-]*")  # no path separators, no leading dot or dash
NOT_IN_A_VALUE = ("/", "\\", ":", "~", "..", "\x00")
# Settings that name another machine or store: never set by a deployment's run, whatever the value.
ADDRESS_KEYS = ("prepare.dask.address", "tracking.tracking_uri", "tracking.artifact_location")


def from_deployment() -> bool:
    """True inside a flow run that a deployment started (through the API), not a local call."""
    from prefect.runtime import deployment

    return deployment.id is not None


def project_params_path(params_path: str, project: Path | None = None) -> str:
    """`params_path` when it is a .yaml file inside `project` (default: the working directory)."""
    project = (project or Path.cwd()).resolve()
    path = (project / params_path).resolve()
    if not path.is_relative_to(project) or path.suffix not in (".yaml", ".yml") or not path.is_file():
        raise UserError(f"params_path {params_path!r}: a deployment reads only a .yaml file inside the project "
                        f"({project})")
    return params_path


def plain_overrides(overrides: list[str] | None) -> list[str]:
    """`overrides` when each is `section.key=value` with a plain value (module docstring)."""
    for override in overrides or []:
        key, sep, raw = str(override).partition("=")
        if not sep or not KEY.fullmatch(key):
            raise UserError(f"overrides {override!r}: expected section.key=value")
        if key in ADDRESS_KEYS or key.startswith("paths.") and key != "paths.runs":
            raise UserError(f"overrides {override!r}: a deployment may not set {key} (an address, URI or path); "
                            f"set it in the project's params file")
        bad = _address_like(_yaml_value(raw))
        if bad is not None:
            raise UserError(f"overrides {override!r}: {bad!r} looks like an address, URI or path; a deployment "
                            f"takes only numbers, booleans and plain words")
    return list(overrides or [])


def plain_name(value: str | None, field: str) -> str | None:
    """A source, version or model name: a plain word (never a path or an option)."""
    if value is not None and not PLAIN_NAME.fullmatch(str(value)):
        raise UserError(f"{field} {value!r}: expected a plain name (letters, digits, . _ + -)")
    return value


def check_deployment_run(params_path: str, overrides: list[str] | None = None, **names: str | None) -> None:
    """All of the above, for a run a deployment started; nothing for a local call."""
    if not from_deployment():
        return
    project_params_path(params_path)
    plain_overrides(overrides)
    for field, value in names.items():
        plain_name(value, field)


def _yaml_value(raw: str) -> Any:
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def _address_like(value: Any) -> str | None:
    """The first string in `value` (nested lists and mappings too) that could name a place."""
    if isinstance(value, dict):
        value = [*value.keys(), *value.values()]
    if isinstance(value, list):
        return next((found for found in map(_address_like, value) if found is not None), None)
    if isinstance(value, str) and any(part in value for part in NOT_IN_A_VALUE):
        return value
    return None
