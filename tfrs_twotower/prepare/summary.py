"""The files `prepare` writes beside the shards, and the checks that end a `prepare` run.

`output_dir` after a run:

- `train-*.tfrecord`, `eval-*.tfrecord`: the validated records of each split (the project's TFRecord
  layout, `data/tfrecord.py`); `candidates-*.tfrecord`: the corpus, one document per distinct candidate,
  in the scan's first-seen order;
- `stats.json`: counts, numeric mean/variance, candidate positive counts (logQ), Id value counts, shards;
- `corpus_keys.json`: the corpus keys in order; `seen.npz`: each query id's training positives as corpus
  rows (seen-item exclusion); `rejected-*.jsonl`: the bad records (file, index, line, field, reason);
- `manifest.json`: written last, only by a successful run: version, schema, split, counts.

Example:
>>> stats = read_json("prepared/stats.json")  # doctest: +SKIP
>>> stats["counts"]["train"], stats["corpus"]["size"]  # doctest: +SKIP
(80000, 1682)
"""

from __future__ import annotations

import io
import json
import posixpath
import time
from typing import Any

import numpy as np
import tensorflow as tf

from tfrs_twotower.data.scan import TooManyBadRecordsError
from tfrs_twotower.data.tfrecord import record_to_example
from tfrs_twotower.feature_types import feature_type_of
from tfrs_twotower.prepare.files import PrepareSettings, ShardWriter
from tfrs_twotower.prepare.stats import PartialStats, counter_json

FORMAT = "tfrs-twotower-prepared"
VERSION = 1
MANIFEST, STATS, CORPUS_KEYS, SEEN = "manifest.json", "stats.json", "corpus_keys.json", "seen.npz"


def read_json(path: str) -> Any:
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def write_json(path: str, value: Any) -> None:
    with tf.io.gfile.GFile(path + ".tmp", "w") as f:
        json.dump(value, f, ensure_ascii=False)
    tf.io.gfile.rename(path + ".tmp", path, overwrite=True)


def _counts(stats: PartialStats, kind: str) -> dict[str, Any]:
    out = {
        "files": [stats.files[i] for i in sorted(stats.files)],
        "records_read": stats.records_read,
        "rejected": stats.rejected_count,
        "rejected_files": sorted(stats.rejected_files),
        "first_errors": [str(e) for _, _, e in stats.first_errors],
    }
    if kind == "pairs":
        out.update(
            train=stats.train_count,
            eval=stats.eval_count,
            weighted=stats.weighted_count,
            with_negatives=stats.negatives_count,
            max_negatives=stats.max_negatives,
        )
    else:
        out.update(documents=stats.records_read - stats.rejected_count)
    return out


def write_summary(pairs: PartialStats, candidates: PartialStats | None, settings: PrepareSettings) -> None:
    """The Beam pipeline's last step: the corpus shards, `corpus_keys.json`, `seen.npz`, `stats.json`."""
    schema = settings.input_schema()
    out = settings.output_dir
    corpus = (candidates if candidates is not None else pairs).corpus_order()
    writer = ShardWriter(out, "candidates", 0, settings.records_per_shard)
    for _, features in corpus:
        writer.write(record_to_example(features, schema, "candidates").SerializeToString())
    keys = [key for key, _ in corpus]
    write_json(posixpath.join(out, CORPUS_KEYS), keys)
    seen_feature = next((s.name for s in schema.query if feature_type_of(s).identifies), None)
    if seen_feature is not None:
        _write_seen(out, sorted(pairs.seen_files), {key: i for i, key in enumerate(keys)})
    numeric = {
        side: {
            name: {"count": s.count, "mean": s.mean, "variance": s.variance} for name, s in by_name.items()
        }
        for side, by_name in pairs.numeric_result().items()
    }
    summary = {
        "training": _counts(pairs, "pairs"),
        "candidates": _counts(candidates, "candidates") if candidates is not None else None,
        "corpus": {"size": len(keys), "conflicts": (candidates or pairs).conflicts},
        "numeric_stats": numeric,
        "train_positive_counts": dict(pairs.train_positive_counts),
        "eval_positive_counts": dict(pairs.eval_positive_counts),
        "id_counts": {
            side: {name: counter_json(c) for name, c in by_name.items()}
            for side, by_name in pairs.id_counters().items()
        },
        "seen_feature": seen_feature,
        "shards": {
            "train": sorted(pairs.shards.get("train", [])),
            "eval": sorted(pairs.shards.get("eval", [])),
            "candidates": writer.close(),
        },
    }
    write_json(posixpath.join(out, STATS), summary)


