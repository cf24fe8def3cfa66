"""The layers of arnkit, checked from the source: no import cycles, nothing imports upward, `pipeline/` and
`cli/` are never imported from below, and no attack class keeps a per-dataset dict (issue 28, step 1).

Everything here reads source files with `ast`; nothing imports arnkit, so the test runs in well under a
second and cannot be fooled by import-time side effects. The layer table is data: edit LAYERS below.

What counts as an import (an edge `importer -> imported`):
- `import a.b.c` (edge to the longest prefix that is one of our modules), `from a.b import c` (edge to the
  submodule `a.b.c` when that file exists, else to the package `a.b`, i.e. its `__init__`), relative imports
  resolved against the importer's package, and `from a.b import *`;
- wherever they sit: module level, inside functions, under `try:`, under `if TYPE_CHECKING:`;
- a string constant that is exactly a dotted module path, optionally with `:attr` ("arnkit.x.y:func",
  importlib.import_module("arnkit.x.y")), when it names one of our modules below the root;
- an f-string whose constant head is "arnkit.<package>." (f"arnkit.attacks.{self.module}"): an edge to each
  submodule of that package whose bare name appears as a string constant in the same file (the registry
  rows spell the module names out, e.g. AttackEntry("fgsm", "pgd", ...)).

What cannot be seen, and so is not checked:
- a module name computed at run time (joined from variables, read from a config or an artifact header);
- an f-string whose module part is not spelled out as a string constant in the same file;
- `__import__`, `importlib.util.spec_from_file_location`, entry points, pickle/keras deserialisation.
We also do not add the implicit edge "a.b.c -> a.b" that Python's import of a parent package performs:
counting it would make every package `__init__` that imports its own submodules a false cycle (most of all
the root `arnkit/__init__.py`, which imports runtime and backend, the very modules everything else imports).
An explicit `from arnkit.pkg import name` of a name re-exported by `pkg/__init__.py` IS an edge to that
`__init__`, so a cycle through a package's re-exports is still caught.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Source folder -> the package name it installs as (pyproject.toml [tool.setuptools] package-dir).
PACKAGE_DIRS = {"arnkit": REPO / "arnkit", "arnkit_cli": REPO / "cli"}
ROOT = "arnkit"

# The target layers, bottom to top (/work/notes/common.md, ARCHITECTURE.md "The layers"). A module may import
# only modules of its own layer or a lower one. The row for a module is the longest prefix of its dotted name
# (on whole components); the root package "arnkit" matches only itself, so a new top-level module without a
# row fails test_every_module_has_a_layer instead of silently landing on the ground floor.
LAYERS: dict[str, int] = {
    # 0 ground
    "arnkit": 0,
    "arnkit.errors": 0,
    "arnkit.io": 0,
    "arnkit.workspace": 0,
    "arnkit.runtime": 0,
    "arnkit.backend": 0,
    "arnkit.presets": 0,
    "arnkit.progress": 0,
    "arnkit.fingerprint": 0,
    "arnkit.adversarial_store": 0,
    # 1 algorithms, and the pure evaluation helpers
    "arnkit.data": 1,
    "arnkit.models": 1,
    "arnkit.attacks": 1,
    "arnkit.detection": 1,
    "arnkit.evaluation.metrics": 1,
    "arnkit.evaluation.tables": 1,
    "arnkit.evaluation.figures": 1,
    "arnkit.evaluation.sanity": 1,
    "arnkit.evaluation.convergence": 1,
    "arnkit.evaluation.spread": 1,
    # 2 services: run context, target, adversarial sets, training-run template, Defense, gray-box scoring
    "arnkit.runs": 2,
    # 3 defenses: registry and recipes (defenses/arn/ holds ARN and its run)
    "arnkit.defenses": 3,
    # 4 evaluation orchestration: threat models, plan/craft/score/check/write, studies
    "arnkit.evaluation": 4,
    # 5 one thin function per CLI command
    "arnkit.pipeline": 5,
    # 6 the Typer app (folder cli/)
    "arnkit_cli": 6,
}

# Only these may import arnkit.pipeline / arnkit_cli (and pipeline may not import cli).
TOP_PACKAGES = ("arnkit.pipeline", "arnkit_cli")
# Where an attack class may not carry a per-dataset dict, and the names that mark one.
ATTACK_DIRS = (REPO / "arnkit" / "attacks", REPO / "arnkit" / "detection")
DATASET_NAMES = frozenset({"mnist", "cifar10", "lisa", "synthetic"})


@dataclass(frozen=True)
class Edge:
    importer: str
    imported: str
    path: str  # relative to the repository root
    line: int
    how: str  # "import", "string" or "f-string"

    def where(self) -> str:
        return f"{self.path}:{self.line}"


# --- the graph ----------------------------------------------------------------------------------------------


def discover_modules(package_dirs: dict[str, Path]) -> dict[str, Path]:
    """Dotted module name -> source file, for every .py under the package folders."""
    modules: dict[str, Path] = {}
    for package, folder in package_dirs.items():
        for path in sorted(folder.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join([package, *parts])] = path
    return modules


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of `name` (whole components) that is one of our modules, else None."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def _absolute(node: ast.ImportFrom, importer: str, path: Path) -> str:
    if not node.level:
        return node.module or ""
    package = importer if _is_package(path) else importer.rpartition(".")[0]
    base = package.split(".")
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _string_target(value: str, modules: dict[str, Path]) -> str | None:
    """ "arnkit.x.y" or "arnkit.x.y:attr" naming one of our modules below the root (so "arnkit.json", a file
    name, is not an edge)."""
    head = value.split(":", 1)[0]
    if not head.startswith(tuple(f"{p}." for p in PACKAGE_DIRS)) or not all(
            part.isidentifier() for part in head.split(".")):
        return None
    target = _resolve(head, modules)
    return target if target not in (None, *PACKAGE_DIRS) else None


def module_edges(importer: str, path: Path, modules: dict[str, Path], repo: Path = REPO) -> list[Edge]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    rel = str(path.relative_to(repo))
    edges: list[Edge] = []
    constants = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}

    def add(target: str | None, node: ast.AST, how: str = "import") -> None:
        if target is not None and target != importer:
            edges.append(Edge(importer, target, rel, node.lineno, how))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(_resolve(alias.name, modules), node)
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(node, importer, path)
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                add(submodule if submodule in modules else _resolve(source, modules), node)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and hasattr(node, "lineno"):
            add(_string_target(node.value, modules), node, "string")
        elif isinstance(node, ast.JoinedStr) and node.values:
            head = node.values[0]
            if not (isinstance(head, ast.Constant) and isinstance(head.value, str)):
                continue
            package = head.value.removesuffix(".")
            if head.value.endswith(".") and package in modules and _is_package(modules[package]):
                for name in sorted(constants):
                    if f"{package}.{name}" in modules:
                        add(f"{package}.{name}", node, "f-string")
    return edges


def collect_edges(modules: dict[str, Path], repo: Path = REPO) -> list[Edge]:
    edges = [e for name, path in modules.items() for e in module_edges(name, path, modules, repo)]
    return sorted(set(edges), key=lambda e: (e.importer, e.imported, e.line))


# --- the checks (pure functions of a graph, so the self-tests can plant faults) -----------------------------


def graph_of(edges: list[Edge]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for edge in edges:
        graph[edge.importer].add(edge.imported)
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative); components with more than one module, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    nodes = sorted(set(graph) | {t for targets in graph.values() for t in targets})
    counter = 0
    for start in nodes:
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
    return sorted(found)


def cycle_path(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One cycle through the component's first module: a shortest path back to it (BFS inside the SCC)."""
    members = set(component)
    start = component[0]
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph.get(node, ())):
                if child not in members:
                    continue
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if child not in parent:
                    parent[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {component}")  # an SCC always has one


def cycle_messages(edges: list[Edge]) -> list[str]:
    graph = graph_of(edges)
    first = {}
    for edge in edges:
        first.setdefault((edge.importer, edge.imported), edge)
    messages = []
    for component in strongly_connected(graph):
        path = cycle_path(graph, component)
        hops = [f"{a} imports {b} ({first[a, b].where()})" for a, b in zip(path, path[1:], strict=False)]
        messages.append(f"cycle among {len(component)} modules ({', '.join(component)}), one path: "
                        + "; ".join(hops))
    return messages


def layer_of(module: str, layers: dict[str, int] = LAYERS) -> int | None:
    if module == ROOT:
        return layers.get(ROOT)
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix != ROOT and prefix in layers:
            return layers[prefix]
    return None


def upward_messages(edges: list[Edge], layers: dict[str, int] = LAYERS) -> list[str]:
    messages = []
    for edge in edges:
        low, high = layer_of(edge.importer, layers), layer_of(edge.imported, layers)
        if low is not None and high is not None and high > low:
            messages.append(f"{edge.importer} (layer {low}) imports {edge.imported} (layer {high}) at "
                            f"{edge.where()} [{edge.how}]")
    return messages


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def top_import_messages(edges: list[Edge]) -> list[str]:
    messages = []
    for edge in edges:
        if any(_within(edge.imported, top) for top in TOP_PACKAGES):
            from_below = not any(_within(edge.importer, top) for top in TOP_PACKAGES)
            cli_from_pipeline = _within(edge.importer, "arnkit.pipeline") and _within(edge.imported, "arnkit_cli")
            if from_below or cli_from_pipeline:
                messages.append(f"{edge.importer} imports {edge.imported} at {edge.where()} [{edge.how}]")
    return messages


def _dataset_keyed(value: ast.AST) -> bool:
    for node in ast.walk(value):
        if isinstance(node, ast.Dict) and any(
                isinstance(k, ast.Constant) and k.value in DATASET_NAMES for k in node.keys):
            return True
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict"
                and any(k.arg in DATASET_NAMES for k in node.keywords)):
            return True
    return False


