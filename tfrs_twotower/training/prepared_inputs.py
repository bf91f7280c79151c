"""`TrainingInputs` from a `tfrs-twotower prepare` directory (`--prepared_data_path`), without a scan.

The statistics come from `stats.json` (counts, numeric stats, logQ counts, Id value counts), the corpus
from its shards and `corpus_keys.json`, the evaluation queries' seen items from `seen.npz`; the train
and eval datasets read the shards with `make_dataset(..., subset="all", file_format="tfrecord")`
(streaming: no record is held in memory). Multi-worker runs split the shards by file (`sharded_inputs`).
The directory must hold a `manifest.json` (a finished `prepare`) made with the same schema, `eval_split`
and candidate key.

Example:
>>> inputs = prepared_inputs(config, schema, id_feature="item_id")  # doctest: +SKIP
>>> inputs.train_scan.train_count  # doctest: +SKIP
80000
"""

from __future__ import annotations

import collections
import dataclasses
import json
import posixpath
from typing import Any

import numpy as np
import tensorflow as tf

from tfrs_twotower import data as data_lib
from tfrs_twotower.data.records import BadRecordError, Location, RecordParser
from tfrs_twotower.data.seen import SeenItems
from tfrs_twotower.data.stats import NumericStats
from tfrs_twotower.data.tfrecord import read_tfrecord
from tfrs_twotower.errors import ConfigError
from tfrs_twotower.packed import take_rows
from tfrs_twotower.prepare.stats import counter_from_json
from tfrs_twotower.prepare.summary import CORPUS_KEYS, FORMAT, MANIFEST, SEEN, STATS, VERSION, read_json
from tfrs_twotower.schema import InputSchema
from tfrs_twotower.training.config import TrainingConfig
from tfrs_twotower.training.inputs import TrainingInputs, with_batch_count

_LISTED_REJECTIONS = 1000


@dataclasses.dataclass
class PreparedScan(data_lib.ScanResult):
    """A `ScanResult` read back from `stats.json`: `rejected` lists the first bad records only, so the
    count is kept apart."""

    rejected_total: int = 0

    @property
    def rejected_count(self) -> int:
        return self.rejected_total

    @property
    def skip(self) -> frozenset:
        return frozenset()  # the shards hold good records only


def check_prepared(path: str, schema: InputSchema, config: TrainingConfig, id_feature: str | None) -> dict:
    """The manifest of `path`, after checking it matches the run; a `ConfigError` naming the fix otherwise."""
    manifest_path = posixpath.join(path, MANIFEST)
    if not tf.io.gfile.exists(manifest_path):
        raise ConfigError(
            f"--prepared_data_path {path} has no {MANIFEST}: it is not the output of a finished "
            "`tfrs-twotower prepare` (it failed, or is still running). Run prepare again into an empty "
            "directory."
        )
    manifest = read_json(manifest_path)
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise ConfigError(
            f"{manifest_path} is format {manifest.get('format')!r} version {manifest.get('version')!r}; this "
            f"tfrs-twotower reads {FORMAT!r} version {VERSION}. Run `tfrs-twotower prepare` again."
        )
    if manifest["schema"] != schema.to_json():
        diff = _schema_difference(manifest["schema"], schema.to_json())
        raise ConfigError(
            f"--prepared_data_path {path} was prepared with another schema than --input_schema_path "
            f"{config.input_schema_path} ({diff}). Pass the schema it was prepared with (a copy is in "
            f"{manifest_path}), or run prepare again with this one."
        )
    if manifest["eval_split"] != config.eval_split:
        raise ConfigError(
            f"--prepared_data_path {path} was split with --eval_split {manifest['eval_split']}, not "
            f"{config.eval_split}: pass --eval_split {manifest['eval_split']}, or run prepare again."
        )
    if manifest["candidate_key_feature"] != id_feature:
        raise ConfigError(
            f"--prepared_data_path {path} keys its corpus by {manifest['candidate_key_feature']!r}, this run "
            f"by {id_feature!r}: pass --candidate_id_feature {manifest['candidate_key_feature']} or run "
            "prepare again with this --candidate_id_feature."
        )
    return manifest


