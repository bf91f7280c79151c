"""Converters from the GroupLens MovieLens files to pair records and candidate documents.

MovieLens is never copied into the repository: `movielens_dir("ml-100k")` finds the folder locally
(`$TFRS_TWOTOWER_DATA`, an earlier download, this project's own data folder) or downloads it from
GroupLens with `keras.utils.get_file` (ml-100k: 5 MB; ml-1m: 6 MB) into Keras's cache, `~/.keras/datasets`.

A pair record is `{"query": {...}, "candidate": {...}}` with values as in docs/architecture.md (Id a
string; Categorical, Numeric, Text lists). Records share one dict per movie, so treat them as read-only.
Every rating is a pair, as in the TFRS retrieval tutorial (`min_rating` keeps only the ratings at or
above it). The schemas are `schemas/movielens-100k.json` and `schemas/movielens-1m.json`.

- query: `user_id` (Id), `age` (Numeric; in ML-1M the age-range code 1, 18, 25, ..., 56), `gender`
  (Categorical "M"/"F"), `occupation` (Categorical name), `zip` (Id), `timestamp` (Numeric: when the
  rating was made, Unix seconds; a context feature: at serving time pass the request's time, or `[]` for
  "unknown"). The timestamp lets the model learn what is popular when: on ML-100K leave-last-out it
  raised Recall@10 and @100 (docs/benchmarks.md, "MovieLens protocols").
- query `history` (Categorical over the movie ids): the user's latest earlier movies. It depends on which
  pairs are training pairs, so the loaders leave it out: call `add_history(train, test)` after splitting
  (the repository's schemas declare it, and every record needs every schema feature). It is the feature
  that lets the model beat most-popular by a wide margin (docs/benchmarks.md, "Round 4").
- candidate: `movie_id` (Id), `title` (Text, the title WITHOUT its "(1995)" year suffix), `genres`
  (Categorical, multi-valued), `year` (Numeric: the year from the title, else the release date's year,
  else an empty list).

Example:
>>> records = load_movielens_100k(movielens_dir("ml-100k"))  # doctest: +SKIP
>>> train, test = split_random(records, test_fraction=0.2, seed=42)  # doctest: +SKIP
>>> train, test = add_history(train, test)  # doctest: +SKIP
>>> write_pairs_jsonl(train, "/tmp/ml100k/train.jsonl")  # doctest: +SKIP
80000
"""

from __future__ import annotations

import gzip
import json
import os
import re
from typing import Any, Iterable, Sequence

import numpy as np
import tensorflow as tf

from tfrs_twotower.data.history import add_history as add_any_history

