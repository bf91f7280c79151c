import re

import pytest
import tensorflow as tf

from tests.data.conftest import candidate, pair
from tfrs_twotower.data import (
    BadRecordError,
    RecordParser,
    read_jsonl,
    read_tfrecord,
    write_jsonl,
    write_tfrecord,
)
from tfrs_twotower.data.tfrecord import record_to_example


def _write_examples(path, features_list):
    with tf.io.TFRecordWriter(str(path)) as w:
        for features in features_list:
            w.write(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())


def _changed(features, change):
    """`features` (an Example's feature map) with `change` applied in place: a key set to a `Feature`,
    or removed when its value is None."""
    for key, value in change.items():
        if value is None:
            del features[key]
        else:
            features[key] = value
    return features


def _bytes(*v):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[x.encode() for x in v]))


def _floats(*v):
    return tf.train.Feature(float_list=tf.train.FloatList(value=v))


def _ints(*v):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=v))


def test_round_trip_equals_jsonl(tmp_path, schema, records):
    records = records[:10] + [
        pair(10, weight=0.5, negatives=[candidate(3), candidate(4)]),
        pair(11, negatives=[]),
    ]
    write_jsonl(records, str(tmp_path / "a.jsonl"))
    write_tfrecord(records, str(tmp_path / "a.tfrecord"), schema)
    parser = RecordParser(schema)
    from_jsonl = [r for _, r in read_jsonl(str(tmp_path / "a.jsonl"), parser)]
    from_tfrecord = [r for _, r in read_tfrecord(str(tmp_path / "a.tfrecord"), parser)]
    # Empty negatives have no TFRecord form: they read back as no negatives.
    from_jsonl[-1].pop("negatives")
    assert from_tfrecord == from_jsonl  # the values are float32-exact here


def test_example_keys_and_negatives_form(schema):
    record = RecordParser(schema).pair(pair(1, weight=2.0, negatives=[candidate(2), candidate(3)]), None)
    keys = record_to_example(record, schema).features.feature
    assert keys["query_user_id"].bytes_list.value == [b"u1"]
    assert keys["candidate_emb"].float_list.value == [1.0, 0.5, -1.0]
    assert keys["weight"].float_list.value == [2.0]
    assert keys["negative_movie_id"].bytes_list.value == [b"m2", b"m3"]
    assert keys["negative_genres"].bytes_list.value == [b"a", b"b", b"a", b"b", b"c"]
    assert keys["negative_genres.lengths"].int64_list.value == [2, 3]
    assert keys["negative_emb"].float_list.value == [2.0, 0.5, -1.0, 3.0, 0.5, -1.0]
    assert "negative_emb.lengths" not in keys


def _good_features():
    return {
        "query_user_id": _bytes("u"),
        "query_age": _ints(30),
        "query_query_text": _bytes("t"),
        "query_liked": _bytes(),
        "candidate_movie_id": _bytes("m"),
        "candidate_genres": _bytes("a", "b"),
        "candidate_title": _bytes("x"),
        "candidate_year": _floats(),
        "candidate_emb": _floats(1, 2, 3),
    }


def test_int64_numeric_and_empty_features(tmp_path, schema):
    _write_examples(tmp_path / "t.tfrecord", [_good_features()])
    [(_, record)] = read_tfrecord(str(tmp_path / "t.tfrecord"), RecordParser(schema))
    assert (
        record["query"]["age"] == [30.0]
        and record["candidate"]["year"] == []
        and record["query"]["liked"] == []
    )


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"query_user_id": _bytes("a", "b")},
            r"record 2: query\.user_id: expected a non-empty string .*\(Id\)",
        ),
        (
            {"candidate_emb": _floats(1, 2)},
            r"record 2: candidate\.emb: expected a list of exactly 3 .*\(a list of 2\)",
        ),
        (
            {"candidate_genres": _floats(1.0)},
            r"record 2: candidate\.genres: expected a string or a list of strings",
        ),
        ({"query_age": _bytes("3")}, r"record 2: query\.age: expected a finite number"),
        ({"candidate_title": None}, r"record 2: candidate\.title: missing"),
        ({"query_extra": _bytes("x")}, r"record 2: query: unknown feature\(s\) `extra`"),
        ({"weight": _floats(1, 2)}, r"record 2: weight: expected a float_list of one value"),
        ({"negative_movie_id": _bytes("n")}, r"record 2: negative_genres: missing"),
    ],
)
def test_bad_examples_name_file_record_and_feature(tmp_path, schema, change, message):
    bad = _changed(_good_features(), change)
    path = tmp_path / "train.tfrecord"
    _write_examples(path, [_good_features(), bad, _good_features()])
    errors = []
    good = list(read_tfrecord(str(path), RecordParser(schema), on_error=errors.append))
    assert [loc.index for loc, _ in good] == [0, 2]
    assert len(errors) == 1 and str(errors[0]).startswith(f"{path} record 2: ")
    assert re.search(message, str(errors[0])), str(errors[0])


def test_negatives_disagreeing_on_k(tmp_path, schema):
    features = _good_features()
    features.update(
        {
            "negative_movie_id": _bytes("n1", "n2"),
            "negative_genres": _bytes("a"),
            "negative_genres.lengths": _ints(1),
            "negative_title": _bytes("t", "u"),
            "negative_title.lengths": _ints(1, 1),
            "negative_year": _floats(),
            "negative_year.lengths": _ints(0, 0),
            "negative_emb": _floats(*[0.0] * 6),
        }
    )
    _write_examples(tmp_path / "n.tfrecord", [features])
    with pytest.raises(
        BadRecordError,
        match=r"disagree on the number of negatives \(negative_movie_id: 2, negative_genres: 1",
    ):
        list(read_tfrecord(str(tmp_path / "n.tfrecord"), RecordParser(schema)))


def test_not_an_example(tmp_path, schema):
    with tf.io.TFRecordWriter(str(tmp_path / "x.tfrecord")) as w:
        w.write(b"\xff\xff garbage")
    with pytest.raises(BadRecordError, match=r"x\.tfrecord record 1: not a valid tf\.train\.Example"):
        list(read_tfrecord(str(tmp_path / "x.tfrecord"), RecordParser(schema)))


def test_writer_validates(tmp_path, schema):
    with pytest.raises(BadRecordError, match=r"<records> record 2: candidate\.emb"):
        write_tfrecord(
            [pair(0), pair(1, candidate=candidate(1, emb=[1]))], str(tmp_path / "w.tfrecord"), schema
        )


def test_candidate_documents(tmp_path, schema):
    docs = [candidate(i) for i in range(3)]
    write_tfrecord(docs, str(tmp_path / "c.tfrecord"), schema, kind="candidates")
    got = [r for _, r in read_tfrecord(str(tmp_path / "c.tfrecord"), RecordParser(schema), kind="candidates")]
    assert [g["movie_id"] for g in got] == ["m0", "m1", "m2"]