def _schema_difference(prepared: dict, wanted: dict) -> str:
    for side in ("query", "candidate"):
        a, b = prepared.get(side, {}), wanted.get(side, {})
        for name in sorted(set(a) | set(b)):
            if a.get(name) != b.get(name):
                return f"{side}.{name}: prepared {a.get(name)}, schema {b.get(name)}"
    return "the features' order differs"


def _corpus(path: str, stats: dict, schema: InputSchema, id_feature: str | None) -> data_lib.Corpus:
    corpus = data_lib.Corpus(data_lib.CandidateKey(schema, id_feature))
    keys = iter(read_json(posixpath.join(path, CORPUS_KEYS)))
    parser = RecordParser(schema)
    for name, _ in stats["shards"]["candidates"]:
        for _, candidate in read_tfrecord(posixpath.join(path, name), parser, "candidates"):
            corpus.add(candidate, next(keys))
    return corpus


class PackedSeenItems(SeenItems):
    """`SeenItems` over `seen.npz`'s packed arrays (each query id's sorted, distinct corpus rows): 4 bytes a
    (query, candidate) pair and one dict entry a query id, no per-query Python array."""

    def __init__(self, feature: str, query_ids: list[str], offsets: np.ndarray, rows: np.ndarray):
        super().__init__(feature)
        self._index = {query_id: i for i, query_id in enumerate(query_ids)}
        self._offsets, self._packed = offsets, rows
        self.pairs = len(rows)

    def add_many(self, query_ids, candidate_indices) -> None:
        raise TypeError("PackedSeenItems is read-only (it is read from a prepared directory's seen.npz).")

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, query_id: object) -> bool:
        return query_id in self._index

    def rows_for(self, query_ids, remap: np.ndarray | None = None) -> list[np.ndarray]:
        out = []
        for query_id in query_ids:
            i = self._index.get(query_id.decode() if isinstance(query_id, bytes) else str(query_id))
            if i is None:
                out.append(np.zeros([0], np.int64))
                continue
            values = self._packed[self._offsets[i] : self._offsets[i + 1]].astype(np.int64)
            if remap is not None:
                values = np.unique(remap[values][remap[values] >= 0])
            out.append(values)
        return out


def _seen(path: str, feature: str | None, eval_shards: list[str]) -> SeenItems | None:
    """The seen items of the query ids in `eval_shards` only: the evaluation looks up no other, so memory
    follows the evaluation queries, not every training pair's (4 bytes each, in `seen.npz`)."""
    if feature is None:
        return None
    with tf.io.gfile.GFile(posixpath.join(path, SEEN), "rb") as f:
        arrays = np.load(f)  # reading seeks, which a gfile can: no copy of the file's bytes
        query_ids, offsets, rows = arrays["query_ids"], arrays["offsets"], arrays["rows"]
    keep = np.isin(query_ids, _query_ids(eval_shards, f"query_{feature}"))
    kept_rows, kept_offsets = take_rows(rows, offsets, keep)
    return PackedSeenItems(feature, query_ids[keep].tolist(), kept_offsets, kept_rows)


def _query_ids(shards: list[str], key: str) -> np.ndarray:
    """The distinct values of the bytes feature `key` in TFRecord `shards`, as str (read natively)."""
    if not shards:
        return np.zeros([0], str)
    spec = {key: tf.io.VarLenFeature(tf.string)}
    ds = tf.data.Dataset.from_tensor_slices(shards).interleave(tf.data.TFRecordDataset, cycle_length=1)
    ds = ds.batch(8192).map(lambda serialized: tf.io.parse_example(serialized, spec)[key].values)
    distinct = set()
    for batch in ds:
        distinct.update(batch.numpy().tolist())
    return np.array(sorted(value.decode() for value in distinct), dtype=str)


def _rejected(path: str, counts: dict) -> list[BadRecordError]:
    out: list[BadRecordError] = []
    for name in counts["rejected_files"]:
        with tf.io.gfile.GFile(posixpath.join(path, name)) as f:
            for line in f:
                if len(out) >= _LISTED_REJECTIONS:
                    return out
                r = json.loads(line)
                out.append(
                    BadRecordError(Location(r["file"], r["index"], r["line"]), r["reason"], r["field"])
                )
    return out


