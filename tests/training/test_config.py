import dataclasses

import pytest

from tfrs_twotower.training.config import TrainingConfig

REQUIRED = {"training_data_path": "train.jsonl", "input_schema_path": "schema.json", "job_dir": "out"}


def test_vertex_defaults():
    config = TrainingConfig(**REQUIRED).validate()
    assert (config.train_batch_size, config.eval_batch_size, config.eval_split) == (100, 100, 0.2)
    assert (config.metrics, config.optimizer, config.num_epochs, config.output_dim) == (
        "auc",
        "adagrad",
        10,
        64,
    )
    assert (config.input_file_format, config.cache_input, config.num_hidden_layers) == ("jsonl", False, 0)
    assert config.training_steps_per_epoch is None and config.gpu_memory_alloc is None


def test_hidden_units_follow_num_hidden_layers():
    config = TrainingConfig(
        **REQUIRED, num_hidden_layers=3, num_nodes_hidden_layer1=64, num_nodes_hidden_layer3=8
    )
    assert config.hidden_units == [64, 128, 8]
    assert (
        len([f for f in dataclasses.fields(TrainingConfig) if f.name.startswith("num_nodes_hidden_layer")])
        == 20
    )


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"train_batch_size": 0},
            r"The `train_batch_size` parameter must be an int in \[1, inf\). Got 0 instead.",
        ),
        (
            {"eval_split": 1.0},
            r"The `eval_split` parameter must be a float in \[0.0, 1.0\). Got 1.0 instead.",
        ),
        ({"learning_rate": 0.0}, r"The `learning_rate` parameter must be a float in \(0.0, inf\)"),
        (
            {"input_file_format": "csv"},
            r"The `input_file_format` parameter must be one of 'jsonl', 'tfrecord'",
        ),
        ({"num_hidden_layers": 21}, r"The `num_hidden_layers` parameter must be an int in \[0, 20\]"),
        ({"metrics": "auc,recall"}, r"The `metrics` parameter must list some of auc"),
        (
            {"training_steps_per_epoch": 0},
            r"`training_steps_per_epoch` parameter must be an int in \[1, inf\) or None",
        ),
        ({"momentum": 1.5}, r"The `momentum` parameter must be a float in \[0.0, 1.0\] or None"),
        ({"eval_top_k": "10,x"}, r"The `eval_top_k` parameter must be a comma-separated list of ints >= 1"),
        ({"job_dir": ""}, r"The `job_dir` parameter is required. Set --job_dir."),
        ({"cache_input": "yes"}, r"The `cache_input` parameter must be a bool"),
    ],
)
def test_validation_messages(change, message):
    with pytest.raises(ValueError, match=message):
        TrainingConfig(**{**REQUIRED, **change}).validate()


def test_json_round_trip_and_unknown_fields(tmp_path):
    config = TrainingConfig(**REQUIRED, num_epochs=3)
    path = tmp_path / "config.json"
    config.save(str(path))
    import json

    assert TrainingConfig.from_json(json.loads(path.read_text())) == config
    with pytest.raises(ValueError, match=r"Unknown TrainingConfig field\(s\) \['epochs'\]"):
        TrainingConfig.from_json({**REQUIRED, "epochs": 3})
