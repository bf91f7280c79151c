"""Training and eval data as a streaming `tf.data.Dataset` of model-input batches.

Each element is `{"query": {name: tensor}, "candidate": {name: tensor}, "weight": float32 [B]}` in the
format of `batching` (docs/architecture.md); `weight` is always there (1.0 where a record has none). With
`negatives=True` it also has `"negatives": {name: [B, K, ...]}` and `"negative_mask": bool [B, K]`; with
`with_keys=True`, `"candidate_key"`: tf.string [B], each positive's corpus key (`corpus.CandidateKey`).

How it streams: one Python generator reads up to 16 files at a time, round-robin in blocks of 64
records (an interleave), skips the records of the other subset *before* decoding them and the
`skip`ped ones, parses the rest, shuffles records through a buffer of `shuffle_buffer` (like
`Dataset.shuffle`), and yields columnar numpy chunks of about 1024 records padded per chunk; TensorFlow
then `rebatch`es them to `batch_size` and prefetches. Per-record work in `tf.data` ops (unbatch, shuffle,
padded_batch) costs more than the parsing itself, so it is done in Python on whole chunks instead.
Only the shuffle buffer and a chunk are in memory, unless `cache=True`: the subset's raw records (bytes,
compact) are then kept after the first complete pass, and later epochs read no files (they still parse).

Order: with a `seed`, the order is the same on every run, and each epoch (each new iteration of the
dataset, e.g. with `repeat=True`) has its own shuffle; without one, every epoch is shuffled at random.
A record that turns out bad and is not in `skip` raises a `BadRecordError` (never skipped silently).

Example:
>>> from tfrs_twotower.data.jsonl import write_jsonl
>>> schema = {"query": {"q": {"feature_type": "Text"}},
...           "candidate": {"c": {"feature_type": "Id", "config": {"num_buckets": 9}}}}
>>> _ = write_jsonl([{"query": {"q": "hi"}, "candidate": {"c": "m1"}}] * 5, "ram://ds_doc.jsonl")
>>> ds = make_dataset("ram://ds_doc.jsonl", schema, subset="all", batch_size=2, seed=0)
>>> [int(b["weight"].shape[0]) for b in ds]
[2, 2, 1]
"""

from __future__ import annotations

import itertools
import os
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import tensorflow as tf

from tfrs_twotower.data.batching import negative_columns, side_columns, side_signature
from tfrs_twotower.data.corpus import CandidateKey, Corpus
from tfrs_twotower.data.formats import check_file_format, iter_payloads, payload_parser
from tfrs_twotower.data.gc_pause import gc_paused
from tfrs_twotower.data.paths import resolve_paths
from tfrs_twotower.data.records import BadRecordError, Location, RecordParser
from tfrs_twotower.data.split import SplitAssigner, check_eval_split
from tfrs_twotower.schema import InputSchema, load_schema

SUBSETS = ("train", "eval", "all")
_CYCLE_LENGTH = 16
_BLOCK_LENGTH = 64
_CHUNK_RECORDS = 1024


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"The `{name}` parameter must be an int in [{low}, inf). Got {value!r} instead.")
    return int(value)


def _skip_by_file(skip: Iterable[Location | tuple[str, int]]) -> dict[str, set[int]]:
    by_file: dict[str, set[int]] = {}
    for item in skip:
        file, index = item[0], item[1]
        by_file.setdefault(file, set()).add(int(index))
    return by_file


def _interleave(iterators: list[Iterator], cycle_length: int, block_length: int) -> Iterator:
    pending = iter(iterators)
    active = list(itertools.islice(pending, cycle_length))
    while active:
        for i, it in enumerate(active):
            block = list(itertools.islice(it, block_length))
            yield from block
            if len(block) < block_length:
                active[i] = next(pending, None)
        active = [it for it in active if it is not None]


def _shuffled(items: Iterator, size: int, rng: np.random.Generator) -> Iterator:
    if size <= 1:
        yield from items
        return
    buffer: list = []
    picks: Iterator[int] = iter(())
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        j = next(picks, None)
        if j is None:
            picks = iter(rng.integers(0, size, 4096).tolist())
            j = next(picks)
        out, buffer[j] = buffer[j], item
        yield out
    rng.shuffle(buffer)
    yield from buffer


