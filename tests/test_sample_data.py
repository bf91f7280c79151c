"""Tests for the built-in sample dataset (tfrs_twotower/sample_data.py)."""

import collections
import doctest
import json
import math
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from tfrs_twotower import sample_data
from tfrs_twotower.sample_data import NUM_TOPICS, generate_sample, sample_schema
from tfrs_twotower.schema import FEATURE_TYPES, load_schema

REPO = pathlib.Path(__file__).resolve().parents[1]
FILES = ("train.jsonl", "train.tfrecord", "candidates.jsonl", "schema.json")


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return generate_sample(str(tmp_path_factory.mktemp("sample")))


def _read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _check_value(spec, value):
    """Problems of one JSONL value against its FeatureSpec (docs/architecture.md's table), [] if none."""
    where, kind = spec.path, spec.feature_type
    if kind == "Id":
        return [] if isinstance(value, str) and value else [f"{where}: Id must be a non-empty string"]
    if kind in ("Categorical", "Text"):
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            return [f"{where}: {kind} must be a list of non-empty strings, got {value!r}"]
        if kind == "Categorical" and not set(value) <= set(spec.vocab):
            return [f"{where}: {set(value) - set(spec.vocab)} not in the vocab"]
        return []
    numbers = isinstance(value, list) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value
    )
    if not numbers:
        return [f"{where}: {kind} must be a list of finite numbers, got {value!r}"]
    if kind == "Vector" and len(value) != spec.length:
        return [f"{where}: Vector must have {spec.length} values, got {len(value)}"]
    return []


def test_writes_the_four_files_with_the_sizes(sample):
    for name, path in zip(FILES, sample.paths(), strict=True):
        assert path.endswith(name) and pathlib.Path(path).stat().st_size > 0
    assert len(_read_jsonl(sample.train_jsonl)) == sample.num_pairs == 5000
    assert len(_read_jsonl(sample.candidates_jsonl)) == sample.num_items == 400
    assert sample.num_users == 500


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    first = generate_sample(str(tmp_path / "a"), num_pairs=300, seed=7)
    second = generate_sample(str(tmp_path / "b"), num_pairs=300, seed=7)
    for a, b in zip(first.paths(), second.paths(), strict=True):
        assert pathlib.Path(a).read_bytes() == pathlib.Path(b).read_bytes(), a
    other = generate_sample(str(tmp_path / "c"), num_pairs=300, seed=8)
    assert pathlib.Path(other.train_jsonl).read_bytes() != pathlib.Path(first.train_jsonl).read_bytes()


def test_schema_file_matches_the_checked_in_schema(sample):
    assert pathlib.Path(sample.schema).read_bytes() == (REPO / "schemas" / "sample.json").read_bytes()
    schema = load_schema(sample.schema)
    assert schema.to_json() == sample_schema()
    for side in ("query", "candidate"):
        assert sorted(spec.feature_type for spec in schema.side(side)) == sorted(FEATURE_TYPES)


def test_every_value_matches_its_schema_type(sample):
    schema = load_schema(sample.schema)
    problems = []
    for record in _read_jsonl(sample.train_jsonl):
        assert set(record) == {"query", "candidate"}
        for side in ("query", "candidate"):
            assert list(record[side]) == [spec.name for spec in schema.side(side)]
            for spec in schema.side(side):
                problems += _check_value(spec, record[side][spec.name])
    for doc in _read_jsonl(sample.candidates_jsonl):
        problems += [p for spec in schema.candidate for p in _check_value(spec, doc[spec.name])]
    assert problems == []


def test_tfrecord_holds_the_same_pairs_as_jsonl(sample):
    schema = load_schema(sample.schema)
    records = _read_jsonl(sample.train_jsonl)
    dataset = tf.data.TFRecordDataset(sample.train_tfrecord)
    examples = [tf.train.Example.FromString(raw.numpy()) for raw in dataset]
    assert len(examples) == len(records)
    for record, example in zip(records, examples, strict=True):
        feature = example.features.feature
        assert len(feature) == len(schema.query) + len(schema.candidate)
        for spec in schema.query + schema.candidate:
            value, stored = record[spec.side][spec.name], feature[spec.tfrecord_key]
            if spec.feature_type in ("Numeric", "Vector"):
                np.testing.assert_allclose(stored.float_list.value, value, rtol=1e-6)
            else:
                expected = [value] if spec.feature_type == "Id" else value
                assert [v.decode("utf-8") for v in stored.bytes_list.value] == expected