def per_dataset_dict_messages(folders: tuple[Path, ...] = ATTACK_DIRS, repo: Path = REPO) -> list[str]:
    messages = []
    for folder in folders:
        for path in sorted(folder.rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            # A module-level table a class attribute points at (`dataset_defaults = EPS_DEFAULTS`) counts too.
            tables = {t.id for stmt in tree.body if isinstance(stmt, ast.Assign | ast.AnnAssign)
                      and stmt.value is not None and _dataset_keyed(stmt.value)
                      for t in (stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target])
                      if isinstance(t, ast.Name)}
            for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
                for stmt in cls.body:
                    if isinstance(stmt, ast.Assign):
                        targets, value = stmt.targets, stmt.value
                    elif isinstance(stmt, ast.AnnAssign):
                        targets, value = [stmt.target], stmt.value
                    else:
                        continue
                    names = [t.id for t in targets if isinstance(t, ast.Name)]
                    aliased = value is not None and any(
                        isinstance(n, ast.Name) and n.id in tables for n in ast.walk(value))
                    if "dataset_defaults" in names or aliased or (value is not None and _dataset_keyed(value)):
                        messages.append(f"class {cls.name} in {path.relative_to(repo)}:{stmt.lineno} keeps "
                                        f"a per-dataset dict ({', '.join(names) or 'class attribute'}); "
                                        "budgets belong to the dataset")
    return messages


