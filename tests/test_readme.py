"""README's Python snippets run as written, in a fresh interpreter, in a folder of their own.

The snippets use the built-in sample data (`sample/`, written by the first one) and the job-dirs they
train; the Serving snippet reads `runs/sample` (README's CLI run), here the same model trained by the
Python API snippet.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def python_snippets() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def test_readme_snippets_are_found():
    snippets = python_snippets()
    assert len(snippets) >= 3
    assert any("generate_sample" in s for s in snippets) and any("encode_documents" in s for s in snippets)


@pytest.mark.slow
def test_readme_python_snippets_run(tmp_path):
    snippets = python_snippets()
    # The one that writes the sample first; the Serving snippet (which reads runs/sample) last.
    order = sorted(snippets, key=lambda s: ("generate_sample" not in s, '"runs/sample"' in s))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(README.parent))
    for snippet in order:
        if '"runs/sample"' in snippet and not (tmp_path / "runs" / "sample").exists():
            (tmp_path / "runs" / "sample").symlink_to(tmp_path / "runs" / "notebook")
        out = subprocess.run(
            [sys.executable, "-c", snippet],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert out.returncode == 0, f"README snippet failed:\n{snippet}\n{out.stderr[-3000:]}"
    assert (tmp_path / "out" / "queries.npy").exists() and (tmp_path / "queries.jsonl").exists()
    assert (tmp_path / "runs" / "notebook" / "index" / "scann").exists()
