import math

import numpy as np
import pytest
import tensorflow as tf

from tests.data.conftest import SCHEMA, candidate, pair
from tfrs_twotower.data import make_candidate_dataset, make_dataset, scan, write_jsonl, write_tfrecord
from tfrs_twotower.schema import load_schema


def _all(ds):
    return [tf.nest.map_structure(lambda t: t.numpy(), b) for b in ds]


def _user_ids(batches):
    return [u.decode() for b in batches for u in b["query"]["user_id"]]


def _assert_batches_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        tf.nest.assert_same_structure(x, y)
        for u, v in zip(tf.nest.flatten(x), tf.nest.flatten(y), strict=True):
            np.testing.assert_array_equal(u, v)


def test_batch_format_and_padding(tmp_path, schema):
    records = [pair(1), pair(3), pair(5)]
    records[1]["query"]["liked"] = ["a", "b", "c"]
    write_jsonl(records, str(tmp_path / "a.jsonl"))
    [batch] = _all(
        make_dataset(str(tmp_path / "a.jsonl"), schema, subset="all", batch_size=8, shuffle_buffer=0)
    )
    q, c = batch["query"], batch["candidate"]
    assert q["user_id"].tolist() == [b"u1", b"u3", b"u5"]
    assert q["liked"].tolist() == [[b"a", b"", b""], [b"a", b"b", b"c"], [b"a", b"", b""]]
    assert q["query_text"].tolist() == [
        [b"two", b"texts"],
        ["une requête ünïcode".encode(), b""],
        [b"two", b"texts"],
    ]
    np.testing.assert_array_equal(q["age"], np.array([[21], [23], [np.nan]], np.float32))
    assert c["emb"].dtype == np.float32 and c["emb"].shape == (3, 3)
    assert c["genres"].shape == (3, 3) and c["genres"][0].tolist() == [b"a", b"", b""]
    np.testing.assert_array_equal(batch["weight"], [1.0, 1.0, 1.0])
    assert set(batch) == {"query", "candidate", "weight"}


def test_element_spec_matches_architecture(tmp_path, schema, records):
    write_jsonl(records, str(tmp_path / "a.jsonl"))
    spec = make_dataset(str(tmp_path / "a.jsonl"), schema).element_spec
    assert spec["query"]["user_id"] == tf.TensorSpec([None], tf.string)
    assert spec["query"]["liked"] == tf.TensorSpec([None, None], tf.string)
    assert spec["query"]["age"] == tf.TensorSpec([None, None], tf.float32)
    assert spec["candidate"]["emb"] == tf.TensorSpec([None, 3], tf.float32)
    assert spec["weight"] == tf.TensorSpec([None], tf.float32)


def test_all_lists_empty_gives_width_zero(tmp_path, schema):
    record = pair(0)
    record["query"].update(liked=[], age=[], query_text=[])
    write_jsonl([record, record], str(tmp_path / "e.jsonl"))
    [batch] = _all(make_dataset(str(tmp_path / "e.jsonl"), schema, subset="all", shuffle_buffer=0))
    assert batch["query"]["liked"].shape == (2, 0) and batch["query"]["age"].shape == (2, 0)


def test_jsonl_and_tfrecord_give_identical_batches(tmp_path, schema, records):
    records = records + [pair(70, weight=0.25)]
    write_jsonl(records, str(tmp_path / "a.jsonl"))
    write_tfrecord(records, str(tmp_path / "a.tfrecord"), schema)
    for subset in ("train", "eval"):
        from_jsonl = make_dataset(
            str(tmp_path / "a.jsonl"), schema, subset=subset, batch_size=7, shuffle_buffer=0
        )
        from_tfrecord = make_dataset(
            str(tmp_path / "a.tfrecord"), schema, "tfrecord", subset=subset, batch_size=7, shuffle_buffer=0
        )
        _assert_batches_equal(_all(from_jsonl), _all(from_tfrecord))
        # Shuffled with a seed, TFRecord (tf.data's shuffle) and JSONL give the same records in another order.
        shuffled = make_dataset(
            str(tmp_path / "a.tfrecord"), schema, "tfrecord", subset=subset, batch_size=7, seed=3
        )
        assert sorted(_user_ids(_all(shuffled))) == sorted(_user_ids(_all(from_jsonl)))


def test_split_identical_to_scan_and_disjoint(tmp_path, schema):
    records = [pair(i) for i in range(400)]
    write_jsonl(records[:250], str(tmp_path / "a.jsonl"))
    write_jsonl(records[250:], str(tmp_path / "b.jsonl"))
    spec = f"{tmp_path / 'a.jsonl'},{tmp_path / 'b.jsonl'}"
    result = scan(spec, schema, eval_split=0.2)
    train = _user_ids(_all(make_dataset(spec, schema, subset="train", eval_split=0.2, batch_size=64)))
    evals = _user_ids(_all(make_dataset(spec, schema, subset="eval", eval_split=0.2, batch_size=64)))
    assert (len(train), len(evals)) == (result.train_count, result.eval_count)
    assert not set(train) & set(evals) and len(set(train) | set(evals)) == 400
    assert 0.12 < len(evals) / 400 < 0.28


def test_seeded_order_is_reproducible_and_epochs_differ(tmp_path, schema, records):
    write_jsonl(records, str(tmp_path / "a.jsonl"))
    make = lambda: make_dataset(str(tmp_path / "a.jsonl"), schema, subset="all", batch_size=10, seed=7)  # noqa: E731
    ds = make()
    first, second = _user_ids(_all(ds)), _user_ids(_all(ds))
    assert first == _user_ids(_all(make())) and first != second and sorted(first) == sorted(second)
    assert first != [f"u{i}" for i in range(60)]
    unshuffled = _user_ids(
        _all(make_dataset(str(tmp_path / "a.jsonl"), schema, subset="all", shuffle_buffer=0))
    )
    assert unshuffled == [f"u{i}" for i in range(60)]