# --- the real tree ------------------------------------------------------------------------------------------

MODULES = discover_modules(PACKAGE_DIRS)
# The root package's lazy facade: `arnkit.defend` is resolved by the root's module `__getattr__` when a user
# first reads it, never while anything is being imported, so it makes no import-time edge. Exactly these
# (importer, imported) pairs are set aside; test_root_facade_is_lazy_and_only_these checks how they are made.
ROOT_FACADE = {("arnkit", "arnkit.pipeline.defend")}
EDGES = [e for e in collect_edges(MODULES) if (e.importer, e.imported) not in ROOT_FACADE]


def _fail(title: str, messages: list[str]) -> None:
    assert not messages, f"{title} ({len(messages)}):\n  " + "\n  ".join(messages)


def test_parser_sees_the_tree():
    assert len(MODULES) > 50, f"only {len(MODULES)} modules found under {list(PACKAGE_DIRS.values())}"
    assert len(EDGES) > 100, f"only {len(EDGES)} internal imports found"
    assert "arnkit_cli.main" in MODULES and ROOT in MODULES
    # Every module but a few leaves imports something of ours; a parser that silently missed a kind of
    # statement would leave many modules edge-less.
    importers = {e.importer for e in EDGES}
    assert len(importers) > 0.7 * len(MODULES), f"only {len(importers)} of {len(MODULES)} modules import ours"


