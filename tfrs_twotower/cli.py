"""The `tfrs-twotower` command line: `train`, `sample-data` (and more subcommands as they come).

`train` takes every Vertex AI Two-Tower flag with its default; the flags map one to one onto
`TrainingConfig`'s fields (`--job-dir` is also accepted as `--job_dir`).

Example:
    tfrs-twotower sample-data --output_dir sample
    tfrs-twotower train --training_data_path sample/train.jsonl --input_schema_path sample/schema.json \\
        --job-dir runs/sample --num_epochs 5
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
import typing
from typing import Sequence

from tfrs_twotower.serving.commands import add_commands as add_serving_commands
from tfrs_twotower.training.config import TrainingConfig

_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _optional(parse):
    def parse_optional(text: str):
        return None if text.strip().lower() in ("", "none", "null") else parse(text)

    parse_optional.__name__ = getattr(parse, "__name__", "value")
    return parse_optional


# The help's sections. The Vertex AI Two-Tower flags come first, with their names and defaults; our own
# flags follow by topic. A field missing here is listed under "other flags".
_VERTEX = (
    "training_data_path input_schema_path job_dir eval_data_path candidate_data_path input_file_format "
    "train_batch_size eval_batch_size eval_split metrics optimizer learning_rate momentum num_epochs "
    "num_hidden_layers num_nodes_hidden_layer1 output_dim cache_input training_steps_per_epoch "
    "eval_steps_per_epoch gpu_memory_alloc"
).split()
_GROUPS = {
    "Vertex AI Two-Tower flags (same names and defaults)": _VERTEX,
    "data": (
        "max_bad_records allow_extra_features shuffle_buffer candidate_id_feature prepared_data_path"
    ).split(),
    "model": "l2_normalize tower_projection candidate_bias".split(),
    "objective (loss and negatives)": (
        "temperature remove_accidental_hits sampling_bias_correction logq_weight num_mixed_negatives "
        "num_hard_negatives loss_reduction"
    ).split(),
    "training": (
        "seed distribution checkpoint_every_steps warm_start_from best_epoch_metric early_stopping_patience"
    ).split(),
    "output": "eval_top_k overwrite verbose".split(),
}
_REQUIRED = ("training_data_path", "input_schema_path", "job_dir")
_HIDDEN_LAYER = re.compile(r"num_nodes_hidden_layer(\d+)$")
_METAVARS = {int: "N", float: "X", str: "VALUE"}


def _help_text(field: dataclasses.Field, name: str) -> str:
    text = field.metadata.get("help", "")
    if name == "num_nodes_hidden_layer1":
        text = "Units of hidden layer 1; --num_nodes_hidden_layer2 ... 20 set the next layers."
    if name == "verbose":
        return f"{text} (default: 1 on a terminal, else 2)"
    if field.name in _REQUIRED or field.default is None or "default" in text.lower():
        return text  # required, or the help says what happens without it
    default = str(field.default).lower() if isinstance(field.default, bool) else field.default
    return f"{text} (default: {default})"


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per `TrainingConfig` field, with the field's name, default and help, in grouped sections.

    `--num_nodes_hidden_layer2` ... `20` are accepted but listed as one line under layer 1."""
    hints = typing.get_type_hints(TrainingConfig)
    fields = {field.name: field for field in dataclasses.fields(TrainingConfig)}
    hidden = {n for n in fields if (m := _HIDDEN_LAYER.match(n)) and int(m.group(1)) >= 2}
    grouped = {name for names in _GROUPS.values() for name in names} | hidden
    sections = dict(_GROUPS, **{"other flags": [n for n in fields if n not in grouped]})
    for title, names in sections.items():
        group = parser.add_argument_group(title)
        for name in [n for n in names if n in fields]:
            _add_flag(group, fields[name], hints[name])
        if names is _VERTEX:
            for name in sorted(hidden, key=lambda n: int(_HIDDEN_LAYER.match(n).group(1))):
                _add_flag(group, fields[name], hints[name], hidden=True)


def _add_flag(group, field: dataclasses.Field, hint, hidden: bool = False) -> None:
    optional = type(None) in typing.get_args(hint)
    base = next((t for t in typing.get_args(hint) if t is not type(None)), hint)
    names = [f"--{field.name}"]
    if field.name == "job_dir":
        names.insert(0, "--job-dir")
    help_text = argparse.SUPPRESS if hidden else _help_text(field, field.name)
    if base is bool:
        group.add_argument(
            *names,
            dest=field.name,
            type=_parse_bool,
            nargs="?",
            const=True,
            default=field.default,
            metavar="BOOL",
            help=help_text,
        )
        return
    parse = {int: int, float: float, str: str}[base]
    group.add_argument(
        *names,
        dest=field.name,
        type=_optional(parse) if optional else parse,
        # `--verbose` left out: 1 (progress bars) on a terminal, 2 (a line per epoch) in a log file.
        default=None if field.name == "verbose" else field.default,
        required=field.name in _REQUIRED and field.name != "training_data_path",  # or --prepared_data_path
        metavar="PATH" if field.name.endswith("_path") or field.name == "job_dir" else _METAVARS[base],
        help=help_text,
    )


