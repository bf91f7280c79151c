"""The exported encoders reload with plain TensorFlow, in a fresh process, and encode as in memory."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import tensorflow as tf

from tfrs_twotower.export import export_encoder, read_embeddings, side_signature, write_embeddings
from tfrs_twotower.towers import build_towers

SCHEMA = {
    "query": {
        "user": {"feature_type": "Id", "config": {"num_buckets": 20}},
        "age": {"feature_type": "Numeric"},
        "country": {"feature_type": "Categorical", "config": {"vocab": ["de", "fr"]}},
        "bio": {"feature_type": "Text"},
        "taste": {"feature_type": "Vector", "config": {"length": 2}},
    },
    "candidate": {"item": {"feature_type": "Id", "config": {"num_buckets": 20}}},
}
QUERY = {
    "user": [b"u1", b"u2"],
    "age": [[30.0, 31.0], [np.nan, np.nan]],
    "country": [[b"de", b""], [b"xx", b"fr"]],
    "bio": [[b"likes jazz"], [b""]],
    "taste": [[0.1, 0.2], [0.3, 0.4]],
}

RELOAD = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf
    assert "tfrs_twotower" not in sys.modules
    path, features = sys.argv[1], json.loads(sys.argv[2])
    model = tf.saved_model.load(path)
    serve = model.signatures["serving_default"]
    inputs = {}
    for name, spec in serve.structured_input_signature[1].items():
        value = features[name]
        if spec.dtype == tf.string:
            value = np.array(value, dtype=object).astype(bytes)
        inputs[name] = tf.constant(value, dtype=spec.dtype)
    print(json.dumps(serve(**inputs)["encoding"].numpy().tolist()))
    assert "tfrs_twotower" not in sys.modules
    """
)


def test_signature_names_and_shapes():
    signature = side_signature(SCHEMA, "query")
    assert list(signature) == ["user", "age", "country", "bio", "taste"]
    assert signature["user"].shape.as_list() == [None]
    assert signature["country"].shape.as_list() == [None, None]
    assert signature["taste"].shape.as_list() == [None, 2]
    assert signature["age"].dtype == tf.float32


def test_query_encoder_reloads_in_fresh_process_with_equal_encodings(tmp_path):
    query_tower, _ = build_towers(
        SCHEMA, hidden_units=[8], output_dim=4, numeric_stats={"query": {"age": (30, 4)}}
    )
    features = {k: tf.constant(v) for k, v in QUERY.items()}
    expected = query_tower(features).numpy()
    path = export_encoder(query_tower, SCHEMA, "query", str(tmp_path / "query_model"))
    as_json = json.dumps(QUERY, default=bytes.decode)  # NaN is written as NaN, which json reads back
    out = subprocess.run(
        [sys.executable, "-c", RELOAD, path, as_json], capture_output=True, text=True, check=True
    )
    np.testing.assert_allclose(
        np.array(json.loads(out.stdout.strip().splitlines()[-1])), expected, rtol=1e-5, atol=1e-6
    )


def test_embeddings_round_trip(tmp_path):
    embeddings = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    paths = write_embeddings(str(tmp_path / "emb"), ["a", "b", "c"], embeddings)
    ids, loaded = read_embeddings(str(tmp_path / "emb"))
    assert ids == ["a", "b", "c"]
    np.testing.assert_array_equal(loaded, embeddings)
    lines = [json.loads(line) for line in open(paths["embeddings.jsonl"])]
    assert lines[1]["id"] == "b" and np.allclose(lines[1]["embedding"], embeddings[1], atol=1e-6)
