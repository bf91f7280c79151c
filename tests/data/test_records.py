import json
import math
import re

import pytest

from tests.data.conftest import SAMPLE_SCHEMA, candidate, pair
from tfrs_twotower.data import BadRecordError, Location, RecordParser, read_jsonl
from tfrs_twotower.data.jsonl import write_jsonl


def _bad(record) -> str:
    return json.dumps(record, allow_nan=True) if not isinstance(record, str) else record


def _with_query(**values):
    record = pair(0)
    record["query"].update(values)
    return record


def _with_candidate(**values):
    record = pair(0)
    record["candidate"].update(values)
    return record


def _without(side, name):
    record = pair(0)
    del record[side][name]
    return record


BAD_LINES = [
    ('{"query": {', r"line 2: not valid JSON: .* at column \d+"),
    ("[1, 2]", r'line 2: expected an object \{"query": \{\.\.\.\}, "candidate": \{\.\.\.\}\}, got \[1, 2\]'),
    ({"query": pair(0)["query"]}, r"line 2: missing `candidate`"),
    ({"candidate": candidate(0)}, r"line 2: missing `query`"),
    (_without("query", "age"), r"line 2: query\.age: missing; every record needs every schema feature"),
    (_without("candidate", "emb"), r"line 2: candidate\.emb: missing"),
    (
        _with_candidate(genres=3),
        r"line 2: candidate\.genres: expected a string or a list of strings \(Categorical\), got 3$",
    ),
    (_with_candidate(genres=["a", 3]), r"candidate\.genres: .*got \[\"a\", 3\] \(element 1 is 3\)"),
    (_with_query(query_text={"x": 1}), r"query\.query_text: expected a string or a list of strings \(Text\)"),
    (
        _with_query(age="30"),
        r'query\.age: expected a finite number or a list of finite numbers \(Numeric\), got "30"',
    ),
    (_with_query(age=True), r"query\.age: .*\(Numeric\), got true"),
    (_with_query(age=[1, False]), r"query\.age: .*\(element 1 is false\)"),
    (_with_query(age=None), r"query\.age: .*got null"),
    (_with_query(age=float("nan")), r"query\.age: .*got NaN"),
    (
        _with_candidate(emb=[1.0, 2.0]),
        r"candidate\.emb: expected a list of exactly 3 finite numbers \(Vector\), "
        r"got \[1\.0, 2\.0\] \(a list of 2\)",
    ),
    (_with_candidate(emb=[1.0, "x", 2.0]), r"candidate\.emb: .*\(element 1 is \"x\"\)"),
    (_with_candidate(emb=1.0), r"candidate\.emb: .*\(Vector\), got 1\.0"),
    (
        _with_query(user_id=7),
        r"query\.user_id: expected a non-empty string or a list of exactly one \(Id\), got 7",
    ),
    (_with_query(user_id=["a", "b"]), r"query\.user_id: .*got \[\"a\", \"b\"\]"),
    (_with_query(user_id=""), r"query\.user_id: .*\(Id\), got \"\""),
    (
        _with_query(typo=1),
        r"line 2: query: unknown feature\(s\) `typo`; the schema's query side has: user_id, age",
    ),
    (dict(pair(0), extra=1), r"line 2: unknown key\(s\) `extra`"),
    (dict(pair(0), weight=-1), r"line 2: weight: expected a finite number >= 0, got -1"),
    (dict(pair(0), weight="1"), r"weight: .*got \"1\""),
    (dict(pair(0), negatives={"a": 1}), r"negatives: expected a list of candidate objects"),
    (
        dict(pair(0), negatives=[candidate(1), candidate(2, year="x")]),
        r"line 2: negatives\[1\]\.year: expected a finite number",
    ),
    (
        {"query": "x", "candidate": candidate(0)},
        r"line 2: query: expected an object of query features, got \"x\"",
    ),
]


@pytest.mark.parametrize("bad, message", BAD_LINES)
def test_bad_record_message_names_file_line_side_feature(tmp_path, bad, message):
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(pair(1)) + "\n" + _bad(bad) + "\n" + json.dumps(pair(2)) + "\n")
    errors = []
    good = list(read_jsonl(str(path), RecordParser(SAMPLE_SCHEMA), on_error=errors.append))
    assert [loc.line for loc, _ in good] == [1, 3]
    assert len(errors) == 1
    assert isinstance(errors[0], BadRecordError) and isinstance(errors[0], ValueError)
    assert str(errors[0]).startswith(f"{path} line 2: ")
    assert errors[0].location == Location(str(path), 1, 2)
    assert re.search(message, str(errors[0])), str(errors[0])