def test_every_module_has_a_layer():
    _fail("modules with no row in LAYERS", [m for m in MODULES if layer_of(m) is None])


def test_no_import_cycles():
    _fail("import cycles", cycle_messages(EDGES))


def test_pipeline_and_cli_are_not_imported_from_below():
    _fail("imports of arnkit.pipeline / arnkit_cli from below", top_import_messages(EDGES))


def test_no_module_imports_a_higher_layer():
    _fail("upward imports", upward_messages(EDGES))


def test_root_facade_is_lazy_and_only_these():
    """The facade's imports sit inside the root's module-level `__getattr__` and nowhere else."""
    tree = ast.parse(MODULES[ROOT].read_text())
    getattr_fn = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "__getattr__"), None)
    assert getattr_fn is not None, "arnkit/__init__.py has no module __getattr__ for its facade"
    inside = {id(n) for n in ast.walk(getattr_fn)}
    for edge in module_edges(ROOT, MODULES[ROOT], MODULES):
        if layer_of(edge.imported) not in (0, None):
            assert (edge.importer, edge.imported) in ROOT_FACADE, f"the root imports {edge.imported} (layer > 0)"
    facade_imports = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
                      and n.module.startswith("arnkit.pipeline")]
    assert facade_imports and all(id(n) in inside for n in facade_imports), \
        "the root imports arnkit.pipeline outside its lazy __getattr__"


def test_no_attack_class_keeps_a_per_dataset_dict():
    _fail("per-dataset dicts in attack classes", per_dataset_dict_messages())


# --- self-tests of the checker: planted faults must be caught -----------------------------------------------


def _fake(graph: dict[str, list[str]]) -> list[Edge]:
    return [Edge(a, b, f"{a.replace('.', '/')}.py", i, "import")
            for a, targets in graph.items() for i, b in enumerate(targets, 1)]


def test_checker_flags_planted_cycles_and_upward_imports():
    edges = _fake({
        "arnkit": ["arnkit.runtime", "arnkit.errors"],
        "arnkit.runtime": ["arnkit.errors"],
        "arnkit.data.lisa": ["arnkit.data.lisa_builder", "arnkit.errors"],
        "arnkit.data.lisa_builder": ["arnkit.data.base", "arnkit.data.lisa"],  # planted 2-cycle
        "arnkit.defenses.a": ["arnkit.evaluation.b"],
        "arnkit.evaluation.b": ["arnkit.evaluation.c"],
        "arnkit.evaluation.c": ["arnkit.defenses.a"],  # planted 3-cycle, and defenses -> evaluation is up
        "arnkit.evaluation.metrics": ["arnkit.evaluation"],  # a pure helper reaching its package's __init__
        "arnkit.runs.target": ["arnkit.pipeline.train"],  # planted upward import of pipeline
        "arnkit.pipeline.train": ["arnkit_cli.common", "arnkit.runs.target"],
    })
    cycles = cycle_messages(edges)
    assert len(cycles) == 3, cycles
    assert any("arnkit.data.lisa imports arnkit.data.lisa_builder" in c for c in cycles), cycles
    assert any("arnkit.defenses.a" in c and "arnkit.evaluation.c" in c for c in cycles), cycles
    assert any("arnkit.pipeline.train" in c and "arnkit.runs.target" in c for c in cycles), cycles
    upward = upward_messages(edges)
    assert any(m.startswith("arnkit.defenses.a (layer 3) imports arnkit.evaluation.b (layer 4)") for m in upward)
    assert any(m.startswith("arnkit.evaluation.metrics (layer 1) imports arnkit.evaluation (layer 4)")
               for m in upward), upward
    assert any(m.startswith("arnkit.runs.target (layer 2) imports arnkit.pipeline.train") for m in upward)
    assert len(upward) == 4, upward  # the three above and pipeline -> cli
    tops = top_import_messages(edges)
    assert len(tops) == 2 and all("arnkit.runs.target" in m or "arnkit_cli" in m for m in tops), tops
    # A clean graph passes, the root importing the ground floor included.
    clean = _fake({"arnkit": ["arnkit.runtime"], "arnkit.pipeline.x": ["arnkit.runs.y", "arnkit"]})
    assert not cycle_messages(clean) and not upward_messages(clean) and not top_import_messages(clean)


