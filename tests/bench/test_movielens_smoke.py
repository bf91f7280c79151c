"""Smoke tests of bench/movielens.py (ours vs TFRS, baselines) and bench/objective_options.py in `--smoke`
mode, so the benchmarks cannot rot. MovieLens itself is not copied: the tests write a tiny synthetic
folder in the GroupLens ML-100K formats."""

import json
import os
import sys

import pytest

METRICS = {"recall_at_10", "recall_at_50", "recall_at_100", "ndcg_at_10"}


def _tfrs_importable() -> bool:
    import subprocess

    probe = subprocess.run(
        [sys.executable, "-c", "import tensorflow_recommenders"],
        capture_output=True,
        env={**os.environ, "TF_USE_LEGACY_KERAS": "1"},
    )
    return probe.returncode == 0


def _check_row(row):
    assert METRICS <= set(row)
    assert 0.0 <= row["recall_at_10"] <= row["recall_at_50"] <= row["recall_at_100"] <= 1.0


def test_ours_and_baselines_smoke(tmp_path, write_movielens, load_bench):
    data = tmp_path / "ml-100k"
    write_movielens(data)
    out = tmp_path / "movielens.json"
    bench = load_bench("movielens")

    report = bench.main(
        ["--data", str(data), "--smoke", "--no-tfrs", "--out", str(out), "--workdir", str(tmp_path / "work")]
    )

    written = json.loads(out.read_text())
    assert written["summary"] == json.loads(json.dumps(report["summary"], default=float))
    assert set(written["summary"]) == {"same", "best", "baselines"}
    assert set(written["summary"]["same"]) == {"ours", "ours train() end-to-end"}
    assert set(written["summary"]["baselines"]) == {"most-popular", "ALS (implicit)"}
    for rows in written["summary"].values():
        for row in rows.values():
            _check_row(row)
    ours = written["summary"]["same"]["ours"]
    assert ours["train_seconds"] > 0 and ours["eval_seconds"] > 0 and ours["runs"] == 1
    assert written["data"]["train_pairs"] == 320 and written["data"]["test_pairs"] == 80
    assert written["data"]["movies"] == 80
    assert written["runs"]["same"]["settings"]["epochs"] == 1
    assert written["tfrs_skipped"] == "--no-tfrs"
    assert {"tensorflow", "implicit", "numpy"} <= set(written["versions"])
    assert "| same | ours |" in written["table"] and "| baselines | ALS (implicit) |" in written["table"]


@pytest.mark.reference
def test_tfrs_reference_smoke(tmp_path, write_movielens, load_bench):
    if not _tfrs_importable():
        pytest.skip(
            "tensorflow_recommenders is not importable with TF_USE_LEGACY_KERAS=1 "
            "(pip install -e '.[reference]'): the TFRS half of the benchmark cannot run"
        )
    data = tmp_path / "ml-100k"
    write_movielens(data)
    out = tmp_path / "movielens.json"
    bench = load_bench("movielens")

    bench.main(
        [
            "--data",
            str(data),
            "--smoke",
            "--no-end-to-end",
            "--out",
            str(out),
            "--workdir",
            str(tmp_path / "work"),
        ]
    )

    written = json.loads(out.read_text())
    assert written["tfrs_skipped"] is None
    for comparison in ("same", "best"):
        rows = written["summary"][comparison]
        assert set(rows) == {"ours", "TFRS"}
        _check_row(rows["TFRS"])
        assert rows["TFRS"]["peak_rss_mb"] > 0 and rows["TFRS"]["eval_seconds"] > 0
        own = rows["TFRS"]["tfrs_own_factorized_top_k"]
        assert 0.0 <= own["factorized_top_k/top_100_categorical_accuracy"] <= 1.0
        assert set(rows["ours"]["ratio"]) == {
            "recall_at_100",
            "recall_at_100_delta",
            "examples_per_second",
            "eval_seconds",
        }
    assert "| same | TFRS |" in written["table"]


def test_objective_options_smoke(tmp_path, write_movielens, load_bench):
    data = tmp_path / "ml-100k"
    write_movielens(data)
    out = tmp_path / "options.json"
    bench = load_bench("objective_options")

    report = bench.main(
        ["--data", str(data), "--smoke", "--out", str(out), "--workdir", str(tmp_path / "work")]
    )

    written = json.loads(out.read_text())
    assert set(written["summary"]) == set(bench.ROWS) == set(report["summary"])
    for row in written["summary"].values():
        assert 0.0 <= row["recall_at_10"] <= row["recall_at_100"] <= 1.0
    assert written["base"]["epochs"] == 1 and written["seeds"] == [42]
    assert "| plain in-batch softmax |" in written["table"]


