"""Smoke test of bench/text_retrieval.py on a tiny synthetic collection in Cranfield's files and formats
(Cranfield itself is never copied), and the baselines' arithmetic on hand-checked cases."""

import json
import math

import numpy as np
import pytest

TOPICS = [
    ["wing", "lift", "slipstream", "propeller"],
    ["boundary", "layer", "plate", "viscous"],
    ["shock", "wave", "supersonic", "mach"],
    ["heat", "transfer", "conduction", "slab"],
]


def _write_cranfield(folder, num_docs=24, num_queries=8, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    docs, topic_of = [], {}
    for i in range(1, num_docs + 1):
        topic = TOPICS[i % len(TOPICS)]
        topic_of[i] = i % len(TOPICS)
        words = " ".join(rng.choice(topic + ["the", "of", "flow"], size=30))
        docs.append(
            f".I {i}\n.T\n{topic[0]} {topic[1]} study .\n.A\nauthor,a.\n.B\nj. ae. 1958.\n.W\n{words} .\n"
        )
    (folder / "cran.all.1400").write_text("".join(docs))
    queries, qrels = [], []
    for n in range(1, num_queries + 1):
        topic = n % len(TOPICS)
        queries.append(f".I {n * 2:03d}\n.W\nwhat is known about {' '.join(TOPICS[topic][1:3])} .\n")
        relevant = [i for i in topic_of if topic_of[i] == topic][:3]
        qrels += [f"{n} {d} {1 + k}" for k, d in enumerate(relevant)] + [f"{n} {relevant[0] + 1} -1"]
    (folder / "cran.qry").write_text("".join(queries))
    (folder / "cranqrel").write_text("\n".join(qrels) + "\n")


def test_small_run_writes_json_and_beats_popularity(tmp_path, load_bench):
    _write_cranfield(tmp_path / "data" / "cranfield")
    bench = load_bench("text_retrieval")
    out = tmp_path / "results.json"
    results = bench.main(
        [
            "--data_dir",
            str(tmp_path / "data"),
            "--output",
            str(out),
            "--variants",
            "zero-shot",
            "--no_throughput",
        ]
    )
    written = json.loads(out.read_text())
    assert written["splits"] == json.loads(json.dumps(results["splits"]))
    for split in ("odd", "even"):
        rows = written["splits"][split]
        assert set(rows) == {"BM25", "TF-IDF cosine", "popularity", "zero-shot"}
        for name, row in rows.items():
            assert 0.0 <= row["recall_at_10"] <= row["recall_at_100"] <= 1.0, name
        # Every document of a query's topic is a lexical match: the lexical methods find them all.
        assert rows["BM25"]["recall_at_10"] == rows["zero-shot"]["recall_at_10"] == 1.0


def test_loader_maps_qrels_by_position_and_drops_no_relevance(tmp_path, load_bench):
    _write_cranfield(tmp_path / "cranfield", num_docs=8, num_queries=4)
    cranfield = load_bench("cranfield")
    documents, queries, qrels = cranfield.load(str(tmp_path / "cranfield"))
    assert len(documents) == 8 and sorted(queries) == [1, 2, 3, 4]
    assert documents["1"]["title"] == "lift slipstream study ." or documents["1"]["title"].endswith("study .")
    assert all(len(rel) == 2 for rel in qrels.values())  # 2 docs per topic among 8, the -1 line dropped
    assert cranfield.split_queries([1, 2, 3, 4, 5], "odd") == ([1, 3, 5], [2, 4])
    assert cranfield.split_queries([1, 2, 3, 4, 5], "even") == ([2, 4], [1, 3, 5])
    with pytest.raises(ValueError, match="must be 'odd', 'even' or 'dev'. Got 'first'"):
        cranfield.split_queries([1], "first")


def test_bm25_and_metrics_by_hand(load_bench):
    cranfield = load_bench("cranfield")
    scores = cranfield.bm25_scores(["lift"], ["lift lift drag", "drag", "lift"])
    idf = math.log(1 + (3 - 2 + 0.5) / (2 + 0.5))
    average = 5 / 3  # lengths 3, 1, 1
    expected0 = idf * 2 * 2.2 / (2 + 1.2 * (0.25 + 0.75 * 3 / average))
    expected2 = idf * 1 * 2.2 / (1 + 1.2 * (0.25 + 0.75 * 1 / average))
    np.testing.assert_allclose(scores[0], [expected0, 0.0, expected2])
    metrics = cranfield.ranking_metrics(np.array([[3.0, 2.0, 1.0, 0.0]]), [{1, 3}], ks=(1, 2))
    assert metrics["recall_at_1"] == 0.0 and metrics["recall_at_2"] == 0.5
    assert metrics["ndcg_at_10"] == pytest.approx(
        (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    )


@pytest.mark.slow
def test_defaults_beat_bm25_on_real_cranfield(tmp_path, load_bench):
    """The issue's target on the real collection (~1 min per split): the default text handling, trained
    with only the required settings, beats BM25 on Recall@100 of the held-out queries of both halves."""
    import pathlib

    from tfrs_twotower.movielens import default_data_dir

    if not (pathlib.Path(default_data_dir()) / "cranfield" / "cran.qry").exists():
        pytest.skip(f"Cranfield is not in {default_data_dir()}/cranfield (see ../shared/data/SOURCES.md)")
    bench = load_bench("text_retrieval")
    results = bench.main(["--variants", "default", "--output", str(tmp_path / "r.json"), "--no_throughput"])
    for split in ("odd", "even"):
        rows = results["splits"][split]
        assert rows["default"]["recall_at_100"] > rows["BM25"]["recall_at_100"] + 0.03, split
