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


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per `TrainingConfig` field, with the field's name, default and help."""
    hints = typing.get_type_hints(TrainingConfig)
    for field in dataclasses.fields(TrainingConfig):
        hint = hints[field.name]
        optional = type(None) in typing.get_args(hint)
        base = next((t for t in typing.get_args(hint) if t is not type(None)), hint)
        names = [f"--{field.name}"]
        if field.name == "job_dir":
            names.insert(0, "--job-dir")
        help_text = f"{field.metadata.get('help', '')} (default: {field.default})"
        if base is bool:
            parser.add_argument(
                *names,
                dest=field.name,
                type=_parse_bool,
                nargs="?",
                const=True,
                default=field.default,
                metavar="BOOL",
                help=help_text,
            )
            continue
        parse = {int: int, float: float, str: str}[base]
        parser.add_argument(
            *names,
            dest=field.name,
            type=_optional(parse) if optional else parse,
            default=field.default,
            required=field.name in ("training_data_path", "input_schema_path", "job_dir"),
            help=help_text,
        )


def config_from_args(args: argparse.Namespace) -> TrainingConfig:
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainingConfig)}
    return TrainingConfig(**values)


def _run_train(args: argparse.Namespace) -> int:
    from tfrs_twotower.training.report import print_report
    from tfrs_twotower.training.trainer import train

    result = train(config_from_args(args))
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tfrs-twotower",
        description="Train and serve two-tower retrieval models from a JSON input schema.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train = commands.add_parser(
        "train",
        help="Train a two-tower model and export its encoders.",
        description="Train a two-tower model (Vertex AI Two-Tower flags and defaults).",
    )
    add_config_flags(train)
    train.set_defaults(run=_run_train)
    sample = commands.add_parser("sample-data", help="Write the built-in sample data set and its schema.")
    sample.add_argument("--output_dir", "--output-dir", required=True, help="Where to write the files.")
    sample.add_argument("--num_pairs", type=int, default=5000, help="Number of (query, candidate) pairs.")
    sample.add_argument("--seed", type=int, default=0, help="Random seed (same seed, same bytes).")
    sample.set_defaults(run=_run_sample_data)
    add_serving_commands(commands)  # export-index, encode, query
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from tfrs_twotower import errors

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


if __name__ == "__main__":
    sys.exit(main())
