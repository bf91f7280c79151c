"""The CLI prints user errors as one paragraph (exit 2, no traceback), keeps tracebacks for bugs, and
exits with EXIT_PREEMPTED when interrupted; model-loading and memory conditions are user errors."""

import json
import os

import pytest

from tfrs_twotower import cli, errors
from tfrs_twotower.schema import load_schema
from tfrs_twotower.text.hub_encoder import HubTextEncoder
from tfrs_twotower.training.memory_check import check_table_memory

TRAIN = ["train", "--training_data_path", "t.jsonl", "--input_schema_path", "s.json", "--job-dir", "out"]


def run_with(monkeypatch, raiser):
    def run(args):
        raiser()

    monkeypatch.setattr(cli, "_run_train", run)
    parser = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: _with_run(parser(), run))
    return cli.main(TRAIN)


def _with_run(parser, run):
    parser._subparsers._group_actions[0].choices["train"].set_defaults(run=run)
    return parser


def test_user_error_is_one_paragraph_without_traceback(monkeypatch, capsys):
    def raiser():
        raise errors.DataError("`x.tfrecord` record 3: corrupted. Re-copy the file.")

    assert run_with(monkeypatch, raiser) == errors.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err == "tfrs-twotower train: error: `x.tfrecord` record 3: corrupted. Re-copy the file.\n"


def test_a_bug_keeps_its_traceback(monkeypatch):
    def raiser():
        return {}["missing"]  # an implicit KeyError: a bug, not a user error

    with pytest.raises(KeyError):
        run_with(monkeypatch, raiser)

    def from_numpy():
        import numpy as np

        np.zeros(3).reshape(2, 2)  # a ValueError raised outside our code

    with pytest.raises(ValueError):
        run_with(monkeypatch, from_numpy)


def test_a_deliberate_value_error_of_ours_is_still_a_user_error(monkeypatch, capsys):
    def raiser():
        load_schema({"query": {}, "candidate": {}})

    assert run_with(monkeypatch, raiser) == errors.EXIT_USER_ERROR
    assert "Invalid input schema" in capsys.readouterr().err


def test_interrupted_exits_with_the_preemption_code(monkeypatch, capsys):
    def raiser():
        raise errors.Interrupted("SIGTERM received: checkpoint written at step 4. Re-run to resume.")

    assert run_with(monkeypatch, raiser) == errors.EXIT_PREEMPTED == 143
    assert "interrupted: SIGTERM received" in capsys.readouterr().err


def test_embedding_module_pointing_at_a_plain_file(tmp_path):
    path = tmp_path / "model.pb"
    path.write_bytes(b"not a model")
    with pytest.raises(errors.ModelLoadError, match=r"which is not a SavedModel directory .*plain file"):
        HubTextEncoder(str(path))


def test_offline_hub_handle_is_a_user_error(monkeypatch):
    monkeypatch.setenv("TFRS_TWOTOWER_OFFLINE", "1")
    monkeypatch.setenv("TFHUB_CACHE_DIR", "/nonexistent/tfhub")
    with pytest.raises(errors.UserError, match=r"cannot be downloaded: TFRS_TWOTOWER_OFFLINE is set") as info:
        HubTextEncoder("https://tfhub.dev/google/nnlm-en-dim128/2")
    assert errors.is_user_error(info.value)


def test_huge_num_buckets_fails_before_the_scan_with_the_arithmetic():
    schema = load_schema(
        {
            "query": {"user": {"feature_type": "Id", "config": {"num_buckets": 1_000_000_000_000}}},
            "candidate": {"item": {"feature_type": "Id", "config": {"num_buckets": 100}}},
        }
    )
    with pytest.raises(
        errors.ResourceLimitError,
        match=r"need 476,837\.2 GiB but this machine has 16\.0 GiB available: `query\.user` alone is "
        r"1,000,000,000,000 rows x 64 dims x 4 bytes x 2 \(weights \+ 1 adagrad slot\(s\)\)",
    ):
        check_table_memory(schema, "adagrad", available=16 * 2**30)
    check_table_memory(load_schema(_small()), "adam", available=16 * 2**30)  # fits: no error


def _small():
    return {
        "query": {"user": {"feature_type": "Id", "config": {"num_buckets": 1000}}},
        "candidate": {"item": {"feature_type": "Categorical", "config": {"vocab": ["a", "b"]}}},
    }


def test_sample_schema_fits_this_machine():
    here = os.path.dirname(__file__)
    with open(os.path.join(here, "..", "..", "schemas", "sample.json")) as f:
        check_table_memory(load_schema(json.load(f)), "adagrad")
