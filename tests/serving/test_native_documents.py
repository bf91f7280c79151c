"""TFRecord documents read by `tf.data` (`native_documents`) give the Python reader's batches, verdicts
and locations; `encode` gives the same outputs on both paths."""

import gzip
import re

import numpy as np
import pytest
import tensorflow as tf

from tests.data.conftest import SAMPLE_SCHEMA, pair
from tests.data.test_native_parity import _corrupt, _python
from tests.data.test_tfrecord import _bytes, _changed, _floats, _ints, _write_examples
from tfrs_twotower.data.batching import side_columns
from tfrs_twotower.data.records import Location, RecordParser
from tfrs_twotower.data.tfrecord import record_to_example
from tfrs_twotower.serving import encode_documents
from tfrs_twotower.serving.documents import read_documents
from tfrs_twotower.serving.instances import columns_to_tensors
from tfrs_twotower.serving.native_documents import NativeBatch, document_batches

PARSER = RecordParser(SAMPLE_SCHEMA)


def _doc_features(side, i, **overrides):
    """The `<side>_<name>` features of document `i` of the data tests' schema (all five types)."""
    record = pair(i)
    record[side].update(overrides)
    example = record_to_example(PARSER.pair(record, Location("<t>", i)), SAMPLE_SCHEMA)
    return {k: v for k, v in example.features.feature.items() if k.startswith(f"{side}_")}


def _write(path, side, indices, gz=False):
    _write_examples(path, [_doc_features(side, i) for i in indices])
    if gz:
        data = open(path, "rb").read()
        with gzip.open(path, "wb") as f:
            f.write(data)
    return str(path)


def _python_batches(paths, side, batch_size):
    docs = list(read_documents(paths, PARSER, side, "tfrecord"))
    return [docs[i : i + batch_size] for i in range(0, len(docs), batch_size)]


def _tensors(side, docs):
    features = [d.features for d in docs]
    return columns_to_tensors(SAMPLE_SCHEMA, side, side_columns(SAMPLE_SCHEMA.side(side), features))


@pytest.mark.parametrize("side", ["query", "candidate"])
def test_same_batches_as_python_reader(tmp_path, side):
    paths = [
        _write(tmp_path / "a.tfrecord", side, range(0, 9)),
        _write(tmp_path / "b.tfrecord.gz", side, range(9, 25), gz=True),
        _write(tmp_path / "c.tfrecord", side, range(25, 30)),
    ]
    native = list(document_batches(paths, PARSER, side, 7, with_rows=True))
    python = _python_batches(paths, side, 7)
    assert [len(b) for b in native] == [7, 7, 7, 7, 2] and len(native) == len(python)
    for got, docs in zip(native, python, strict=True):
        assert isinstance(got, NativeBatch)
        assert got.rows == [d.features for d in docs]
        want = _tensors(side, docs)
        assert sorted(got.tensors) == sorted(want)
        for name, tensor in want.items():
            assert got.tensors[name].dtype == tensor.dtype and got.tensors[name].shape == tensor.shape, name
            np.testing.assert_array_equal(got.tensors[name].numpy(), tensor.numpy())


def test_unusual_encoding_goes_through_python_with_same_batch(tmp_path):
    features = [_doc_features("query", i) for i in range(5)]
    features[2]["query_liked"] = tf.train.Feature()  # no list at all: valid, but not canonical
    features[3]["query_age"] = _ints(41)  # int64 numbers in a float file: parse_example refuses the batch
    path = str(tmp_path / "q.tfrecord")
    _write_examples(path, features)
    for size in (2, 5):
        native = list(document_batches(path, PARSER, "query", size))
        python = _python_batches(path, "query", size)
        assert any(isinstance(b, list) for b in native)
        for got, docs in zip(native, python, strict=True):
            got_docs = got if isinstance(got, list) else None
            if got_docs is not None:
                assert got_docs == docs
            else:
                for name, tensor in _tensors("query", docs).items():
                    np.testing.assert_array_equal(got.tensors[name].numpy(), tensor.numpy())


BAD_DOCUMENTS = [
    {"candidate_movie_id": _bytes("a", "b")},
    {"candidate_movie_id": _bytes("")},
    {"candidate_emb": _floats(1, 2)},
    {"candidate_emb": _floats(1, float("nan"), 2)},
    {"candidate_year": _floats(float("inf"))},
    {"candidate_genres": _floats(1.0)},
    {"candidate_year": _bytes("3")},
    {"candidate_title": None},
    {"candidate_extra": _bytes("x")},
    {"query_user_id": _bytes("u")},
    {"weight": _floats(1.0)},
    {"candidate_title": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"\xff\xfe"]))},
]


def _outcome(fn):
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - the verdicts are compared
        return f"{type(e).__name__}: {e}"


@pytest.mark.parametrize("change", BAD_DOCUMENTS, ids=[",".join(c) for c in BAD_DOCUMENTS])
def test_bad_documents_same_verdict_and_location(tmp_path, change):
    features = [_doc_features("candidate", i) for i in range(6)]
    _changed(features[3], change)
    path = str(tmp_path / "c.tfrecord")
    _write_examples(path, features)
    native = _outcome(lambda: [len(b) for b in document_batches(path, PARSER, "candidate", 4)])
    python = _outcome(lambda: [len(b) for b in _python_batches(path, "candidate", 4)])
    assert native == python and re.match(r"BadRecordError: \S*c\.tfrecord record 4: ", python), python


def test_corrupt_file_same_verdict(tmp_path):
    good = _write(tmp_path / "good.tfrecord", "candidate", range(200))
    bad = _corrupt(good, str(tmp_path / "bad.tfrecord"))
    paths = [good, bad]
    native = _outcome(lambda: [len(b) for b in document_batches(paths, PARSER, "candidate", 64)])
    python = _outcome(lambda: [len(b) for b in _python_batches(paths, "candidate", 64)])
    assert native == python and re.match(r"BadRecordError: \S*bad\.tfrecord record \d+: corrupted", python)


def _outputs(prefix):
    return open(f"{prefix}.jsonl").read(), np.load(f"{prefix}.npy"), open(f"{prefix}.ids.txt").read()


@pytest.mark.parametrize("side", ["query", "candidate"])
def test_encode_same_outputs_on_both_paths(job_dir, sample, query_docs, tmp_path, monkeypatch, side):
    from tests.serving.test_encode import write_query_tfrecord
    from tfrs_twotower.data import write_tfrecord
    from tfrs_twotower.schema import load_schema

    if side == "query":
        path = write_query_tfrecord(tmp_path / "q.tfrecord", query_docs[:50])
    else:
        import json

        docs = [json.loads(line) for line in open(sample.candidates_jsonl)]
        path = str(tmp_path / "c.tfrecord.gz")
        write_tfrecord(docs, path, load_schema(f"{job_dir}/schema.json"), kind="candidates")
    args = dict(file_format="tfrecord", batch_size=16)
    native = encode_documents(job_dir, side, path, str(tmp_path / "n" / "out"), **args)
    python = _python(monkeypatch, encode_documents, job_dir, side, path, str(tmp_path / "p" / "out"), **args)
    assert native.num_documents == python.num_documents > 16
    got, want = _outputs(tmp_path / "n" / "out"), _outputs(tmp_path / "p" / "out")
    assert got[0] == want[0] and got[2] == want[2]
    np.testing.assert_array_equal(got[1], want[1])
