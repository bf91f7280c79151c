"""tf.saved_model.save of a tf.Module holding an index, reloaded in a fresh Python process."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tfrs_twotower.index import BruteForce, ScaNN

RELOAD = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    {imports}
    import tensorflow as tf
    path, queries = sys.argv[1], np.load(sys.argv[2])
    served = tf.saved_model.load(path).signatures["serving_default"](tf.constant(queries))
    ids = served["identifiers"].numpy()
    ids = [[i.decode() if isinstance(i, bytes) else int(i) for i in r] for r in ids]
    modules = sorted(m for m in sys.modules if m.split(".")[0] == "tfrs_twotower")
    print(json.dumps({{"ids": ids, "modules": modules}}))
    """
)


def save_and_reload(tmp_path, layer, queries, imports=""):
    module = tf.Module()
    module.index = layer

    @tf.function(input_signature=[tf.TensorSpec([None, queries.shape[1]], tf.float32)])
    def serve(q):
        scores, identifiers = layer(q)
        return {"scores": scores, "identifiers": identifiers}

    path = str(tmp_path / "model")
    tf.saved_model.save(
        module,
        path,
        signatures={"serving_default": serve},
        options=tf.saved_model.SaveOptions(namespace_whitelist=["Scann"]),
    )
    np.save(tmp_path / "q.npy", queries)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run(
        [sys.executable, "-c", RELOAD.format(imports=imports), path, str(tmp_path / "q.npy")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        cwd=str(tmp_path),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def to_lists(ids):
    return [[i.decode() if isinstance(i, bytes) else int(i) for i in row] for row in ids.numpy()]


@pytest.mark.parametrize("ids_kind", ["str", "int"])
def test_brute_force_reloads_with_plain_tensorflow(tmp_path, corpus, ids_kind):
    x, str_ids, int_ids, q = corpus
    layer = BruteForce(k=5).index_from_dataset(
        tf.data.Dataset.from_tensor_slices((str_ids if ids_kind == "str" else int_ids, x)).batch(128)
    )
    got = save_and_reload(tmp_path, layer, q)
    assert got["ids"] == to_lists(layer(q)[1])
    assert got["modules"] == []  # served without importing this package


def test_scann_reloads_after_import_scann(tmp_path, make_clustered):
    x = make_clustered(15_000, clusters=100)
    ids = np.array([f"c{i}" for i in range(len(x))])
    q = make_clustered(50, clusters=100, seed=1)
    layer = ScaNN(k=10).index(x, ids)
    assert not layer.params.brute_force
    got = save_and_reload(tmp_path, layer, q, imports="import scann")
    assert got["ids"] == to_lists(layer(q)[1])