def _shard_blocks(items: Iterator, index: int, count: int, block: int) -> Iterator:
    """Block `index` of every `count * block` consecutive items; an incomplete last group is dropped."""
    group = count * block
    while True:
        items_of_group = list(itertools.islice(items, group))
        if len(items_of_group) < group:
            return
        yield from items_of_group[index * block : (index + 1) * block]


class _PairBatches:
    """The Python side of `make_dataset`: records of the subset -> shuffled columnar chunks."""

    def __init__(
        self,
        files,
        parser,
        file_format,
        subset,
        eval_split,
        skip,
        shuffle_buffer,
        seed,
        cache,
        negatives,
        chunk_records,
        candidate_key=None,
        shard=None,
    ):
        self.files = files
        self.parser = parser
        self.schema = parser.schema
        self.file_format = file_format
        self.subset = subset
        self.eval_split = eval_split
        self.skip = skip
        self.shuffle_buffer = shuffle_buffer
        self.seed = seed
        self.cache = cache
        self.negatives = negatives
        self.chunk_records = chunk_records
        self.candidate_key = candidate_key
        self.shard = shard  # (index, count, batch_size): this worker's block of each global batch
        self._cached: list[tuple[Location, bytes]] | None = None
        self._parse_payload = payload_parser(file_format)
        self._epochs = itertools.count()

    def _file_payloads(self, path: str) -> Iterator[tuple[Location, bytes]]:
        assigner = SplitAssigner(path, self.eval_split)
        skip = self.skip.get(path, ())
        want_eval = self.subset == "eval"
        every = self.subset == "all"
        for location, payload in iter_payloads(path, self.file_format):
            index = location.index
            if (every or assigner.is_eval(index) == want_eval) and index not in skip:
                yield location, payload

    def _payloads(self) -> Iterator[tuple[Location, bytes]]:
        if self._cached is not None:
            yield from self._cached
            return
        files = [self._file_payloads(f) for f in self.files]
        payloads = _interleave(files, _CYCLE_LENGTH, _BLOCK_LENGTH)
        if not self.cache:
            yield from payloads
            return
        kept = []
        for item in payloads:
            kept.append(item)
            yield item
        self._cached = kept

    def _parse(self, location: Location, payload: bytes) -> dict:
        try:
            record = self._parse_payload(payload, location, self.parser, "pairs")
        except BadRecordError as e:
            raise BadRecordError(
                e.location,
                e.reason + ". This bad record is not in `skip`: scan the data first and pass "
                "`skip=scan_result.skip` (with --max_bad_records), or fix the record",
                e.field,
            ) from None
        if not self.negatives and record.get("negatives"):
            raise ValueError(
                f"{location}: the record has explicit `negatives`, but the dataset was made with "
                "negatives=False; pass negatives=True (scan(...).has_negatives tells)."
            )
        return record

    def signature(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "query": side_signature(self.schema.query),
            "candidate": side_signature(self.schema.candidate),
            "weight": tf.TensorSpec([None], tf.float32),
        }
        if self.negatives:
            out["negatives"] = side_signature(self.schema.candidate, extra_dims=1)
            out["negative_mask"] = tf.TensorSpec([None, None], tf.bool)
        if self.candidate_key is not None:
            out["candidate_key"] = tf.TensorSpec([None], tf.string)
        return out

    def columns(self, records: list[dict]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "query": side_columns(self.schema.query, [r["query"] for r in records]),
            "candidate": side_columns(self.schema.candidate, [r["candidate"] for r in records]),
            "weight": np.array([r.get("weight", 1.0) for r in records], dtype=np.float32),
        }
        if self.negatives:
            negatives = [r.get("negatives", ()) for r in records]
            out["negatives"], out["negative_mask"] = negative_columns(self.schema.candidate, negatives)
        if self.candidate_key is not None:
            keys = [self.candidate_key(r["candidate"]) for r in records]
            out["candidate_key"] = np.array(keys, dtype=object).reshape(len(records))
        return out

    def __call__(self) -> Iterator[dict[str, Any]]:
        epoch = next(self._epochs)
        rng = np.random.default_rng(None if self.seed is None else [self.seed, epoch])
        payloads = _shuffled(self._payloads(), self.shuffle_buffer, rng)
        if self.shard is not None:
            payloads = _shard_blocks(payloads, *self.shard)
        parse = self._parse
        while True:
            with gc_paused():
                chunk = [
                    parse(loc, payload) for loc, payload in itertools.islice(payloads, self.chunk_records)
                ]
                columns = self.columns(chunk) if chunk else None
            if columns is None:
                return
            yield columns