def test_skip_rejected_records_and_fail_on_unknown_bad_ones(tmp_path, schema, records):
    path = tmp_path / "a.jsonl"
    write_jsonl(records[:5], str(path))
    with open(path, "a") as f:
        f.write("not json\n")
    result = scan(str(path), schema, max_bad_records=1, eval_split=0.0)
    ds = make_dataset(str(path), schema, subset="all", skip=result.skip)
    assert len(_user_ids(_all(ds))) == 5
    with pytest.raises(tf.errors.OpError, match=r"a\.jsonl line 6: not valid JSON.*not in `skip`"):
        _all(make_dataset(str(path), schema, subset="all"))


def test_weight_and_negatives(tmp_path, schema):
    records = [
        pair(0, weight=2.5, negatives=[candidate(1), candidate(2, genres=["a", "b", "c"])]),
        pair(1),
        pair(2, negatives=[candidate(3)]),
    ]
    write_jsonl(records, str(tmp_path / "n.jsonl"))
    write_tfrecord(records, str(tmp_path / "n.tfrecord"), schema)
    batches = {}
    for fmt in ("jsonl", "tfrecord"):
        ds = make_dataset(
            str(tmp_path / f"n.{fmt}"), schema, fmt, subset="all", shuffle_buffer=0, negatives=True
        )
        [batches[fmt]] = _all(ds)
    _assert_batches_equal([batches["jsonl"]], [batches["tfrecord"]])
    batch = batches["jsonl"]
    np.testing.assert_array_equal(batch["weight"], [2.5, 1.0, 1.0])
    np.testing.assert_array_equal(batch["negative_mask"], [[True, True], [False, False], [True, False]])
    negs = batch["negatives"]
    assert negs["movie_id"].tolist() == [[b"m1", b"m2"], [b"", b""], [b"m3", b""]]
    assert negs["genres"].shape == (3, 2, 3) and negs["genres"][0, 1].tolist() == [b"a", b"b", b"c"]
    assert negs["emb"].shape == (3, 2, 3) and negs["emb"][1].tolist() == [[0.0] * 3] * 2
    assert math.isnan(negs["year"][1, 0, 0]) and negs["year"][0, 0, 0] == 1991.0
    with pytest.raises(tf.errors.OpError, match="pass negatives=True"):
        _all(make_dataset(str(tmp_path / "n.jsonl"), schema, subset="all"))


def test_repeat_cache_and_drop_remainder(tmp_path, schema, records):
    write_jsonl(records, str(tmp_path / "a.jsonl"))
    ds = make_dataset(
        str(tmp_path / "a.jsonl"), schema, subset="all", batch_size=25, seed=1, repeat=True, cache=True
    )
    sizes = [int(b["weight"].shape[0]) for b in ds.take(6)]
    assert sizes == [25, 25, 10, 25, 25, 10]
    ds = make_dataset(str(tmp_path / "a.jsonl"), schema, subset="all", batch_size=25, drop_remainder=True)
    assert [int(b["weight"].shape[0]) for b in ds] == [25, 25]


def test_large_batches_span_chunks(tmp_path, schema):
    write_jsonl([pair(i) for i in range(2500)], str(tmp_path / "big.jsonl"))
    ds = make_dataset(str(tmp_path / "big.jsonl"), schema, subset="all", batch_size=300, seed=0)
    ids = _user_ids(_all(ds))
    assert len(ids) == 2500 and len(set(ids)) == 2500


def test_with_keys_fingerprints(tmp_path):
    schema = load_schema({"query": SCHEMA["query"], "candidate": {"title": {"feature_type": "Text"}}})
    records = [pair(i, candidate={"title": f"t{i % 2}"}) for i in range(4)]
    write_jsonl(records, str(tmp_path / "k.jsonl"))
    corpus = scan(str(tmp_path / "k.jsonl"), schema, eval_split=0.0).corpus
    [batch] = _all(
        make_dataset(str(tmp_path / "k.jsonl"), schema, subset="all", shuffle_buffer=0, with_keys=True)
    )
    assert [k.decode() for k in batch["candidate_key"]] == [corpus.keys[i % 2] for i in range(4)]


def test_candidate_dataset(tmp_path, schema, records):
    write_jsonl(records, str(tmp_path / "a.jsonl"))
    corpus = scan(str(tmp_path / "a.jsonl"), schema).corpus
    ds, keys = make_candidate_dataset(corpus, schema, batch_size=4)
    batches = _all(ds)
    assert keys == corpus.keys and [len(b["movie_id"]) for b in batches] == [4, 3]
    assert [k.decode() for b in batches for k in b["movie_id"]] == keys
    assert ds.element_spec["genres"] == tf.TensorSpec([None, None], tf.string)
    assert batches[0]["emb"].dtype == np.float32


@pytest.mark.parametrize(
    "bad, message",
    [({"subset": "test"}, "`subset`"), ({"batch_size": 0}, "`batch_size`"), ({"seed": -1}, "`seed`")],
)
def test_parameter_validation(tmp_path, schema, records, bad, message):
    write_jsonl(records, str(tmp_path / "a.jsonl"))
    with pytest.raises(ValueError, match=message):
        make_dataset(str(tmp_path / "a.jsonl"), schema, **bad)
