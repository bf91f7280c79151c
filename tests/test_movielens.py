"""Tests for the MovieLens converters (tfrs_twotower/movielens.py).

The MovieLens files are not in the repository: the data tests read `$TFRS_TWOTOWER_DATA` (default
`<repo>/../shared/data`) and skip when the files are absent.
"""

import doctest
import functools
import json
import math
import pathlib
import time

import pytest

from tfrs_twotower import movielens
from tfrs_twotower.movielens import (
    add_history,
    load_movielens_1m_subset,
    load_movielens_100k,
    movielens_1m_candidates,
    movielens_100k_candidates,
    split_random,
    split_title,
    write_pairs_jsonl,
)
from tfrs_twotower.schema import load_schema

REPO = pathlib.Path(__file__).resolve().parents[1]
DATA = pathlib.Path(movielens.default_data_dir())
ML100K = DATA / "ml-100k"
ML1M = DATA / "ml-1m"
ML1M_RATINGS = DATA / "ml-1m-cs100-subset" / "ratings.dat.gz"

needs_100k = pytest.mark.skipif(
    not (ML100K / "u.data").exists(),
    reason=f"MovieLens 100K not found at {ML100K}; set $TFRS_TWOTOWER_DATA to the folder holding ml-100k/",
)
needs_1m = pytest.mark.skipif(
    not (ML1M_RATINGS.exists() and (ML1M / "movies.dat").exists() and (ML1M / "users.dat").exists()),
    reason=f"MovieLens 1M files (ml-1m/, ml-1m-cs100-subset/) not found under {DATA}; "
    "set $TFRS_TWOTOWER_DATA",
)


@pytest.fixture(scope="module")
def ml100k():
    return load_movielens_100k(str(ML100K))


@pytest.fixture(scope="module")
def ml1m():
    return load_movielens_1m_subset(str(ML1M_RATINGS), str(ML1M))


def _problems(schema, side, doc):
    """Mismatches between one side's values and the schema (docs/architecture.md's JSONL table)."""
    problems = []
    if list(doc) != [spec.name for spec in schema.side(side)]:
        return [f"{side}: features {list(doc)}"]
    for spec in schema.side(side):
        value = doc[spec.name]
        if spec.feature_type == "Id":
            ok = isinstance(value, str) and value != ""
        elif spec.feature_type in ("Categorical", "Text"):
            ok = isinstance(value, list) and all(isinstance(v, str) and v for v in value)
            ok = ok and (spec.feature_type == "Text" or set(value) <= _vocab(spec))
        else:
            ok = isinstance(value, list) and all(isinstance(v, float) and math.isfinite(v) for v in value)
        if not ok:
            problems.append(f"{spec.path}: {value!r}")
    return problems


@functools.lru_cache(maxsize=None)
def _vocab(spec) -> frozenset:
    return frozenset(spec.vocab)


def _check_against_schema(schema_path, records, candidates):
    schema = load_schema(str(schema_path))
    users = {id(r["query"]): r["query"] for r in records}.values()
    problems = [p for user in users for p in _problems(schema, "query", user)]
    problems += [p for doc in candidates for p in _problems(schema, "candidate", doc)]
    assert problems[:5] == []
    for spec in schema.query + schema.candidate:  # buckets at least 2x the distinct ids
        if spec.feature_type == "Id":
            side = [r["query"] for r in records] if spec.side == "query" else candidates
            assert spec.num_buckets >= 2 * len({d[spec.name] for d in side}), spec.path


def test_split_title():
    assert split_title("Toy Story (1995)") == ("Toy Story", [1995.0])
    assert split_title("Land Before Time III (1995) (V)") == ("Land Before Time III (V)", [1995.0])
    assert split_title("Seven (Se7en) (1995)") == ("Seven (Se7en)", [1995.0])
    assert split_title("1900 (Novecento) (1976)") == ("1900 (Novecento)", [1976.0])
    assert split_title("unknown") == ("unknown", [])


