import pytest

from tfrs_twotower.data.id_counts import IdValueCounter, id_vocabularies
from tfrs_twotower.data.seen import SeenItems, corpus_remap


def test_vocabulary_by_count_then_value():
    counter = IdValueCounter(num_buckets=10)
    for value in ["b", "a", "c", "b", "a", "d", "b", "a", "c"]:
        counter.add(value)
    assert counter.vocabulary(1) == ["a", "b", "c", "d"]
    assert counter.vocabulary(2) == ["a", "b", "c"]
    assert counter.vocabulary(3) == ["a", "b"]
    assert counter.vocabulary(4) == []
    with pytest.raises(ValueError, match="min_count` must be >= 1"):
        counter.vocabulary(0)


def test_vocabulary_that_does_not_fit_falls_back_to_hashing():
    counter = IdValueCounter(num_buckets=3)  # 2 values + the unknown row
    for value in "aabbc":
        counter.add(value)
    assert counter.vocabulary(2) == ["a", "b"]
    assert counter.vocabulary(1) is None


def test_memory_is_bounded_and_frequent_values_survive():
    counter = IdValueCounter(num_buckets=10)
    for i in range(200_000):
        counter.add(f"rare{i}")
        if i % 4 == 0:
            counter.add("hot")
    assert len(counter.counts) <= counter.cap and counter.pruned
    assert counter.vocabulary(1000) == ["hot"]


def test_id_vocabularies_and_hash_flag():
    counter = IdValueCounter(num_buckets=10)
    for value in "aab":
        counter.add(value)
    counters = {"query": {"user": counter}}
    assert id_vocabularies(counters, 2) == {"query": {"user": ["a"]}}
    assert id_vocabularies(counters, 0) == {"query": {"user": None}}
    with pytest.raises(ValueError, match=r"`id_min_count` parameter must be an int in \[0, inf\). Got -1"):
        id_vocabularies(counters, -1)


def test_seen_items_remap():
    seen = SeenItems("user")
    for row in (2, 0, 2, 1):
        seen.add("u", row)
    remap = corpus_remap(["k0", "k1", "k2"], {"k0": 5, "k2": 0}.__getitem__)
    assert remap.tolist() == [5, -1, 0]
    assert [r.tolist() for r in seen.rows_for(["u"], remap)] == [[0, 5]]
    assert len(seen) == 1 and "u" in seen and seen.pairs == 4
