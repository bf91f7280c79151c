"""Each of the five feature types is handled by every stage, through its one home in `feature_types`.

One parametrised round trip per type: JSON value -> normalised record -> `tf.train.Example` -> parsed
back (by the Python reader, and by `tf.io.parse_example` with the type's parse spec) -> padded batch
column -> serving signature -> encoder layer. Bad values get the same verdict from the Python rules and
the type's TF-op rules.
"""

import inspect
import math
import re

import numpy as np
import pytest
import tensorflow as tf

from tfrs_twotower.data.batching import feature_column, feature_signature, negative_columns
from tfrs_twotower.data.records import BadRecordError, Location, RecordParser
from tfrs_twotower.data.tfrecord import example_to_record, record_to_example
from tfrs_twotower.export import side_signature
from tfrs_twotower.feature_types import REGISTRY, FeatureType, InvalidValue, feature_type_of
from tfrs_twotower.features import make_feature_encoder
from tfrs_twotower.schema import FEATURE_TYPES, load_schema

CONFIGS = {
    "Id": {"num_buckets": 50},
    "Categorical": {"vocab": ["a", "b", "c"]},
    "Numeric": {},
    "Text": {},
    "Vector": {"length": 3},
}
# Per type: raw JSON values of three records (different list lengths where the type allows them) and
# what they normalise to (floats exact in float32, so Examples give them back unchanged).
VALUES = {
    "Id": (["u1", ["u2"], "u3"], ["u1", "u2", "u3"]),
    "Categorical": (["a", ["b", "c"], []], [["a"], ["b", "c"], []]),
    "Numeric": ([2, [1.5, -3], []], [[2.0], [1.5, -3.0], []]),
    "Text": (["hello world", ["é", ""], []], [["hello world"], ["é", ""], []]),
    "Vector": ([[1, 2, 3], [0.5, 0, -1], [0.25, 7, 8]], [[1.0, 2, 3], [0.5, 0, -1], [0.25, 7, 8]]),
}
# Per type: Example values that break its rule (the Python reader and `invalid_rows` must both refuse
# them), as (bytes values or None, float values or None).
BAD = {
    "Id": [([b"a", b"b"], None), ([b""], None), ([], None)],
    "Numeric": [(None, [1.0, math.inf]), (None, [math.nan])],
    "Vector": [(None, [1.0, 2.0]), (None, [1.0, math.nan, 2.0])],
    "Categorical": [],
    "Text": [],
}


def _schema(type_name):
    return load_schema(
        {
            "query": {"q": {"feature_type": "Id", "config": {"num_buckets": 10}}},
            "candidate": {"f": {"feature_type": type_name, "config": CONFIGS[type_name]}},
        }
    )


def _assert_same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape
    if a.dtype.kind == "f" or b.dtype.kind == "f":
        np.testing.assert_array_equal(a.astype(np.float32), b.astype(np.float32))  # NaN == NaN here
    else:
        assert [x.decode() if isinstance(x, bytes) else x for x in a.ravel()] == [
            x.decode() if isinstance(x, bytes) else x for x in b.ravel()
        ]


def test_every_schema_type_is_registered_and_implements_every_method():
    assert tuple(REGISTRY) == FEATURE_TYPES == ("Id", "Categorical", "Numeric", "Text", "Vector")
    abstract = set(FeatureType.__abstractmethods__)
    assert {
        "checker",
        "column",
        "dense",
        "make_encoder",
        "split_negatives",
        "invalid_elements",
        "dense_negatives",
    } <= abstract
    for name, kind in REGISTRY.items():
        assert kind.name == name
        assert not inspect.isabstract(type(kind)), name
        assert type(kind).__module__ == f"tfrs_twotower.feature_types.{name.lower()}"
        for method in abstract:
            assert getattr(type(kind), method) is not getattr(FeatureType, method), (name, method)


def test_feature_type_of_accepts_specs_entries_and_names_and_refuses_unknown_ones():
    spec = _schema("Vector").feature("candidate", "f")
    assert feature_type_of(spec) is feature_type_of({"feature_type": "Vector"}) is feature_type_of("Vector")
    with pytest.raises(ValueError, match=r"Unknown feature type 'Embedding'; the types are Id, Categorical"):
        feature_type_of("Embedding")


