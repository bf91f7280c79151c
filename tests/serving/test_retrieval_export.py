"""job-dir/index/{brute_force,scann}: exported by train() and export-index, reloaded in fresh processes."""

import json
import shutil
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tfrs_twotower.cli import main
from tfrs_twotower.export import read_embeddings, side_signature
from tfrs_twotower.schema import load_schema
from tfrs_twotower.serving import (
    RetrievalModule,
    build_index,
    export_retrieval_models,
    instances_to_tensors,
    load_encoder,
)
from tfrs_twotower.serving.retrieval_export import read_metadata

# A ScaNN tree on the 80-candidate sample corpus (by default ScaNN would score so few exactly).
FORCED_TREE = {
    "brute_force_threshold": 0,
    "num_leaves": 8,
    "num_leaves_to_search": 4,
    "num_reordering_candidates": 20,
}

RELOAD = textwrap.dedent(
    """
    import json, sys
    {imports}
    import tensorflow as tf
    path, features = sys.argv[1], json.load(open(sys.argv[2]))
    serve = tf.saved_model.load(path).signatures["serving_default"]
    specs = serve.structured_input_signature[1]
    tensors = {{name: tf.constant(value, specs[name].dtype) for name, value in features.items()}}
    out = serve(**tensors)
    exclude = json.load(open(sys.argv[3]))
    excluding = tf.saved_model.load(path).signatures["serving_exclude"]
    excluding = excluding(**tensors, exclude=tf.constant(exclude))
    print(json.dumps({{
        "ids": [[i.decode() for i in row] for row in out["ids"].numpy()],
        "scores": out["scores"].numpy().tolist(),
        "excluding_ids": [[i.decode() for i in row] for row in excluding["ids"].numpy()],
        "modules": sorted({{m.split(".")[0] for m in sys.modules}} & {{"tfrs_twotower", "scann"}}),
    }}))
    """
)


@pytest.fixture(scope="module")
def queries(job_dir, query_docs):
    return instances_to_tensors(load_schema(f"{job_dir}/schema.json"), "query", query_docs[:40])


def as_json(features, path):
    def plain(array):
        return (
            np.vectorize(lambda x: x.decode(), otypes=[object])(array).tolist()
            if array.dtype == object
            else (array.tolist())
        )

    path.write_text(json.dumps({name: plain(t.numpy()) for name, t in features.items()}))
    return str(path)


def ids_of(out):
    return [[i.decode() for i in row] for row in out["ids"].numpy()]


def numpy_top_k(job, features, k=10):
    q = job.model.query_tower(features, training=False).numpy()
    scores = q @ job.candidate_embeddings.T
    rows = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return [[job.candidate_ids[r] for r in row] for row in rows], np.take_along_axis(scores, rows, 1)


def test_train_exports_both_flavours(job, job_dir, queries):
    assert job.paths["index_brute_force"] == f"{job_dir}/index/brute_force"
    assert job.paths["index_scann"] == f"{job_dir}/index/scann"
    import scann  # noqa: F401

    want_ids, want_scores = numpy_top_k(job, queries)
    for flavour in ("brute_force", "scann"):
        out = tf.saved_model.load(job.paths[f"index_{flavour}"]).signatures["serving_default"](**queries)
        assert out["ids"].shape == (40, 10) and out["scores"].dtype == tf.float32
        assert ids_of(out) == want_ids  # 80 candidates: ScaNN scores them all exactly by default
        np.testing.assert_allclose(out["scores"].numpy(), want_scores, rtol=1e-4, atol=1e-4)
    metadata = read_metadata(job_dir)
    assert metadata["brute_force"]["k"] == 10 and metadata["scann"]["params"]["brute_force"]


@pytest.mark.parametrize("flavour", ["brute_force", "scann"])
def test_reloads_in_a_fresh_process_with_the_same_answer(job_dir, queries, tmp_path, fresh, flavour):
    schema = load_schema(f"{job_dir}/schema.json")
    ids, embeddings = read_embeddings(f"{job_dir}/candidate_embeddings")
    index = build_index(
        flavour, load_encoder(job_dir, "query"), ids, embeddings, k=10, scann_options=FORCED_TREE
    )
    if flavour == "scann":
        assert not index.params.brute_force  # a real tree, so the saved searcher state matters
    module = RetrievalModule(index, side_signature(schema, "query"))
    before = module.serve(queries)
    path = module.save(str(tmp_path / flavour))
    # Each query excludes its 1st and 3rd results (and one id it would not return); "" pads the rows.
    exclude = [[row[0], row[2], "" if i % 2 else row[-1]] for i, row in enumerate(ids_of(before))]
    (tmp_path / "exclude.json").write_text(json.dumps(exclude))
    in_process = ids_of(module.serve_exclude({**queries, "exclude": tf.constant(exclude)}))

    got = fresh(
        RELOAD.format(imports="import scann" if flavour == "scann" else ""),
        path,
        as_json(queries, tmp_path / "q.json"),
        str(tmp_path / "exclude.json"),
        cwd=str(tmp_path),
    )
    assert got["ids"] == ids_of(before)
    assert got["excluding_ids"] == in_process
    for row, excluded in zip(got["excluding_ids"], exclude, strict=True):
        assert len(row) == 10 and "" not in row and not set(row) & set(excluded)
    np.testing.assert_allclose(got["scores"], before["scores"].numpy(), rtol=1e-5, atol=1e-5)
    if flavour == "brute_force":
        assert got["modules"] == []  # plain TensorFlow: neither this package nor scann
    else:
        assert got["modules"] == ["scann"]