Record = dict[str, dict[str, Any]]
DATA_ENV_VAR = "TFRS_TWOTOWER_DATA"
# ML-1M occupations by code, from ml-1m/README.
ML1M_OCCUPATIONS = (
    "other",
    "academic/educator",
    "artist",
    "clerical/admin",
    "college/grad student",
    "customer service",
    "doctor/health care",
    "executive/managerial",
    "farmer",
    "homemaker",
    "K-12 student",
    "lawyer",
    "programmer",
    "retired",
    "sales/marketing",
    "scientist",
    "self-employed",
    "technician/engineer",
    "tradesman/craftsman",
    "unemployed",
    "writer",
)
ML1M_GENRES = (
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
_YEAR = re.compile(r"\s*\((\d{4})\)")


def default_data_dir() -> str:
    """`$TFRS_TWOTOWER_DATA` when set, else `../shared/data` next to the repository root."""
    if os.environ.get(DATA_ENV_VAR):
        return os.environ[DATA_ENV_VAR]
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.normpath(os.path.join(repo, "..", "shared", "data"))


GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/{name}.zip"
# The file each folder must hold; only the GroupLens releases can be downloaded.
_MARKERS = {"ml-100k": "u.data", "ml-1m": "movies.dat", "ml-1m-cs100-subset": "ratings.dat.gz"}
_DOWNLOADABLE = ("ml-100k", "ml-1m")


def movielens_dir(name: str = "ml-100k", download: bool = True, data_dir: str | None = None) -> str:
    """The folder of MovieLens `name` ("ml-100k", "ml-1m"): found locally, else downloaded from GroupLens.

    Looks in `data_dir`, then `$TFRS_TWOTOWER_DATA`, then an earlier download in Keras's cache
    (`~/.keras/datasets`, or `$KERAS_HOME`), then this project's development data folder; otherwise
    downloads `https://files.grouplens.org/datasets/movielens/<name>.zip` (about 5 MB) with
    `keras.utils.get_file` into Keras's cache, once.

    Raises:
      FileNotFoundError: not found and `download=False` (or no download exists for `name`), naming
        the places looked in and the URL.

    Example:
    >>> path = movielens_dir("ml-100k")  # doctest: +SKIP
    >>> records = load_movielens_100k(path)  # doctest: +SKIP
    """
    if name not in _MARKERS:
        raise ValueError(f"The `name` parameter must be one of {sorted(_MARKERS)}. Got {name!r} instead.")
    cache = os.path.join(os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")), "datasets")
    places = [
        data_dir,
        os.environ.get(DATA_ENV_VAR),
        os.path.join(cache, f"movielens-{name}"),
        default_data_dir(),
    ]
    folders = [os.path.join(place, name) for place in places if place]
    if data_dir:
        folders.insert(0, data_dir)  # the folder itself
    folders = list(dict.fromkeys(folders))
    for folder in folders:
        if os.path.exists(os.path.join(folder, _MARKERS[name])):
            return folder
    url = GROUPLENS_URL.format(name=name)
    if not download or name not in _DOWNLOADABLE:
        raise FileNotFoundError(
            f"MovieLens `{name}` not found in {folders}. "
            + (
                f"Download {url} and unzip it there, or set ${DATA_ENV_VAR} to the folder holding `{name}/`."
                if name in _DOWNLOADABLE
                else f"It cannot be downloaded: set ${DATA_ENV_VAR} to its parent folder."
            )
        )
    import keras  # here: downloading is the only use of Keras in this module

    extracted = keras.utils.get_file(f"movielens-{name}", origin=url, extract=True)
    return os.path.join(extracted, name)


def _read_lines(path: str, encoding: str) -> list[str]:
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"MovieLens file not found: {path}. Pass the folder that holds it, or set ${DATA_ENV_VAR} to "
            "the folder holding ml-100k/, ml-1m/ and ml-1m-cs100-subset/."
        )
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding=encoding, newline="") as f:
        return f.read().splitlines()


def _fields(path: str, lines: list[str], sep: str, count: int) -> Iterable[list[str]]:
    for number, line in enumerate(lines, start=1):
        if not line:
            continue
        fields = line.split(sep)
        if len(fields) != count:
            raise ValueError(
                f"{path} line {number}: expected {count} fields separated by {sep!r}, got {len(fields)}: "
                f"{line[:80]!r}. Is this the original GroupLens file?"
            )
        yield fields


def split_title(title: str) -> tuple[str, list[float]]:
    """Strips the last "(YYYY)" from a MovieLens title: `("Toy Story", [1995.0])`; `(title, [])` if none."""
    matches = list(_YEAR.finditer(title))
    if not matches:
        return title.strip(), []
    last = matches[-1]
    stripped = (title[: last.start()] + title[last.end() :]).strip()
    return stripped or title.strip(), [float(last.group(1))]


def _check_min_rating(min_rating: float | None) -> None:
    if min_rating is not None and (isinstance(min_rating, bool) or not isinstance(min_rating, (int, float))):
        raise TypeError(f"`min_rating` must be a number or None. Got {type(min_rating).__name__} instead.")


def movielens_100k_candidates(path: str | None = None) -> list[dict[str, Any]]:
    """All 1,682 movies of `u.item` as candidate documents, in file order.

    Args:
      path: the ml-100k folder (default: `default_data_dir()/ml-100k`).

    Example:
    >>> movielens_100k_candidates()[0]  # doctest: +SKIP
    {'movie_id': '1', 'title': ['Toy Story'], 'genres': ['Animation', "Children's", 'Comedy'], \
'year': [1995.0]}
    """
    path = path or os.path.join(default_data_dir(), "ml-100k")
    genre_file = os.path.join(path, "u.genre")
    genres = [g for g, _ in _fields(genre_file, _read_lines(genre_file, "latin-1"), "|", 2)]
    item_file = os.path.join(path, "u.item")
    docs = []
    for fields in _fields(item_file, _read_lines(item_file, "latin-1"), "|", 5 + len(genres)):
        title, year = split_title(fields[1])
        if not year and fields[2][-4:].isdigit():  # the release date, "01-Jan-1995"
            year = [float(fields[2][-4:])]
        flags = fields[5:]
        docs.append(
            {
                "movie_id": fields[0],
                "title": [title],
                "genres": [g for g, flag in zip(genres, flags, strict=True) if flag == "1"],
                "year": year,
            }
        )
    return docs