def test_split_random_is_deterministic_and_complete():
    records = [{"query": {"user_id": str(i)}, "candidate": {"movie_id": "1"}} for i in range(101)]
    train, test = split_random(records, test_fraction=0.2, seed=42)
    assert (len(train), len(test)) == (81, 20)
    assert sorted(r["query"]["user_id"] for r in train + test) == sorted(str(i) for i in range(101))
    assert (train, test) == split_random(records, test_fraction=0.2, seed=42)
    assert test != split_random(records, test_fraction=0.2, seed=1)[1]
    for bad in (0, 1, 1.5, "0.2", True):
        with pytest.raises(ValueError, match=r"The `test_fraction` parameter must be a float in \(0, 1\)"):
            split_random(records, test_fraction=bad)


def _rating(user, movie, stamp):
    return {"query": {"user_id": user, "timestamp": [float(stamp)]}, "candidate": {"movie_id": movie}}


def test_add_history_gives_earlier_training_movies_latest_first():
    train = [_rating("u", "a", 5), _rating("u", "b", 1), _rating("u", "c", 3), _rating("u", "d", 3)]
    train += [_rating("v", "x", 2)]
    test = [_rating("u", "t", 4), _rating("w", "y", 9), _rating("u", "s", 0)]
    new_train, new_test = add_history(train, test, max_length=2)
    assert [r["query"]["history"] for r in new_train] == [["d", "c"], [], ["b"], ["b"], []]
    # c and d share a time: neither is before the other. Test pairs see training movies only.
    assert [r["query"]["history"] for r in new_test] == [["d", "c"], [], []]
    assert add_history(train, test, max_length=10)[1][0]["query"]["history"] == ["d", "c", "b"]
    # New query dicts; the inputs are unchanged; candidates are shared.
    assert "history" not in train[0]["query"] and new_train[0]["candidate"] is train[0]["candidate"]
    assert new_train[0]["query"] == {"user_id": "u", "timestamp": [5.0], "history": ["d", "c"]}
    assert add_history(train, name="seen")[0][0]["query"]["seen"] == ["d", "c", "b"]


def test_add_history_rejects_bad_input():
    no_time = {"query": {"user_id": "u", "timestamp": []}, "candidate": {"movie_id": "b"}}
    with pytest.raises(ValueError, match=r"^train record 2: `add_history` needs the query's `timestamp`"):
        add_history([_rating("u", "a", 1), no_time])
    with pytest.raises(ValueError, match=r"^others\[1\] record 1: .* Got \[\] instead"):
        add_history([_rating("u", "a", 1)], [_rating("u", "c", 2)], [no_time])
    for bad in (0, -1, 1.5, True, "5"):
        with pytest.raises(ValueError, match=r"The `max_length` parameter must be a positive int"):
            add_history([_rating("u", "a", 1)], max_length=bad)


@needs_100k
def test_add_history_never_shows_a_test_rating_in_training(ml100k):
    train, test = add_history(*split_random(ml100k, seed=3))
    held_out = {(r["query"]["user_id"], r["candidate"]["movie_id"]) for r in test}
    in_histories = {(r["query"]["user_id"], m) for r in train + test for m in r["query"]["history"]}
    assert not held_out & in_histories
    assert max(len(r["query"]["history"]) for r in train) == 10
    assert sum(bool(r["query"]["history"]) for r in test) > 0.9 * len(test)


def test_write_pairs_jsonl_round_trips_non_ascii(tmp_path):
    movie = {"movie_id": "1", "title": ["Misérables, Les"], "genres": ["Drama"], "year": [1995.0]}
    user = {"user_id": "7", "age": [30.0]}
    rows = [{"query": user, "candidate": movie}, {"query": user, "candidate": movie}, {"other": 1}]
    path = tmp_path / "sub" / "pairs.jsonl"
    assert write_pairs_jsonl(rows, str(path)) == 3
    assert [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] == rows


