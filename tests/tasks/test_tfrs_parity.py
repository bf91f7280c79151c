"""Parity with TensorFlow Recommenders 0.7.7: the same fixed embeddings through TFRS (Keras 2, in a
subprocess with TF_USE_LEGACY_KERAS=1) and through ours.

Deliberate differences and their conversions:
- `loss_reduction="mean"` has no TFRS argument: it equals TFRS's (SUM) loss divided by the batch size.
- Accidental hits: TFRS adds float32.min/100 to a removed logit, we replace it by that value; the
  softmax is the same to float precision.
- FactorizedTopK.result() is a dict `{name/top_k_categorical_accuracy: value}` (Keras 3 logs dict
  entries), TFRS returns a list in `ks` order.
"""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from tfrs_twotower.metrics import FactorizedTopK, InBatchPrecisionAt1, InBatchTopKAccuracy
from tfrs_twotower.tasks import Retrieval

pytestmark = [pytest.mark.reference, pytest.mark.usefixtures("compute_path")]  # both compute paths

CASES = {
    "plain": {},
    "temperature": {"temperature": 0.3},
    "accidental_hits": {"remove_accidental_hits": True, "ids": True},
    "sampling_probability": {"prob": True},
    "hard_negatives": {"num_hard_negatives": 3},
    "sample_weight": {"weights": True},
    "all": {
        "temperature": 0.5,
        "remove_accidental_hits": True,
        "ids": True,
        "prob": True,
        "num_hard_negatives": 4,
        "weights": True,
    },
}

TFRS_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    try:
        import tensorflow_recommenders as tfrs
    except Exception as e:  # reported as a skip: the reference extra is not installed
        print("SKIP" + (str(e).strip().splitlines() or [type(e).__name__])[-1])
        sys.exit(0)
    data = np.load(sys.argv[1])
    cases = json.loads(sys.argv[2])
    q, c = tf.constant(data["q_float"]), tf.constant(data["c"])
    out = {}
    for name, opt in cases.items():
        task = tfrs.tasks.Retrieval(
            temperature=opt.get("temperature"), num_hard_negatives=opt.get("num_hard_negatives"),
            remove_accidental_hits=opt.get("remove_accidental_hits", False),
            batch_metrics=[tf.keras.metrics.TopKCategoricalAccuracy(k=3),
                           tf.keras.metrics.TopKCategoricalAccuracy(k=1)])
        loss = task(q, c,
                    sample_weight=tf.constant(data["w"]) if opt.get("weights") else None,
                    candidate_sampling_probability=tf.constant(data["p"]) if opt.get("prob") else None,
                    candidate_ids=tf.constant(data["ids"]) if opt.get("ids") else None)
        out[name] = [float(loss)] + [float(m.result()) for m in task._batch_metrics]
    corpus = tf.data.Dataset.from_tensor_slices((data["corpus_ids"], data["corpus"])).batch(7)
    for mode in ("ids", "scores"):
        index = tfrs.layers.factorized_top_k.BruteForce(k=10)
        index.index_from_dataset(corpus.map(lambda i, e: (i, e)))
        metric = tfrs.metrics.FactorizedTopK(candidates=index, ks=(1, 3, 5, 10))
        metric.update_state(tf.constant(data["q"]), tf.constant(data["corpus"][data["positives"]]),
                            true_candidate_ids=tf.constant(data["corpus_ids"][data["positives"]])
                            if mode == "ids" else None,
                            sample_weight=tf.constant(data["w"]))
        out["topk_" + mode] = [float(v) for v in metric.result()]
    print("RESULT" + json.dumps(out))
