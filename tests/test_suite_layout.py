"""The test suite's own rules: helpers live in helper modules, never in test modules."""
from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_no_test_module_imports_another():
    # Builders and fixtures shared by several files go into tiny_models.py, tiny_images.py,
    # cli_runner.py or conftest.py: importing a test module runs its collection-time code and ties
    # one file's tests to another's helpers.
    test_modules = {p.stem for p in TESTS.glob("test_*.py")}
    offenders = {p.name: sorted(_imported_modules(p) & test_modules)
                 for p in sorted(TESTS.glob("*.py")) if _imported_modules(p) & test_modules}
    assert not offenders, f"test modules imported as libraries: {offenders}"