def test_protocols_smoke(tmp_path, write_movielens, load_bench, capsys):
    """Random and leave-last-out splits, our model through the package's stages, the baselines, each
    scored with and without the users' training movies; then the report's tables."""
    data = tmp_path / "ml-100k"
    write_movielens(data)
    out = tmp_path / "protocols"
    bench = load_bench("movielens_protocols")
    common = ["--data", str(data), "--smoke", "--out", str(out), "--epochs", "1", "--batch-sizes", "64"]

    bench.main(["run", *common, "--protocols", "ml-100k/random/42,ml-100k/last", "--settings", "defaults"])
    # The same settings as one whole `tfrs_twotower.train` run, scored from the exported SavedModel.
    bench.main(["run", *common, "--protocols", "ml-100k/last", "--settings", "defaults", "--end-to-end"])

    runs = {p.name: json.loads(p.read_text()) for p in out.glob("*.json")}
    assert set(runs) == {
        "ml-100k-random-42__baselines.json",
        "ml-100k-random-42__defaults__b64__e1.json",
        "ml-100k-last__baselines.json",
        "ml-100k-last__defaults__b64__e1.json",
        "ml-100k-last__defaults__b64__e1__train.json",
    }
    last = runs["ml-100k-last__defaults__b64__e1.json"]
    assert last["test_pairs"] == 40 and last["train_pairs"] == 360  # one test pair per user (40 users)
    assert runs["ml-100k-random-42__baselines.json"]["test_pairs"] == 80
    for run in runs.values():
        for row in run["rows"].values():
            for side in ("all", "excluded"):
                assert (
                    0.0
                    <= row["metrics"][side]["recall_at_10"]
                    <= row["metrics"][side]["recall_at_100"]
                    <= 1.0
                )
    staged = last["rows"]["ours"]["metrics"]
    whole = runs["ml-100k-last__defaults__b64__e1__train.json"]["rows"]["ours"]["metrics"]
    # Same seed, same stages: the exported SavedModel ranks as the in-process towers (0.55 both here).
    assert whole["all"]["recall_at_10"] == pytest.approx(staged["all"]["recall_at_10"], abs=0.05)
    popular = runs["ml-100k-last__baselines.json"]["rows"]["most-popular"]["metrics"]
    # Excluding what a user already rated can only move the test positive up.
    assert popular["excluded"]["recall_at_10"] >= popular["all"]["recall_at_10"]
    baseline_rows = runs["ml-100k-last__baselines.json"]["rows"]
    assert set(baseline_rows) == {"most-popular", "ALS (implicit)", "history co-occurrence"}

    capsys.readouterr()
    bench.main(["report", "--out", str(out)])
    tables = capsys.readouterr().out
    assert "#### ml-100k/last" in tables and "#### ml-100k/random" in tables
    assert "| ours `defaults`, batch 64, 1 epochs = **defaults** |" in tables and "| most-popular |" in tables


def test_leave_last_out_split(load_bench):
    """Each user's latest rating (ties: the later line) is its test pair; seen rows hold the rest."""
    protocols = load_bench("ml_protocols")
    stamps = [5, 9, 1, 9, 0]
    user = lambda u, m, t: {"query": {"user_id": u, "timestamp": [float(t)]}, "candidate": {"movie_id": m}}  # noqa: E731
    pairs = [("a", "1"), ("a", "2"), ("b", "1"), ("a", "3"), ("b", "3")]
    data = {
        "records": [user(u, m, t) for (u, m), t in zip(pairs, stamps, strict=True)],
        "stamps": stamps,
        "movies": [{"movie_id": m} for m in ("1", "2", "3")],
    }

    split = protocols.make_split(data, "last")

    assert [(r["query"]["user_id"], r["candidate"]["movie_id"]) for r in split["test"]] == [
        ("b", "1"),
        ("a", "3"),
    ]
    # Histories come from the training pairs only, strictly earlier in time.
    assert [r["query"]["history"] for r in split["test"]] == [["3"], ["1"]]
    assert [r["query"]["history"] for r in split["train"]] == [[], ["1"], []]
    assert [list(s) for s in split["seen"]] == [[2], [0, 1]]  # corpus rows of the other movies rated


def test_history_cooccurrence_scores_what_followed_the_history(load_bench):
    baselines = load_bench("baselines")
    histories = [["a", "a"], ["a", "b"], ["b"], [], ["zz"]]  # "zz": not in the corpus, ignored
    movies = ["c", "c", "d", "d", "d"]
    queries, candidates = baselines.history_cooccurrence(
        histories, movies, [["a"], ["b"], [], ["a", "b"]], ["a", "b", "c", "d"]
    )
    scores = queries @ candidates.T
    # After "a": c twice (a duplicate history item counts once per pair). After "b": c once, d once; d is
    # the more popular (3 pairs against 2), so it wins the tie. No history: popularity alone.
    assert scores[0].round().tolist() == [0, 0, 2, 0] and scores[0].argmax() == 2
    assert scores[1].round().tolist() == [0, 0, 1, 1] and scores[1].argmax() == 3
    assert scores[2].argmax() == 3 and scores[2].max() < 1
    assert scores[3].round().tolist() == [0, 0, 3, 1]