""")


@keras.saving.register_keras_serializable(package="tfrs_twotower_tests")
class _TopK(keras.layers.Layer):
    """Exact top-k over a fixed corpus (stand-in for tfrs_twotower.index.BruteForce)."""

    def __init__(self, embeddings, ids, **kwargs):
        super().__init__(**kwargs)
        self.embeddings = keras.ops.convert_to_tensor(np.asarray(embeddings, "float32"))
        self.ids = keras.ops.convert_to_tensor(ids)

    def is_exact(self):
        return True

    def call(self, queries, k):
        scores, rows = keras.ops.top_k(keras.ops.matmul(queries, keras.ops.transpose(self.embeddings)), k)
        return scores, keras.ops.take(self.ids, rows, axis=0)


@pytest.fixture(scope="module")
def fixed_data(tmp_path_factory):
    rng = np.random.default_rng(42)
    batch, dim, corpus_size = 12, 8, 40
    # Small integers: every dot product is exact in float32, so score-based top-k (which compares the
    # positive's row dot product with its matmul score in the index) cannot flip on rounding.
    corpus = rng.integers(-3, 4, (corpus_size, dim)).astype("float32")
    corpus_ids = np.array([f"item{i}".encode() for i in range(corpus_size)])
    positives = rng.integers(0, corpus_size, batch)
    positives[3] = positives[0]  # an accidental hit in the batch
    positives[7] = positives[5]
    data = {
        "q": (rng.integers(-2, 3, (batch, dim)) + corpus[positives]).astype("float32"),
        "q_float": (rng.standard_normal((batch, dim)) + corpus[positives]).astype("float32") / 4.0,
        "c": corpus[positives] / 4.0 + rng.standard_normal((batch, dim)).astype("float32") * 0.1,
        "ids": corpus_ids[positives],
        "p": rng.uniform(0.001, 0.5, batch).astype("float32"),
        "w": rng.uniform(0.0, 2.0, batch).astype("float32"),
        "corpus": corpus,
        "corpus_ids": corpus_ids,
        "positives": positives,
    }
    path = tmp_path_factory.mktemp("parity") / "data.npz"
    np.savez(path, **data)
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "CUDA_VISIBLE_DEVICES": ""}
    run = subprocess.run(  # one process: importing TF and TFRS is most of its time
        [sys.executable, "-c", TFRS_SCRIPT, str(path), json.dumps(CASES)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    skip = [x for x in run.stdout.splitlines() if x.startswith("SKIP")]
    if skip:
        pytest.skip(
            "tensorflow_recommenders is not importable with TF_USE_LEGACY_KERAS=1 (pip install "
            f"'tfrs_twotower[reference]'): {skip[-1][len('SKIP') :]}"
        )
    line = [x for x in run.stdout.splitlines() if x.startswith("RESULT")][-1]
    return data, json.loads(line[len("RESULT") :])


@pytest.mark.parametrize("case", sorted(CASES))
def test_retrieval_loss_and_batch_metrics_match_tfrs(fixed_data, case):
    data, tfrs = fixed_data
    opt = CASES[case]
    top3, top1 = InBatchTopKAccuracy(k=3), InBatchPrecisionAt1()
    task = Retrieval(
        temperature=opt.get("temperature"),
        num_hard_negatives=opt.get("num_hard_negatives"),
        remove_accidental_hits=opt.get("remove_accidental_hits", False),
        batch_metrics=[top3, top1],
    )
    kwargs = dict(
        sample_weight=data["w"] if opt.get("weights") else None,
        candidate_sampling_probability=data["p"] if opt.get("prob") else None,
        candidate_ids=data["ids"] if opt.get("ids") else None,
    )
    loss = float(task(data["q_float"], data["c"], **kwargs))
    np.testing.assert_allclose(loss, tfrs[case][0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose([float(top3.result()), float(top1.result())], tfrs[case][1:], atol=1e-6)
    # "mean" = TFRS's SUM / batch size.
    mean = Retrieval(
        temperature=opt.get("temperature"),
        num_hard_negatives=opt.get("num_hard_negatives"),
        remove_accidental_hits=opt.get("remove_accidental_hits", False),
        loss_reduction="mean",
    )
    np.testing.assert_allclose(
        float(mean(data["q_float"], data["c"], **kwargs)),
        tfrs[case][0] / len(data["q"]),
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize("mode", ["ids", "scores"])
def test_factorized_top_k_matches_tfrs(fixed_data, mode):
    data, tfrs = fixed_data
    metric = FactorizedTopK(_TopK(data["corpus"], data["corpus_ids"]), ks=(1, 3, 5, 10))
    positives = data["positives"]
    metric.update_state(
        data["q"],
        data["corpus"][positives],
        true_candidate_ids=data["corpus_ids"][positives] if mode == "ids" else None,
        sample_weight=data["w"],
    )
    result = metric.result()
    ours = [float(result[f"factorized_top_k/top_{k}_categorical_accuracy"]) for k in (1, 3, 5, 10)]
    np.testing.assert_allclose(ours, tfrs["topk_" + mode], atol=1e-6)
    assert 0 < ours[0] < ours[-1]  # the fixture is not trivially all hits or all misses