@pytest.mark.parametrize("type_name", FEATURE_TYPES)
def test_round_trip_json_record_example_parsed_column_signature_encoder(type_name):
    schema = _schema(type_name)
    spec = schema.feature("candidate", "f")
    kind = feature_type_of(spec)
    raw, normalised = VALUES[type_name]
    parser = RecordParser(schema)
    records = [
        parser.pair({"query": {"q": f"u{i}"}, "candidate": {"f": v}}, Location("t.jsonl", i, i + 1))
        for i, v in enumerate(raw)
    ]
    assert [r["candidate"]["f"] for r in records] == normalised

    # Example, and back through the Python reader.
    data = [record_to_example(r, schema).SerializeToString() for r in records]
    back = [example_to_record(d, Location("t.tfrecord", i), parser) for i, d in enumerate(data)]
    assert [r["candidate"]["f"] for r in back] == normalised

    # Python batch column == tf.io.parse_example with the type's spec, made dense by the type.
    column = feature_column(spec, normalised)
    parsed = tf.io.parse_example(tf.constant(data), {spec.tfrecord_key: kind.parse_spec(spec)})
    values = parsed[spec.tfrecord_key]
    assert not kind.invalid_rows(spec, values).numpy().any()
    dense = kind.dense(spec, values)
    rows = [kind.from_example_values(spec, row.numpy()) for row in values]
    assert rows == normalised
    flat, splits = values.flat_values.numpy(), values.row_splits.numpy()
    picked = np.array([len(rows) - 1, 0])  # any rows, in any order, at once
    assert kind.from_example_columns(spec, flat, splits, picked) == [rows[-1], rows[0]]
    _assert_same(dense.numpy(), column)
    signature = feature_signature(spec)
    assert signature.dtype == dense.dtype and signature.shape.is_compatible_with(dense.shape)

    # Serving: the exported encoder's input for this feature is the batch signature, named.
    serving = side_signature(schema, "candidate")["f"]
    assert serving.name == "f" and serving.dtype == signature.dtype and serving.shape == signature.shape

    # Encoder: the type's layer takes the batch.
    encoder = make_feature_encoder(spec, numeric_stats=(0.0, 1.0) if type_name == "Numeric" else None)
    out = encoder(dense)
    assert out.shape == (3, encoder.output_dim) and np.isfinite(out.numpy()).all()


@pytest.mark.parametrize("type_name", FEATURE_TYPES)
def test_negatives_round_trip_and_pad_with_the_types_empty_value(type_name):
    schema = _schema(type_name)
    spec = schema.feature("candidate", "f")
    parser = RecordParser(schema)
    raw, normalised = VALUES[type_name]
    record = parser.pair(
        {"query": {"q": "u"}, "candidate": {"f": raw[0]}, "negatives": [{"f": raw[1]}, {"f": raw[2]}]},
        Location("t.jsonl", 0, 1),
    )
    example = record_to_example(record, schema)
    back = example_to_record(example.SerializeToString(), Location("t.tfrecord", 0), parser)
    got = [n["f"] for n in back["negatives"]]
    assert got == normalised[1:]
    columns, mask = negative_columns(schema.candidate, [back["negatives"], back["negatives"][:1]])
    assert mask.tolist() == [[True, True], [True, False]]
    empty = feature_type_of(spec).empty_value(spec)
    _assert_same(columns["f"][1, 1], feature_column(spec, [*normalised[1:], empty])[2])
    _assert_same(columns["f"][0], feature_column(spec, normalised[1:]))
    assert feature_signature(spec, extra_dims=1).shape.is_compatible_with(columns["f"].shape)


def _example(type_name, strings, floats):
    feature = (
        tf.train.Feature(bytes_list=tf.train.BytesList(value=strings))
        if strings is not None
        else tf.train.Feature(float_list=tf.train.FloatList(value=floats))
    )
    query = tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"u"]))
    features = {"query_q": query, "candidate_f": feature}
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


@pytest.mark.parametrize(
    "type_name,strings,floats", [(t, s, f) for t, cases in BAD.items() for s, f in cases]
)
def test_bad_values_get_the_same_verdict_from_the_python_and_the_tf_rules(type_name, strings, floats):
    schema = _schema(type_name)
    spec = schema.feature("candidate", "f")
    kind = feature_type_of(spec)
    good = record_to_example(
        {"query": {"q": "u"}, "candidate": {"f": VALUES[type_name][1][0]}}, schema
    ).SerializeToString()
    bad = _example(type_name, strings, floats)
    message = re.escape(f"t.tfrecord record 1: candidate.f: expected {kind.expected(spec)}, got")
    with pytest.raises(BadRecordError, match=message):
        example_to_record(bad, Location("t.tfrecord", 0), RecordParser(schema))
    parsed = tf.io.parse_example(tf.constant([bad, good]), {"candidate_f": kind.parse_spec(spec)})
    assert kind.invalid_rows(spec, parsed["candidate_f"]).numpy().tolist() == [True, False]


