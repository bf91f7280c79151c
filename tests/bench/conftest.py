"""Fixtures of the benchmark smoke tests: a tiny synthetic MovieLens 100K folder (MovieLens itself is never
copied: the files are written in the GroupLens formats), and loading a bench/ script as a module."""

import importlib.util
import pathlib
import sys

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip
JOBS = ["administrator", "engineer", "student", "writer"]
WORDS = ["star", "night", "love", "war", "city", "blue", "return", "dead", "man", "story", "Misérables"]


def _write_movielens(
    folder: pathlib.Path,
    num_movies: int = 80,
    num_users: int = 40,
    num_ratings: int = 500,
    seed: int = 0,
    duplicate_movie: bool = False,
) -> pathlib.Path:
    """u.genre, u.occupation, u.item, u.user and u.data in the GroupLens formats (latin-1, `|` and tab).

    Ratings follow a Zipf popularity skew, as in the real data. `duplicate_movie` lists movie 1 a second
    time under a new id (the real u.item has such duplicates).
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    (folder / "u.genre").write_text("".join(f"{g}|{i}\n" for i, g in enumerate(GENRES)) + "\n", "latin-1")
    (folder / "u.occupation").write_text("".join(f"{j}\n" for j in JOBS), "latin-1")
    items = []
    for m in range(1, num_movies + 1):
        title = " ".join(rng.choice(WORDS, size=rng.integers(1, 4))).title()
        flags = ["1" if rng.random() < 0.2 else "0" for _ in GENRES]
        year = 1950 + m % 50
        items.append(f"{m}|{title} ({year})|01-Jan-{year}||http://example.invalid/{m}|{'|'.join(flags)}\n")
    if duplicate_movie:
        items.append(items[0].replace("1|", f"{num_movies + 1}|", 1))
    (folder / "u.item").write_text("".join(items), "latin-1")
    (folder / "u.user").write_text(
        "".join(f"{u}|{20 + u}|{'MF'[u % 2]}|{JOBS[u % 4]}|{u:05d}\n" for u in range(1, num_users + 1)),
        "latin-1",
    )
    popular = rng.zipf(1.5, num_ratings) % len(items) + 1
    (folder / "u.data").write_text(
        "".join(
            f"{rng.integers(1, num_users + 1)}\t{popular[i]}\t{rng.integers(1, 6)}\t{880000000 + i}\n"
            for i in range(num_ratings)
        ),
        "latin-1",
    )
    return folder


def _load_bench(name: str):
    """`bench/<name>.py` as a module (bench/ is not a package; its scripts import each other)."""
    if str(REPO / "bench") not in sys.path:
        sys.path.insert(0, str(REPO / "bench"))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def write_movielens():
    return _write_movielens


@pytest.fixture
def load_bench():
    return _load_bench
