"""The tests mirror the package, and the package's imports form a one-way graph.

Every module `hf_resnet101/<sub-package>/<module>.py` has `tests/<sub-package>/test_<module>.py` (top-level modules:
`tests/test_<module>.py`) and that file imports it, so a reader finds a module's tests where the module's path says
and a new module (such as one split out of another) cannot land untested. A cycle in the imports would make the
order of the layers meaningless, so it fails here before it shows up as a half-initialised module at run time.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "hf_resnet101"
TESTS = ROOT / "tests"

# Modules that are not imported but loaded by path, with where they are exercised.
LOADED_BY_PATH = {
    "hf_resnet101.evaluation.metric_modules.classification_metrics.classification_metrics": (
        "an `evaluate` metric module loaded by path (tests/evaluation/test_metrics.py)"
    ),
    "hf_resnet101.evaluation.metric_modules.top_k_accuracy.top_k_accuracy": (
        "an `evaluate` metric module loaded by path (tests/evaluation/test_metrics.py)"
    ),
}


def module_name(path: Path) -> str:
    """The dotted name of a file of the package (`hf_resnet101/train/run.py` -> `hf_resnet101.train.run`)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, Path]:
    """Every module of the package by dotted name, packages (`__init__.py`) included."""
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def mirrored_test_file(module: str) -> Path:
    """Where a module's tests live: `hf_resnet101.data.scan` -> `tests/data/test_scan.py`."""
    *folders, name = module.split(".")[1:]
    return TESTS.joinpath(*folders, f"test_{name}.py")


def imported_modules(path: Path, module: str, known: set[str]) -> set[str]:
    """The package's modules that `path` imports, absolute or relative, at any depth of the file.

    `from package import name` counts as importing `package.name` when that is a module, else `package`.
    """
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {name for name in found if name in known}


def missing_tests(modules: dict[str, Path]) -> list[str]:
    """One line per module without a mirrored test file that imports it, saying what to add."""
    known = set(modules)
    problems = []
    for module, path in modules.items():
        if path.name == "__init__.py" or module in LOADED_BY_PATH:
            continue
        test_file = mirrored_test_file(module)
        where = test_file.relative_to(ROOT)
        if not test_file.is_file():
            problems.append(f"{module}: no test file; add {where} that imports it")
        elif module not in imported_modules(test_file, "tests", known):
            problems.append(f"{module}: {where} does not import it")
    return problems


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path that ends where it starts (a -> b -> a), or None when the graph has none."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Each module's imports of other modules of the package."""
    known = set(modules)
    return {module: imported_modules(path, module, known) - {module} for module, path in modules.items()}


def test_every_module_has_a_mirrored_test_file_that_imports_it():
    """A module new to the package (such as one split out of train/run.py) is named here until its tests exist."""
    problems = missing_tests(package_modules())
    assert not problems, "Modules without their tests:\n  " + "\n  ".join(problems)


def test_exemptions_name_existing_modules():
    assert set(LOADED_BY_PATH) <= set(package_modules())


def test_the_package_imports_form_no_cycle():
    cycle = find_cycle(import_graph(package_modules()))
    assert cycle is None, "Import cycle: " + " -> ".join(cycle)


def test_the_checks_can_fail(tmp_path):
    """The helpers see a missing test, an unimported module and a cycle (relative imports resolved)."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "a.py").write_text("from . import b\n")
    (package / "sub" / "b.py").write_text("def f():\n    from ..sub.a import g\n")
    (package / "c.py").write_text("from .sub import b\n")
    modules = {".".join(p.relative_to(tmp_path).with_suffix("").parts): p for p in package.rglob("*.py")}
    modules = {name.removesuffix(".__init__"): path for name, path in modules.items()}
    graph = {m: imported_modules(p, m, set(modules)) - {m} for m, p in modules.items()}
    assert graph["pkg.sub.a"] == {"pkg.sub.b"} and graph["pkg.sub.b"] == {"pkg.sub.a"}
    assert graph["pkg.c"] == {"pkg.sub.b"}
    assert find_cycle(graph) in (["pkg.sub.a", "pkg.sub.b", "pkg.sub.a"], ["pkg.sub.b", "pkg.sub.a", "pkg.sub.b"])
    assert find_cycle({"x": {"y"}, "y": set()}) is None
    assert mirrored_test_file("hf_resnet101.data.scan") == TESTS / "data" / "test_scan.py"
    assert mirrored_test_file("hf_resnet101.errors") == TESTS / "test_errors.py"


@pytest.mark.parametrize("line", ["import hf_resnet101.data.scan", "from hf_resnet101.data.scan import scan_files",
                                  "from hf_resnet101.data import scan"])  # fmt: skip
def test_test_files_import_forms_are_recognised(tmp_path, line):
    test_file = tmp_path / "test_x.py"
    test_file.write_text(f"def test():\n    {line}\n")
    assert imported_modules(test_file, "tests", set(package_modules())) == {"hf_resnet101.data.scan"}


def test_the_public_entry_points_stay_where_users_find_them():
    """`from hf_resnet101 import run_finetune` (loaded on first use: importing the package alone loads no torch),
    the `hf-resnet101` script's target, and the training module `hf-resnet101 train` launches."""
    import subprocess
    import sys

    code = (
        "import sys, hf_resnet101; assert 'torch' not in sys.modules; "
        "from hf_resnet101 import run_finetune; from hf_resnet101.train.run import run_finetune as moved; "
        "assert run_finetune is moved; "
        "from hf_resnet101.commands.cli import main; from hf_resnet101.commands.train import TRAINING_MODULE; "
        "import importlib; assert hasattr(importlib.import_module(TRAINING_MODULE), 'main')"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'hf-resnet101 = "hf_resnet101.commands.cli:main"' in pyproject
