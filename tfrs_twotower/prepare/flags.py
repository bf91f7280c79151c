"""The `prepare` command's own flags (Beam's options pass through). Imports nothing heavy, so that
`tfrs-twotower --help` stays fast and works without TensorFlow initialised or Apache Beam installed.

Example:
>>> parser().parse_args(["--training_data_path", "t.jsonl", "--input_schema_path", "s.json",
...                      "--output_dir", "out"]).records_per_shard
100000
"""

from __future__ import annotations

import argparse


def parser() -> argparse.ArgumentParser:
    """The `prepare` flags (Beam's own options are passed through; see `add_command`)."""
    p = argparse.ArgumentParser(add_help=False)
    add_arguments(p)
    return p


def add_arguments(p) -> None:
    p.add_argument(
        "--training_data_path", required=True, metavar="PATH", help="Training pairs, as for train."
    )
    p.add_argument("--input_schema_path", required=True, metavar="PATH", help="The input schema JSON.")
    p.add_argument("--output_dir", "--output-dir", required=True, metavar="PATH", help="Where to write.")
    p.add_argument(
        "--candidate_data_path", metavar="PATH", help="Candidate documents (the corpus), as train."
    )
    p.add_argument(
        "--input_file_format", default="jsonl", choices=("jsonl", "tfrecord"), help="(default: jsonl)"
    )
    p.add_argument(
        "--eval_split", type=float, default=0.2, metavar="X", help="Eval fraction, as train (0.2)."
    )
    p.add_argument("--max_bad_records", type=int, default=0, metavar="N", help="Bad records allowed (0).")
    p.add_argument("--candidate_id_feature", metavar="VALUE", help="The corpus key feature, as train.")
    p.add_argument("--allow_extra_features", action="store_true", help="Ignore unknown features.")
    p.add_argument("--records_per_shard", type=int, default=100_000, metavar="N", help="(default: 100000)")
