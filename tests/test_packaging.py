"""Packaging: the requirements match the imports, and the built sdist and wheel hold what they must.

The wheel test builds the sdist and then the wheel from it (`python -m build`, as PyPI packages are
built), so a file missing from the sdist (a C header) shows up as a kernel missing from the wheel.
"""

from __future__ import annotations

import ast
import configparser
import pathlib
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = REPO / "tfrs_twotower"
# Distribution name -> the module it installs, where they differ.
IMPORT_NAMES = {"tensorflow-hub": "tensorflow_hub", "scann[tf]": "scann"}
KERNELS = ("tfrs_twotower/metrics/_rank_kernel", "tfrs_twotower/tasks/_softmax_kernel")


def _requirements(section: str, key: str) -> list[str]:
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    lines = [line.strip() for line in config[section][key].splitlines() if line.strip()]
    return [re.split(r"[<>=~!; ]", line, maxsplit=1)[0] for line in lines]


def _required_modules() -> list[str]:
    return [IMPORT_NAMES.get(n, n.replace("-", "_")) for n in _requirements("options", "install_requires")]


def _imports(module_level_only: bool) -> dict[str, set[str]]:
    """Third-party top-level modules imported by the package -> the files importing them."""
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        nodes = tree.body if module_level_only else ast.walk(tree)
        for node in nodes:
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "tfrs_twotower":
                    found.setdefault(top, set()).add(str(path.relative_to(REPO)))
    return found


def test_every_required_distribution_is_imported_by_the_package():
    imported = _imports(module_level_only=False)
    required = _required_modules()
    assert "keras_rs" not in required  # it was required and imported nowhere
    unused = [name for name in required if name not in imported]
    assert not unused, f"install_requires names {unused}, which no module of tfrs_twotower imports"


def test_module_level_imports_are_required_not_extras():
    """A module-level import of an extra would break README's plain `pip install -e .`."""
    required = set(_required_modules())
    imported = _imports(module_level_only=True)
    missing = {name: sorted(files) for name, files in imported.items() if name not in required}
    assert not missing, (
        f"imported at module level, not in install_requires (import it in a function): {missing}"
    )


def test_setup_ships_the_schemas_and_manifest_the_kernel_header():
    setup_py = (REPO / "setup.py").read_text()
    assert 'package_dir={"tfrs_twotower.schemas": "schemas"}' in setup_py
    assert 'package_data={"tfrs_twotower.schemas": ["*.json"]}' in setup_py
    assert sorted(p.name for p in (REPO / "schemas").glob("*.json")), "no schemas to ship"
    assert "include tfrs_twotower/_kernel_common.h" in (REPO / "MANIFEST.in").read_text()
    for extra in ("build", "wheel"):  # what the wheel test below needs, in CI's fresh venv
        assert extra in _requirements("options.extras_require", "test")


@pytest.mark.slow
def test_sdist_and_wheel_contents(tmp_path):
    """~30 s: builds the sdist, then the wheel from it, offline (no build isolation)."""
    source = tmp_path / "source"  # a copy: the build must not write egg-info or build/ into the repo
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in files:
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(source)],
        check=True,
        capture_output=True,
    )
    (sdist,) = dist.glob("*.tar.gz")
    (wheel,) = dist.glob("*.whl")
    in_sdist = {name.split("/", 1)[1] for name in tarfile.open(sdist).getnames() if "/" in name}
    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    schemas = {p.name for p in (REPO / "schemas").glob("*.json")}

    assert {f"schemas/{s}" for s in schemas} <= in_sdist
    assert {f"{k}.c" for k in KERNELS} | {"tfrs_twotower/_kernel_common.h"} <= in_sdist
    assert {f"tfrs_twotower/schemas/{s}" for s in schemas} <= in_wheel
    if shutil.which("cc") or shutil.which("gcc"):  # built from the sdist: proves it holds the header
        for kernel in KERNELS:
            assert any(n.startswith(kernel) and n.endswith((".so", ".pyd")) for n in in_wheel), kernel
    assert "tfrs_twotower/cli.py" in in_wheel
    assert not [n for n in in_wheel | in_sdist if n.startswith(("tests/", "bench/", "notebooks/"))]
    metadata = zipfile.ZipFile(wheel).read(f"{wheel.name.split('-')[0]}-0.1.0.dist-info/METADATA").decode()
    assert "Requires-Dist: tensorflow" in metadata and "keras-rs" not in metadata