def _scan(path: str, stats: dict, kind: str, corpus, seen, manifest: dict) -> PreparedScan:
    counts = stats["training"] if kind == "pairs" else stats["candidates"]
    result = PreparedScan(
        files=list(counts["files"]),
        file_format=manifest["input_file_format"],  # of the files read by prepare (`files`)
        kind=kind,
        eval_split=manifest["eval_split"] if kind == "pairs" else 0.0,
        records_read=counts["records_read"],
        rejected=_rejected(path, counts),
        corpus=corpus,
        rejected_total=counts["rejected"],
    )
    if kind == "pairs":
        result.train_count, result.eval_count = counts["train"], counts["eval"]
        result.weighted_count, result.negatives_count = counts["weighted"], counts["with_negatives"]
        result.max_negatives = counts["max_negatives"]
        result.numeric_stats = {
            side: {name: NumericStats(**v) for name, v in by_name.items()}
            for side, by_name in stats["numeric_stats"].items()
        }
        result.train_positive_counts = collections.Counter(stats["train_positive_counts"])
        result.eval_positive_counts = collections.Counter(stats["eval_positive_counts"])
        result.id_counts = {
            side: {name: counter_from_json(v) for name, v in by_name.items()}
            for side, by_name in stats["id_counts"].items()
        }
        result.seen = seen
    return result


def prepared_inputs(config: TrainingConfig, schema: InputSchema, id_feature: str | None) -> TrainingInputs:
    """Stage 1 of a run from prepared data: `prepare_inputs`' result, from `config.prepared_data_path`."""
    path = config.prepared_data_path.rstrip("/")
    manifest = check_prepared(path, schema, config, id_feature)
    stats = read_json(posixpath.join(path, STATS))
    corpus = _corpus(path, stats, schema, id_feature)
    shards = {
        split: [posixpath.join(path, name) for name, _ in stats["shards"][split]]
        for split in ("train", "eval")
    }
    seen = _seen(path, stats["seen_feature"], shards["eval"])
    train_scan = _scan(path, stats, "pairs", corpus, seen, manifest)
    corpus_scan = _scan(path, stats, "candidates", corpus, None, manifest) if stats["candidates"] else None
    if not shards["train"]:
        raise ValueError(
            f"No training records in {path}: every record was rejected or held out for evaluation "
            f"(eval_split={config.eval_split}). Check the data or prepare it again with a lower --eval_split."
        )
    common: dict[str, Any] = dict(
        schema=schema,
        file_format="tfrecord",
        subset="all",
        eval_split=0.0,
        skip=(),
        cache=config.cache_input,
        negatives=train_scan.has_negatives,
    )
    train_args = dict(
        paths=shards["train"],
        batch_size=config.train_batch_size,
        shuffle_buffer=config.shuffle_buffer,
        seed=config.seed,
        **common,
    )
    eval_args = None
    if shards["eval"]:
        eval_args = dict(paths=shards["eval"], batch_size=config.eval_batch_size, shuffle_buffer=0, **common)
        if id_feature is None:
            eval_args["with_keys"] = True
    repeat = config.training_steps_per_epoch is not None
    train_dataset = data_lib.make_dataset(**train_args, repeat=repeat)
    if not repeat:
        train_dataset = with_batch_count(train_dataset, train_scan.train_count, config.train_batch_size)
    eval_dataset = None
    if eval_args is not None:
        eval_dataset = with_batch_count(
            data_lib.make_dataset(**eval_args), train_scan.eval_count, config.eval_batch_size
        )
    corpus_dataset, corpus_keys = data_lib.make_candidate_dataset(corpus, schema, batch_size=1024)
    if config.cache_input:
        corpus_dataset = corpus_dataset.cache()
    return TrainingInputs(
        train_scan=train_scan,
        eval_scan=None,
        corpus_scan=corpus_scan,
        corpus=corpus,
        schema=schema,
        id_feature=id_feature,
        train_args=train_args,
        eval_args=eval_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        corpus_dataset=corpus_dataset,
        corpus_keys=corpus_keys,
    )
