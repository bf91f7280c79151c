"""Serving under bad conditions: non-finite feature values reach neither encoder nor index silently, and
a half-exported job-dir serves from what is there or says what to re-run."""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from tfrs_twotower.errors import ExportError, UserError
from tfrs_twotower.schema import load_schema
from tfrs_twotower.serving import Retriever, instances_to_tensors

MODELS = ["query_model", "candidate_model", "index/brute_force", "index/scann"]


@pytest.fixture(scope="module")
def signatures(job_dir):
    import scann  # noqa: F401  (the ScaNN ops of index/scann)

    return {
        name: tf.saved_model.load(os.path.join(job_dir, name)).signatures["serving_default"]
        for name in MODELS
    }


def features(job_dir, side, doc, **changes):
    out = instances_to_tensors(load_schema(os.path.join(job_dir, "schema.json")), side, [doc])
    for name, (row, value) in changes.items():
        values = out[name].numpy().copy()
        values[0, row] = value
        out[name] = tf.constant(values)
    return out


def candidate_doc(sample):
    with open(sample.train_jsonl) as f:
        return json.loads(f.readline())["candidate"]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(
    "kind, value", [("Numeric", np.inf), ("Numeric", -np.inf), ("Vector", np.nan), ("Vector", np.inf)]
)
def test_non_finite_values_are_rejected_naming_the_feature(
    signatures, job_dir, query_docs, sample, model, kind, value
):
    side = "candidate" if model == "candidate_model" else "query"
    name = {
        ("query", "Numeric"): "age",
        ("query", "Vector"): "taste",
        ("candidate", "Numeric"): "price",
        ("candidate", "Vector"): "item_vector",
    }[(side, kind)]
    doc = query_docs[0] if side == "query" else candidate_doc(sample)
    schema = load_schema(os.path.join(job_dir, "schema.json"))
    if name not in [s.name for s in schema.side(side) if s.feature_type == kind]:
        pytest.skip(f"the sample's {side} side has no {kind} feature `{name}`")
    serve = signatures[model]
    good = serve(**features(job_dir, side, doc))
    assert all(np.isfinite(v.numpy()).all() for v in good.values() if v.dtype.is_floating)
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=rf"{side} feature `{name}` \({kind}\): values must "
        r"be finite",
    ):
        serve(**features(job_dir, side, doc, **{name: (0, value)}))


@pytest.mark.parametrize("model", ["query_model", "index/brute_force", "index/scann"])
def test_nan_numeric_is_a_missing_value(signatures, job_dir, query_docs, model):
    """NaN is the padding of Numeric lists: a row of NaN is "no value", as an empty list in a record."""
    serve = signatures[model]
    missing = serve(**features(job_dir, "query", query_docs[0], age=(0, np.nan)))
    empty = dict(query_docs[0], age=[])
    expected = serve(**features(job_dir, "query", empty))
    for key, value in expected.items():
        if value.dtype.is_floating:
            np.testing.assert_allclose(missing[key].numpy(), value.numpy(), rtol=1e-6)
            assert np.isfinite(missing[key].numpy()).all()


@pytest.fixture
def copied_job(job_dir, tmp_path):
    copy = str(tmp_path / "job")
    shutil.copytree(job_dir, copy)
    return copy


def test_query_uses_the_index_when_candidate_embeddings_are_deleted(copied_job, job_dir, query_docs):
    expected = Retriever(job_dir, k=10)([query_docs[0]])
    shutil.rmtree(os.path.join(copied_job, "candidate_embeddings"))
    retriever = Retriever(copied_job, k=10)
    assert retriever.source.endswith("index/brute_force")
    assert [i for i, _ in retriever([query_docs[0]])[0]] == [i for i, _ in expected[0]]
    with pytest.raises(
        ExportError,
        match=r"candidate_embeddings/embeddings\.npy, candidate_embeddings/ids\.txt "
        r"are missing, and index/brute_force returns only 10 results; re-run .*at most --k 10",
    ):
        Retriever(copied_job, k=20)


def test_query_on_a_half_exported_job_dir_says_what_to_re_run(copied_job):
    for name in ("candidate_embeddings", "index"):
        shutil.rmtree(os.path.join(copied_job, name))
    state = os.path.join(copied_job, "run_state.json")
    with open(state) as f:
        run_state = json.load(f)
    with open(state, "w") as f:
        json.dump({**run_state, "status": "running"}, f)
    with pytest.raises(
        ExportError,
        match=r"there is no index/brute_force; its training run is running .* "
        r"re-run the same `tfrs-twotower train` command",
    ) as info:
        Retriever(copied_job)
    assert isinstance(info.value, UserError)
    os.remove(os.path.join(copied_job, "schema.json"))
    with pytest.raises(ExportError, match=r"schema\.json is missing"):
        Retriever(copied_job)
