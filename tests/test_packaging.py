"""The package is the product: what the wheel installs, and what the installed code does not do."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "fixres_edge"
MODEL_DATA = {"efficientnet_lite0.onnx", "efficientnet_lite0_int8.onnx", "imagenet_labels.txt",
              "efficientnet_lite0.policy.json"}


def _setuptools_builds_wheels_alone() -> bool:
    try:
        import setuptools
    except ImportError:
        return False
    major, minor = (int(x) for x in re.findall(r"\d+", setuptools.__version__)[:2])
    return (major, minor) >= (70, 1)


@pytest.mark.slow
@pytest.mark.skipif(not _setuptools_builds_wheels_alone(),
                    reason="building the wheel offline needs setuptools >= 70.1 (the test extra)")
def test_wheel_installs_model_files_but_no_model_scripts(tmp_path):
    # Build from a clean copy: an in-tree build/ folder left by an earlier build would leak old
    # files into the wheel.
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc")
    for name in ("fixres_edge", "models"):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                           "--no-index", "-q", "-w", str(tmp_path / "dist")], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("fixres_edge-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    models = {n.split("/", 2)[2] for n in names if n.startswith("fixres_edge/models/")}
    assert models == MODEL_DATA
    top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top_level == {"fixres_edge"}
    assert "fixres_edge/cli.py" in names and "fixres_edge/footprint.py" in names


def test_models_folder_is_data_with_scripts_apart():
    assert not (REPO / "models" / "__init__.py").exists()
    assert not list((REPO / "models").glob("*.py")), "scripts in models/ would install with the model files"
    assert (REPO / "models" / "scripts" / "export_efficientnet_lite0.py").is_file()


def test_nothing_in_the_package_rewrites_a_readme():
    # README sections are refreshed by bench/report.py from a clone, never by installed code.
    pattern = re.compile(r"readme|replace_section|finish_script_report|<!--", re.IGNORECASE)
    offenders = [f"{path.relative_to(REPO)}:{i}" for path in sorted(PACKAGE.rglob("*.py"))
                 for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert not offenders, offenders
