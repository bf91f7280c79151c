"""`tfrs-twotower prepare`: the Apache Beam pipeline that validates, splits and summarises training data.

The pipeline: the input files -> (one element per file, reshuffled so that workers share them) ->
`prepare_pairs_file` (validate, split, write shards and dead letters, per-file statistics) -> one
`CombineGlobally` merging the statistics -> `write_summary` (the corpus shards, `stats.json`, ...). An
optional candidate file set goes the same way through `prepare_candidate_file`. After the pipeline,
`finish` applies `--max_bad_records` and writes `manifest.json`; `train --prepared_data_path` reads it.

Runner: the DirectRunner in multi-process mode (one process per core) unless the Beam options given say
otherwise; any Beam pipeline option (`--runner DataflowRunner --project ... --region ... --temp_location
gs://...`, Flink, Spark) is passed through unchanged. Workers need this package and TensorFlow installed.

Example:
>>> run_prepare(["--training_data_path", "data/*.jsonl", "--input_schema_path", "schema.json",
...              "--output_dir", "prepared"])  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Sequence

from tfrs_twotower.data.paths import resolve_paths
from tfrs_twotower.errors import ConfigError
from tfrs_twotower.prepare.files import PrepareSettings, prepare_candidate_file, prepare_pairs_file
from tfrs_twotower.prepare.flags import add_arguments, parser  # noqa: F401 (re-exported)
from tfrs_twotower.prepare.stats import PartialStats
from tfrs_twotower.prepare.summary import finish, write_summary

BEAM_HINT = "`tfrs-twotower prepare` needs Apache Beam: pip install 'tfrs-twotower[beam]'"


def import_beam():
    """`apache_beam`, or a `ConfigError` saying how to install it."""
    try:
        import apache_beam
    except ImportError as e:
        raise ConfigError(f"{BEAM_HINT} (importing it failed: {e}).") from None
    return apache_beam


def beam_options(extra: Sequence[str]) -> list[str]:
    """The Beam options: `extra` unchanged, plus the multi-process DirectRunner's when no runner is set."""
    given = {arg.split("=", 1)[0] for arg in extra if arg.startswith("--")}
    options = list(extra)
    if "--runner" not in given:
        options.append("--runner=DirectRunner")
    runner = next((a.split("=", 1)[1] for a in extra if a.startswith("--runner=")), None)
    if runner is None and "--runner" in extra:
        runner = extra[list(extra).index("--runner") + 1]
    if runner in (None, "DirectRunner", "direct"):
        if "--direct_running_mode" not in given:
            options.append("--direct_running_mode=multi_processing")
        if "--direct_num_workers" not in given:
            options.append(f"--direct_num_workers={os.cpu_count() or 1}")
    return options


def _merge_fn(beam):
    class MergeStats(beam.CombineFn):
        def create_accumulator(self):
            return PartialStats()

        def add_input(self, accumulator, stats):
            return accumulator.merge(stats)

        def merge_accumulators(self, accumulators):
            accumulators = iter(accumulators)
            first = next(accumulators)
            for other in accumulators:
                first.merge(other)
            return first

        def extract_output(self, accumulator):
            return accumulator

    return MergeStats()


def build_pipeline(pipeline, settings: PrepareSettings, files: list[str], candidate_files: list[str] | None):
    """Adds the prepare steps to a `beam.Pipeline` (see the module docstring)."""
    beam = import_beam()

    def summarise(label: str, paths: list[str], work):
        return (
            pipeline
            | f"{label}Files" >> beam.Create(list(enumerate(paths)))
            | f"{label}Spread" >> beam.Reshuffle()
            | f"{label}Read" >> beam.Map(lambda item: work(item[0], item[1], settings))
            | f"{label}Merge" >> beam.CombineGlobally(_merge_fn(beam))
        )

    pairs = summarise("Pairs", files, prepare_pairs_file)
    if candidate_files:
        candidates = beam.pvalue.AsSingleton(summarise("Candidates", candidate_files, prepare_candidate_file))
    else:
        candidates = beam.pvalue.AsSingleton(pipeline | "NoCandidates" >> beam.Create([None]))
    return pairs | "WriteSummary" >> beam.Map(write_summary, candidates, settings)


def run_prepare(args: argparse.Namespace, beam_args: Sequence[str] = ()) -> dict:
    """Runs the pipeline for parsed `prepare` flags; returns the manifest. Raises on too many bad records."""
    from tfrs_twotower.data.split import check_eval_split
    from tfrs_twotower.schema import load_schema
    from tfrs_twotower.training.build import candidate_id_feature

    beam = import_beam()
    import tensorflow as tf
    from apache_beam.options.pipeline_options import PipelineOptions

    started = time.perf_counter()
    schema = load_schema(args.input_schema_path)
    if args.records_per_shard < 1 or args.max_bad_records < 0:
        raise ConfigError("--records_per_shard must be >= 1 and --max_bad_records >= 0.")
    settings = PrepareSettings(
        schema=schema.to_json(),
        output_dir=args.output_dir.rstrip("/"),
        file_format=args.input_file_format,
        eval_split=check_eval_split(args.eval_split),
        candidate_key_feature=candidate_id_feature(schema, args.candidate_id_feature),
        allow_extra_features=bool(args.allow_extra_features),
        records_per_shard=args.records_per_shard,
    )
    files = resolve_paths(args.training_data_path)
    candidate_files = resolve_paths(args.candidate_data_path) if args.candidate_data_path else None
    out = settings.output_dir
    if tf.io.gfile.exists(out) and tf.io.gfile.listdir(out):
        raise ConfigError(f"--output_dir {out} is not empty: give a new directory (or delete this one).")
    tf.io.gfile.makedirs(out)
    with beam.Pipeline(options=PipelineOptions(beam_options(beam_args))) as pipeline:
        build_pipeline(pipeline, settings, files, candidate_files)
    return finish(settings, args.max_bad_records, time.perf_counter() - started)