def test_export_index_over_a_job_dir_matches_the_trained_tower(job, job_dir, queries, tmp_path):
    copy = str(tmp_path / "job")
    shutil.copytree(job_dir, copy)
    shutil.rmtree(f"{copy}/index")
    assert main(["export-index", "--job-dir", copy, "--flavour", "brute_force"]) == 0
    out = tf.saved_model.load(f"{copy}/index/brute_force").signatures["serving_default"](**queries)
    assert ids_of(out) == numpy_top_k(job, queries)[0]
    assert not tf.io.gfile.exists(f"{copy}/index/scann")


def test_export_index_cli_options(job_dir, tmp_path, capsys):
    copy = str(tmp_path / "job")
    shutil.copytree(job_dir, copy)
    argv = [
        "export-index",
        "--job_dir",
        copy,
        "--k",
        "5",
        "--num_leaves",
        "8",
        "--brute_force_threshold",
        "0",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "brute_force:" in printed and "'num_leaves': 8" in printed
    metadata = read_metadata(copy)
    assert metadata["brute_force"]["k"] == metadata["scann"]["k"] == 5
    assert metadata["scann"]["params"]["num_leaves"] == 8 and not metadata["scann"]["params"]["brute_force"]
    import scann  # noqa: F401

    serve = tf.saved_model.load(f"{copy}/index/scann").signatures["serving_default"]
    assert serve.structured_outputs["ids"].shape.as_list() == [None, 5]


def test_k_is_clipped_to_the_corpus(job_dir, tmp_path):
    copy = str(tmp_path / "job")
    shutil.copytree(job_dir, copy)
    paths = export_retrieval_models(copy, k=1000, flavours="brute_force")
    serve = tf.saved_model.load(paths["index_brute_force"]).signatures["serving_default"]
    assert serve.structured_outputs["ids"].shape.as_list() == [None, 80]


def test_errors(job_dir, tmp_path, capsys):
    with pytest.raises(ValueError, match="The `flavour` parameter must be one of brute_force, scann or both"):
        export_retrieval_models(job_dir, flavours="hnsw")
    with pytest.raises(ValueError, match=r"Unknown `scann_options` \['leaves'\]"):
        build_index("scann", None, ["a"], np.zeros((1, 2), np.float32), scann_options={"leaves": 2})
    with pytest.raises(FileNotFoundError, match="schema.json is missing. Pass a job-dir written by"):
        export_retrieval_models(str(tmp_path))
    assert main(["export-index", "--job-dir", str(tmp_path / "nowhere")]) == 2
    assert "schema.json is missing" in capsys.readouterr().err


@pytest.mark.parametrize("flavour", ["brute_force", "scann"])
def test_serving_exclude_signature_matches_numpy(job, job_dir, queries, flavour):
    import scann  # noqa: F401

    want_ids, _ = numpy_top_k(job, queries, k=30)
    exclude = [row[:7:2] + row[20:23] for row in want_ids]  # 4 of the top 7, 3 outside the top 10
    signatures = tf.saved_model.load(job.paths[f"index_{flavour}"]).signatures
    out = signatures["serving_exclude"](**queries, exclude=tf.constant(exclude))
    expected = [
        [i for i in row if i not in excluded][:10] for row, excluded in zip(want_ids, exclude, strict=True)
    ]
    assert ids_of(out) == expected  # 80 candidates: ScaNN is exact here
    assert out["ids"].shape == (40, 10)
    assert ids_of(signatures["serving_default"](**queries)) == [row[:10] for row in want_ids]  # unchanged
    assert read_metadata(job_dir)[flavour]["exclude_input"] == "exclude"


def test_exclusions_leaving_fewer_than_k_candidates_pad_the_tail():
    from tfrs_twotower.index import BruteForce

    index = BruteForce(k=3).index(np.eye(3, dtype="float32"), np.array([b"a", b"b", b"c"]))
    scores, ids = index.query_with_exclusions(np.float32([[3, 2, 1], [1, 2, 3]]), [[b"a", b"b"], [b"", b""]])
    assert ids.numpy().tolist() == [[b"c", b"", b""], [b"c", b"b", b"a"]]
    assert scores.numpy()[0, 0] == 1.0 and np.all(np.isneginf(scores.numpy()[0, 1:]))


def test_exclusion_input_name_avoids_a_feature_named_exclude():
    from tfrs_twotower.serving.exclusions import exclusion_name

    schema = {
        "query": {"exclude": {"feature_type": "Text"}, "_exclude": {"feature_type": "Text"}},
        "candidate": {"m": {"feature_type": "Id", "config": {"num_buckets": 5}}},
    }
    assert exclusion_name(load_schema(schema)) == "__exclude"
    index = build_index(
        "brute_force",
        lambda f: tf.ones([tf.shape(f["exclude"])[0], 2]),
        ["a", "b"],
        np.eye(2, dtype="float32"),
        k=1,
    )
    signature = {"exclude": tf.TensorSpec([None, None], tf.string, name="exclude")}
    with pytest.raises(ValueError, match="`exclude_name` 'exclude' is a query feature"):
        RetrievalModule(index, signature)
    module = RetrievalModule(index, signature, exclude_name="_exclude")
    out = module.serve_exclude({"exclude": tf.constant([["x"]]), "_exclude": tf.constant([["a"]])})
    assert ids_of(out) == [["b"]]