def test_missing_files_and_bad_lines_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="TFRS_TWOTOWER_DATA"):
        load_movielens_100k(str(tmp_path))
    (tmp_path / "u.genre").write_text("unknown|0\nAction|1\n")
    (tmp_path / "u.item").write_text("1|Toy Story (1995)|01-Jan-1995||url|0|1\n2|Bad (1995)|||url|0\n")
    with pytest.raises(ValueError, match=r"u\.item line 2: expected 7 fields separated by '\|', got 6"):
        movielens_100k_candidates(str(tmp_path))
    with pytest.raises(TypeError, match="`min_rating` must be a number or None"):
        load_movielens_100k(str(tmp_path), min_rating="4")


def test_unknown_ids_in_ratings_raise(tmp_path):
    (tmp_path / "u.genre").write_text("unknown|0\nAction|1\n")
    (tmp_path / "u.item").write_text("1|Toy Story (1995)|01-Jan-1995||url|0|1\n")
    (tmp_path / "u.user").write_text("1|24|M|technician|85711\n")
    (tmp_path / "u.data").write_text("1\t1\t5\t0\n1\t9\t5\t0\n")
    with pytest.raises(ValueError, match=r"u\.data rating 2: unknown movie id '9'"):
        load_movielens_100k(str(tmp_path))


@needs_100k
def test_ml100k_counts(ml100k):
    assert len(ml100k) == 100_000
    assert len({r["query"]["user_id"] for r in ml100k}) == 943
    assert len({r["candidate"]["movie_id"] for r in ml100k}) == 1682
    assert len(load_movielens_100k(str(ML100K), min_rating=4)) == 55_375
    assert ml100k[0] == {
        "query": {
            "user_id": "196",
            "age": [49.0],
            "gender": ["M"],
            "occupation": ["writer"],
            "zip": "55105",
            "timestamp": [881250949.0],
        },
        "candidate": {"movie_id": "242", "title": ["Kolya"], "genres": ["Comedy"], "year": [1996.0]},
    }


@needs_100k
def test_ml100k_candidates():
    candidates = movielens_100k_candidates(str(ML100K))
    assert len(candidates) == len({c["movie_id"] for c in candidates}) == 1682
    assert candidates[0] == {
        "movie_id": "1",
        "title": ["Toy Story"],
        "genres": ["Animation", "Children's", "Comedy"],
        "year": [1995.0],
    }
    assert candidates[266] == {"movie_id": "267", "title": ["unknown"], "genres": ["unknown"], "year": []}
    assert sum(not c["year"] for c in candidates) == 1
    assert any("Misérables" in c["title"][0] for c in candidates)  # latin-1 decoded


@needs_100k
def test_ml100k_matches_its_schema(ml100k):
    candidates = movielens_100k_candidates(str(ML100K))
    train, test = add_history(*split_random(ml100k))
    _check_against_schema(REPO / "schemas" / "movielens-100k.json", train + test, candidates)
    schema = load_schema(str(REPO / "schemas" / "movielens-100k.json"))
    assert list(schema.feature("query", "history").vocab) == [c["movie_id"] for c in candidates]
    genres = [line.split("|")[0] for line in (ML100K / "u.genre").read_text().splitlines() if line]
    occupations = (ML100K / "u.occupation").read_text().split()
    assert list(schema.feature("candidate", "genres").vocab) == genres and len(genres) == 19
    assert list(schema.feature("query", "occupation").vocab) == occupations and len(occupations) == 21


@needs_100k
def test_ml100k_converts_fast(tmp_path):
    start = time.perf_counter()
    records = load_movielens_100k(str(ML100K))
    train, test = split_random(records)
    write_pairs_jsonl(train, str(tmp_path / "train.jsonl"))
    assert (len(train), len(test)) == (80_000, 20_000)
    assert time.perf_counter() - start < 10  # about 1 s on one core; generous for slow CI machines


