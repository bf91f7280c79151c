"""The native TFRecord path (`native_dataset`, `native_parse`) gives the Python path's batches."""

import numpy as np
import pytest
import tensorflow as tf

from tests.data.conftest import candidate, pair
from tfrs_twotower.data import dataset as dataset_lib
from tfrs_twotower.data import make_dataset, write_tfrecord
from tfrs_twotower.data.native_dataset import eval_flags
from tfrs_twotower.data.split import eval_mask


def _all(ds):
    return [tf.nest.map_structure(lambda t: t.numpy(), b) for b in ds]


def _both(monkeypatch, *args, **kwargs):
    native = _all(make_dataset(*args, **kwargs))
    monkeypatch.setattr(dataset_lib, "NATIVE_TFRECORD", False)
    python = _all(make_dataset(*args, **kwargs))
    monkeypatch.setattr(dataset_lib, "NATIVE_TFRECORD", True)
    return native, python


def _assert_equal(a, b):
    assert len(a) == len(b) and len(a) > 0
    for x, y in zip(a, b, strict=True):
        tf.nest.assert_same_structure(x, y)
        for u, v in zip(tf.nest.flatten(x), tf.nest.flatten(y), strict=True):
            assert u.dtype == v.dtype and u.shape == v.shape, (u, v)
            np.testing.assert_array_equal(u, v)


def _mixed_records(n):
    out = []
    for i in range(n):
        kw = {}
        if i % 3 == 0:
            kw["weight"] = 0.25 * (i % 5)
        if i % 4 == 1:
            kw["negatives"] = [candidate(i + j + 1) for j in range(1 + i % 3)]
        out.append(pair(i, **kw))
    return out


@pytest.mark.parametrize("subset", ["all", "train", "eval"])
def test_same_batches_as_python_path(tmp_path, monkeypatch, schema, subset):
    records = _mixed_records(300)
    paths = []
    for part in range(3):
        path = str(tmp_path / f"part-{part}.tfrecord")
        write_tfrecord(records[part * 100 : (part + 1) * 100], path, schema)
        paths.append(path)
    skip = [(paths[0], 3), (paths[2], 50)]
    native, python = _both(
        monkeypatch,
        paths,
        schema,
        "tfrecord",
        subset=subset,
        eval_split=0.3,
        batch_size=32,
        shuffle_buffer=0,
        skip=skip,
        negatives=True,
        with_keys=True,
    )
    _assert_equal(native, python)
    assert "negatives" in native[0] and native[0]["candidate_key"].dtype == object


def test_eval_flags_match_split(tmp_path):
    indices = np.arange(5000)
    expected = eval_mask("gs://b/part-7.tfrecord", indices, 0.37)
    got = eval_flags("/x/part-7.jsonl", tf.constant(indices), 0.37).numpy()
    np.testing.assert_array_equal(got, expected)


def test_shards_split_each_global_batch(tmp_path, schema):
    path = str(tmp_path / "a.tfrecord")
    write_tfrecord(_mixed_records(100), path, schema)
    args = dict(subset="all", shuffle_buffer=50, seed=4, negatives=True)
    whole = [
        b["query"]["user_id"].tolist()
        for b in _all(make_dataset(path, schema, "tfrecord", batch_size=20, **args))
    ]
    shards = [
        [
            b["query"]["user_id"].tolist()
            for b in _all(make_dataset(path, schema, "tfrecord", batch_size=10, shard=(i, 2), **args))
        ]
        for i in range(2)
    ]
    assert len(shards[0]) == len(shards[1]) == 5
    assert [a + b for a, b in zip(*shards, strict=True)] == whole


def test_cache_and_repeat_reshuffle(tmp_path, schema):
    path = str(tmp_path / "a.tfrecord")
    write_tfrecord(_mixed_records(64), path, schema)
    ds = make_dataset(
        path, schema, "tfrecord", subset="all", batch_size=64, seed=1, cache=True, repeat=True, negatives=True
    )
    first, second = [b["query"]["user_id"].numpy().tolist() for b in ds.take(2)]
    assert sorted(first) == sorted(second) and first != second


def test_fingerprint_keys_same_as_python_path(tmp_path, monkeypatch):
    """Without a candidate Id feature, `candidate_key` is the fingerprint `CandidateKey` gives, natively
    parsed; with explicit negatives and weights, several files, a skipped record."""
    from tests.data.conftest import SCHEMA

    schema = {
        "query": SCHEMA["query"],
        "candidate": {k: v for k, v in SCHEMA["candidate"].items() if k != "movie_id"},
    }
    records = []
    for r in _mixed_records(90):
        r["candidate"].pop("movie_id")
        for n in r.get("negatives", ()):
            n.pop("movie_id")
        records.append(r)
    paths = [str(tmp_path / "a.tfrecord"), str(tmp_path / "b.tfrecord")]
    write_tfrecord(records[:40], paths[0], schema)
    write_tfrecord(records[40:], paths[1], schema)
    calls = []
    original = dataset_lib._PairBatches.__call__
    monkeypatch.setattr(dataset_lib._PairBatches, "__call__", lambda self: calls.append(1) or original(self))
    args = dict(subset="eval", eval_split=0.4, batch_size=8, shuffle_buffer=0, skip=[(paths[1], 5)])
    native, python = _both(monkeypatch, paths, schema, "tfrecord", negatives=True, with_keys=True, **args)
    assert len(calls) == 1  # the Python path's generator only
    _assert_equal(native, python)
    keys = [k for b in native for k in b["candidate_key"]]
    assert len(keys) > 10 and all(len(k) == 16 for k in keys) and len(set(keys)) > 3
