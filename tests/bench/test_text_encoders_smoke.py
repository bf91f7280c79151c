"""Smoke test of bench/text_encoders.py: `--small` on a tiny synthetic MovieLens 100K folder, so the
benchmark cannot rot. MovieLens itself is not copied: the test writes files in the GroupLens format."""

import importlib.util
import json
import pathlib

import numpy as np

from tfrs_twotower.text import offline_presets

REPO = pathlib.Path(__file__).resolve().parents[2]
GENRES = [
    "unknown",
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
]
WORDS = ["star", "night", "love", "war", "city", "blue", "return", "dead", "man", "story", "Misérables"]


def _load_bench():
    spec = importlib.util.spec_from_file_location("text_encoders_bench", REPO / "bench" / "text_encoders.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_movielens(folder: pathlib.Path, num_movies=60, num_users=30, num_ratings=600, seed=0) -> None:
    """u.genre, u.item, u.user and u.data in the GroupLens ML-100K formats (latin-1, `|` and tab)."""
    rng = np.random.default_rng(seed)
    folder.mkdir()
    (folder / "u.genre").write_text("".join(f"{g}|{i}\n" for i, g in enumerate(GENRES)) + "\n", "latin-1")
    items = []
    for m in range(1, num_movies + 1):
        title = " ".join(rng.choice(WORDS, size=rng.integers(1, 4))).title()
        flags = ["1" if rng.random() < 0.2 else "0" for _ in GENRES]
        year = 1950 + m % 50
        items.append(f"{m}|{title} ({year})|01-Jan-{year}||http://example.invalid/{m}|{'|'.join(flags)}\n")
    items.append(items[0].replace("1|", f"{num_movies + 1}|", 1))  # a movie listed twice under two ids
    (folder / "u.item").write_text("".join(items), "latin-1")
    jobs = ["student", "engineer", "writer"]
    (folder / "u.user").write_text(
        "".join(f"{u}|{20 + u}|{'MF'[u % 2]}|{jobs[u % 3]}|0{u:04d}\n" for u in range(1, num_users + 1)),
        "latin-1",
    )
    (folder / "u.data").write_text(
        "".join(
            f"{rng.integers(1, num_users + 1)}\t{rng.integers(1, num_movies + 2)}\t{rng.integers(1, 6)}\t"
            f"{880000000 + i}\n"
            for i in range(num_ratings)
        ),
        "latin-1",
    )


def test_small_run_writes_the_table_and_json(tmp_path):
    data = tmp_path / "ml-100k"
    _write_movielens(data)
    out = tmp_path / "results" / "text_encoders.json"
    # Three trainings keep the test short; together they cover every kind of variant. `@wordllama-l2`
    # reads its weights from the optional `wordllama` wheel.
    presets = [p for p in offline_presets() if p != "@wordllama-l2" or importlib.util.find_spec("wordllama")]
    variants = ["bag-of-words", "title-only:@hashed-ngrams", *[p for p in presets if p != "@hashed-ngrams"]]
    bench = _load_bench()

    report = bench.main(
        [
            "--data",
            str(data),
            "--out",
            str(out),
            "--small",
            "--variants",
            ",".join(variants),
            "--workdir",
            str(tmp_path / "runs"),
        ]
    )

    written = json.loads(out.read_text())
    assert written["summary"] == report["summary"]
    assert set(written["summary"]) == {*variants, "random", "oracle popularity (test labels)"}
    for name, row in written["summary"].items():
        assert 0.0 <= row["recall_at_10"] <= row["recall_at_100"] <= 1.0, name
    assert set(written["encode_strings_per_second"]) == set(presets)
    assert all(rate > 0 for rate in written["encode_strings_per_second"].values())
    assert written["settings"]["epochs"] == 1 and written["data"]["test_movies"] > 0
    assert "| title-only:@hashed-ngrams |" in written["table"] and "| @hashed-ngrams |" in written["table"]


def test_expected_recall_breaks_ties_at_random():
    bench = _load_bench()
    # The positive (column 0) ties with 3 others and is beaten by 1: its rank is uniform in 2..5.
    scores = np.array([[1.0, 1.0, 1.0, 1.0, 2.0, 0.0]])
    recall = bench.expected_recall(scores, np.array([0]), ks=(1, 2, 3, 5))
    assert recall == {"recall_at_1": 0.0, "recall_at_2": 0.25, "recall_at_3": 0.5, "recall_at_5": 1.0}
