"""A tiny trained job-dir shared by the serving tests, and a fresh-process runner."""

import json
import os
import subprocess
import sys

import pytest

from tfrs_twotower.sample_data import generate_sample
from tfrs_twotower.training import TrainingConfig, train


@pytest.fixture(scope="session")
def sample(tmp_path_factory):
    return generate_sample(str(tmp_path_factory.mktemp("sample")), num_pairs=600, num_users=60, num_items=80)


@pytest.fixture(scope="session")
def job(sample, tmp_path_factory):
    """The `TrainingResult` of one epoch on the tiny sample (job-dir: `job.config.job_dir`)."""
    return train(
        TrainingConfig(
            training_data_path=sample.train_jsonl,
            input_schema_path=sample.schema,
            job_dir=str(tmp_path_factory.mktemp("job")),
            num_epochs=1,
            train_batch_size=64,
            verbose=0,
        )
    )


@pytest.fixture(scope="session")
def job_dir(job):
    return job.config.job_dir


@pytest.fixture(scope="session")
def query_docs(sample):
    """The query documents of the sample's pairs, in file order (raw JSON values)."""
    with open(sample.train_jsonl) as f:
        return [json.loads(line)["query"] for line in f]


def run_fresh(script: str, *args: str, cwd: str) -> dict:
    """Runs `script` in a fresh Python process; returns the JSON its last stdout line prints."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, env=env, check=False, cwd=cwd
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture
def fresh():
    return run_fresh
