"""Exact and ScaNN retrieval agree on the sample model: recall@10 >= 0.95, ScaNN really approximate."""

import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from tfrs_twotower.cli import main
from tfrs_twotower.sample_data import generate_sample
from tfrs_twotower.schema import load_schema
from tfrs_twotower.serving import encode_documents, export_retrieval_models, instances_to_tensors
from tfrs_twotower.serving.retrieval_export import read_metadata
from tfrs_twotower.serving.scann_tuning import query_documents


@pytest.fixture(scope="module")
def distinct_queries(job_dir, query_docs):
    unique = list({json.dumps(q, sort_keys=True): q for q in query_docs}.values())
    return instances_to_tensors(load_schema(f"{job_dir}/schema.json"), "query", unique)


@pytest.fixture(scope="module")
def big_job(job_dir, tmp_path_factory):
    """The sample job-dir with a 20K-candidate corpus from the same generator, encoded by its candidate
    encoder, and its indexes exported with the default parameters (ScaNN builds a tree from 10K on)."""
    root = tmp_path_factory.mktemp("big")
    copy = str(root / "job")
    shutil.copytree(job_dir, copy)
    items = generate_sample(str(root / "items"), num_pairs=10, num_users=5, num_items=20_000)
    encode_documents(copy, "candidate", items.candidates_jsonl, f"{copy}/candidate_embeddings/encoded")
    for name, target in (("encoded.npy", "embeddings.npy"), ("encoded.ids.txt", "ids.txt")):
        shutil.move(f"{copy}/candidate_embeddings/{name}", f"{copy}/candidate_embeddings/{target}")
    assert main(["export-index", "--job-dir", copy]) == 0
    return copy


def served_ids(path, features):
    out = tf.saved_model.load(path).signatures["serving_default"](**features)
    return np.array([[i.decode() for i in row] for row in out["ids"].numpy()])


def recall(approx, exact):
    return np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(approx, exact, strict=True)])


def test_exported_scann_agrees_with_exact_on_20k_candidates(big_job, distinct_queries):
    import scann  # noqa: F401

    info = read_metadata(big_job)["scann"]
    assert info["num_candidates"] == 20_000 and not info["params"]["brute_force"]
    assert info["recall"]["recall_at_k"] >= 0.95 and info["recall"]["k"] == 10
    exact = served_ids(f"{big_job}/index/brute_force", distinct_queries)
    approx = served_ids(f"{big_job}/index/scann", distinct_queries)
    measured = recall(approx, exact)
    print(f"recall@10 of the exported ScaNN vs brute force, 20K candidates: {measured:.4f}; {info['recall']}")
    assert measured >= 0.95
    assert (approx != exact).any()  # approximate: not brute force in disguise


def test_search_is_widened_until_the_target(job_dir, tmp_path):
    copy = str(tmp_path / "job")
    shutil.copytree(job_dir, copy)
    options = {"brute_force_threshold": 0, "num_leaves": 16, "num_reordering_candidates": 0}
    with pytest.warns(UserWarning, match="raise `num_leaves_to_search`"):  # 1.01 cannot be reached
        export_retrieval_models(copy, flavours="scann", scann_options=options, target_recall=1.01)
    recall = read_metadata(copy)["scann"]["recall"]
    assert [t["num_leaves_to_search"] for t in recall["tried"]] == [8, 16]  # doubled, up to every leaf
    assert recall["recall_at_k"] == recall["tried"][-1]["recall_at_k"] and recall["target"] == 1.01


def test_forced_tree_on_the_sample_corpus(job_dir, distinct_queries, tmp_path):
    """ScaNN with a tree (not its exact small-corpus mode) over the sample's own 80 candidates."""
    copy = str(tmp_path / "job")
    shutil.copytree(job_dir, copy)
    options = {"brute_force_threshold": 0, "num_leaves": 16, "num_reordering_candidates": 20}
    export_retrieval_models(copy, scann_options=options)
    info = read_metadata(copy)["scann"]
    assert not info["params"]["brute_force"] and info["recall"]["recall_at_k"] >= 0.95
    import scann  # noqa: F401

    exact = served_ids(f"{copy}/index/brute_force", distinct_queries)
    approx = served_ids(f"{copy}/index/scann", distinct_queries)
    print(f"recall@10 of the exported ScaNN vs exact, 80 candidates, 16 leaves: {recall(approx, exact):.4f}")
    assert recall(approx, exact) >= 0.95


def test_user_chosen_leaves_are_kept_and_a_low_recall_warns(job_dir, tmp_path):
    copy = str(tmp_path / "job")
    shutil.copytree(job_dir, copy)
    options = {
        "brute_force_threshold": 0,
        "num_leaves": 16,
        "num_leaves_to_search": 1,
        "num_reordering_candidates": 0,
    }
    with pytest.warns(UserWarning, match=r"ScaNN's recall@10 is .* \(< 0.999\)"):
        export_retrieval_models(copy, flavours="scann", scann_options=options, target_recall=0.999)
    info = read_metadata(copy)["scann"]
    assert info["params"]["num_leaves_to_search"] == 1 and len(info["recall"]["tried"]) == 1


def test_no_queries_warns(job_dir, tmp_path):
    copy = str(tmp_path / "job")
    shutil.copytree(job_dir, copy)
    config = json.loads(open(f"{copy}/config.json").read())
    config["training_data_path"] = str(tmp_path / "gone.jsonl")
    open(f"{copy}/config.json", "w").write(json.dumps(config))
    docs, note = query_documents(copy, load_schema(f"{copy}/schema.json"))
    assert docs == [] and "gone.jsonl" in note
    with pytest.warns(UserWarning, match="ScaNN's recall was not measured"):
        export_retrieval_models(copy, flavours="scann")
    assert "recall_at_k" not in read_metadata(copy)["scann"]["recall"]