def test_layer_table_lookup():
    assert layer_of("arnkit") == 0
    assert layer_of("arnkit.evaluation.metrics") == 1
    assert layer_of("arnkit.evaluation.threat_models") == 4
    assert layer_of("arnkit.evaluation") == 4
    assert layer_of("arnkit.defenses.arn.stepping") == 3
    assert layer_of("arnkit_cli.main") == 6
    assert layer_of("arnkit.brand_new_module") is None  # the root row does not swallow it


def test_parser_reads_every_kind_of_import(tmp_path):
    pkg = tmp_path / "arnkit"
    for rel, text in {
        "__init__.py": "from arnkit import runtime\n",
        "runtime.py": "",
        "errors.py": "",
        "attacks/__init__.py": ("import importlib\nROWS = ['pgd']\n"
                                "def load(m):\n    return importlib.import_module(f'arnkit.attacks.{m}')\n"),
        "attacks/pgd.py": "from .base import Attack\nfrom . import base\n",
        "attacks/base.py": ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                            "    from arnkit.defenses.registry import Row\n"
                            "def f():\n    from ..errors import ArnkitError\n"),
        "defenses/__init__.py": "REEXPORT = 1\n",
        "defenses/registry.py": ("from arnkit.defenses import REEXPORT\n"
                                 "TRAIN = 'arnkit.attacks.pgd:PGD'\nHEADER = 'arnkit.json'\n"),
    }.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(text)
    modules = discover_modules({"arnkit": pkg})
    found = {(e.importer, e.imported, e.how) for e in collect_edges(modules, tmp_path)}
    assert found == {
        ("arnkit", "arnkit.runtime", "import"),
        ("arnkit.attacks", "arnkit.attacks.pgd", "f-string"),
        ("arnkit.attacks.pgd", "arnkit.attacks.base", "import"),  # relative, twice (one edge per line)
        ("arnkit.attacks.base", "arnkit.defenses.registry", "import"),  # under TYPE_CHECKING
        ("arnkit.attacks.base", "arnkit.errors", "import"),  # inside a function, `..` relative
        ("arnkit.defenses.registry", "arnkit.defenses", "import"),  # a re-exported name: the package __init__
        ("arnkit.defenses.registry", "arnkit.attacks.pgd", "string"),  # "module:attr"; "arnkit.json" is not
    }, found
    cycles = cycle_messages(collect_edges(modules, tmp_path))
    assert len(cycles) == 1 and "arnkit.attacks.base" in cycles[0] and "arnkit.defenses.registry" in cycles[0]


def test_dict_check_flags_planted_tables(tmp_path):
    (tmp_path / "attacks").mkdir()
    (tmp_path / "attacks" / "fake.py").write_text(
        "TABLE = {'cifar10': {'eps': 8 / 255}}\n"
        "class Aliased:\n    budgets = TABLE\n"
        "class Literal:\n    steps = {'lisa': 10, 'other': 3}\n"
        "class Keywords:\n    eps = dict(mnist=0.3)\n"
        "class Named:\n    dataset_defaults = {}\n"
        "class Clean:\n    fixed = {'eps': 0.1}\n    name = 'mnist'\n")
    found = per_dataset_dict_messages((tmp_path / "attacks",), tmp_path)
    assert [m.split()[1] for m in found] == ["Aliased", "Literal", "Keywords", "Named"], found
