"""README.md's "Two commands", for `.ci/run` (so CI runs exactly what README states) and its checks.

    python3 .ci/readme.py command 1        # the main job on the sample data, as README states it
    python3 .ci/readme.py command 2        # the test command
    python3 .ci/readme.py job-dir 1        # command 1's --job-dir
    python3 .ci/readme.py check-job-dir 1  # after command 1: its job-dir holds the outputs README lists

Standard library only: it runs before any virtual environment exists.
"""

from __future__ import annotations

import json
import math
import pathlib
import re
import shlex
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
SECTION = "## Two commands"
# What `tfrs-twotower train` writes into a finished job-dir (README's "What lands in job-dir").
JOB_DIR_OUTPUTS = (
    "query_model/saved_model.pb",
    "candidate_model/saved_model.pb",
    "candidate_embeddings/embeddings.npy",
    "candidate_embeddings/ids.txt",
    "index/brute_force/saved_model.pb",
    "metrics.json",
    "record_counts.json",
    "config.json",
    "schema.json",
)


def commands(readme: str | None = None) -> list[str]:
    """The ```bash blocks of README's "Two commands" section, in order (each one line)."""
    text = (REPO / "README.md").read_text() if readme is None else readme
    start = f"\n{text}".find(f"\n{SECTION}\n")
    if start < 0:
        raise ValueError(f"README.md has no `{SECTION}` section; .ci/run runs the commands it states.")
    end = text.find("\n## ", start + len(SECTION) + 2)
    section = text[start : end if end >= 0 else len(text)]
    blocks = [b.strip() for b in re.findall(r"```bash\n(.*?)```", section, re.S)]
    if len(blocks) != 2 or any("\n" in b for b in blocks):
        raise ValueError(
            f"README.md's `{SECTION}` must hold exactly two one-line ```bash blocks (the main job, then the "
            f"tests); found {len(blocks)}: {blocks!r}."
        )
    return blocks


def job_dir(command: str) -> str:
    """The `--job-dir` (or `--job_dir`) value of a command line."""
    words = shlex.split(command)
    for i, word in enumerate(words):
        if word in ("--job-dir", "--job_dir") and i + 1 < len(words):
            return words[i + 1]
        if word.startswith(("--job-dir=", "--job_dir=")):
            return word.split("=", 1)[1]
    raise ValueError(f"The command names no `--job-dir`: {command!r}.")


def check_job_dir(path: pathlib.Path) -> list[str]:
    """The problems of a finished job-dir (empty: it holds every output and finite final metrics)."""
    problems = [f"missing {path / p}" for p in JOB_DIR_OUTPUTS if not (path / p).is_file()]
    metrics_path = path / "metrics.json"
    if metrics_path.is_file():
        final = json.loads(metrics_path.read_text()).get("final", {})
        numbers = {k: v for k, v in final.items() if isinstance(v, (int, float))}
        if not numbers:
            problems.append(f"{metrics_path} holds no final metrics")
        problems += [f"{metrics_path}: final {k} = {v}" for k, v in numbers.items() if not math.isfinite(v)]
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("command", "job-dir", "check-job-dir") or argv[1] not in ("1", "2"):
        print(__doc__, file=sys.stderr)
        return 2
    command = commands()[int(argv[1]) - 1]
    if argv[0] == "command":
        print(command)
        return 0
    if argv[0] == "job-dir":
        print(job_dir(command))
        return 0
    directory = REPO / job_dir(command)
    problems = check_job_dir(directory)
    for problem in problems:
        print(f"job-dir check: {problem}", file=sys.stderr)
    if not problems:
        print(f"job-dir check: {directory} holds {len(JOB_DIR_OUTPUTS)} expected outputs and finite metrics")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
