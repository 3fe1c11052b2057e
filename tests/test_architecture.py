"""docs/architecture.md's arrows, checked on the code: every import of the package (lazy ones inside functions
too) is read with ast, and a forbidden one fails here, naming the file, the line and the rule."""

import ast
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "denoise"
PARTS = ("runtime", "job", "export", "train", "commands")
ABOVE_THE_FLOOR = {"cli", "evaluate", "info", "__init__", "__main__"}  # they use the parts; no part uses them

# part -> the parts it may import (the floor is open to everyone)
ALLOWED = {
    "runtime": set(),
    "job": {"runtime"},
    "export": {"runtime"},
    "train": set(),
    "commands": {"runtime", "job", "export", "train", "above"},
    "above": {"runtime", "job", "export", "commands"},
    "floor": set(),
}
TORCH_SIDE = {"denoise.model", "denoise.checkpoint", "denoise.quantize"}  # the runtime imports them only in
TORCH_BACKEND = "denoise.runtime.torch_backend"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def part_of(module: str) -> str:
    names = module.split(".")
    if len(names) > 1 and names[1] in PARTS:
        return names[1]
    if module == "denoise" or (len(names) > 1 and names[1] in ABOVE_THE_FLOOR):
        return "above"
    return "floor"


def is_module(name: str) -> bool:
    path = REPO / Path(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports(path: Path, top_level_only: bool = False):
    """(line, imported module) for every import of a denoise module in ``path``."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [f"{node.module}.{alias.name}" if is_module(f"{node.module}.{alias.name}") else node.module
                       for alias in node.names]
        else:
            continue
        for target in targets:
            if target == "denoise" or target.startswith("denoise."):
                yield node.lineno, target


def sources():
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_import_follows_the_allowed_arrows():
    broken = []
    for path in sources():
        source = module_name(path)
        part = part_of(source)
        for line, target in imports(path):
            goes_to = part_of(target)
            if goes_to == "floor" and part != "floor":
                if part == "runtime" and target in TORCH_SIDE and source != TORCH_BACKEND:
                    broken.append(f"{path.relative_to(REPO)}:{line} imports {target}: only the torch backend may")
                continue
            if goes_to == part and part != "floor":
                continue
            if goes_to == "floor" or goes_to in ALLOWED[part]:
                continue
            broken.append(f"{path.relative_to(REPO)}:{line} imports {target}: {part} -> {goes_to} is not an allowed arrow")
    assert not broken, "\n".join(broken)


def test_no_circle_of_module_level_imports():
    graph = {module_name(p): {t for _, t in imports(p, top_level_only=True)} for p in sources()}
    state: dict[str, str] = {}

    def visit(module, trail):
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                raise AssertionError("import circle: " + " -> ".join(trail[trail.index(target):] + [target]))
            if target not in state:
                visit(target, trail + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_the_checker_sees_a_forbidden_arrow(tmp_path):
    """The rules are not vacuous: an export module importing train is caught by the same reading."""
    path = tmp_path / "bad.py"
    path.write_text("def f():\n    from denoise.train.loop import train\n")
    assert [target for _, target in imports(path)] == ["denoise.train.loop"]
    assert part_of("denoise.train.loop") not in ALLOWED["export"]