# TFRecord goes through `native_dataset` (tf.data only); False (or TFRS_TWOTOWER_PYTHON_INPUT=1 in the
# environment) forces the Python generator, for benchmarks and parity tests.
NATIVE_TFRECORD = True


def native_enabled(file_format: str) -> bool:
    """Whether `file_format` is read by the native (tf.data) path: TFRecord, unless forced off."""
    if file_format != "tfrecord" or not NATIVE_TFRECORD:
        return False
    return os.environ.get("TFRS_TWOTOWER_PYTHON_INPUT", "") in ("", "0")


def _use_native(source: _PairBatches) -> bool:
    if not native_enabled(source.file_format) or not source.files:
        return False
    # Fingerprint keys (no candidate Id feature) are computed in Python.
    return source.candidate_key is None or source.candidate_key.feature is not None


def make_dataset(
    paths: str | Sequence[str],
    schema: InputSchema | Any,
    file_format: str = "jsonl",
    subset: str = "train",
    eval_split: float = 0.2,
    batch_size: int = 100,
    shuffle_buffer: int = 10000,
    seed: int | None = None,
    skip: Iterable[Location | tuple[str, int]] = (),
    cache: bool = False,
    repeat: bool = False,
    drop_remainder: bool = False,
    negatives: bool = False,
    with_keys: bool = False,
    candidate_key_feature: str | None = None,
    allow_extra_features: bool = False,
    shard: tuple[int, int] | None = None,
) -> tf.data.Dataset:
    """A streaming dataset of model-input batches of pair records.

    Args:
      paths: a path spec (file, directory, glob, comma-separated list) or a list of them.
      schema: the input schema.
      file_format: "jsonl" or "tfrecord".
      subset: "train", "eval" (the split of `split.py`, as in `scan`) or "all".
      eval_split: the eval fraction, in [0, 1]; must equal the scan's.
      batch_size: records per batch.
      shuffle_buffer: records in the shuffle buffer; 0 or 1: file order (interleaved).
      seed: makes the order reproducible (an int >= 0); None: random.
      skip: `(file, index)` pairs or `Location`s to leave out, normally `scan(...).skip`.
      cache: keep the subset's raw records in memory after the first complete pass (no file reads after).
      repeat: repeat forever (each epoch shuffled anew).
      drop_remainder: drop each epoch's last, smaller batch.
      negatives: add `negatives` and `negative_mask` (the records' explicit negatives).
      with_keys: add `candidate_key`, the positives' corpus keys.
      candidate_key_feature: the Id feature giving the keys, as in `scan` (see `CandidateKey`).
      allow_extra_features: ignore unknown features (must match the scan's setting).
      shard: `(index, count)`: this input pipeline's part of a `count`-way record sharding. The records
        keep the unsharded order (same seed) and are grouped in global batches of `count * batch_size`;
        shard `index` keeps block `index` of each, so shard i's batch b is rows `[i*B, (i+1)*B)` of the
        unsharded global batch b. Each pass drops its incomplete last global batch, so every shard has
        the same number of batches. Only the kept records are parsed.

    Returns:
      A `tf.data.Dataset` of batches: `{"query": {name: tensor}, "candidate": {name: tensor}}` in the
      model-input format of docs/architecture.md (plus `weight`, `negatives`, `candidate_key` on request).

    Example:
    >>> import json, os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "pairs.jsonl")
    >>> with open(path, "w") as f:
    ...     f.writelines(json.dumps({"query": {"user": f"u{i}"}, "candidate": {"item": f"i{i}"}}) + "\\n"
    ...                  for i in range(5))
    >>> schema = {"query": {"user": {"feature_type": "Id", "config": {"num_buckets": 10}}},
    ...           "candidate": {"item": {"feature_type": "Id", "config": {"num_buckets": 10}}}}
    >>> batch = next(iter(make_dataset(path, schema, subset="all", batch_size=4, seed=0)))
    >>> batch["query"]["user"].shape, batch["candidate"]["item"].dtype.name
    (TensorShape([4]), 'string')
    """
    schema = load_schema(schema)
    if subset not in SUBSETS:
        raise ValueError(
            f"The `subset` parameter must be one of {', '.join(SUBSETS)}. Got {subset!r} instead."
        )
    batch_size = _check_int("batch_size", batch_size, 1)
    if seed is not None:
        seed = _check_int("seed", seed, 0)
    if shard is not None:
        if not (isinstance(shard, (tuple, list)) and len(shard) == 2):
            raise ValueError(f"The `shard` parameter must be a pair (index, count). Got {shard!r} instead.")
        count = _check_int("shard count", shard[1], 1)
        index = _check_int("shard index", shard[0], 0)
        if index >= count:
            raise ValueError(f"The `shard` index must be in [0, {count}). Got {index} instead.")
        shard = (index, count, batch_size)
    source = _PairBatches(
        files=resolve_paths(paths),
        parser=RecordParser(schema, allow_extra_features),
        file_format=check_file_format(file_format),
        subset=subset,
        eval_split=check_eval_split(eval_split),
        skip=_skip_by_file(skip),
        shuffle_buffer=_check_int("shuffle_buffer", shuffle_buffer, 0),
        seed=seed,
        cache=bool(cache),
        negatives=bool(negatives),
        chunk_records=batch_size * max(1, _CHUNK_RECORDS // batch_size),
        candidate_key=CandidateKey(schema, candidate_key_feature) if with_keys else None,
        shard=shard,
    )
    if _use_native(source):
        from tfrs_twotower.data.native_dataset import native_pair_dataset

        return native_pair_dataset(source, batch_size, bool(drop_remainder), bool(repeat))
    ds = tf.data.Dataset.from_generator(source, output_signature=source.signature())
    # Chunks hold a whole number of batches (all but the last), so rebatch only slices them.
    ds = ds.rebatch(batch_size, drop_remainder=bool(drop_remainder))
    if repeat:
        ds = ds.repeat()
    return ds.prefetch(tf.data.AUTOTUNE)


def make_candidate_dataset(
    corpus: Corpus, schema: InputSchema | Any, batch_size: int = 1024
) -> tuple[tf.data.Dataset, list[str]]:
    """Batches of the corpus' candidates, `{name: tensor}` in the model-input format, and their keys.

    The corpus is in memory (its scan read the files: TFRecord natively, see `native_scan`), so no file
    is read here; the batches are padded from the candidates as training batches are.

    Args:
      corpus: the candidate corpus (`scan(...).corpus` or `scan_candidates(...).corpus`).
      schema: the input schema.
      batch_size: candidates per batch.

    Returns:
      `(dataset, keys)`: the batches in corpus order, and the keys in the same order.

    Example:
    >>> from tfrs_twotower.data import scan
    >>> result = scan("sample/train.jsonl", "sample/schema.json")  # doctest: +SKIP
    >>> corpus_ds, keys = make_candidate_dataset(result.corpus, "sample/schema.json")  # doctest: +SKIP
    >>> embeddings = np.concatenate([candidate_tower(batch) for batch in corpus_ds])  # doctest: +SKIP
    """
    schema = load_schema(schema)
    batch_size = _check_int("batch_size", batch_size, 1)
    candidates = list(corpus.candidates)

    def generate() -> Iterator[dict[str, np.ndarray]]:
        for start in range(0, len(candidates), batch_size):
            yield side_columns(schema.candidate, candidates[start : start + batch_size])

    ds = tf.data.Dataset.from_generator(generate, output_signature=side_signature(schema.candidate))
    return ds.prefetch(tf.data.AUTOTUNE), list(corpus.keys)
