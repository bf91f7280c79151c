"""`LexicalSpace`: document frequencies and latent semantic analysis (LSA) of hashed words, fitted on texts.

`LexicalTextEncoder.set_space` starts its IDF weights and its embedding table from one, so that the dot
product of two encoded texts begins as the rank-`dim` approximation of their TF-IDF cosine.

Example:
>>> space = LexicalSpace.fit(["wing lift", "lift drag", "shock wave"], num_buckets=64, dim=2)
>>> space.vectors.shape[1]
2
"""

from __future__ import annotations

import dataclasses
from typing import Iterable

import numpy as np
import tensorflow as tf

_NON_WORD = r"[^\p{L}\p{N}]+"


def word_buckets(strings, num_buckets: int) -> tf.RaggedTensor:
    """The hash bucket of each word of each string, `[N, None]` int64: lowercase (UTF-8), words are runs
    of letters or digits, FarmHash (`to_hash_bucket_fast`). `LexicalTextEncoder` tokenizes the same way."""
    text = tf.strings.lower(tf.convert_to_tensor(strings, dtype=tf.string), encoding="utf-8")
    words = tf.strings.split(tf.strings.regex_replace(text, _NON_WORD, " "))
    return tf.ragged.map_flat_values(tf.strings.to_hash_bucket_fast, words, num_buckets)


def _randomized_svd(matrix: tf.SparseTensor, rank: int, seed: int, oversample: int = 16, iterations: int = 4):
    """The top `rank` right singular vectors `[columns, rank]` of a sparse matrix (Halko et al. 2011)."""
    columns = int(matrix.dense_shape[1])
    width = min(rank + oversample, columns)
    rng = np.random.default_rng(seed)
    omega = tf.constant(rng.standard_normal((columns, width)), tf.float64)
    y = tf.sparse.sparse_dense_matmul(matrix, omega)
    for _ in range(iterations):
        q, _ = tf.linalg.qr(y)
        z, _ = tf.linalg.qr(tf.sparse.sparse_dense_matmul(matrix, q, adjoint_a=True))
        y = tf.sparse.sparse_dense_matmul(matrix, z)
    q, _ = tf.linalg.qr(y)
    b = tf.transpose(tf.sparse.sparse_dense_matmul(matrix, q, adjoint_a=True))  # [width, columns]
    _, _, v = tf.linalg.svd(b)  # v: [columns, width], by decreasing singular value
    return v[:, :rank].numpy()


@dataclasses.dataclass
class LexicalSpace:
    """IDF and LSA vectors of the hash buckets that occur in the fitted texts.

    Attributes: `num_buckets`, `dim`, `buckets` (int64 `[M]`, the buckets seen), `idf` (float32 `[M]`,
    `log((1 + n) / (1 + df)) + 1`), `unseen_idf` (the idf of a bucket never seen), `vectors` (float32
    `[M, dim]`: the top right singular vectors of the l2-normalised TF-IDF matrix, scaled so that the rows
    have a mean squared norm of 1), `num_documents`.
    """

    num_buckets: int
    dim: int
    buckets: np.ndarray
    idf: np.ndarray
    unseen_idf: float
    vectors: np.ndarray
    num_documents: int

    @classmethod
    def fit(
        cls,
        texts: Iterable[str],
        num_buckets: int,
        dim: int,
        max_documents: int = 100_000,
        seed: int = 1337,
    ) -> "LexicalSpace":
        """Fits on `texts` (one document each; at most `max_documents`, drawn at random beyond that).

        Raises:
            ValueError: no text has a word.
        """
        texts = [t for t in texts if t]
        if len(texts) > max_documents:
            keep = np.random.default_rng(seed).choice(len(texts), max_documents, replace=False)
            texts = [texts[i] for i in np.sort(keep)]
        parts = [word_buckets(texts[i : i + 4096], num_buckets) for i in range(0, len(texts), 4096)]
        rows = np.concatenate([p.value_rowids().numpy() + 4096 * i for i, p in enumerate(parts)] or [[]])
        flat = np.concatenate([p.flat_values.numpy() for p in parts] or [[]]).astype(np.int64)
        if flat.size == 0:
            raise ValueError("Cannot fit a lexical space: none of the texts has a word (letters or digits).")
        pairs, counts = np.unique(np.stack([rows, flat], axis=1), axis=0, return_counts=True)
        buckets, columns = np.unique(pairs[:, 1], return_inverse=True)
        n = len(texts)
        df = np.bincount(columns, minlength=len(buckets))
        idf = np.log((1.0 + n) / (1.0 + df)) + 1.0
        values = (1.0 + np.log(counts)) * idf[columns]
        norms = np.sqrt(np.bincount(pairs[:, 0], weights=values**2, minlength=n))
        values = values / norms[pairs[:, 0]]
        matrix = tf.sparse.reorder(
            tf.SparseTensor(np.stack([pairs[:, 0], columns], axis=1), values, [n, len(buckets)])
        )
        rank = min(dim, n, len(buckets))
        vectors = _randomized_svd(matrix, rank, seed)
        vectors = vectors * np.sqrt(len(buckets) / rank)  # mean squared row norm 1
        return cls(
            num_buckets=num_buckets,
            dim=rank,
            buckets=buckets,
            idf=idf.astype(np.float32),
            unseen_idf=float(np.log(1.0 + n) + 1.0),
            vectors=vectors.astype(np.float32),
            num_documents=n,
        )
