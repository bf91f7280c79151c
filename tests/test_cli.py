import dataclasses
import re

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


def _cli_process(code: str, env_extra=None):
    """Runs `code` in a fresh Python started as the `tfrs-twotower` command would be."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP")}
    env.update(env_extra or {})
    prelude = "import sys; sys.argv[0] = 'tfrs-twotower'\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + code], capture_output=True, text=True, env=env, timeout=300
    )


def test_help_and_argument_errors_do_not_import_tensorflow():
    code = (
        "from tfrs_twotower.cli import main\n"
        "for argv in (['--help'], ['train', '--help'], ['train', '--bogus'], ['query', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('TF_IMPORTED', 'tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    out = _cli_process(code)
    assert "TF_IMPORTED False False" in out.stdout, out.stderr[-2000:]
    assert "Vertex AI Two-Tower flags" in out.stdout and "usage: tfrs-twotower train" in out.stderr


def test_a_command_imports_tensorflow_quietly():
    # Without TF_CPP_MIN_LOG_LEVEL set, TensorFlow's C++ lines (cuInit errors on CPU-only machines,
    # oneDNN notices) stay hidden; a user's own setting wins.
    code = "import tfrs_twotower.cli, tensorflow as tf\nprint(float(tf.reduce_sum(tf.ones([3]))))\n"
    out = _cli_process(code)
    assert out.returncode == 0 and "3.0" in out.stdout, out.stderr[-2000:]
    assert "cuInit" not in out.stderr and "oneDNN" not in out.stderr and "cuda" not in out.stderr.lower()
    shown = _cli_process(
        "import os, tfrs_twotower.cli\nprint(os.environ['TF_CPP_MIN_LOG_LEVEL'])\n",
        {"TF_CPP_MIN_LOG_LEVEL": "0"},
    )
    assert shown.stdout.strip() == "0"


def test_train_help_is_grouped_and_short(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = capsys.readouterr().out
    assert len(text.splitlines()) < 138  # was 227 lines; now every flag of ours has a one-line help
    assert "--num_nodes_hidden_layer1" in text and "--num_nodes_hidden_layer7" not in text
    for section in ("Vertex AI Two-Tower flags", "data:", "model:", "objective", "training:", "output:"):
        assert section in text
    assert "(default: None)" not in text
    entries = re.split(r"\n  (?=-)", text)
    assert [e.split()[0] for e in entries if e.count("default:") > 1] == []  # no default said twice
    assert parse("--num_hidden_layers=3", "--num_nodes_hidden_layer3=7").hidden_units == [128, 128, 7]


def test_verbose_follows_the_terminal(monkeypatch):
    from tfrs_twotower.training import report, trainer

    seen = []
    monkeypatch.setattr(trainer, "train", seen.append)
    monkeypatch.setattr(report, "print_report", lambda result: None)
    args = build_parser().parse_args(["train", *REQUIRED])
    assert args.verbose is None and config_from_args(args).verbose == 1
    args.run(args)  # pytest captures stdout: not a terminal, so one line per epoch
    assert seen[-1].verbose == 2
    args = build_parser().parse_args(["train", *REQUIRED, "--verbose=1"])
    args.run(args)
    assert seen[-1].verbose == 1


def test_lazy_names_are_the_eager_ones():
    import tfrs_twotower
    from tfrs_twotower import serving
    from tfrs_twotower.data.formats import FILE_FORMATS
    from tfrs_twotower.serving import commands

    lazy = set(tfrs_twotower._EXPORTS) | set(tfrs_twotower._SUBPACKAGES)
    assert lazy == set(tfrs_twotower.__all__)
    for name in tfrs_twotower._EXPORTS:  # each resolves to what the eager import gives
        assert tfrs_twotower.__getattr__(name) is getattr(tfrs_twotower, name)
    assert set(serving._EXPORTS) == set(serving.__all__)
    assert all(getattr(serving, name) is not None for name in serving.__all__)
    assert commands.FILE_FORMATS == FILE_FORMATS
