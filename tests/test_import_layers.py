"""redraft's packages import only from the layers below their own, and never in a cycle.

``LAYERS`` lists every first-level package and module of ``src/redraft``, lowest layer first. A
module may import from its own package, from any package of a lower layer, and from another
package of its own layer as long as the packages import each other in no cycle. Imports inside
functions count like the ones at the top of a file.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import redraft

SOURCE = Path(redraft.__file__).parent

LAYERS = (
    # the root package (it imports nothing; it hands the trainer classes out of `trainers` on first use),
    # exceptions, file writes
    ("__init__", "errors", "fsutil"),
    ("config", "config_docs"),  # every stage's settings; their descriptions as commented YAML and Markdown
    ("algorithms", "distributed", "ray_pool", "text"),  # tensor math; processes; Ray actors; tokenizers, prompts
    ("tasks",),  # examples, prompts and answer checks
    ("data",),  # token sequences with loss masks, preference pairs
    ("models",),  # policies, reward and value models
    ("envs", "rewards"),  # episodes; reward functions and the code sandbox
    ("rollout",),  # sampling
    ("evaluation",),
    ("training",),  # the LM, pairwise (reward model, DPO) and RL trainers
    ("feedback",),  # the human-feedback app
    ("run_folder",),  # a job's run folder and stage bookkeeping
    ("rlhf", "score"),  # the RLHF job; the SCoRe self-correction job
    ("pipeline",),  # the main job
    ("trainers",),  # TRL-shaped trainer classes over the stages
    ("__main__", "cli", "testing"),  # entry points; runners that check redraft itself
)
LAYER_OF = {package: index for index, names in enumerate(LAYERS) for package in names}


@dataclass(frozen=True)
class Import:
    path: Path  # relative to src/redraft
    line: int
    importer: str  # first-level package or module of the importing file
    imported: str  # first-level package or module it imports from

    def __str__(self) -> str:
        return f"src/redraft/{self.path}:{self.line}: {self.importer} imports {self.imported}"


def first_level_names(node: ast.Import | ast.ImportFrom, package: tuple[str, ...]) -> Iterator[str]:
    """The first-level redraft packages a statement imports from (``package``: the importing file's package)."""
    if isinstance(node, ast.Import):
        modules = [alias.name.split(".") for alias in node.names]
    else:
        base = list(package[: len(package) - node.level + 1]) if node.level else []
        module = base + (node.module.split(".") if node.module else [])
        # `from redraft import config` imports the first-level modules it names
        modules = [module + [alias.name] for alias in node.names] if module == ["redraft"] else [module]
    for parts in modules:
        if parts[0] == "redraft" and len(parts) > 1:
            yield parts[1]


@cache
def redraft_imports() -> tuple[Import, ...]:
    found = []
    for file in sorted(SOURCE.rglob("*.py")):
        path = file.relative_to(SOURCE)
        importer = path.parts[0].removesuffix(".py")
        package = ("redraft", *path.parent.parts)
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"), str(file))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for imported in first_level_names(node, package):
                    if imported != importer:
                        found.append(Import(path, node.lineno, importer, imported))
    return tuple(found)


def test_every_first_level_package_has_a_layer():
    present = {path.relative_to(SOURCE).parts[0].removesuffix(".py") for path in SOURCE.rglob("*.py")}
    assert sorted(present - LAYER_OF.keys()) == [], "add these to LAYERS"
    assert sorted(LAYER_OF.keys() - present) == [], "these in LAYERS no longer exist"


def test_imports_point_down_the_layers():
    upward = [
        f"{found} (layer {LAYER_OF[found.importer]} imports layer {LAYER_OF[found.imported]})"
        for found in redraft_imports()
        if LAYER_OF[found.imported] > LAYER_OF[found.importer]
    ]
    assert upward == [], "imports of a higher layer:\n" + "\n".join(upward)


def test_no_cycle_between_first_level_packages():
    edges: dict[str, dict[str, Import]] = {}
    for found in redraft_imports():
        edges.setdefault(found.importer, {}).setdefault(found.imported, found)

    acyclic: set[str] = set()  # packages from which no cycle can be reached

    def cycle_from(package: str, path: list[str]) -> list[str] | None:
        if package in path:
            return path[path.index(package) :] + [package]
        if package in acyclic:
            return None
        for imported in edges.get(package, {}):
            cycle = cycle_from(imported, path + [package])
            if cycle:
                return cycle
        acyclic.add(package)
        return None

    for package in sorted(edges):
        cycle = cycle_from(package, [])
        if cycle:
            steps = [str(edges[a][b]) for a, b in zip(cycle, cycle[1:])]
            raise AssertionError(f"import cycle {' -> '.join(cycle)}:\n" + "\n".join(steps))
