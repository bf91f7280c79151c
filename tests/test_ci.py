""".ci/run runs README.md's two commands as README states them, each in a fresh venv, and checks them."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import shlex
import shutil
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
CI_RUN = REPO / ".ci" / "run"


def _readme_module():
    spec = importlib.util.spec_from_file_location("ci_readme", REPO / ".ci" / "readme.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


readme = _readme_module()


def test_readme_states_the_main_job_then_the_test_command():
    main_job, tests = readme.commands()
    words = shlex.split(main_job)
    assert main_job.startswith("python3 -m venv .venv && . .venv/bin/activate && pip install -e . && ")
    assert "tfrs-twotower" in words and "train" in words and readme.job_dir(main_job) == "runs/sample"
    assert tests.startswith('python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[test,')
    assert tests.endswith('python -m pytest -q -rs -m "not slow"')  # -rs: a newcomer sees why tests skip


def test_ci_run_takes_its_commands_from_readme_in_fresh_venvs():
    script = CI_RUN.read_text()
    assert '"$(python3 .ci/readme.py command "$1")"' in script
    assert "rm -rf .ci-venv" in script  # never a stale venv
    assert "python3 .ci/readme.py check-job-dir 1" in script
    assert "-eq 5" in script  # pytest's "no tests collected" fails CI
    assert "pytest" not in script.replace("pytest exit code", "").replace("pytest: no tests", "")
    assert CI_RUN.stat().st_mode & 0o111, ".ci/run must be executable"


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not found")
def test_ci_run_is_valid_bash_and_rejects_unknown_arguments():
    subprocess.run(["bash", "-n", str(CI_RUN)], check=True)
    result = subprocess.run(["bash", str(CI_RUN), "everything"], capture_output=True, text=True)
    assert result.returncode == 2 and "usage: .ci/run [main|tests]" in result.stderr


def test_commands_refuse_a_readme_without_two_one_line_commands():
    with pytest.raises(ValueError, match="has no `## Two commands` section"):
        readme.commands("# x\n")
    with pytest.raises(ValueError, match="exactly two one-line ```bash blocks.*found 1"):
        readme.commands("# x\n## Two commands\n```bash\nls\n```\n## Next\n```bash\npwd\n```\n")
    assert readme.commands("## Two commands\n```bash\nls\n```\n```bash\npwd\n```\n") == ["ls", "pwd"]


def test_job_dir_reads_either_flag_spelling():
    assert readme.job_dir("t train --job-dir runs/a --x 1") == "runs/a"
    assert readme.job_dir("t train --job_dir=runs/b") == "runs/b"
    with pytest.raises(ValueError, match="names no `--job-dir`"):
        readme.job_dir("t train")


def test_check_job_dir_lists_missing_outputs_and_bad_metrics(tmp_path):
    problems = readme.check_job_dir(tmp_path)
    assert len(problems) == len(readme.JOB_DIR_OUTPUTS) and "missing" in problems[0]
    for name in readme.JOB_DIR_OUTPUTS:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}")
    assert readme.check_job_dir(tmp_path) == [f"{tmp_path / 'metrics.json'} holds no final metrics"]
    (tmp_path / "metrics.json").write_text(json.dumps({"final": {"loss": float("nan"), "auc": 0.9}}))
    assert readme.check_job_dir(tmp_path) == [f"{tmp_path / 'metrics.json'}: final loss = nan"]
    (tmp_path / "metrics.json").write_text(json.dumps({"final": {"loss": 1.5}}))
    assert readme.check_job_dir(tmp_path) == []
