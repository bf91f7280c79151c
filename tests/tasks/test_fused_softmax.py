"""The fused softmax cross-entropy kernel against a float64 NumPy reference, and `Retrieval`'s fused path
against its TensorFlow path (loss and gradients) for every option the kernel covers."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfrs_twotower.metrics import InBatchAUC, InBatchPrecisionAt1, InBatchTopKAccuracy
from tfrs_twotower.tasks import Retrieval, fused_softmax

pytestmark = pytest.mark.skipif(
    not fused_softmax.built(), reason="the _softmax_kernel extension is not built"
)

CPU_ISAS = fused_softmax.supported_isas()
ISAS = [
    pytest.param(
        isa,
        marks=pytest.mark.skipif(isa not in fused_softmax.supported_isas(), reason=f"this CPU has no {isa}"),
    )
    for isa in ("portable", "avx2", "avx512")
]


def reference(queries, candidates, weights, bias=None, row_keys=None, col_keys=None, scale=1.0):
    """Loss per row, gradients of sum(weights * loss) and the rank counts, from the float64 logits."""
    q, c = queries.astype(np.float64), candidates.astype(np.float64)
    rows = np.arange(len(q))
    logits = scale * q @ c.T + (0.0 if bias is None else bias.astype(np.float64))
    if row_keys is not None:
        hits = row_keys[:, None] == col_keys[None, :]
        hits[rows, rows] = False
        logits[hits] = -np.inf
    top = logits.max(1, keepdims=True)
    exp = np.exp(logits - top)
    total = exp.sum(1, keepdims=True)
    losses = np.log(total[:, 0]) + top[:, 0] - logits[rows, rows]
    d_logits = exp / total
    d_logits[rows, rows] -= 1.0
    d_logits *= weights[:, None]
    negative = np.isfinite(logits)
    negative[rows, rows] = False
    outscoring = (negative & (logits > logits[rows, rows][:, None])).sum(1)
    return (
        losses,
        scale * d_logits @ c,
        scale * d_logits.T @ q,
        d_logits.sum(0),
        outscoring.astype(np.float32),
        negative.sum(1).astype(np.float32),
    )


def random_case(rng, num_queries, num_candidates, dim, with_bias=True, with_keys=True):
    case = {
        "queries": rng.standard_normal((num_queries, dim)).astype(np.float32),
        "candidates": rng.standard_normal((num_candidates, dim)).astype(np.float32),
        "weights": rng.uniform(0.0, 2.0, num_queries).astype(np.float32),
        "bias": rng.standard_normal(num_candidates).astype(np.float32) if with_bias else None,
        "row_keys": None,
        "col_keys": None,
    }
    if with_keys:
        case["col_keys"] = rng.integers(0, 4, num_candidates).astype(np.int64)
        case["row_keys"] = case["col_keys"][:num_queries].copy()
    return case


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize(
    "num_queries,num_candidates,dim,with_bias,with_keys,scale",
    [
        (1, 1, 1, False, False, 1.0),
        (5, 5, 3, False, False, 1.0),
        (12, 32, 16, True, False, 0.5),  # exactly one row block and one column panel
        (37, 70, 33, True, True, 2.5),  # partial blocks, panels and component chunks
        (100, 260, 64, False, True, 5.0),
        (30, 30, 80, True, True, 1.0),  # three component chunks
    ],
)
def test_kernel_matches_float64_reference(isa, num_queries, num_candidates, dim, with_bias, with_keys, scale):
    case = random_case(np.random.default_rng(dim), num_queries, num_candidates, dim, with_bias, with_keys)
    got = fused_softmax.softmax_cross_entropy(**case, scale=scale, isa=isa, threads=2)
    want = reference(**case, scale=scale)
    assert isinstance(got, fused_softmax.FusedResult)
    for name, g, w in zip(got._fields, got, want, strict=True):
        assert g.dtype == np.float32 and g.shape == w.shape, name
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-5 * max(1.0, np.abs(w).max()), err_msg=name)


def test_accidental_hits_leave_the_masked_columns_out():
    # Every candidate has the same id: each row's softmax holds its positive only, so the loss is 0.
    case = random_case(np.random.default_rng(0), 20, 20, 8, with_keys=False)
    keys = np.zeros(20, np.int64)
    got = fused_softmax.softmax_cross_entropy(**{**case, "row_keys": keys, "col_keys": keys})
    assert np.all(got.losses == 0.0) and np.all(got.negatives == 0.0) and np.all(got.outscoring == 0.0)
    assert not got.d_queries.any() and not got.d_candidates.any() and not got.d_bias.any()


@pytest.mark.parametrize("isa", ISAS)
def test_code_paths_agree_on_a_training_sized_batch(isa):
    case = random_case(np.random.default_rng(6), 1000, 1100, 32)
    got = fused_softmax.softmax_cross_entropy(**case, scale=5.0, isa=isa)
    want = fused_softmax.softmax_cross_entropy(**case, scale=5.0, isa="portable")
    for name, g, w in zip(got._fields, got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5 * max(1.0, np.abs(w).max()), err_msg=name)


def test_results_depend_only_on_inputs_and_thread_count():
    case = random_case(np.random.default_rng(1), 200, 300, 32)
    first = fused_softmax.softmax_cross_entropy(**case, threads=3)
    again = fused_softmax.softmax_cross_entropy(**case, threads=3)
    single = fused_softmax.softmax_cross_entropy(**case, threads=1)
    for a, b, c in zip(first, again, single, strict=True):
        np.testing.assert_array_equal(a, b)  # bit for bit: static work split, partial sums in order
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-6)


def test_nan_inputs_give_a_nan_loss():
    case = random_case(np.random.default_rng(2), 8, 8, 4, with_bias=False, with_keys=False)
    case["candidates"][5, 1] = np.nan
    # column 5 is in every row's softmax
    assert np.isnan(fused_softmax.softmax_cross_entropy(**case).losses).all()


def test_bad_shapes_are_refused():
    case = random_case(np.random.default_rng(3), 8, 4, 4, with_keys=False)
    with pytest.raises(ValueError, match="at least as many rows"):
        fused_softmax.softmax_cross_entropy(**{**case, "bias": None})
    case = random_case(np.random.default_rng(3), 4, 8, 4, with_keys=False)
    with pytest.raises(ValueError, match="`bias` must hold 32 bytes"):
        fused_softmax.softmax_cross_entropy(**{**case, "bias": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match="together"):
        fused_softmax.softmax_cross_entropy(**{**case, "row_keys": np.zeros(4, np.int64)})


def test_weighted_loss_gradient_is_the_kernels_times_the_upstream_gradient():
    case = random_case(np.random.default_rng(4), 16, 24, 8)
    names = ("queries", "candidates", "weights", "bias")
    tensors = {name: tf.constant(case[name]) for name in names}
    with tf.GradientTape() as tape:
        tape.watch(list(tensors.values()))
        loss = 3.0 * fused_softmax.weighted_loss(
            **tensors, row_keys=case["row_keys"], col_keys=case["col_keys"], scale=2.0
        )
    grads = tape.gradient(loss, [tensors[name] for name in names])
    losses, d_q, d_c, d_b, *_ = reference(**case, scale=2.0)
    assert float(loss) == pytest.approx(3.0 * float(np.sum(case["weights"] * losses)), rel=1e-5)
    for got, want in zip(grads, [d_q, d_c, losses, d_b], strict=True):
        np.testing.assert_allclose(got.numpy(), 3.0 * want, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------- Retrieval: fused vs TF ops
def _retrieval_loss_and_grads(task, queries, candidates, **options):
    variables = [tf.Variable(queries), tf.Variable(candidates)]
    extra = options.pop("extra_negative_embeddings", None)
    if extra is not None:
        variables.append(tf.Variable(extra))

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            extra_options = {} if extra is None else {"extra_negative_embeddings": variables[2]}
            loss = task(variables[0], variables[1], **options, **extra_options)
        return loss, tape.gradient(loss, variables)

    loss, grads = step()
    return float(loss), [g.numpy() for g in grads], [float(m.result()) for m in task.batch_metrics]


@pytest.mark.parametrize(
    "task_args,options",
    [
        ({}, {}),
        ({"temperature": 0.2, "loss_reduction": "mean"}, {"sample_weight": "weights"}),
        ({}, {"candidate_sampling_probability": "probability"}),
        ({"remove_accidental_hits": True}, {"candidate_ids": "string_ids"}),
        ({"remove_accidental_hits": True, "temperature": 0.5}, {"candidate_ids": "int_ids", "extra_rows": 6}),
        (
            {"remove_accidental_hits": True, "loss_reduction": "mean"},
            {
                "candidate_ids": "string_ids",
                "candidate_sampling_probability": "probability",
                "extra_negative_embeddings": "extra",
                "extra_negative_ids": "extra_ids",
                "extra_negative_sampling_probability": "extra_probability",
                "sample_weight": "weights",
            },
        ),
        ({}, {"extra_negative_embeddings": "extra", "candidate_sampling_probability": "probability"}),
        ({"temperature": 0.5}, {"extra_negative_embeddings": "extra"}),  # extra negatives, no logQ at all
        (
            {},
            {
                "extra_negative_embeddings": "extra",
                "extra_negative_sampling_probability": "extra_probability",
            },
        ),
        (
            {"remove_accidental_hits": True},
            {
                "candidate_ids": "int_ids",
                "extra_negative_embeddings": "extra",
                "extra_negative_ids": "extra_int_ids",
            },
        ),
        ({"loss_reduction": "mean"}, {"extra_rows": 6, "candidate_sampling_probability": "probability"}),
        ({}, {"sample_weight": "zero_weights"}),  # rows of weight 0 count for nothing on both paths
    ],
)
def test_retrieval_fused_equals_tf_ops(task_args, options):
    """Every option the fused kernel takes, alone and combined (docs/architecture.md's parity table)."""
    rng = np.random.default_rng(5)
    batch, extra_rows, dim, extra = 40, options.pop("extra_rows", 0), 16, 10
    names = rng.integers(0, 6, batch + extra_rows)
    extra_names = rng.integers(0, 6, extra)
    data = {
        "weights": rng.uniform(0, 2, batch).astype(np.float32),
        "probability": rng.uniform(0, 0.2, batch + extra_rows).astype(np.float32),
        "string_ids": tf.constant([f"item-{n}" for n in names]),
        "int_ids": tf.constant(names),
        "extra": rng.standard_normal((extra, dim)).astype(np.float32),
        "extra_ids": tf.constant([f"item-{n}" for n in extra_names]),
        "extra_int_ids": tf.constant(extra_names),
        "zero_weights": np.where(np.arange(batch) % 3 == 0, 0.0, 1.0).astype(np.float32),
        "extra_probability": rng.uniform(0, 0.2, extra).astype(np.float32),
    }
    call_options = {name: data[key] for name, key in options.items()}
    queries = rng.standard_normal((batch, dim)).astype(np.float32)
    candidates = rng.standard_normal((batch + extra_rows, dim)).astype(np.float32)

    def metrics():
        return [InBatchAUC(), InBatchTopKAccuracy(k=5), InBatchPrecisionAt1()]

    fused, plain = (
        _retrieval_loss_and_grads(
            Retrieval(fused=f, batch_metrics=metrics(), **task_args), queries, candidates, **call_options
        )
        for f in (True, False)
    )
    assert fused[0] == pytest.approx(plain[0], rel=1e-5)
    for got, want in zip(fused[1], plain[1], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert 0.0 < plain[2][0] < 1.0 and 0.0 < plain[2][1] < 1.0  # the metrics are not trivial here
    np.testing.assert_allclose(fused[2], plain[2], rtol=1e-6)


def test_retrieval_uses_tf_ops_for_what_the_kernel_does_not_cover():
    assert Retrieval(fused=True, batch_metrics=[InBatchAUC()])._fuses(True, None)
    task = Retrieval(fused=True, batch_metrics=[keras.metrics.CategoricalAccuracy()])  # needs the logits
    eye = np.eye(4, dtype="float32")
    assert not task._fuses(compute_batch_metrics=True, negative_embeddings=None)
    assert task._fuses(compute_batch_metrics=False, negative_embeddings=None)
    assert not task._fuses(compute_batch_metrics=False, negative_embeddings=eye[:, None, :])
    loss = task(eye, eye)
    assert float(loss) == pytest.approx(4 * np.log(1 + 3 * np.exp(-1.0)), rel=1e-6)
    assert float(task.batch_metrics[0].result()) == 1.0


def test_fused_true_is_refused_without_the_kernel_or_with_options_it_does_not_cover(monkeypatch):
    with pytest.raises(ValueError, match="hard negatives"):
        Retrieval(fused=True, num_hard_negatives=3)
    with pytest.raises(TypeError, match="`fused` parameter must be a bool"):
        Retrieval(fused="yes")
    monkeypatch.setenv(fused_softmax.DISABLE_ENV, "1")
    assert not fused_softmax.available() and not fused_softmax.use_by_default()
    with pytest.raises(ValueError, match="_softmax_kernel"):
        Retrieval(fused=True)
    assert not Retrieval()._fuses(compute_batch_metrics=False, negative_embeddings=None)


def test_fused_setting_survives_get_config():
    task = Retrieval(fused=False, temperature=0.1)
    assert Retrieval.from_config(task.get_config()).fused is False


def test_keras_fit_trains_the_same_with_either_path():
    """Five Adagrad steps of a small two-tower model: the same weights through either loss path."""

    def train(fused: bool) -> list[np.ndarray]:
        keras.utils.set_random_seed(0)
        users, items = keras.layers.Embedding(50, 8), keras.layers.Embedding(40, 8)
        task = Retrieval(fused=fused, temperature=0.5, remove_accidental_hits=True)

        class Model(keras.Model):
            def train_step(self, data):
                with tf.GradientTape() as tape:
                    loss = task(users(data["user"]), items(data["item"]), candidate_ids=data["item"])
                grads = tape.gradient(loss, self.trainable_variables)
                self.optimizer.apply_gradients(zip(grads, self.trainable_variables, strict=True))
                return {"loss": loss}

        model = Model()
        model.users, model.items = users, items
        users.build((None,))
        items.build((None,))
        model.compile(optimizer=keras.optimizers.Adagrad(0.1))
        initial = [v.numpy() for v in model.trainable_variables]
        rng = np.random.default_rng(0)
        data = {"user": rng.integers(0, 50, 320), "item": rng.integers(0, 40, 320)}
        model.fit(tf.data.Dataset.from_tensor_slices(data).batch(64), epochs=1, verbose=0, shuffle=False)
        trained = [v.numpy() for v in model.trainable_variables]
        assert len(trained) == 2
        assert all(np.abs(a - b).max() > 0.01 for a, b in zip(initial, trained, strict=True))
        return trained

    for got, want in zip(train(True), train(False), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_building_a_retrieval_task_leaves_device_configuration_open(tmp_path):
    """Deciding whether to fuse must not initialise TensorFlow's devices (users configure them after)."""
    import subprocess
    import sys

    code = (
        "import tensorflow as tf\n"
        "from tfrs_twotower.tasks import Retrieval\n"
        "Retrieval()\n"
        "cpu = tf.config.list_physical_devices('CPU')[0]\n"
        "tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)\n"
        "print(len(tf.config.list_logical_devices('CPU')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "2"
