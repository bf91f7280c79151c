import json

import pytest

from tfrs_twotower.schema import FeatureSpec, SchemaError, load_schema

GOOD = {
    "query": {
        "user_id": {"feature_type": "Id", "config": {"num_buckets": 100}},
        "age": {"feature_type": "Numeric"},
        "bio": {"feature_type": "Text", "config": {"embedding_module": "@hashed-ngrams"}},
    },
    "candidate": {
        "movie_genre": {"feature_type": "Categorical", "config": {"vocab": ["Action", "Drama"]}},
        "vec": {"feature_type": "Vector", "config": {"length": 4}},
    },
}


def problems_of(raw):
    with pytest.raises(SchemaError) as info:
        load_schema(raw)
    return info.value.problems


def test_parses_every_type_in_file_order():
    schema = load_schema(GOOD)
    assert [s.name for s in schema.query] == ["user_id", "age", "bio"]
    assert schema.feature("candidate", "movie_genre").vocab == ("Action", "Drama")
    assert schema.feature("candidate", "vec").length == 4
    assert schema.feature("query", "user_id") == FeatureSpec("user_id", "query", "Id", num_buckets=100)
    assert schema.feature("query", "age").tfrecord_key == "query_age"


def test_round_trips_through_json(tmp_path):
    path = tmp_path / "schema.json"
    load_schema(GOOD).save(str(path))
    assert load_schema(str(path)) == load_schema(GOOD)
    assert json.loads(path.read_text()) == GOOD


def test_reports_all_problems_at_once_with_json_paths():
    raw = {
        "query": {"u": {"feature_type": "Id", "config": {"num_buckets": 0}}},
        "candidate": {
            "movie_genre": {"feature_type": "Categorical", "config": {"vocab": 3}},
            "v": {"feature_type": "Vector"},
            "t": {"feature_type": "Txt"},
        },
    }
    problems = problems_of(raw)
    assert problems == [
        "query.u.config.num_buckets: must be an int >= 1, got 0",
        "candidate.movie_genre.config.vocab: must be a non-empty list of strings, got 3",
        "candidate.v.config.length: required for Vector",
        "candidate.t.feature_type: must be one of Id, Categorical, Numeric, Text, Vector, got 'Txt'",
    ]


@pytest.mark.parametrize(
    "raw, expected",
    [
        ({"query": GOOD["query"]}, "candidate: missing; the schema needs both `query` and `candidate`"),
        ({**GOOD, "extra": {}}, "extra: unknown top-level key"),
        ({"query": {}, "candidate": GOOD["candidate"]}, "query: must be a non-empty object of features"),
        (
            {
                "query": {"u": {"feature_type": "Id", "config": {"num_buckets": 2, "vocab": ["a"]}}},
                "candidate": GOOD["candidate"],
            },
            "query.u.config.vocab: unknown key for Id; it takes `num_buckets`, `embedding_dim`",
        ),
        (
            {"query": {"": {"feature_type": "Numeric"}}, "candidate": GOOD["candidate"]},
            "query.: invalid feature name ''",
        ),
        (
            {"query": {"n": {"feature_type": "Numeric", "typo": 1}}, "candidate": GOOD["candidate"]},
            "query.n.typo: unknown key",
        ),
        (
            {
                "query": {"c": {"feature_type": "Categorical", "config": {"vocab": ["a", "a"]}}},
                "candidate": GOOD["candidate"],
            },
            "query.c.config.vocab: duplicate values ['a']",
        ),
        (
            {
                "query": {"t": {"feature_type": "Text", "config": {"embedding_module": ""}}},
                "candidate": GOOD["candidate"],
            },
            "query.t.config.embedding_module: must be a non-empty string",
        ),
    ],
)
def test_single_problem_messages(raw, expected):
    problems = problems_of(raw)
    assert any(p.startswith(expected) for p in problems), problems


def test_duplicate_feature_names_in_file(tmp_path):
    path = tmp_path / "dup.json"
    path.write_text(
        '{"query": {"a": {"feature_type": "Numeric"}, "a": {"feature_type": "Numeric"}},'
        ' "candidate": {"b": {"feature_type": "Numeric"}}}'
    )
    with pytest.raises(SchemaError, match=r"duplicate key\(s\) `a`"):
        load_schema(str(path))


def test_root_must_be_an_object(tmp_path):
    path = tmp_path / "list.json"
    path.write_text("[]")
    with pytest.raises(SchemaError, match="<root>: must be a JSON object with `query` and `candidate`"):
        load_schema(str(path))
    with pytest.raises(TypeError, match="`schema` must be a path, a dict or an InputSchema. Got list"):
        load_schema([])


def test_invalid_json_and_missing_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(SchemaError, match=r"not valid JSON: .* line 1"):
        load_schema(str(path))
    with pytest.raises(FileNotFoundError, match="Input schema file not found"):
        load_schema(str(tmp_path / "absent.json"))


def test_error_message_names_source_and_where_to_look(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"query": GOOD["query"]}))
    with pytest.raises(SchemaError, match=rf"Invalid input schema {path}: 1 problem\(s\)") as info:
        load_schema(str(path))
    assert "schemas/" in str(info.value)


def test_unknown_feature_lookup_lists_known():
    with pytest.raises(KeyError, match="it has: user_id, age, bio"):
        load_schema(GOOD).feature("query", "nope")


def test_schema_from_ram_filesystem():
    import tensorflow as tf

    with tf.io.gfile.GFile("ram://schemas/s.json", "w") as f:
        f.write(json.dumps(GOOD))
    assert load_schema("ram://schemas/s.json") == load_schema(GOOD)


def test_embedding_dim_zero_is_a_key_only_id_and_only_for_ids():
    raw = {
        "query": GOOD["query"],
        "candidate": {
            "movie": {"feature_type": "Id", "config": {"num_buckets": 5, "embedding_dim": 0}},
            "genre": {"feature_type": "Categorical", "config": {"vocab": ["a"], "embedding_dim": 0}},
        },
    }
    problems = problems_of(raw)
    assert problems == ["candidate.genre.config.embedding_dim: must be an int >= 1, got 0"]
    del raw["candidate"]["genre"]
    assert load_schema(raw).feature("candidate", "movie").encoded is False
    assert load_schema(GOOD).feature("query", "user_id").encoded is True
