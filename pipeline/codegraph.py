"""The project's own import graph, read from the source (no module is imported).

An edge a -> b means module a may run code of module b: an `import` anywhere in a (at the top or inside
a function), or a string constant naming b as a dotted path (Scrapy settings name middlewares that way,
and `python -m crawler.job` runs a module by name). Imports under `if TYPE_CHECKING:` are left out: they
run nothing. dvc.yaml's code dependencies of a stage are the modules its entry points reach
(pipeline/dvcfile.py), and tests/test_architecture.py finds import cycles with it.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tokenmill", "crawler", "dataprep", "training", "pipeline", "flows")


def module_file(module: str, root: Path = ROOT) -> Path | None:
    """The source file of a first-party module or package, or None."""
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def resolve(name: str, root: Path = ROOT) -> str | None:
    """The longest first-party module that a dotted name starts with (`a.b.Class` -> `a.b`)."""
    parts = name.split(".")
    if parts[0] not in PACKAGES:
        return None
    for end in range(len(parts), 0, -1):
        if module_file(".".join(parts[:end]), root):
            return ".".join(parts[:end])
    return None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _names(tree: ast.AST, module: str, is_package: bool):
    """(dotted name, named in a string) for every name the module imports or names in a string constant,
    TYPE_CHECKING blocks left out."""
    package = module if is_package else module.rpartition(".")[0]
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            yield from ((alias.name, False) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base, False
            yield from ((f"{base}.{alias.name}", False) for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.count(".") \
                and node.value.replace(".", "").replace("_", "").isalnum():
            yield node.value, True
        stack.extend(ast.iter_child_nodes(node))


@lru_cache(maxsize=None)
def imports(module: str, root: Path = ROOT, strings: bool = True) -> frozenset[str]:
    """The first-party modules `module` imports directly, and with `strings` those it names in strings
    (a package named in a string: all of it)."""
    path = module_file(module, root)
    if path is None:
        return frozenset()
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = set()
    for name, in_string in _names(tree, module, path.name == "__init__.py"):
        target = resolve(name, root)
        if target and target != module and (strings or not in_string):
            found.add(target)
            if in_string and name == target and _is_package(target, root):
                found.update(_package_modules(target, root))
    return frozenset(found)


def _is_package(module: str, root: Path) -> bool:
    return (root.joinpath(*module.split(".")) / "__init__.py").is_file()


def _package_modules(package: str, root: Path) -> set[str]:
    """A package named as a whole in a string (Scrapy's SPIDER_MODULES): every module in it."""
    directory = root.joinpath(*package.split("."))
    return {f"{package}.{p.stem}" for p in directory.glob("*.py") if p.stem != "__init__"}


def reach(modules: tuple[str, ...] | list[str], root: Path = ROOT) -> set[str]:
    """`modules` and every first-party module they reach through imports; a package among `modules` stands
    for all of its modules (plugins found at run time, as dataprep's steps are)."""
    seen: set[str] = set()
    todo = [*modules, *(m for p in modules if _is_package(p, root) for m in _package_modules(p, root))]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(imports(module, root) - seen)
    return seen


def all_modules(root: Path = ROOT) -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


def cycles(root: Path = ROOT) -> list[list[str]]:
    """Import cycles: strongly connected components of more than one module (Tarjan), each sorted.
    Modules named in strings are left out: running one as a process (`python -m flows.sweep`) is no import."""
    graph = {m: sorted(imports(m, root, strings=False)) for m in all_modules(root)}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, ()):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return sorted(found)
