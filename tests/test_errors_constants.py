"""One home each: item errors and one-line messages (``fixres_edge.errors``), shared constants
(``fixres_edge.constants``), and printing (only commands print)."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import fixres_edge
from fixres_edge.constants import IMAGE_EXTENSIONS, IMAGENET_MEAN, IMAGENET_STD
from fixres_edge.errors import ITEM_ERRORS, one_line, with_name

PACKAGE = Path(fixres_edge.__file__).parent


@pytest.mark.aarch64
@pytest.mark.parametrize("error, expected", [
    (ValueError("bad header"), "bad header"),
    (ValueError("\n\n  first line  \nsecond\n"), "first line"),
    (RuntimeError(), "RuntimeError"),
    (OSError("   \n  "), "OSError"),
])
def test_one_line(error, expected):
    assert one_line(error) == expected


@pytest.mark.aarch64
def test_with_name_and_item_errors():
    assert with_name("a.jpg", "truncated") == "a.jpg: truncated"
    assert with_name("a.jpg", "cannot read a.jpg") == "cannot read a.jpg"
    assert ValueError in ITEM_ERRORS and KeyboardInterrupt not in ITEM_ERRORS and MemoryError not in ITEM_ERRORS


@pytest.mark.parametrize("extension", IMAGE_EXTENSIONS)
def test_every_image_extension_decodes(tmp_path, extension):
    from PIL import Image

    from fixres_edge.decode import load_image

    rgb = np.random.default_rng(0).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    path = tmp_path / f"x{extension}"
    Image.fromarray(rgb).save(path)
    image = load_image(path)
    assert image.shape == (12, 16, 3) and image.dtype == np.uint8


def _modules():
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.aarch64
def test_shared_names_have_one_home():
    # A second definition of these (instead of an import) is how the copies drifted apart before.
    homes = {"IMAGENET_MEAN": "constants.py", "IMAGENET_STD": "constants.py", "IMAGE_EXTENSIONS": "constants.py",
             "ITEM_ERRORS": "errors.py", "one_line": "errors.py"}
    found: dict[str, list[str]] = {}
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and node.name in homes:
                found.setdefault(node.name, []).append(path.name)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id in homes:
                        found.setdefault(target.id, []).append(path.name)
    assert found == {name: [home] for name, home in homes.items()}
    assert IMAGENET_MEAN == (0.485, 0.456, 0.406) and IMAGENET_STD == (0.229, 0.224, 0.225)


# Modules that still print while they are being moved out of the library (see the issue on
# shipping only the product): the benchmark README plumbing.
_STILL_PRINTING = {"benchmark.py"}


@pytest.mark.aarch64
def test_only_commands_print():
    printing = set()
    for path in _modules():
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] == "commands" or relative.name in ("cli.py", "__main__.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                printing.add(str(relative))
    assert printing <= _STILL_PRINTING, f"library modules that print: {sorted(printing - _STILL_PRINTING)}"