def load_movielens_100k(path: str | None = None, min_rating: float | None = None) -> list[Record]:
    """Every rating of `u.data` (100,000) as a pair record, in file order.

    Args:
      path: the ml-100k folder (default: `default_data_dir()/ml-100k`).
      min_rating: keep only ratings >= this (default: keep all, as the TFRS tutorial does).

    Raises:
      FileNotFoundError: when a file is missing.
      ValueError: when a line does not have the expected fields.

    Example:
    >>> records = load_movielens_100k(movielens_dir("ml-100k"))  # doctest: +SKIP
    >>> records[0]["query"]["user_id"], records[0]["candidate"]["movie_id"]  # doctest: +SKIP
    ('196', '242')
    """
    _check_min_rating(min_rating)
    path = path or os.path.join(default_data_dir(), "ml-100k")
    movies = {doc["movie_id"]: doc for doc in movielens_100k_candidates(path)}
    user_file = os.path.join(path, "u.user")
    users = {
        uid: {"user_id": uid, "age": [float(age)], "gender": [gender], "occupation": [job], "zip": zipcode}
        for uid, age, gender, job, zipcode in _fields(user_file, _read_lines(user_file, "latin-1"), "|", 5)
    }
    data_file = os.path.join(path, "u.data")
    return _pairs(
        data_file, _fields(data_file, _read_lines(data_file, "latin-1"), "\t", 4), users, movies, min_rating
    )


def _pairs(path: str, rows: Iterable[list[str]], users: dict, movies: dict, min_rating) -> list[Record]:
    records = []
    for number, (uid, mid, rating, stamp) in enumerate(rows, start=1):
        if min_rating is not None and float(rating) < min_rating:
            continue
        if not stamp.strip().isdigit():
            raise ValueError(
                f"{path} rating {number}: the timestamp must be whole seconds since 1970 (a non-negative "
                f"integer). Got {stamp!r} instead."
            )
        try:
            records.append({"query": {**users[uid], "timestamp": [float(stamp)]}, "candidate": movies[mid]})
        except KeyError as e:
            raise ValueError(
                f"{path} rating {number}: unknown {'user' if uid not in users else 'movie'} id "
                f"{e.args[0]!r}; "
                "the ratings and the users/movies files must come from the same MovieLens release."
            ) from e
    return records


def movielens_1m_candidates(path: str | None = None) -> list[dict[str, Any]]:
    """All 3,883 movies of ML-1M `movies.dat` as candidate documents, in file order.

    Args:
      path: the ml-1m folder (default: `default_data_dir()/ml-1m`).

    Example:
    >>> movielens_1m_candidates()[0]["genres"]  # doctest: +SKIP
    ['Animation', "Children's", 'Comedy']
    """
    path = path or os.path.join(default_data_dir(), "ml-1m")
    movie_file = os.path.join(path, "movies.dat")
    docs = []
    for mid, raw_title, genres in _fields(movie_file, _read_lines(movie_file, "latin-1"), "::", 3):
        title, year = split_title(raw_title)
        docs.append({"movie_id": mid, "title": [title], "genres": genres.split("|"), "year": year})
    return docs


def load_movielens_1m_subset(
    ratings_path: str | None = None, path: str | None = None, min_rating: float | None = 4
) -> list[Record]:
    """The ML-1M "CS100.1x" ratings subset (users 1..2999) as pair records, ratings >= `min_rating`.

    This is a partial MovieLens 1M (see shared/data/SOURCES.md); do not report results on it as ML-1M.

    Args:
      ratings_path: `UserID::MovieID::Rating::Timestamp` lines, gzipped or not (default:
        `default_data_dir()/ml-1m-cs100-subset/ratings.dat.gz`).
      path: the ml-1m folder with `users.dat` and `movies.dat` (default: `default_data_dir()/ml-1m`).
      min_rating: keep ratings >= this as positives (default 4; None keeps all).

    Example:
    >>> len(load_movielens_1m_subset())  # doctest: +SKIP
    279969
    """
    _check_min_rating(min_rating)
    data = default_data_dir()
    ratings_path = ratings_path or os.path.join(data, "ml-1m-cs100-subset", "ratings.dat.gz")
    path = path or os.path.join(data, "ml-1m")
    movies = {doc["movie_id"]: doc for doc in movielens_1m_candidates(path)}
    user_file = os.path.join(path, "users.dat")
    users = {}
    for uid, gender, age, job, zipcode in _fields(user_file, _read_lines(user_file, "latin-1"), "::", 5):
        if not job.isdigit() or int(job) >= len(ML1M_OCCUPATIONS):
            raise ValueError(
                f"{user_file} user {uid}: `occupation` must be a code in [0, {len(ML1M_OCCUPATIONS) - 1}]. "
                f"Got {job!r} instead."
            )
        occupation = ML1M_OCCUPATIONS[int(job)]
        users[uid] = {
            "user_id": uid,
            "age": [float(age)],
            "gender": [gender],
            "occupation": [occupation],
            "zip": zipcode,
        }
    rows = _fields(ratings_path, _read_lines(ratings_path, "latin-1"), "::", 4)
    return _pairs(ratings_path, rows, users, movies, min_rating)


