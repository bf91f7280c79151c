"""Native and Python TFRecord paths agree: scans (every field), bad-record verdicts and locations, corrupt
and gzip files."""

import gzip
import math
import re

import numpy as np
import pytest
import tensorflow as tf

from tests.data.conftest import SCHEMA, candidate, pair
from tests.data.test_native_dataset import _mixed_records
from tests.data.test_tfrecord import _bytes, _changed, _floats, _good_features, _ints, _write_examples
from tfrs_twotower.data import dataset as dataset_lib
from tfrs_twotower.data import make_candidate_dataset, make_dataset, scan, scan_candidates, write_tfrecord
from tfrs_twotower.data.records import Location, RecordParser
from tfrs_twotower.data.scan import TooManyBadRecordsError
from tfrs_twotower.data.tfrecord import record_to_example
from tfrs_twotower.schema import load_schema


def _python(monkeypatch, fn, *args, **kwargs):
    monkeypatch.setattr(dataset_lib, "NATIVE_TFRECORD", False)
    try:
        return fn(*args, **kwargs)
    finally:
        monkeypatch.setattr(dataset_lib, "NATIVE_TFRECORD", True)


def _outcome(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - the verdicts are compared
        return f"{type(e).__name__}: {e}"


def _assert_same_scan(a, b):
    assert (a.records_read, a.train_count, a.eval_count) == (b.records_read, b.train_count, b.eval_count)
    assert [str(e) for e in a.rejected] == [str(e) for e in b.rejected]
    assert a.corpus.keys == b.corpus.keys and a.corpus.candidates == b.corpus.candidates
    assert a.corpus.conflicts == b.corpus.conflicts
    assert (a.weighted_count, a.negatives_count, a.max_negatives) == (
        b.weighted_count,
        b.negatives_count,
        b.max_negatives,
    )
    assert a.train_positive_counts == b.train_positive_counts
    assert a.eval_positive_counts == b.eval_positive_counts
    for side, stats in b.numeric_stats.items():
        for name, s in stats.items():
            t = a.numeric_stats[side][name]
            assert t.count == s.count and math.isclose(t.mean, s.mean, rel_tol=1e-12, abs_tol=1e-12)
            assert math.isclose(t.variance, s.variance, rel_tol=1e-9, abs_tol=1e-12)
    assert {k: dict(v.counts) for k, v in a.id_counts["query"].items()} == {
        k: dict(v.counts) for k, v in b.id_counts["query"].items()
    }
    assert {q: sorted(a.seen.rows_for([q])[0]) for q in a.seen._rows} == {
        q: sorted(b.seen.rows_for([q])[0]) for q in b.seen._rows
    }


def test_scan_same_as_python(tmp_path, monkeypatch, schema):
    records = _mixed_records(500)
    records[7]["candidate"] = candidate(0, title="another title")  # a key reused with other features
    paths = [str(tmp_path / "a.tfrecord"), str(tmp_path / "b.tfrecord")]
    write_tfrecord(records[:260], paths[0], schema)
    write_tfrecord(records[260:], paths[1], schema)
    native = scan(paths, schema, "tfrecord", eval_split=0.3)
    python = _python(monkeypatch, scan, paths, schema, "tfrecord", eval_split=0.3)
    assert native.corpus.conflicts > 0 and native.max_negatives == 3 and native.weighted_count > 0
    _assert_same_scan(native, python)


BAD_FEATURES = [
    {"query_user_id": _bytes("a", "b")},
    {"query_user_id": _bytes("")},
    {"candidate_emb": _floats(1, 2)},
    {"candidate_emb": _floats(1, float("nan"), 2)},
    {"candidate_genres": _floats(1.0)},
    {"query_age": _bytes("3")},
    {"query_age": _floats(float("inf"))},
    {"candidate_title": None},
    {"candidate_genres": None},
    {"query_extra": _bytes("x")},
    {"unknown_top": _bytes("x")},
    {"weight": _floats(1, 2)},
    {"weight": _floats(-1.0)},
    {"weight": _bytes("1")},
    {"weight": _floats()},
    {"query_query_text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"\xff\xfe"]))},
    {"negative_movie_id": _bytes("n")},
    {
        "negative_movie_id": _bytes("n1", "n2"),
        "negative_genres": _bytes("a"),
        "negative_genres.lengths": _ints(1),
        "negative_title": _bytes("t", "u"),
        "negative_title.lengths": _ints(1, 1),
        "negative_year": _floats(),
        "negative_year.lengths": _ints(0, 0),
        "negative_emb": _floats(*[0.0] * 6),
    },
    {
        "negative_movie_id": _bytes("n1"),
        "negative_genres": _bytes("a"),
        "negative_genres.lengths": _ints(2),
        "negative_title": _bytes("t"),
        "negative_title.lengths": _ints(1),
        "negative_year": _floats(),
        "negative_year.lengths": _ints(0),
        "negative_emb": _floats(0.0, 0.0, 0.0),
    },
    {"query_liked": tf.train.Feature()},  # no list at all: valid (empty) for both paths
    {"query_age": _ints(41)},  # int64 numbers: valid
]


def _bad_file(tmp_path, change):
    bad = _changed(_good_features(), change)
    path = str(tmp_path / "train.tfrecord")
    _write_examples(path, [_good_features()] * 3 + [bad] + [_good_features()] * 2)
    return path


IDS = [",".join(c)[:40] for c in BAD_FEATURES]


@pytest.mark.parametrize("change", BAD_FEATURES, ids=IDS)
@pytest.mark.parametrize("max_bad_records", [0, 1])
def test_scan_verdicts_and_locations_match(tmp_path, monkeypatch, schema, change, max_bad_records):
    path = _bad_file(tmp_path, change)
    kwargs = dict(eval_split=0.0, max_bad_records=max_bad_records)
    native = _outcome(scan, path, schema, "tfrecord", **kwargs)
    python = _outcome(_python, monkeypatch, scan, path, schema, "tfrecord", **kwargs)
    if isinstance(python, str):
        assert native == python and "record 4" in python
    else:
        _assert_same_scan(native, python)


def _first_error(text):
    found = re.search(r"(BadRecordError|ValueError): ([^\n]*record 4: [^\n]*)", text)
    return found and found.group(2)


@pytest.mark.parametrize("change", BAD_FEATURES, ids=IDS)
def test_dataset_verdicts_and_locations_match(tmp_path, monkeypatch, schema, change):
    """Unscanned (not in `skip`), the dataset fails on the record with the Python path's message."""
    path = _bad_file(tmp_path, change)
    kwargs = dict(subset="all", batch_size=4, shuffle_buffer=0, negatives=True)

    def weights():
        return [b["weight"].numpy().tolist() for b in make_dataset(path, schema, "tfrecord", **kwargs)]

    native, python = _outcome(weights), _outcome(_python, monkeypatch, weights)
    if isinstance(python, str):
        assert _first_error(python), python
        if "Data types don't match" in native:  # a list of the wrong kind fails in parse_example, located
            key = next(iter(change))
            assert re.search(
                rf"train\.tfrecord record 4, Key: {re.escape(key)}, Index: \d+\.  Data types", native
            )
        else:
            assert _first_error(native) == _first_error(python), native
    else:
        assert native == python == [[1.0] * 4, [1.0] * 2]


def _corrupt(path, out):
    data = bytearray(open(path, "rb").read())
    for i in range(64):
        data[len(data) // 2 + i] ^= 0xFF
    open(out, "wb").write(bytes(data))
    return out


def test_corrupt_and_gzip_files(tmp_path, monkeypatch, schema):
    good = str(tmp_path / "good.tfrecord")
    write_tfrecord([pair(i) for i in range(40)], good, schema)
    bad = _corrupt(good, str(tmp_path / "bad.tfrecord"))
    zipped = str(tmp_path / "z.tfrecord.gz")
    with open(good, "rb") as f, gzip.open(zipped, "wb") as z:
        z.write(f.read())
    with pytest.raises(TooManyBadRecordsError, match=r"bad\.tfrecord record \d+: corrupted TFRecord data"):
        scan(bad, schema, "tfrecord", eval_split=0.0)
    paths = [bad, zipped]
    native = scan(paths, schema, "tfrecord", eval_split=0.25, max_bad_records=1)
    python = _python(monkeypatch, scan, paths, schema, "tfrecord", eval_split=0.25, max_bad_records=1)
    _assert_same_scan(native, python)
    args = dict(subset="train", eval_split=0.25, skip=native.skip, batch_size=8, shuffle_buffer=0)
    got = [u for b in make_dataset(paths, schema, "tfrecord", **args) for u in b["query"]["user_id"].numpy()]
    want = [
        u
        for b in _python(monkeypatch, make_dataset, paths, schema, "tfrecord", **args)
        for u in b["query"]["user_id"].numpy()
    ]
    assert got == want and len(got) == native.train_count


def _candidate_features(i, schema):
    doc = candidate(i, genres=["a", "b", "c"][: i % 4], title=f"Title {i % 11}")
    doc = {k: v for k, v in doc.items() if k in {s.name for s in schema.candidate}}
    example = record_to_example(RecordParser(schema).candidate(doc, Location("<t>", i)), schema, "candidates")
    return dict(example.features.feature)


NO_ID_SCHEMA = {
    "query": SCHEMA["query"],
    "candidate": {k: v for k, v in SCHEMA["candidate"].items() if k != "movie_id"},
}


@pytest.mark.parametrize("keyed", ["movie_id", "fingerprint"])
def test_scan_candidates_and_corpus_batches_same_as_python(tmp_path, monkeypatch, keyed):
    """Several files (one gzip), repeated keys with other features, a row only Python can read (an empty
    `Feature`), bad rows skipped: the same corpus, rejections and corpus batches on both paths."""
    schema = load_schema(SCHEMA if keyed == "movie_id" else NO_ID_SCHEMA)
    features = [_candidate_features(i, schema) for i in range(120)]
    features[5]["candidate_genres"] = tf.train.Feature()  # valid, not canonical: Python parses the batch
    features[70]["candidate_emb"] = _floats(1, 2)  # bad: wrong length
    features[90]["candidate_year"] = _bytes("x")  # bad: parse_example refuses its batch
    paths = [str(tmp_path / "a.tfrecord"), str(tmp_path / "b.tfrecord"), str(tmp_path / "c.tfrecord.gz")]
    _write_examples(paths[0], features[:50])
    _write_examples(paths[1], features[50:100])
    _write_examples(str(tmp_path / "plain"), features[100:])
    with open(str(tmp_path / "plain"), "rb") as f, gzip.open(paths[2], "wb") as z:
        z.write(f.read())
    args = (paths, schema, "tfrecord")
    native = scan_candidates(*args, max_bad_records=2)
    python = _python(monkeypatch, scan_candidates, *args, max_bad_records=2)
    assert native.records_read == python.records_read == 120
    assert [str(e) for e in native.rejected] == [str(e) for e in python.rejected]
    assert [e.location.index for e in native.rejected] == [20, 40]
    assert native.corpus.keys == python.corpus.keys and native.corpus.candidates == python.corpus.candidates
    assert native.corpus.conflicts == python.corpus.conflicts
    assert len(native.corpus) < 118 if keyed == "movie_id" else native.corpus.conflicts == 0
    if keyed == "movie_id":
        assert native.corpus.conflicts > 0
    got, keys = make_candidate_dataset(native.corpus, schema, batch_size=16)
    want, want_keys = _python(monkeypatch, make_candidate_dataset, python.corpus, schema, batch_size=16)
    assert keys == want_keys
    for a, b in zip(got, want, strict=True):
        for name in b:
            np.testing.assert_array_equal(a[name].numpy(), b[name].numpy())


@pytest.mark.parametrize("max_bad_records", [0, 1])
def test_scan_candidates_verdicts_match(tmp_path, monkeypatch, schema, max_bad_records):
    for change in [
        {"candidate_movie_id": _bytes("")},
        {"query_user_id": _bytes("u")},
        {"candidate_title": None},
    ]:
        features = [_candidate_features(i, schema) for i in range(6)]
        _changed(features[3], change)
        path = str(tmp_path / "c.tfrecord")
        _write_examples(path, features)
        kwargs = dict(max_bad_records=max_bad_records)
        native = _outcome(scan_candidates, path, schema, "tfrecord", **kwargs)
        python = _outcome(_python, monkeypatch, scan_candidates, path, schema, "tfrecord", **kwargs)
        if isinstance(python, str):
            assert native == python and "c.tfrecord record 4: " in python
        else:
            assert [str(e) for e in native.rejected] == [str(e) for e in python.rejected]
            assert native.corpus.candidates == python.corpus.candidates
