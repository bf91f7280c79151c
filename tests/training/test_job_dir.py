import pytest

from tfrs_twotower.training.job_dir import JobDir, JobDirError

CONFIG = {"num_epochs": 3, "verbose": 1}


def test_fresh_dir_is_not_a_resume(tmp_path):
    assert JobDir(str(tmp_path / "job")).prepare(CONFIG, overwrite=False) is False


def test_interrupted_run_with_same_config_resumes(tmp_path):
    job = JobDir(str(tmp_path))
    job.write_state("running", CONFIG)
    assert job.prepare({**CONFIG, "verbose": 0}, overwrite=False) is True


def test_interrupted_run_with_other_config_refuses_naming_fields(tmp_path):
    job = JobDir(str(tmp_path))
    job.write_state("running", CONFIG)
    with pytest.raises(JobDirError, match=r"other settings \(num_epochs differ\).*--overwrite"):
        job.prepare({**CONFIG, "num_epochs": 5}, overwrite=False)


def test_finished_run_refuses_unless_overwrite(tmp_path):
    job = JobDir(str(tmp_path))
    job.write_state("complete", CONFIG)
    (tmp_path / "metrics.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(JobDirError, match="holds a finished run. Use a new --job-dir, or pass --overwrite"):
        job.prepare(CONFIG, overwrite=False)
    assert job.prepare(CONFIG, overwrite=True) is False
    assert not (tmp_path / "metrics.json").exists() and (tmp_path / "notes.txt").exists()


def test_unknown_outputs_refuse(tmp_path):
    (tmp_path / "query_model").mkdir()
    with pytest.raises(JobDirError, match="outputs of an unknown run"):
        JobDir(str(tmp_path)).prepare(CONFIG, overwrite=False)