def split_random(
    records: Sequence[Record], test_fraction: float = 0.2, seed: int = 42
) -> tuple[list[Record], list[Record]]:
    """Shuffles `records` with `seed` and splits off `test_fraction` of them: `(train, test)`.

    Example:
    >>> train, test = split_random([{"query": {}, "candidate": {}}] * 10, test_fraction=0.3)
    >>> len(train), len(test)
    (7, 3)
    """
    if (
        isinstance(test_fraction, bool)
        or not isinstance(test_fraction, (int, float))
        or not (0 < test_fraction < 1)
    ):
        raise ValueError(
            f"The `test_fraction` parameter must be a float in (0, 1). Got {test_fraction!r} instead."
        )
    order = np.random.default_rng(seed).permutation(len(records))
    num_test = int(round(len(records) * test_fraction))
    return [records[i] for i in order[num_test:]], [records[i] for i in order[:num_test]]


def add_history(
    train: Sequence[Record], *others: Sequence[Record], max_length: int = 10, name: str = "history"
) -> list[list[Record]]:
    """Each record's query gains `name`: the movies its user rated in `train` before it, latest first.

    A pair's history holds the ids of the `max_length` latest training ratings of the same user made
    strictly before the pair's own `timestamp` (ties in time are left out, so a pair never sees
    itself); pairs in `others` (test, validation) see only `train`. At serving time pass the user's
    latest ratings. The repository's MovieLens schemas declare it as a Categorical over the movie ids.
    `tfrs_twotower.data.add_history` is the same for any data (it names the user, item and time).

    Args:
      train: pair records whose movies make the histories; each query needs `timestamp`.
      *others: more record lists (test pairs) to give histories from `train`.
      max_length: at most this many ids per history (the latest).
      name: the query feature's name.

    Returns:
      `[train', *others']`: new records (new query dicts; the candidate dicts are shared).

    Example:
    >>> q = lambda t: {"user_id": "u", "timestamp": [float(t)]}
    >>> train = [{"query": q(t), "candidate": {"movie_id": m}} for t, m in ((1, "a"), (2, "b"))]
    >>> test = [{"query": q(3), "candidate": {"movie_id": "c"}}]
    >>> new_train, new_test = add_history(train, test)
    >>> new_train[1]["query"]["history"], new_test[0]["query"]["history"]
    (['a'], ['b', 'a'])
    """
    return add_any_history(
        train, *others, user_feature="user_id", item_feature="movie_id", max_length=max_length, name=name
    )


def write_pairs_jsonl(records: Iterable[dict[str, Any]], path: str) -> int:
    """Writes one JSON object per line (pair records, or candidate documents); returns the line count.

    The folder is created if missing; `path` may be any `tf.io.gfile` URI.

    Example:
    >>> import tempfile, os
    >>> write_pairs_jsonl([{"query": {"user_id": "1"}, "candidate": {"movie_id": "2"}}],
    ...                   os.path.join(tempfile.mkdtemp(), "pairs.jsonl"))
    1
    """
    # Records share one dict per user and per movie: encode each once. The cache holds the dict itself
    # too, so that its id cannot be reused by another object while we write.
    cache: dict[int, tuple[Any, str]] = {}

    def encode(value: Any) -> str:
        key = id(value)
        if key not in cache:
            cache[key] = (value, json.dumps(value, ensure_ascii=False))
        return cache[key][1]

    lines = []
    for r in records:
        if isinstance(r, dict) and list(r) == ["query", "candidate"]:
            lines.append(f'{{"query": {encode(r["query"])}, "candidate": {encode(r["candidate"])}}}\n')
        else:
            lines.append(json.dumps(r, ensure_ascii=False) + "\n")
    folder = os.path.dirname(path)
    if folder:
        tf.io.gfile.makedirs(folder)
    with tf.io.gfile.GFile(path, "w") as f:
        f.write("".join(lines))
    return len(lines)
