import dataclasses

import pytest

from tfrs_twotower.cli import build_parser, config_from_args, main
from tfrs_twotower.training.config import TrainingConfig

REQUIRED = ["--training_data_path", "t.jsonl", "--input_schema_path", "s.json", "--job-dir", "out"]


def parse(*extra):
    return config_from_args(build_parser().parse_args(["train", *REQUIRED, *extra]))


def test_defaults_equal_the_config_defaults():
    config = parse()
    defaults = TrainingConfig(training_data_path="t.jsonl", input_schema_path="s.json", job_dir="out")
    assert config == defaults


def test_every_config_field_is_a_flag():
    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    flags = {opt for action in train._actions for opt in action.option_strings}
    for field in dataclasses.fields(TrainingConfig):
        assert f"--{field.name}" in flags
    assert "--job-dir" in flags


def test_vertex_style_values():
    config = parse(
        "--train_batch_size=256",
        "--num_epochs",
        "3",
        "--cache_input",
        "--num_hidden_layers=2",
        "--num_nodes_hidden_layer1=32",
        "--num_nodes_hidden_layer2=16",
        "--learning_rate=0.05",
        "--optimizer=adam",
        "--metrics=auc,precision_at_1",
        "--input_file_format=tfrecord",
        "--training_steps_per_epoch=None",
        "--l2_normalize=false",
        "--gpu_memory_alloc=4096",
    )
    assert (config.train_batch_size, config.num_epochs, config.cache_input) == (256, 3, True)
    assert config.hidden_units == [32, 16] and config.learning_rate == 0.05 and config.optimizer == "adam"
    assert config.metric_names == ["auc", "precision_at_1"] and config.input_file_format == "tfrecord"
    assert config.training_steps_per_epoch is None and config.l2_normalize is False
    assert config.gpu_memory_alloc == 4096
    assert parse("--job_dir", "other").job_dir == "other"


def test_bad_flag_values_are_argparse_errors(capsys):
    with pytest.raises(SystemExit):
        parse("--train_batch_size=many")
    assert "invalid int value" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse("--cache_input=maybe")
    assert "expected true or false" in capsys.readouterr().err


def test_invalid_config_is_a_clean_error(capsys, tmp_path):
    code = main(["train", *REQUIRED[:-1], str(tmp_path / "out"), "--train_batch_size=0"])
    assert code == 2
    err = capsys.readouterr().err
    assert "The `train_batch_size` parameter must be an int in [1, inf). Got 0 instead." in err
    assert "Traceback" not in err


def test_missing_schema_file_is_a_clean_error(capsys, tmp_path):
    code = main(
        [
            "train",
            "--training_data_path",
            "t.jsonl",
            "--input_schema_path",
            str(tmp_path / "no.json"),
            "--job-dir",
            str(tmp_path / "out"),
        ]
    )
    assert code == 2
    assert "Input schema file not found" in capsys.readouterr().err
