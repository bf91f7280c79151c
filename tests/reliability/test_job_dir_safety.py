"""job-dir safety: no deleting or writing through links that leave job-dir, clear errors for a job-dir
that is a file or not writable, and a finished run's differing settings named."""

import json
import os

import pytest

from tfrs_twotower.errors import JobDirError, UnsafeLinkError, UserError
from tfrs_twotower.serving.retrieval_export import export_retrieval_models
from tfrs_twotower.training.job_dir import JobDir

CONFIG = {"num_epochs": 3, "verbose": 0}


def finished_job(tmp_path, status="complete"):
    job = JobDir(str(tmp_path / "job"))
    job.write_state(status, CONFIG)
    for name in ("query_model", "index", "checkpoints"):
        os.makedirs(job.path(name))
    with open(job.metrics, "w") as f:
        f.write("{}")
    return job


def precious(tmp_path, name="elsewhere"):
    """A directory outside job-dir holding a file that must survive."""
    outside = tmp_path / name
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    return outside


def test_overwrite_refuses_to_delete_through_a_link_and_names_it(tmp_path):
    job = finished_job(tmp_path)
    outside = precious(tmp_path)
    os.rmdir(job.query_model)
    os.symlink(outside, job.query_model)
    with pytest.raises(UnsafeLinkError, match=r"job/query_model` is a symbolic link to .*elsewhere"):
        job.prepare(CONFIG, overwrite=True)
    with pytest.raises(UnsafeLinkError):
        job.clear()
    assert (outside / "keep.txt").read_text() == "mine"
    assert os.path.exists(job.metrics)  # nothing was deleted before refusing


def test_a_link_deeper_inside_an_output_is_refused_too(tmp_path):
    job = finished_job(tmp_path)
    outside = precious(tmp_path)
    os.symlink(outside, os.path.join(job.checkpoints, "ckpt"))
    with pytest.raises(UnsafeLinkError, match=r"checkpoints/ckpt`"):
        job.prepare(CONFIG, overwrite=True)
    assert (outside / "keep.txt").exists()


def test_resume_refuses_to_write_metrics_through_a_link(tmp_path):
    job = finished_job(tmp_path, status="running")
    target = tmp_path / "their_metrics.json"
    target.write_text('{"theirs": 1}')
    os.remove(job.metrics)
    os.symlink(target, job.metrics)
    with pytest.raises(UnsafeLinkError, match="metrics.json"):
        job.prepare(CONFIG, overwrite=False)  # the same config: a resume, refused before any write
    assert json.loads(target.read_text()) == {"theirs": 1}


def test_links_that_stay_inside_job_dir_and_a_linked_job_dir_are_fine(tmp_path):
    job = finished_job(tmp_path)
    os.symlink(job.query_model, job.path("index", "alias"))  # inside
    linked = tmp_path / "linked_job"
    os.symlink(job.root, linked)
    assert JobDir(str(linked)).prepare(CONFIG, overwrite=True) is False
    assert not os.path.exists(job.query_model)  # cleared, as --overwrite asks


def test_export_index_refuses_a_linked_index(tmp_path):
    job = finished_job(tmp_path)
    outside = precious(tmp_path)
    os.rmdir(job.path("index"))
    os.symlink(outside, job.path("index"))
    with pytest.raises(UnsafeLinkError, match=r"job/index` is a symbolic link"):
        export_retrieval_models(job.root, flavours="brute_force")
    assert sorted(os.listdir(outside)) == ["keep.txt"]


def test_job_dir_that_is_a_file(tmp_path):
    path = tmp_path / "afile"
    path.write_text("x")
    with pytest.raises(JobDirError, match="is an existing file, not a directory") as info:
        JobDir(str(path)).prepare(CONFIG, overwrite=False)
    assert isinstance(info.value, UserError)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_job_dir_not_writable(tmp_path):
    parent = tmp_path / "readonly"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        job = JobDir(str(parent / "job"))
        with pytest.raises(JobDirError, match=r"readonly/job is not writable \(PermissionDeniedError"):
            job.prepare(CONFIG, overwrite=False)
            job.write_state("running", CONFIG)
    finally:
        parent.chmod(0o755)


def test_finished_run_rerun_with_other_arguments_names_the_settings(tmp_path):
    job = finished_job(tmp_path)
    with pytest.raises(
        JobDirError, match=r"finished run\. Its settings differ .* in: learning_rate, num_epochs\."
    ):
        job.prepare({"num_epochs": 5, "verbose": 1, "learning_rate": 0.1}, overwrite=False)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc (read-only even for root)")
def test_job_dir_under_a_read_only_file_system(tmp_path):
    with pytest.raises(JobDirError, match=r"/proc/tfrs-twotower-job is not writable \(.*Choose a --job-dir"):
        JobDir("/proc/tfrs-twotower-job").prepare(CONFIG, overwrite=False)
