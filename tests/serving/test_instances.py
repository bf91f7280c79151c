"""The encoders' signatures vs TF Serving's REST predict API; JSON instances -> tensors."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.tools import saved_model_utils  # what saved_model_cli reads

from tfrs_twotower.data.records import BadRecordError
from tfrs_twotower.export import side_signature
from tfrs_twotower.schema import load_schema
from tfrs_twotower.serving import instances_to_tensors, load_encoder, rest_request_to_tensors

DTYPES = {tf.string: "DT_STRING", tf.float32: "DT_FLOAT"}


@pytest.mark.parametrize("side", ["query", "candidate"])
def test_signatures_are_tf_serving_predict_signatures_with_named_inputs(job_dir, side):
    schema = load_schema(f"{job_dir}/schema.json")
    meta = saved_model_utils.get_meta_graph_def(f"{job_dir}/{side}_model", "serve")
    signature = meta.signature_def["serving_default"]
    assert signature.method_name == "tensorflow/serving/predict"
    assert sorted(signature.inputs) == sorted(s.name for s in schema.side(side))  # schema names
    for name, spec in side_signature(schema, side).items():
        info = signature.inputs[name]
        assert tf.dtypes.as_dtype(info.dtype) == spec.dtype
        assert [d.size for d in info.tensor_shape.dim] == [
            -1 if d is None else d for d in spec.shape.as_list()
        ]
    assert list(signature.outputs) == ["encoding"]
    # 64 + the candidate bias column
    assert [d.size for d in signature.outputs["encoding"].tensor_shape.dim] == [-1, 65]


def test_index_signature(job_dir):
    meta = saved_model_utils.get_meta_graph_def(f"{job_dir}/index/brute_force", "serve")
    signature = meta.signature_def["serving_default"]
    assert signature.method_name == "tensorflow/serving/predict"
    assert sorted(signature.inputs) == ["age", "country", "interests", "taste", "user_id"]
    assert {
        n: (tf.dtypes.as_dtype(o.dtype), [d.size for d in o.tensor_shape.dim])
        for n, o in signature.outputs.items()
    } == {"ids": (tf.string, [-1, 10]), "scores": (tf.float32, [-1, 10])}


def row(doc):
    """A query document in the REST row form: every list feature sent as a list."""
    return {
        "user_id": doc["user_id"],
        "age": [float(doc["age"][0])],
        "country": list(doc["country"]),
        "interests": list(doc["interests"]),
        "taste": list(doc["taste"]),
    }


def test_rest_row_format_gives_the_encoder_the_same_answer(job_dir, query_docs):
    encoder = load_encoder(job_dir, "query")
    schema = load_schema(f"{job_dir}/schema.json")
    same_length = [d for d in query_docs if len(d["interests"]) == len(query_docs[0]["interests"])][:5]
    request = {"instances": [row(d) for d in same_length]}
    served = encoder(rest_request_to_tensors(request, encoder.input_specs)).numpy()
    padded = encoder(instances_to_tensors(schema, "query", same_length)).numpy()
    np.testing.assert_allclose(served, padded, rtol=1e-6, atol=1e-6)
    # Columnar form: one batch per named input.
    columns = {name: [r[name] for r in request["instances"]] for name in request["instances"][0]}
    served = encoder(rest_request_to_tensors({"inputs": columns}, encoder.input_specs)).numpy()
    np.testing.assert_allclose(served, padded, rtol=1e-6, atol=1e-6)


def test_padding_does_not_change_an_encoding(job_dir, query_docs):
    """Lists of different lengths in one batch (padded with "" / NaN) encode as they do alone."""
    encoder = load_encoder(job_dir, "query")
    schema = load_schema(f"{job_dir}/schema.json")
    docs = [
        dict(query_docs[0], interests=["yoga"], age=[]),
        dict(query_docs[1], interests=["a", "b", "c", "d", "e"]),
    ]
    together = encoder(instances_to_tensors(schema, "query", docs)).numpy()
    alone = np.concatenate([encoder(instances_to_tensors(schema, "query", [d])).numpy() for d in docs])
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-6)


def test_rest_rules(job_dir, query_docs):
    specs = load_encoder(job_dir, "query").input_specs
    a = row(query_docs[0])
    b = dict(row(query_docs[1]), interests=a["interests"] + ["extra"])
    with pytest.raises(
        ValueError, match="input `interests`: the instances' values have different shapes .* does not pad"
    ):
        rest_request_to_tensors({"instances": [a, b]}, specs)
    with pytest.raises(ValueError, match=r"input `age`: the signature takes shape \[None, None\].*got \[1\]"):
        rest_request_to_tensors({"instances": [dict(a, age=31.0)]}, specs)
    with pytest.raises(ValueError, match="expected strings"):
        rest_request_to_tensors({"instances": [dict(a, user_id=7)]}, specs)
    with pytest.raises(ValueError, match=r"instance 0: .* missing \['taste'\]"):
        rest_request_to_tensors({"instances": [{k: v for k, v in a.items() if k != "taste"}]}, specs)
    with pytest.raises(ValueError, match="lists have different lengths"):
        columns = {name: [value, value] for name, value in a.items()}
        rest_request_to_tensors({"inputs": dict(columns, interests=[["x"], ["y", "z"]])}, specs)
    with pytest.raises(ValueError, match='exactly one of "instances"'):
        rest_request_to_tensors({}, specs)


def test_instances_to_tensors(job_dir, query_docs):
    schema = load_schema(f"{job_dir}/schema.json")
    doc = dict(query_docs[0], age=31, country="US", interests=[])
    tensors = instances_to_tensors(schema, "query", {"instances": [doc, query_docs[1]]})
    assert tensors["age"].dtype == tf.float32 and tensors["age"].numpy()[0].tolist() == [31.0]
    assert tensors["country"].numpy()[0].tolist() == [b"US"]
    assert tensors["interests"].numpy()[0].tolist() == [b""] * len(query_docs[1]["interests"])
    empty = instances_to_tensors(schema, "query", [dict(doc, country=[])])
    assert empty["country"].shape == (1, 0) and empty["country"].dtype == tf.string
    with pytest.raises(BadRecordError, match=r"<instances> record 2: query.age: expected a finite number"):
        instances_to_tensors(schema, "query", [doc, dict(doc, age="old")])
    with pytest.raises(TypeError, match="Expected a list of instances"):
        instances_to_tensors(schema, "query", "not a list")
