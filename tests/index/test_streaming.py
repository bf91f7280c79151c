"""index_from_dataset: both dataset forms equal index(); storage allocated once."""

import numpy as np
import pytest
import tensorflow as tf

from tfrs_twotower.index import BruteForce, ScaNN, streaming

PIPELINES = {
    "static_batch": lambda ds: ds.batch(100, drop_remainder=True),  # 1000 rows: exact size
    "dynamic_batch": lambda ds: ds.batch(128),  # tail of a partial batch left unused
    "unknown_cardinality": lambda ds: ds.filter(lambda *_: True).batch(96),  # counted first
}


@pytest.mark.parametrize("layer_cls", [BruteForce, ScaNN])
@pytest.mark.parametrize("pipeline", sorted(PIPELINES))
@pytest.mark.parametrize("with_ids", [True, False])
def test_index_from_dataset_equals_index(corpus, layer_cls, pipeline, with_ids):
    x, str_ids, _, q = corpus
    elements = (str_ids, x) if with_ids else x
    dataset = PIPELINES[pipeline](tf.data.Dataset.from_tensor_slices(elements))
    streamed = layer_cls(k=5).index_from_dataset(dataset)
    direct = layer_cls(k=5).index(x, str_ids if with_ids else None)
    assert streamed.num_candidates == len(x)
    np.testing.assert_array_equal(streamed(q)[1].numpy(), direct(q)[1].numpy())
    np.testing.assert_allclose(streamed(q)[0].numpy(), direct(q)[0].numpy(), rtol=1e-5)


def test_storage_is_allocated_once_at_final_size(corpus):
    x, _, _, _ = corpus
    made = []

    def make(capacity, dim, ids_dtype):
        made.append(capacity)
        return streaming.NumpyStorage(capacity, dim, ids_dtype)

    storage, n = streaming.stream_into(tf.data.Dataset.from_tensor_slices(x).batch(128), make)
    assert made == [1024] and n == 1000  # 8 batches of up to 128 rows
    np.testing.assert_array_equal(storage.embeddings[:n], x)
    storage, n = streaming.stream_into(
        tf.data.Dataset.from_tensor_slices(x).filter(lambda _: True).batch(3), make
    )
    assert made[-1] == 1000 and n == 1000


def test_irregular_batches_grow(corpus):
    x, _, int_ids, q = corpus
    sizes = [10, 400, 590]  # a first batch smaller than the next ones
    batches = [
        (int_ids[a:b], x[a:b]) for a, b in zip(np.cumsum([0] + sizes[:-1]), np.cumsum(sizes), strict=False)
    ]
    dataset = tf.data.Dataset.from_generator(
        lambda: iter(batches),
        output_signature=(tf.TensorSpec([None], tf.int64), tf.TensorSpec([None, 16], tf.float32)),
    ).apply(tf.data.experimental.assert_cardinality(3))
    index = BruteForce(k=4).index_from_dataset(dataset)
    np.testing.assert_array_equal(index(q)[1].numpy(), BruteForce(k=4).index(x, int_ids)(q)[1].numpy())


def test_dataset_errors(corpus):
    x, str_ids, _, _ = corpus
    with pytest.raises(TypeError, match="accepts a batched tf.data.Dataset.*Got ndarray"):
        BruteForce().index_from_dataset(x)
    with pytest.raises(ValueError, match=r"batches of rank 2 `\[batch, dim\]`.*`.batch\(n\)`"):
        BruteForce().index_from_dataset(tf.data.Dataset.from_tensor_slices(x))
    with pytest.raises(ValueError, match="Got elements"):
        BruteForce().index_from_dataset(tf.data.Dataset.from_tensor_slices((x, x, x)).batch(4))
    with pytest.raises(ValueError, match="same batch dimension"):
        BruteForce().index_from_dataset(
            tf.data.Dataset.zip(
                (
                    tf.data.Dataset.from_tensor_slices(str_ids).batch(3, drop_remainder=True),
                    tf.data.Dataset.from_tensor_slices(x).batch(4, drop_remainder=True),
                )
            )
        )
    with pytest.raises(ValueError, match="same number of rows in each batch"):
        BruteForce().index_from_dataset(
            tf.data.Dataset.zip(
                (
                    tf.data.Dataset.from_tensor_slices(str_ids).batch(3),
                    tf.data.Dataset.from_tensor_slices(x).batch(4),
                )
            )
        )
    with pytest.raises(ValueError, match="infinite"):
        BruteForce().index_from_dataset(tf.data.Dataset.from_tensor_slices(x).batch(4).repeat())
    with pytest.raises(ValueError, match="empty dataset"):
        BruteForce().index_from_dataset(tf.data.Dataset.from_tensor_slices(x).take(0).batch(4))
