"""Data-test fixtures: a tiny schema with all five feature types (Text without a module), and records."""

import pytest

from tfrs_twotower.schema import load_schema

SCHEMA = {
    "query": {
        "user_id": {"feature_type": "Id", "config": {"num_buckets": 100}},
        "age": {"feature_type": "Numeric"},
        "query_text": {"feature_type": "Text"},
        "liked": {"feature_type": "Categorical", "config": {"vocab": ["a", "b", "c"]}},
    },
    "candidate": {
        "movie_id": {"feature_type": "Id", "config": {"num_buckets": 100}},
        "genres": {"feature_type": "Categorical", "config": {"vocab": ["a", "b", "c"]}},
        "title": {"feature_type": "Text"},
        "year": {"feature_type": "Numeric"},
        "emb": {"feature_type": "Vector", "config": {"length": 3}},
    },
}


def candidate(i: int, **overrides) -> dict:
    doc = {
        "movie_id": f"m{i % 7}",
        "genres": ["a", "b", "c"][: i % 4],
        "title": f"Title {i % 7}",
        "year": 1990 + i % 7,
        "emb": [float(i % 7), 0.5, -1.0],
    }
    doc.update(overrides)
    return doc


def pair(i: int, **overrides) -> dict:
    record = {
        "query": {
            "user_id": f"u{i}",
            "age": [20 + i % 50] if i % 5 else [],
            "query_text": "une requête ünïcode" if i % 3 == 0 else ["two", "texts"],
            "liked": "a" if i % 2 else [],
        },
        "candidate": candidate(i),
    }
    record.update(overrides)
    return record


SAMPLE_SCHEMA = load_schema(SCHEMA)


@pytest.fixture
def schema():
    return SAMPLE_SCHEMA


@pytest.fixture
def records():
    return [pair(i) for i in range(60)]