def test_candidates_are_the_unique_corpus_of_the_pairs(sample):
    corpus = {doc["item_id"]: doc for doc in _read_jsonl(sample.candidates_jsonl)}
    assert len(corpus) == sample.num_items
    users = {}
    for record in _read_jsonl(sample.train_jsonl):
        assert corpus[record["candidate"]["item_id"]] == record["candidate"]
        assert users.setdefault(record["query"]["user_id"], record["query"]) == record["query"]
    assert 0.9 * sample.num_users <= len(users) <= sample.num_users


def _hit_rates(records, corpus, k=10, seed=0):
    """Held-out hit rate@k of popularity vs a per-category co-occurrence predictor (categories ~ topics)."""
    order = np.random.default_rng(seed).permutation(len(records))
    num_test = len(records) // 5
    test, train = [records[i] for i in order[:num_test]], [records[i] for i in order[num_test:]]
    ids = [doc["item_id"] for doc in corpus]
    index = {item: i for i, item in enumerate(ids)}
    categories = sorted({c for doc in corpus for c in doc["category"]})
    membership = np.zeros((len(ids), len(categories)))
    for doc in corpus:
        for c in doc["category"]:
            membership[index[doc["item_id"]], categories.index(c)] = 1.0 / len(doc["category"])
    popularity = np.zeros(len(ids))
    for r in train:
        popularity[index[r["candidate"]["item_id"]]] += 1
    top_popular = set(np.argsort(-popularity, kind="stable")[:k])
    category_count = popularity @ membership + 1
    prior = category_count / category_count.sum()
    history = collections.defaultdict(lambda: np.zeros(len(categories)))
    for r in train:
        history[r["query"]["user_id"]] += membership[index[r["candidate"]["item_id"]]]
    pop_hits = cooc_hits = 0
    for r in test:
        target = index[r["candidate"]["item_id"]]
        pop_hits += target in top_popular
        counts = history[r["query"]["user_id"]]
        p_category = (counts + 2 * prior) / (counts.sum() + 2)  # smoothed towards the global mix
        scores = (membership @ (p_category / category_count)) * (popularity + 0.5)
        cooc_hits += target in set(np.argsort(-scores, kind="stable")[:k])
    return pop_hits / len(test), cooc_hits / len(test)


def test_planted_structure_beats_popularity(sample):
    records, corpus = _read_jsonl(sample.train_jsonl), _read_jsonl(sample.candidates_jsonl)
    popularity, cooccurrence = _hit_rates(records, corpus)  # 0.117 and 0.316 for the default sample
    assert 0.05 < popularity < 0.3
    assert cooccurrence > 2.0 * popularity


def test_features_carry_the_topics(sample):
    # Users who bought mostly one category have interests words and a country typical of it.
    records = _read_jsonl(sample.train_jsonl)
    by_category = collections.defaultdict(collections.Counter)
    for r in records:
        by_category[r["candidate"]["category"][0]][r["query"]["country"][0]] += 1
    top_share = [c.most_common(1)[0][1] / sum(c.values()) for c in by_category.values()]
    assert np.mean(top_share) > 2.0 / len(sample_schema()["query"]["country"]["config"]["vocab"])


def test_small_sizes_and_bad_parameters(tmp_path):
    files = generate_sample(str(tmp_path / "tiny"), num_pairs=3, num_users=1, num_items=NUM_TOPICS)
    assert len(_read_jsonl(files.train_jsonl)) == 3
    with pytest.raises(ValueError, match=r"The `num_items` parameter must be an int in \[16, inf\)\. Got 3"):
        generate_sample(str(tmp_path / "bad"), num_items=3)
    with pytest.raises(ValueError, match="`num_pairs` parameter"):
        generate_sample(str(tmp_path / "bad"), num_pairs=0)
    with pytest.raises(ValueError, match="`seed` parameter"):
        generate_sample(str(tmp_path / "bad"), seed=1.5)


def test_docstring_examples_run():
    result = doctest.testmod(sample_data)
    assert result.failed == 0 and result.attempted > 0
