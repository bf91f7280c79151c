"""Tests for `tfrs_twotower.data.add_history` on any data (tests/test_movielens.py: the MovieLens form)."""

import doctest

import pytest

from tfrs_twotower.data import add_history, history

KEYS = dict(user_feature="customer", item_feature="sku", time_feature="ts")


def _pair(user, item, ts):
    return {"query": {"customer": [user], "ts": ts}, "candidate": {"sku": item}}


def test_names_its_own_user_item_and_time_features():
    train = [_pair("u", "a", 1), _pair("u", "b", 2.5), _pair("v", "c", 1), _pair("u", "d", 3)]
    test = [_pair("u", "x", 2.6), _pair("w", "y", 9)]
    new_train, new_test = add_history(train, test, **KEYS, max_length=5, name="recent")
    assert [r["query"]["recent"] for r in new_train] == [[], ["a"], [], ["b", "a"]]
    assert [r["query"]["recent"] for r in new_test] == [["b", "a"], []]  # w: no training pairs
    assert new_test[0]["query"] == {"customer": ["u"], "ts": 2.6, "recent": ["b", "a"]}


def test_evaluation_pairs_need_no_item_but_training_pairs_do():
    unlabeled = {"query": {"customer": "u", "ts": 5}, "candidate": {}}
    assert add_history([_pair("u", "a", 1)], [unlabeled], **KEYS)[1][0]["query"]["history"] == ["a"]
    with pytest.raises(ValueError, match=r"^train record 1: .* candidate's `sku` .* Got None instead"):
        add_history([unlabeled], **KEYS)


@pytest.mark.parametrize(
    "query, message",
    [
        ({"ts": 1}, r"query's `customer` \(the user"),
        ({"customer": "", "ts": 1}, r"query's `customer`"),
        ({"customer": "u", "ts": "1"}, r"query's `ts` \(a number.* Got '1' instead"),
        ({"customer": "u", "ts": [1, 2]}, r"query's `ts`.* Got \[1, 2\] instead"),
        ({"customer": "u", "ts": True}, r"query's `ts`"),
    ],
)
def test_rejects_records_without_user_or_time(query, message):
    bad = {"query": query, "candidate": {"sku": "a"}}
    with pytest.raises(ValueError, match=r"^others\[0\] record 2: `add_history` needs the " + message):
        add_history([_pair("u", "a", 1)], [_pair("u", "b", 2), bad], **KEYS)


def test_docstring_examples_run():
    result = doctest.testmod(history)
    assert result.failed == 0 and result.attempted > 0
