"""Smoke test of bench/text_encoders.py: `--small` on a tiny synthetic MovieLens 100K folder, so the
benchmark cannot rot. MovieLens itself is not copied: the test writes files in the GroupLens format."""

import importlib.util
import json

import numpy as np

from tfrs_twotower.text import offline_presets


def test_small_run_writes_the_table_and_json(tmp_path, write_movielens, load_bench):
    data = tmp_path / "ml-100k"
    write_movielens(data, num_movies=60, num_users=30, num_ratings=600, duplicate_movie=True)
    out = tmp_path / "results" / "text_encoders.json"
    # Three trainings keep the test short; together they cover every kind of variant. `@wordllama-l2`
    # reads its weights from the optional `wordllama` wheel.
    presets = [p for p in offline_presets() if p != "@wordllama-l2" or importlib.util.find_spec("wordllama")]
    variants = ["bag-of-words", "title-only:@hashed-ngrams", *[p for p in presets if p != "@hashed-ngrams"]]
    bench = load_bench("text_encoders")

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


def test_expected_recall_breaks_ties_at_random(load_bench):
    bench = load_bench("text_encoders")
    # The positive (column 0) ties with 3 others and is beaten by 1: its rank is uniform in 2..5.
    scores = np.array([[1.0, 1.0, 1.0, 1.0, 2.0, 0.0]])
    recall = bench.expected_recall(scores, np.array([0]), ks=(1, 2, 3, 5))
    assert recall == {"recall_at_1": 0.0, "recall_at_2": 0.25, "recall_at_3": 0.5, "recall_at_5": 1.0}