@needs_1m
def test_ml1m_subset_counts(ml1m):
    assert len(ml1m) == 279_124  # ratings >= 4 of the 487,650 in the subset
    assert len({r["query"]["user_id"] for r in ml1m}) == 2999
    assert ml1m[0]["query"] == {
        "user_id": "1",
        "age": [1.0],
        "gender": ["F"],
        "occupation": ["K-12 student"],
        "zip": "48067",
        "timestamp": [978300760.0],
    }
    assert ml1m[0]["candidate"]["title"] == ["One Flew Over the Cuckoo's Nest"]


@needs_1m
def test_ml1m_candidates_and_schema(ml1m):
    candidates = movielens_1m_candidates(str(ML1M))
    assert len(candidates) == len({c["movie_id"] for c in candidates}) == 3883
    assert all(c["year"] for c in candidates)
    train, test = add_history(*split_random(ml1m))
    _check_against_schema(REPO / "schemas" / "movielens-1m.json", train + test, candidates)


def test_docstring_examples_run():
    result = doctest.testmod(movielens)
    assert result.failed == 0 and result.attempted > 0


def test_movielens_dir_finds_local_data_first(tmp_path, monkeypatch):
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    (folder / "u.data").write_text("")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    assert movielens.movielens_dir("ml-100k", data_dir=str(folder)) == str(folder)
    assert movielens.movielens_dir("ml-100k", data_dir=str(tmp_path)) == str(folder)
    monkeypatch.setenv("TFRS_TWOTOWER_DATA", str(tmp_path))
    assert movielens.movielens_dir("ml-100k", download=False) == str(folder)


def test_movielens_dir_downloads_from_grouplens_when_missing(tmp_path, monkeypatch):
    import keras

    monkeypatch.setenv("TFRS_TWOTOWER_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(movielens, "default_data_dir", lambda: str(tmp_path / "empty"))
    with pytest.raises(
        FileNotFoundError, match=r"Download https://files.grouplens.org/datasets/movielens/ml-1m"
    ):
        movielens.movielens_dir("ml-1m", download=False)
    calls = []

    def fake_get_file(fname, origin, extract):
        calls.append((fname, origin, extract))
        return str(tmp_path / "keras" / "datasets" / fname)

    monkeypatch.setattr(keras.utils, "get_file", fake_get_file)
    path = movielens.movielens_dir("ml-100k")
    assert calls == [
        ("movielens-ml-100k", "https://files.grouplens.org/datasets/movielens/ml-100k.zip", True)
    ]
    assert path == str(tmp_path / "keras" / "datasets" / "movielens-ml-100k" / "ml-100k")
    with pytest.raises(FileNotFoundError, match="cannot be downloaded"):
        movielens.movielens_dir("ml-1m-cs100-subset")


def test_each_pair_carries_its_rating_time(tmp_path):
    (tmp_path / "u.genre").write_text("unknown|0\nAction|1\n")
    (tmp_path / "u.item").write_text("1|Toy Story (1995)|01-Jan-1995||url|0|1\n")
    (tmp_path / "u.user").write_text("1|24|M|technician|85711\n")
    (tmp_path / "u.data").write_text("1\t1\t5\t874965758\n1\t1\t4\t874965900\n")
    first, second = load_movielens_100k(str(tmp_path))
    assert (first["query"]["timestamp"], second["query"]["timestamp"]) == ([874965758.0], [874965900.0])
    assert first["query"]["user_id"] == second["query"]["user_id"] == "1"
    (tmp_path / "u.data").write_text("1\t1\t5\t874965758\n1\t1\t4\tyesterday\n")
    with pytest.raises(ValueError, match=r"u\.data rating 2: the timestamp must be whole seconds"):
        load_movielens_100k(str(tmp_path))