def test_read_raises_without_on_error(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text("nope\n")
    with pytest.raises(BadRecordError, match=r"t\.jsonl line 1: not valid JSON"):
        list(read_jsonl(str(path), RecordParser(SAMPLE_SCHEMA)))


def test_invalid_utf8(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"query": "\xff"}\n')
    with pytest.raises(BadRecordError, match=r"line 1: not valid UTF-8"):
        list(read_jsonl(str(path), RecordParser(SAMPLE_SCHEMA)))


def test_normalised_values():
    record = pair(3, weight=2, negatives=[candidate(4)])
    record["query"]["user_id"] = ["u3"]
    out = RecordParser(SAMPLE_SCHEMA).pair(record, Location("f", 0, 1))
    assert out["query"] == {
        "user_id": "u3",
        "age": [23.0],
        "query_text": ["une requête ünïcode"],
        "liked": ["a"],
    }
    assert out["candidate"] == {
        "movie_id": "m3",
        "genres": ["a", "b", "c"],
        "title": ["Title 3"],
        "year": [1993.0],
        "emb": [3.0, 0.5, -1.0],
    }
    assert out["weight"] == 2.0 and isinstance(out["weight"], float)
    assert out["negatives"][0]["genres"] == [] and out["negatives"][0]["emb"] == [4.0, 0.5, -1.0]
    assert all(isinstance(v, float) for v in out["query"]["age"])


def test_optional_keys_absent_when_not_given():
    out = RecordParser(SAMPLE_SCHEMA).pair(pair(1), Location("f", 0, 1))
    assert set(out) == {"query", "candidate"}


def test_allow_extra_features_ignores_unknown():
    record = _with_query(typo=1)
    record["source"] = "x"
    out = RecordParser(SAMPLE_SCHEMA, allow_extra_features=True).pair(record, Location("f", 0, 1))
    assert "typo" not in out["query"] and "source" not in out


def test_empty_lists_unicode_and_long_text_kept(tmp_path):
    long_text = "λ" * 200_000
    record = pair(0)
    record["query"].update(query_text=[long_text, "", "日本語 🎬"], liked=[], age=[])
    write_jsonl([record], str(tmp_path / "u.jsonl"))
    [(_, out)] = list(read_jsonl(str(tmp_path / "u.jsonl"), RecordParser(SAMPLE_SCHEMA)))
    assert out["query"]["query_text"] == [long_text, "", "日本語 🎬"]
    assert out["query"]["liked"] == [] and out["query"]["age"] == []


def test_blank_lines_skipped_not_counted(tmp_path):
    path = tmp_path / "b.jsonl"
    path.write_text("\n" + json.dumps(pair(0)) + "\n   \n\n" + json.dumps(pair(1)))  # no final newline
    got = [loc for loc, _ in read_jsonl(str(path), RecordParser(SAMPLE_SCHEMA))]
    assert [(loc.index, loc.line) for loc in got] == [(0, 2), (1, 5)]


def test_large_and_infinite_numbers_refused():
    parser = RecordParser(SAMPLE_SCHEMA)
    for value in (float("inf"), [1.0, float("-inf")], 10**400):
        with pytest.raises(BadRecordError, match="query.age"):
            parser.pair(_with_query(age=value), Location("f", 0, 1))
    assert parser.pair(_with_query(age=[1e308, 1e308]), Location("f", 0, 1))["query"]["age"] == [1e308, 1e308]
    assert not math.isnan(parser.pair(_with_query(age=0), Location("f", 0, 1))["query"]["age"][0])


def test_location_strings():
    assert str(Location("a.jsonl", 4, 7)) == "a.jsonl line 7"
    assert str(Location("a.tfrecord", 4)) == "a.tfrecord record 5"


def test_numpy_scalars_and_str_subclasses_accepted_bools_refused():
    import numpy as np

    parser = RecordParser(SAMPLE_SCHEMA)
    record = _with_query(
        user_id=np.str_("u"), age=[np.int64(3), np.float32(1.5)], liked=list(np.array(["a"]))
    )
    record["candidate"]["emb"] = np.array([1.0, 2.0, 3.0])
    out = parser.pair(record, Location("f", 0, 1))
    assert out["query"]["age"] == [3.0, 1.5] and type(out["query"]["user_id"]) is str
    assert out["query"]["liked"] == ["a"] and type(out["query"]["liked"][0]) is str
    assert out["candidate"]["emb"] == [1.0, 2.0, 3.0]
    with pytest.raises(BadRecordError, match=r"query\.age"):
        parser.pair(_with_query(age=[np.bool_(True)]), Location("f", 0, 1))
