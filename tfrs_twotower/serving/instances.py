"""JSON instances -> the encoders' input tensors: padded like training batches, or as TF Serving does.

Two conversions of the same request body `{"instances": [{name: value, ...}, ...]}`:

- `instances_to_tensors(schema, side, instances)`: for Python clients. Each instance may use any value
  form of the training data (a number for a one-element Numeric list, a string for a one-element
  Categorical list, lists of any length); instances are validated and batched exactly like training
  batches (lists padded with `""` / `NaN`).
- `rest_request_to_tensors(request, input_specs)`: what TF Serving's REST predict API does with the body
  (row format `"instances"` or columnar format `"inputs"`): each named input is stacked across
  instances as given. It does NOT pad: within one request, a list feature must have the same length in
  every instance (or send one request per instance), and a list feature must be sent as a list
  (`"age": [31.0]`, not `31.0`). Use it to check a request before sending it.

Example:
>>> from tfrs_twotower.schema import load_schema
>>> schema = load_schema({"query": {"q": {"feature_type": "Text"}},
...                       "candidate": {"c": {"feature_type": "Numeric"}}})
>>> instances_to_tensors(schema, "query", [{"q": "a"}, {"q": ["b", "c"]}])["q"].numpy().tolist()
[[b'a', b''], [b'b', b'c']]
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import tensorflow as tf

from tfrs_twotower.data.batching import side_columns
from tfrs_twotower.data.records import Location, RecordParser, describe
from tfrs_twotower.export import feature_signature
from tfrs_twotower.schema import InputSchema, load_schema
from tfrs_twotower.serving.documents import parse_side
from tfrs_twotower.serving.encoder import check_side


def columns_to_tensors(
    schema: InputSchema, side: str, columns: Mapping[str, np.ndarray]
) -> dict[str, tf.Tensor]:
    """`side_columns`' numpy arrays as tensors of the serving signature's dtypes."""
    out = {}
    for spec in load_schema(schema).side(side):
        dtype = feature_signature(spec).dtype
        column = columns[spec.name]
        # An empty object array (every list empty) has no element to infer "string" from.
        out[spec.name] = tf.constant(
            column.astype(bytes) if dtype == tf.string and column.size == 0 else column, dtype
        )
    return out


def instances_to_tensors(
    schema: InputSchema | Any,
    side: str,
    instances: Sequence[Mapping[str, Any]] | Mapping[str, Any],
    source: str = "<instances>",
) -> dict[str, tf.Tensor]:
    """Validates `instances` (a list of `{name: value}`, or `{"instances": [...]}`) and batches them.

    Returns:
        `{name: tensor}` for every feature of `side`, padded like training batches; what the exported
        `<side>_model` and the retrieval models take.

    Raises:
        BadRecordError: for an instance that does not match the schema (`<instances> record 2: query.age:
            ...`).
    """
    schema = load_schema(schema)
    check_side(side)
    if isinstance(instances, Mapping):
        if "instances" not in instances:
            raise ValueError(
                'Expected a list of instances or {"instances": [...]}. '
                f"Got an object with keys {sorted(instances)}."
            )
        instances = instances["instances"]
    if isinstance(instances, (str, bytes)) or not isinstance(instances, Sequence):
        raise TypeError(f"Expected a list of instances. Got {type(instances).__name__} instead.")
    parser = RecordParser(schema)
    docs = [parse_side(parser, side, obj, Location(source, i)) for i, obj in enumerate(instances)]
    return columns_to_tensors(schema, side, side_columns(schema.side(side), docs))


def rest_request_to_tensors(
    request: Mapping[str, Any], input_specs: Mapping[str, tf.TensorSpec]
) -> dict[str, tf.Tensor]:
    """The tensors TF Serving's REST predict API makes of `request` for a signature with `input_specs`.

    Follows TF Serving's rules: row format `{"instances": [{name: value}, ...]}` stacks each input's
    values across instances (shapes must agree: no padding); columnar format `{"inputs": {name: value}}`
    takes each value as the whole batch. Every input is required; values must be strings for string
    inputs and numbers for float inputs; the shape must match the signature's.

    Raises:
        ValueError: naming the instance and the input, as TF Serving would refuse the request.
    """
    if not isinstance(request, Mapping) or len({"instances", "inputs"} & set(request)) != 1:
        raise ValueError(
            'A predict request has exactly one of "instances" (row format) or "inputs" (columnar).'
        )
    specs = dict(input_specs)
    if "inputs" in request:
        columns = request["inputs"]
        if not isinstance(columns, Mapping):
            raise ValueError('"inputs" must be an object {input name: batch of values} for named inputs.')
        _check_names(set(columns), specs, '"inputs"')
        return {name: _tensor(columns[name], spec, f'"inputs".{name}') for name, spec in specs.items()}
    rows = request["instances"]
    if not isinstance(rows, list) or not rows:
        raise ValueError('"instances" must be a non-empty list.')
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise ValueError(
                f"instance {i}: a signature with named inputs takes objects, got {describe(row)}."
            )
        _check_names(set(row), specs, f"instance {i}")
    out = {}
    for name, spec in specs.items():
        shapes = {np.shape(row[name]) for row in rows}
        if len(shapes) > 1:
            raise ValueError(
                f"input `{name}`: the instances' values have different shapes {sorted(shapes)}; TF Serving's "
                "row format does not pad lists. Give the list the same length in every instance of a request "
                "(or send one request per instance)."
            )
        out[name] = _tensor([row[name] for row in rows], spec, f"input `{name}`")
    return out


def _check_names(names: set[str], specs: Mapping[str, tf.TensorSpec], where: str) -> None:
    missing, extra = sorted(set(specs) - names), sorted(names - set(specs))
    if missing or extra:
        raise ValueError(
            f"{where}: the signature's inputs are {sorted(specs)}; missing {missing}, unknown {extra}."
        )


def _tensor(value: Any, spec: tf.TensorSpec, where: str) -> tf.Tensor:
    array = np.array(value, dtype=object)
    flat = array.ravel().tolist()
    if any(isinstance(x, (list, tuple, dict)) for x in flat):
        raise ValueError(
            f"{where}: the lists have different lengths (TF Serving does not pad), got {describe(value)}."
        )
    if spec.dtype == tf.string:
        if any(type(x) is not str for x in flat):
            raise ValueError(f"{where}: expected strings (DT_STRING), got {describe(value)}.")
    elif any(type(x) not in (int, float) for x in flat):
        raise ValueError(f"{where}: expected numbers ({spec.dtype.name}), got {describe(value)}.")
    if not spec.shape.is_compatible_with(array.shape):
        raise ValueError(
            f"{where}: the signature takes shape {spec.shape.as_list()} (None: any), got "
            f"{list(array.shape)}; a list feature is sent as a list, even of one value."
        )
    if spec.dtype == tf.string:
        return tf.constant(array.astype(bytes) if array.size == 0 else array, tf.string)
    return tf.constant(array.astype(spec.dtype.as_numpy_dtype), spec.dtype)
