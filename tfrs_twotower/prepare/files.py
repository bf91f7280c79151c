"""The work on one input file: validate every record, split, write shards and dead letters, count.

Each input file is read whole, in order, by one call (one Beam element), so that every record's
`Location(file, index)` is exact: the train/eval split (`data/split.py`) and the error messages are then
the same as `train`'s. Records are validated by `RecordParser` (through `data/formats.py`, as `scan`
does) and written re-encoded by `record_to_example` to TFRecord shards of at most `records_per_shard`
records, named after the input file's position (`train-00003-0001.tfrecord`); a bad record goes to
`rejected-00003.jsonl` with its file, index, line, field and reason.

Example:
>>> settings = PrepareSettings(schema, "out", file_format="jsonl", eval_split=0.2)  # doctest: +SKIP
>>> stats = prepare_pairs_file(0, "data/part-0.jsonl", settings)  # doctest: +SKIP
>>> stats.train_count, stats.shards["train"]  # doctest: +SKIP
(812, [('train-00000-0000.tfrecord', 812)])
"""

from __future__ import annotations

import collections
import dataclasses
import json
import posixpath
from typing import Any

import tensorflow as tf

from tfrs_twotower.data.corpus import CandidateKey
from tfrs_twotower.data.formats import iter_payloads, payload_parser
from tfrs_twotower.data.records import BadRecordError, RecordParser
from tfrs_twotower.data.split import SplitAssigner
from tfrs_twotower.data.stats import NumericStatsAccumulator
from tfrs_twotower.data.tfrecord import record_to_example
from tfrs_twotower.feature_types import NUMERIC, feature_type_of
from tfrs_twotower.prepare.stats import PartialStats
from tfrs_twotower.schema import load_schema


@dataclasses.dataclass
class PrepareSettings:
    """What every file's work needs (picklable: it travels to Beam workers)."""

    schema: Any  # the schema as a dict (`InputSchema.to_json()`)
    output_dir: str
    file_format: str = "jsonl"
    eval_split: float = 0.2
    candidate_key_feature: str | None = None
    allow_extra_features: bool = False
    records_per_shard: int = 100_000

    def input_schema(self):
        return load_schema(self.schema)