def config_from_args(args: argparse.Namespace) -> TrainingConfig:
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainingConfig)}
    if values.get("verbose") is None:
        values["verbose"] = TrainingConfig.verbose
    return TrainingConfig(**values)


def _run_train(args: argparse.Namespace) -> int:
    from tfrs_twotower.training.report import print_report
    from tfrs_twotower.training.trainer import train

    config = config_from_args(args)
    if args.verbose is None and not sys.stdout.isatty():
        config = dataclasses.replace(config, verbose=2)  # progress bars in a log file are noise
    result = train(config)
    print_report(result)
    return 0


def _run_sample_data(args: argparse.Namespace) -> int:
    from tfrs_twotower.sample_data import generate_sample

    files = generate_sample(args.output_dir, num_pairs=args.num_pairs, seed=args.seed)
    print(f"Wrote the sample data to {args.output_dir}:")
    for path in files.paths():
        print(f"  {path}")
    print(f"{files.num_pairs} pairs, {files.num_users} users, {files.num_items} items.")
    return 0


def _run_prepare(args: argparse.Namespace) -> int:
    from tfrs_twotower.prepare.pipeline import run_prepare

    manifest = run_prepare(args, args.beam_args)
    counts = manifest["counts"]
    print(
        f"Prepared {args.output_dir} in {manifest['seconds']:.1f} s: {counts['train']} train, "
        f"{counts['eval']} eval, {counts['rejected']} rejected of {counts['records_read']} records; "
        f"{counts['corpus']} candidates."
    )
    return 0


def _add_prepare(commands) -> None:
    from tfrs_twotower.prepare.flags import add_arguments  # no TensorFlow or Beam import: a fast --help

    prepare = commands.add_parser(
        "prepare",
        help="Validate, split and summarise training data with Apache Beam, for train --prepared_data_path.",
        description="An Apache Beam pipeline (DirectRunner, multi-process, by default): writes validated "
        "TFRecord shards, the trainer's statistics and rejected-*.jsonl to --output_dir. Beam options "
        "(--runner, --direct_num_workers, Dataflow/Flink/Spark options) pass through unchanged.",
    )
    add_arguments(prepare)
    prepare.set_defaults(run=_run_prepare, passthrough=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tfrs-twotower",
        description="Train and serve two-tower retrieval models from a JSON input schema.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train = commands.add_parser(
        "train",
        help="Train a two-tower model and export its encoders.",
        usage="%(prog)s --training_data_path PATH --input_schema_path PATH --job-dir PATH [FLAGS]",
        description="Train a two-tower model, export its encoders and index, print its metrics. Every flag "
        "of the Vertex AI Two-Tower built-in algorithm is accepted, with the same name and default.",
    )
    add_config_flags(train)
    train.set_defaults(run=_run_train)
    sample = commands.add_parser("sample-data", help="Write the built-in sample data set and its schema.")
    sample.add_argument("--output_dir", "--output-dir", required=True, help="Where to write the files.")
    sample.add_argument("--num_pairs", type=int, default=5000, help="Number of (query, candidate) pairs.")
    sample.add_argument("--seed", type=int, default=0, help="Random seed (same seed, same bytes).")
    sample.set_defaults(run=_run_sample_data)
    _add_prepare(commands)
    add_serving_commands(commands)  # export-index, encode, query
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "passthrough", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.beam_args = extra  # `prepare` passes unknown flags to Beam
    from tfrs_twotower import errors, progress

    previous = progress.enabled()
    progress.enable(getattr(args, "verbose", None) != 0)  # lines for the scan, encoding, index export

    try:
        return args.run(args)
    except errors.Interrupted as e:  # SIGTERM: checkpointed; a re-run resumes
        print(f"tfrs-twotower {args.command}: interrupted: {e}", file=sys.stderr)
        return errors.EXIT_PREEMPTED
    except Exception as e:
        if os.environ.get("TFRS_TWOTOWER_DEBUG") or not errors.is_user_error(e):
            raise  # a bug: keep the traceback
        print(f"tfrs-twotower {args.command}: error: {errors.error_paragraph(e)}", file=sys.stderr)
        return errors.EXIT_USER_ERROR
    finally:
        progress.enable(previous)  # main() called from Python leaves the library as it found it


if __name__ == "__main__":
    sys.exit(main())
