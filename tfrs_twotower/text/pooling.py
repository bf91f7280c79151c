"""The pooling the offline text encoders share: per-string sums of token vectors, L2-normalised."""

import tensorflow as tf


def normalized_sums(vectors: tf.Tensor, tokens: tf.RaggedTensor) -> tf.Tensor:
    """Sums `vectors` (one row per token of `tokens.flat_values`) per string and L2-normalises the sums.

    Normalising the sum equals normalising the mean; `l2_normalize` divides by max(norm, 1e-6), so a string
    without tokens stays a zero vector.

    Example:
    >>> tokens = tf.RaggedTensor.from_row_lengths(tf.constant(["a", "b", "c"]), [2, 0, 1])
    >>> normalized_sums(tf.constant([[3.0, 0.0], [0.0, 4.0], [0.0, 2.0]]), tokens).numpy().tolist()
    [[0.6000000238418579, 0.800000011920929], [0.0, 0.0], [0.0, 1.0]]
    """
    # sparse.segment_sum (sorted rows, as a ragged tensor's are) is several times faster on CPU than
    # unsorted_segment_sum.
    rows = tokens.value_rowids()
    positions = tf.range(tf.shape(rows, out_type=rows.dtype)[0])
    sums = tf.sparse.segment_sum(vectors, positions, rows, num_segments=tokens.nrows())
    return tf.math.l2_normalize(sums, axis=1, epsilon=1e-12)