@pytest.mark.parametrize("type_name", FEATURE_TYPES)
def test_checker_refuses_what_the_message_says_it_refuses(type_name):
    spec = _schema(type_name).feature("candidate", "f")
    kind = feature_type_of(spec)
    with pytest.raises(InvalidValue):
        kind.checker(spec)({"not": "a value"})
    assert kind.expected(spec).endswith(f"({type_name})")


@pytest.mark.parametrize("type_name", FEATURE_TYPES)
def test_invalid_utf8_gets_the_same_verdict_from_the_python_and_the_tf_rules(type_name):
    schema = _schema(type_name)
    spec = schema.feature("candidate", "f")
    kind = feature_type_of(spec)
    good = record_to_example(
        {"query": {"q": "u"}, "candidate": {"f": VALUES[type_name][1][0]}}, schema
    ).SerializeToString()
    parsed = tf.io.parse_example(tf.constant([good]), {"candidate_f": kind.parse_spec(spec)})
    assert kind.invalid_utf8_rows(parsed["candidate_f"]).numpy().tolist() == [False]
    if kind.float_values:
        return
    bad = _example(type_name, [b"ok \xef\xbf\xbd", b"\xff\xfe"], None)  # a real U+FFFD, then bad bytes
    with pytest.raises(BadRecordError, match="candidate_f: a bytes_list value is not valid UTF-8 text"):
        example_to_record(bad, Location("t.tfrecord", 0), RecordParser(schema))
    parsed = tf.io.parse_example(tf.constant([bad, good]), {"candidate_f": kind.parse_spec(spec)})
    assert kind.invalid_utf8_rows(parsed["candidate_f"]).numpy().tolist() == [True, False]


def _parse_negatives(kind, spec, data):
    specs = {f"negative_f{suffix}": s for suffix, s in kind.negative_parse_specs(spec).items()}
    parsed = tf.io.parse_example(tf.constant(data), specs)
    return parsed["negative_f"], parsed.get("negative_f.lengths")


@pytest.mark.parametrize("type_name", FEATURE_TYPES)
def test_parsed_negatives_give_the_python_paths_counts_and_padded_columns(type_name):
    schema = _schema(type_name)
    spec = schema.feature("candidate", "f")
    kind = feature_type_of(spec)
    parser = RecordParser(schema)
    raw, normalised = VALUES[type_name]
    rows = [[raw[1], raw[2]], [raw[2]], []]  # K = 2, 1, 0
    records = [
        parser.pair(
            {"query": {"q": "u"}, "candidate": {"f": raw[0]}, "negatives": [{"f": v} for v in negs]},
            Location("t.jsonl", i, i + 1),
        )
        for i, negs in enumerate(rows)
    ]
    data = [record_to_example(r, schema).SerializeToString() for r in records]
    values, lengths = _parse_negatives(kind, spec, data)
    k, bad = kind.negative_counts(spec, values, lengths)
    assert k.numpy().tolist() == [2, 1, 0] and bad.numpy().tolist() == [False] * 3
    expected, _ = negative_columns(schema.candidate, [r["negatives"] for r in records])
    _assert_same(kind.dense_negatives(spec, values, lengths, k).numpy(), expected["f"])


# Per type: a `negative_f` value list (and `.lengths`) that the Python reader refuses.
BAD_NEGATIVES = {
    "Id": ([b"m1", b""], None),
    "Categorical": ([b"a", b"b"], [1]),
    "Text": ([b"a"], [-1, 2]),
    "Numeric": ([1.0, math.inf], [2]),
    "Vector": ([1.0, 2.0, 3.0, 4.0], None),
}


@pytest.mark.parametrize("type_name", FEATURE_TYPES)
def test_bad_negatives_get_the_same_verdict_from_the_python_and_the_tf_rules(type_name):
    schema = _schema(type_name)
    spec = schema.feature("candidate", "f")
    kind = feature_type_of(spec)
    values, lengths = BAD_NEGATIVES[type_name]
    good = record_to_example(
        {"query": {"q": "u"}, "candidate": {"f": VALUES[type_name][1][0]}}, schema
    ).SerializeToString()
    example = tf.train.Example.FromString(good)
    features = example.features.feature
    if kind.float_values:
        features["negative_f"].float_list.value.extend(values)
    else:
        features["negative_f"].bytes_list.value.extend(values)
    if lengths is not None:
        features["negative_f.lengths"].int64_list.value.extend(lengths)
    bad = example.SerializeToString()
    with pytest.raises(BadRecordError, match=r"t.tfrecord record 1: (negatives\[\d\]\.f|negative_f)"):
        example_to_record(bad, Location("t.tfrecord", 0), RecordParser(schema))
    values, lengths = _parse_negatives(kind, spec, [bad, good])
    _, flagged = kind.negative_counts(spec, values, lengths)
    assert flagged.numpy().tolist() == [True, False]
