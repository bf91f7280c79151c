"""The notebooks in `notebooks/` run top to bottom, offline, in fast mode, and their figures render.

Each notebook is executed with nbclient in a kernel running this test's own interpreter (a kernelspec
written to a temporary folder on `JUPYTER_PATH`), so it works in any virtual environment (`.venv`,
`.ci-venv`) without registering a kernel. Parameters reach the notebooks as environment variables:
`NOTEBOOK_FAST=1`, `NOTEBOOK_OUTPUT_DIR` (data, job-dirs and `figures/*.png`) and, for MovieLens,
`TFRS_TWOTOWER_DATA`.
"""

from __future__ import annotations

import json
import pathlib
import re
import sys
import time

import nbformat
import pytest

from tfrs_twotower import movielens

REPO = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
NAMES = ("quickstart", "movielens", "custom_towers")
KERNEL = "tfrs-twotower-test"
ML100K = pathlib.Path(movielens.default_data_dir()) / "ml-100k"
# Per notebook, generous for 2 CPU cores: a hung cell fails the test instead of the whole CI job.
CELL_TIMEOUT_S = 240


@pytest.fixture
def kernel_env(tmp_path, monkeypatch):
    """A kernelspec for `sys.executable` on JUPYTER_PATH, and the notebooks' parameters."""
    spec_dir = tmp_path / "jupyter" / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "tfrs_twotower tests",
                "language": "python",
            }
        )
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("NOTEBOOK_FAST", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    output_dir = tmp_path / "outputs"
    output_dir.mkdir()
    monkeypatch.setenv("NOTEBOOK_OUTPUT_DIR", str(output_dir))
    return output_dir


def run_notebook(name: str) -> nbformat.NotebookNode:
    """Executes `notebooks/<name>.ipynb` in the test kernel; returns the executed notebook."""
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    client = NotebookClient(
        nb,
        kernel_name=KERNEL,
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(NOTEBOOKS)}},  # the kernel's working directory
    )
    started = time.perf_counter()
    client.execute()
    print(f"{name}.ipynb ran in {time.perf_counter() - started:.1f} s")
    return nb


def check_figures(output_dir: pathlib.Path, expected: set[str]) -> None:
    """Each expected PNG exists, is a valid image of a sensible size and is not a single colour."""
    from PIL import Image

    figures = output_dir / "figures"
    found = {p.name for p in figures.glob("*.png")}
    assert expected <= found, f"missing figures {sorted(expected - found)}; found {sorted(found)}"
    for name in sorted(expected):
        with Image.open(figures / name) as image:
            image.verify()  # a truncated or corrupt file raises
        with Image.open(figures / name) as image:
            assert image.format == "PNG"
            width, height = image.size
            assert width >= 200 and height >= 150, f"{name}: {image.size}"
            colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
            assert colours is None or len(colours) > 10, f"{name}: {len(colours)} colours, a blank figure?"


def text_output(nb: nbformat.NotebookNode) -> str:
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(output.get("data", {}).get("text/plain", ""))
            parts.append(output.get("data", {}).get("text/markdown", ""))
    return "\n".join(parts)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_committed_clean_with_runtime_and_install_cell(name):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "strip outputs before committing"
    assert "Runtime" in nb.cells[0].source, "the first cell states the runtime"
    assert "import tfrs_twotower" in code[0].source and "%pip install" in code[0].source, (
        "the first code cell installs the package when it is missing (Colab)"
    )
    assert "NOTEBOOK_FAST" in code[1].source and "NOTEBOOK_OUTPUT_DIR" in code[1].source


def test_quickstart(kernel_env):
    nb = run_notebook("quickstart")
    check_figures(kernel_env, {"quickstart_curves.png"})
    out = text_output(nb)
    assert "index/brute_force" in out  # served from the exported SavedModel, not rebuilt in memory
    assert "| rank | item | score |" in out


@pytest.mark.skipif(
    not (ML100K / "u.data").exists(),
    reason=f"MovieLens 100K not found at {ML100K}; set $TFRS_TWOTOWER_DATA to the folder holding ml-100k/",
)
def test_movielens(kernel_env, monkeypatch):
    monkeypatch.setenv("TFRS_TWOTOWER_DATA", str(ML100K.parent))
    nb = run_notebook("movielens")
    check_figures(
        kernel_env, {"movielens_recall_at_k.png", "movielens_training.png", "movielens_movie_map.png"}
    )
    out = text_output(nb)
    # The markdown table of section 4: with the defaults and the users' histories the model beats
    # popularity even in fast mode (20,000 pairs, 2 epochs: 0.089 vs 0.054 at 10, 0.47 vs 0.31 at 100).
    rows = dict(re.findall(r"\| (recall_at_\d+) \| ([0-9.]+ \| [0-9.]+) \|", out))
    for k in (10, 100):
        model, popularity = map(float, rows[f"recall_at_{k}"].split(" | "))
        assert model > popularity + 0.02, (k, model, popularity)


def test_custom_towers(kernel_env):
    nb = run_notebook("custom_towers")
    check_figures(kernel_env, {"custom_towers_curves.png"})
    assert "MyQueryTower" in text_output(nb)