def _write_seen(out: str, files: list[str], index_of: dict[str, int]) -> None:
    """`seen.npz`: `query_ids` [Q], `offsets` [Q+1] and `rows` (int32 corpus rows, sorted per query id)."""
    rows_of: dict[str, set[int]] = {}
    for name in files:
        with tf.io.gfile.GFile(posixpath.join(out, name)) as f:
            for line in f:
                query_id, keys = json.loads(line)
                rows_of.setdefault(query_id, set()).update(index_of[k] for k in keys if k in index_of)
    query_ids = sorted(rows_of)
    sizes = np.array([len(rows_of[q]) for q in query_ids], np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    rows = np.fromiter((r for q in query_ids for r in sorted(rows_of[q])), np.int32, int(offsets[-1]))
    buffer = io.BytesIO()  # numpy's zip writer seeks back, which a gfile cannot
    np.savez(buffer, query_ids=np.array(query_ids, dtype=str), offsets=offsets, rows=rows)
    with tf.io.gfile.GFile(posixpath.join(out, SEEN), "wb") as f:
        f.write(buffer.getvalue())
    for name in files:
        tf.io.gfile.remove(posixpath.join(out, name))


class TooManyPreparedBadRecordsError(TooManyBadRecordsError):
    """More bad records than `--max_bad_records` in a `prepare` run; names the dead-letter files."""

    def __init__(self, first_errors: list[str], count: int, max_bad_records: int, files: list[str]):
        self.errors, self.count, self.max_bad_records = list(first_errors), count, max_bad_records
        shown = "\n".join(f"  - {e}" for e in first_errors)
        more = count - len(first_errors)
        Exception.__init__(
            self,
            f"{count} bad records, more than max_bad_records={max_bad_records}. The first ones:\n{shown}\n"
            + (f"  ... and {more} more\n" if more > 0 else "")
            + f"All of them, with file, record and reason: {', '.join(files)}. Fix the data (each line names "
            "its file and line or record), or raise --max_bad_records to skip up to that many bad records.",
        )


def finish(settings: PrepareSettings, max_bad_records: int, seconds: float) -> dict[str, Any]:
    """After the pipeline: fails past `max_bad_records` (no manifest then), else writes `manifest.json`."""
    out = settings.output_dir
    stats = read_json(posixpath.join(out, STATS))
    parts = [stats["training"]] + ([stats["candidates"]] if stats["candidates"] else [])
    rejected = sum(p["rejected"] for p in parts)
    if rejected > max_bad_records:
        errors = [e for p in parts for e in p["first_errors"]][:10]
        files = [posixpath.join(out, f) for p in parts for f in p["rejected_files"]]
        raise TooManyPreparedBadRecordsError(errors, rejected, max_bad_records, files)
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "schema": settings.schema,
        "input_file_format": settings.file_format,
        "eval_split": settings.eval_split,
        "candidate_key_feature": settings.candidate_key_feature,
        "allow_extra_features": settings.allow_extra_features,
        "has_candidate_file": stats["candidates"] is not None,
        "counts": {
            "records_read": sum(p["records_read"] for p in parts),
            "rejected": rejected,
            "train": stats["training"]["train"],
            "eval": stats["training"]["eval"],
            "corpus": stats["corpus"]["size"],
        },
        "seconds": round(seconds, 3),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_json(posixpath.join(out, MANIFEST), manifest)
    return manifest