class ShardWriter:
    """Writes serialized records to `<prefix>-<file index>-<n>.tfrecord` files of at most `limit` records
    (each written under a temporary name, renamed when complete, so a retried worker leaves no half file)."""

    def __init__(self, output_dir: str, prefix: str, file_index: int, limit: int):
        self.output_dir, self.prefix, self.file_index, self.limit = output_dir, prefix, file_index, limit
        self.shards: list[tuple[str, int]] = []
        self._writer = None
        self._count = 0

    def _name(self) -> str:
        return f"{self.prefix}-{self.file_index:05d}-{len(self.shards):04d}.tfrecord"

    def write(self, data: bytes) -> None:
        if self._writer is None:
            self._writer = tf.io.TFRecordWriter(posixpath.join(self.output_dir, self._name() + ".tmp"))
        self._writer.write(data)
        self._count += 1
        if self._count >= self.limit:
            self._finish()

    def _finish(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        name = self._name()
        path = posixpath.join(self.output_dir, name)
        tf.io.gfile.rename(path + ".tmp", path, overwrite=True)
        self.shards.append((name, self._count))
        self._writer, self._count = None, 0

    def close(self) -> list[tuple[str, int]]:
        self._finish()
        return self.shards


class _DeadLetters:
    """`rejected-<file index>.jsonl`: one JSON line per bad record (opened at the first one)."""

    def __init__(self, output_dir: str, prefix: str, file_index: int):
        self.name = f"{prefix}-{file_index:05d}.jsonl"
        self.path = posixpath.join(output_dir, self.name)
        self._file = None

    def write(self, error: BadRecordError) -> None:
        if self._file is None:
            self._file = tf.io.gfile.GFile(self.path, "w")
        loc = error.location
        line = {
            "file": loc.file,
            "index": loc.index,
            "line": loc.line,
            "field": error.field,
            "reason": error.reason,
            "error": str(error),
        }
        self._file.write(json.dumps(line, ensure_ascii=False) + "\n")

    def close(self) -> list[str]:
        if self._file is None:
            return []
        self._file.close()
        return [self.name]


def prepare_pairs_file(file_index: int, path: str, settings: PrepareSettings) -> PartialStats:
    """Validates, splits and writes one pair file; returns its statistics (train part for the numeric
    and Id statistics, as `scan`). Seen items go to `seen-<file index>.jsonl` (`[query id, key]` lines)."""
    schema = settings.input_schema()
    parser = RecordParser(schema, settings.allow_extra_features)
    key_of = CandidateKey(schema, settings.candidate_key_feature)
    parse = payload_parser(settings.file_format)
    assigner = SplitAssigner(path, settings.eval_split)
    out = settings.output_dir
    writers = {s: ShardWriter(out, s, file_index, settings.records_per_shard) for s in ("train", "eval")}
    dead = _DeadLetters(out, "rejected", file_index)
    stats = PartialStats(files={file_index: path})
    numeric = {
        (s.side, s.name): NumericStatsAccumulator()
        for side in ("query", "candidate")
        for s in schema.side(side)
        if feature_type_of(s) is NUMERIC
    }
    id_features = [
        (s.side, s.name)
        for side in ("query", "candidate")
        for s in schema.side(side)
        if feature_type_of(s).identifies and s.encoded
    ]
    ids = {k: collections.Counter() for k in id_features}
    stats.id_buckets = {
        (s.side, s.name): s.num_buckets
        for side in ("query", "candidate")
        for s in schema.side(side)
        if (s.side, s.name) in ids
    }
    query_ids = [s.name for s in schema.query if feature_type_of(s).identifies]
    seen: dict[str, set] | None = {} if query_ids else None
    for location, payload in iter_payloads(path, settings.file_format):
        stats.records_read += 1
        try:
            record = parse(payload, location, parser, "pairs")
        except BadRecordError as e:
            stats.reject(file_index, e)
            dead.write(e)
            continue
        key = key_of(record["candidate"])
        stats.add_candidate(key, (file_index, location.index, 0), record["candidate"])
        for i, negative in enumerate(record.get("negatives") or ()):
            stats.add_candidate(key_of(negative), (file_index, location.index, i + 1), negative)
        stats.weighted_count += "weight" in record
        if record.get("negatives"):
            stats.negatives_count += 1
            stats.max_negatives = max(stats.max_negatives, len(record["negatives"]))
        example = record_to_example(record, schema).SerializeToString()
        if assigner.is_eval(location.index):
            stats.eval_count += 1
            stats.eval_positive_counts[key] += 1
            writers["eval"].write(example)
            continue
        stats.train_count += 1
        stats.train_positive_counts[key] += 1
        writers["train"].write(example)
        for (side, name), acc in numeric.items():
            acc.add(record[side][name])
        for (side, name), counter in ids.items():
            counter[record[side][name]] += 1
        if seen is not None:
            seen.setdefault(record["query"][query_ids[0]], set()).add(key)
    for (side, name), acc in numeric.items():
        result = acc.result()
        stats.add_numeric((side, name), result.count, result.mean, result.variance * result.count)
    stats.id_counts = ids
    stats.shards = {split: writer.close() for split, writer in writers.items()}
    stats.rejected_files = dead.close()
    if seen:
        name = f"seen-{file_index:05d}.jsonl"
        with tf.io.gfile.GFile(posixpath.join(out, name), "w") as f:
            for query_id, keys in seen.items():
                f.write(json.dumps([query_id, sorted(keys)], ensure_ascii=False) + "\n")
        stats.seen_files = [name]
    return stats


def prepare_candidate_file(file_index: int, path: str, settings: PrepareSettings) -> PartialStats:
    """Validates one candidate-document file (`--candidate_data_path`): its distinct candidates."""
    schema = settings.input_schema()
    parser = RecordParser(schema, settings.allow_extra_features)
    key_of = CandidateKey(schema, settings.candidate_key_feature)
    parse = payload_parser(settings.file_format)
    dead = _DeadLetters(settings.output_dir, "rejected-candidates", file_index)
    stats = PartialStats(files={file_index: path})
    for location, payload in iter_payloads(path, settings.file_format):
        stats.records_read += 1
        try:
            candidate = parse(payload, location, parser, "candidates")
        except BadRecordError as e:
            stats.reject(file_index, e)
            dead.write(e)
            continue
        stats.add_candidate(key_of(candidate), (file_index, location.index, 0), candidate)
    stats.rejected_files = dead.close()
    return stats
