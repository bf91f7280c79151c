"""`FeatureType`: everything the package knows about one schema feature type, in one place.

Each of the five types (Id, Categorical, Numeric, Text, Vector) is one subclass, in a module of its own,
registered in `feature_types.feature_type_of`. A type owns, for a `FeatureSpec` of its type:

- its schema config keys (`config_keys`) and embedding width floor (`min_embedding_dim`);
- its JSON value rule: `expected(spec)` (the phrase of error messages) and `checker(spec)` (value ->
  normalised value, or `InvalidValue`);
- its `tf.train.Example` form: `to_feature`, `negatives_to_features` / `split_negatives` (the K explicit
  negatives), and, for `tf.io.parse_example` (the native tf.data path), `parse_spec`, `invalid_rows` /
  `invalid_utf8_rows` (its value rules as TF ops), `dense` (parsed ragged values -> the batch tensor)
  and the same for negatives (`negative_parse_specs`, `negative_counts`, `dense_negatives`);
- its batch form (docs/architecture.md): `signature`, `column` (numpy, from normalised values),
  `empty_value` (a padding negative);
- its serving input: `serving_signature`;
- its encoder layer: `make_encoder`, and the embedding table it trains (`embedding_table`).

Other modules ask the type (`feature_type_of(spec).column(spec, values)`) instead of comparing
`spec.feature_type` with a name, so the Python path, the native tf.data path and serving cannot drift.

Example:
>>> from tfrs_twotower.feature_types import feature_type_of
>>> from tfrs_twotower.schema import FeatureSpec
>>> spec = FeatureSpec(name="age", side="query", feature_type="Numeric")
>>> kind = feature_type_of(spec)
>>> kind.checker(spec)(31), kind.signature(spec)
([31.0], TensorSpec(shape=(None, None), dtype=tf.float32, name=None))
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping, Sequence

import numpy as np
import tensorflow as tf

from tfrs_twotower.packed import take_rows

if TYPE_CHECKING:
    from tfrs_twotower.schema import FeatureSpec

NAN = float("nan")


class FeatureType(abc.ABC):
    """One feature type's rules; subclasses set the class attributes and implement the abstract methods.

    Class attributes:
      name: the type's name in the schema ("Id").
      config_keys: the schema `config` keys it takes -> required?
      value_dtype: the dtype of its values in an Example and in batches (tf.string or tf.float32).
      identifies: True for a single string that can key a record (a candidate key, a query id).
      min_embedding_dim: the smallest `embedding_dim` the schema accepts (Id: 0, a key only).
    """

    name: ClassVar[str]
    config_keys: ClassVar[Mapping[str, bool]]
    value_dtype: ClassVar[tf.DType]
    identifies: ClassVar[bool] = False
    min_embedding_dim: ClassVar[int] = 1

    def __repr__(self) -> str:
        return f"<feature type {self.name}>"

    @property
    def float_values(self) -> bool:
        """Whether its values are numbers (float_list) rather than strings (bytes_list)."""
        return self.value_dtype.is_floating

    def is_encoded(self, spec: FeatureSpec) -> bool:
        """Whether `spec` is an input of its tower (Id with `embedding_dim` 0 is a key only)."""
        return True

    # --- JSON values --------------------------------------------------------------------------------
    @abc.abstractmethod
    def expected(self, spec: FeatureSpec) -> str:
        """What a valid value is, as error messages say it: "a list of exactly 4 finite numbers (Vector)"."""

    @abc.abstractmethod
    def checker(self, spec: FeatureSpec) -> Callable[[Any], Any]:
        """The function normalising one JSON value of `spec`; it raises `InvalidValue` for a bad one."""

    @abc.abstractmethod
    def fixed_length(self, spec: FeatureSpec) -> int | None:
        """The number of values every record has (Id 1, Vector `length`), None for a list of any length."""

    # --- tf.train.Example ---------------------------------------------------------------------------
    def to_feature(self, spec: FeatureSpec, value: Any) -> tf.train.Feature:
        """One normalised value as an Example feature (strings as UTF-8 bytes_list, numbers float_list)."""
        values = [value] if isinstance(value, str) else value
        if self.float_values:
            return tf.train.Feature(float_list=tf.train.FloatList(value=values))
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode("utf-8") for v in values]))

    @abc.abstractmethod
    def negatives_to_features(self, spec: FeatureSpec, values: list) -> dict[str, tf.train.Feature]:
        """K negatives' normalised values as `{key suffix: feature}` ("" for `negative_<name>` itself)."""

    @abc.abstractmethod
    def split_negatives(self, spec: FeatureSpec, flat: list, lengths: list | None, key: str) -> list:
        """`negative_<name>`'s flat values (and `.lengths`) -> K raw values, or `InvalidValue`."""

    def from_example_values(self, spec: FeatureSpec, values: np.ndarray) -> Any:
        """One record's parsed values (a numpy row of `tf.io.parse_example`'s output, valid) as the
        normalised value the record parser gives: UTF-8 text for strings, Python floats for numbers."""
        return self._python_values(values)

    def from_example_columns(
        self, spec: FeatureSpec, values: np.ndarray, splits: np.ndarray, rows: np.ndarray
    ) -> list:
        """`from_example_values` of each row in `rows` of a parsed batch (`values`, row `splits`), at once."""
        picked, offsets = take_rows(values, splits, np.asarray(rows, dtype=np.int64))
        flat = self._python_values(picked)
        bounds = offsets.tolist()
        return [flat[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    def _python_values(self, values: np.ndarray) -> list:
        """Parsed values as Python values: floats (from float32) for numbers, UTF-8 text for strings."""
        if self.float_values:
            return values.astype(np.float32).tolist()
        return [b.decode("utf-8") for b in values]

    def parse_spec(self, spec: FeatureSpec) -> tf.io.RaggedFeature:
        """The `tf.io.parse_example` spec of its key: every type parses ragged (`[B, None]`), so a record
        with the wrong number of values is seen by `invalid_rows` rather than failing the whole batch.
        Numeric values must then be float_list (the Python path also takes int64_list)."""
        return tf.io.RaggedFeature(dtype=self.value_dtype, row_splits_dtype=tf.int64)

    @abc.abstractmethod
    def invalid_elements(self, spec: FeatureSpec, flat_values: tf.Tensor) -> tf.Tensor:
        """bool `[N]`: which of the parsed values (flat, any rows) its rule refuses: an empty Id, NaN or
        inf (float32 values: cast int64_list values first)."""

    def invalid_values(self, spec: FeatureSpec, values: tf.RaggedTensor) -> tf.Tensor:
        """bool `[B]`: the rows of parsed `values` holding a value `invalid_elements` refuses."""
        return tf.reduce_any(values.with_flat_values(self.invalid_elements(spec, values.flat_values)), axis=1)

    def invalid_rows(self, spec: FeatureSpec, values: tf.RaggedTensor) -> tf.Tensor:
        """bool `[B]`: the rows of parsed `values` that break `expected(spec)` (values and count)."""
        bad = self.invalid_values(spec, values)
        length = self.fixed_length(spec)
        if length is None:
            return bad
        return tf.logical_or(bad, tf.not_equal(values.row_lengths(), length))

    def invalid_utf8_rows(self, values: tf.RaggedTensor) -> tf.Tensor:
        """bool `[B]`: the rows with a string that is not valid UTF-8 (the Python reader refuses them:
        "a bytes_list value is not valid UTF-8 text"); all False for number types."""
        if self.float_values:
            return tf.zeros_like(values.row_lengths(), dtype=tf.bool)
        # Transcoding replaces each invalid byte sequence, so only invalid strings change.
        clean = tf.strings.unicode_transcode(
            values.flat_values, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
        )
        changed = values.with_flat_values(tf.not_equal(clean, values.flat_values))
        return tf.reduce_any(changed, axis=1)

    @abc.abstractmethod
    def dense(self, spec: FeatureSpec, values: tf.RaggedTensor) -> tf.Tensor:
        """Parsed `values` (`[B, None]`, valid rows) as the batch tensor of `signature(spec)`."""

    def negative_parse_specs(self, spec: FeatureSpec) -> dict[str, tf.io.RaggedFeature]:
        """`{key suffix: spec}` of the `negative_<name>` key(s), as `negatives_to_features` writes them."""
        return {"": self.parse_spec(spec)}

    @abc.abstractmethod
    def negative_counts(
        self, spec: FeatureSpec, values: tf.RaggedTensor, lengths: tf.RaggedTensor | None
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """`(K, bad)`, int64 and bool `[B]`: each row's number of negatives in parsed `negative_<name>`
        values (and `.lengths`), and the rows where they break `split_negatives`' or the value rules."""

    @abc.abstractmethod
    def dense_negatives(
        self, spec: FeatureSpec, values: tf.RaggedTensor, lengths: tf.RaggedTensor | None, k: tf.Tensor
    ) -> tf.Tensor:
        """Valid parsed negatives as the batch tensor of `signature(spec, extra_dims=1)`: `[B, K, ...]`,
        rows with fewer than K padded as `batching.negative_columns` pads them."""

    # --- batches ------------------------------------------------------------------------------------
    @abc.abstractmethod
    def signature(self, spec: FeatureSpec, extra_dims: int = 0) -> tf.TensorSpec:
        """The `tf.TensorSpec` of a batch; `extra_dims=1` adds the negatives' K axis after B."""

    @abc.abstractmethod
    def column(self, spec: FeatureSpec, values: list) -> np.ndarray:
        """The batch array of normalised `values` (one per row)."""

    @abc.abstractmethod
    def empty_value(self, spec: FeatureSpec) -> Any:
        """The normalised value that pads a row's missing negatives."""

    # --- serving and encoding -----------------------------------------------------------------------
    def serving_signature(self, spec: FeatureSpec) -> tf.TensorSpec:
        """The exported encoders' input: the batch signature, named after the feature."""
        return tf.TensorSpec.from_spec(self.signature(spec), name=spec.name)

    @abc.abstractmethod
    def make_encoder(self, spec: FeatureSpec, numeric_stats=None, vocabulary: Sequence[str] | None = None):
        """The Keras layer encoding a batch of `spec` (see `features.make_feature_encoder`)."""

    def embedding_table(self, spec: FeatureSpec) -> tuple[int, int] | None:
        """`(rows, dim)` of the embedding table `spec` trains, None when it trains none."""
        return None
