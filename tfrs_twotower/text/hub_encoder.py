"""HubTextEncoder: a Keras 3 layer around a TF Hub model or a SavedModel that embeds strings."""

import keras
import tensorflow as tf

from tfrs_twotower.errors import ModelLoadError
from tfrs_twotower.text import hub_handles

# Output keys that hold one vector per input in the common TF Hub text models, in order of preference.
POOLED_OUTPUT_KEYS = ("default", "pooled_output", "outputs", "output_0", "embeddings")


def _load(handle: str, label: str):
    path = hub_handles.resolve(handle, label)
    try:
        import tensorflow_text  # noqa: F401  # registers the ops of BERT/ALBERT preprocessing models
    except ImportError:
        pass
    if not tf.saved_model.contains_saved_model(path):
        raise ModelLoadError(
            f"`embedding_module` {label} resolves to {path}, which is not a SavedModel directory (no "
            "saved_model.pb in it): a plain file cannot be loaded. Point it at the directory that "
            "`tf.saved_model.save` or a TF Hub download wrote, or use a preset such as '@nnlm'."
        )
    try:
        return tf.saved_model.load(path)
    except (tf.errors.NotFoundError, ValueError) as e:
        if "Op type not registered" in str(e):
            raise ImportError(
                f"The SavedModel of {label} uses ops of TensorFlow Text. Install them with "
                f"`pip install tensorflow-text~={tf.__version__.rsplit('.', 1)[0]}.0`."
            ) from e
        raise


def _callable(module, label: str):
    """The function of a loaded SavedModel that takes a batch of strings (or a preprocessor's dict)."""
    if callable(module):
        return module
    signatures = getattr(module, "signatures", {})
    for key in ("default", "serving_default"):
        if key in signatures:
            signature = signatures[key]
            _, kwargs = signature.structured_input_signature
            if len(kwargs) != 1:
                raise ValueError(
                    f"The signature {key!r} of {label} takes {sorted(kwargs)}; a text encoder needs a "
                    f"signature with one input, the strings."
                )
            (name,) = kwargs
            return lambda inputs: signature(**{name: inputs})
    raise ValueError(
        f"The SavedModel of {label} is not callable and has no 'default' or 'serving_default' "
        f"signature (it has {sorted(signatures)}). Export it with a `__call__` that maps strings to "
        f"embeddings."
    )


def select_output(outputs, output_key: str | None, label: str) -> tf.Tensor:
    """The `[N, dim]` embeddings among a model's outputs (a tensor, or a dict of them)."""
    if isinstance(outputs, dict):
        if output_key is not None:
            if output_key not in outputs:
                raise ValueError(
                    f"`output_key` {output_key!r} is not an output of {label}; it has {sorted(outputs)}."
                )
            outputs = outputs[output_key]
        elif len(outputs) == 1:
            (outputs,) = outputs.values()
        else:
            key = next((k for k in POOLED_OUTPUT_KEYS if k in outputs), None)
            if key is None:
                raise ValueError(
                    f"{label} returns the outputs {sorted(outputs)}; none is one of {POOLED_OUTPUT_KEYS}. "
                    f"Pass the key of the pooled `[batch, dim]` output as `output_key`."
                )
            outputs = outputs[key]
    if outputs.shape.rank != 2:
        raise ValueError(
            f"{label} must return a `[batch, dim]` tensor (or a dict holding one); it returned the shape "
            f"{outputs.shape}. Pass the key of a pooled output as `output_key`."
        )
    return outputs


@keras.saving.register_keras_serializable(package="tfrs_twotower")
class HubTextEncoder(keras.layers.Layer):
    """Embeds strings with a TF Hub model or a SavedModel, frozen.

    The model is loaded when the layer is made: an http(s) handle through `tensorflow_hub.resolve`, which
    reads the TF Hub cache (`TFHUB_CACHE_DIR`) and downloads into it when there is network access (the
    check fails within seconds when there is none); a path or `file://` URI directly with
    `tf.saved_model.load`. The loaded object is tracked by the layer, so a SavedModel exported from a Keras
    model containing the layer carries the text model (variables, lookup tables, vocabulary assets) and
    needs neither the cache nor the network to serve.

    The model must map a batch of strings `[N]` to `[N, dim]`: a callable SavedModel (TF2 TF Hub format) or
    one whose 'default'/'serving_default' signature takes the strings. A dict output is reduced to
    `output_key`, or to its only entry, or to the first of 'default', 'pooled_output', 'outputs',
    'output_0', 'embeddings'. With `preprocessor` (e.g. BERT/ALBERT), the strings go through the
    preprocessor first and its dict output goes to the model. The model's variables are not Keras weights:
    they never train and are not counted by `model.summary()`.

    Args:
        handle: a TF Hub handle or URL, a `file://` URI, or a SavedModel path (any `tf.io.gfile` URI).
        preprocessor: a handle or path of a preprocessing model, or None.
        output_key: the key of the `[N, dim]` output when the model returns a dict, or None.
        label: how to name the model in errors (e.g. its preset); defaults to the handle.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`).

    Call arguments:
        strings: tf.string tensor of shape `[N]`.

    Returns:
        float32 tensor of shape `[N, output_dim]`.

    Raises:
        HubUnavailableError: (an OSError) the handle is a URL that is not cached and cannot be downloaded.
        FileNotFoundError: a path that does not exist.
        ImportError: the model needs TensorFlow Text ops and `tensorflow-text` is not installed.
        ValueError: the model does not map strings to `[N, dim]`.

    Example:
    >>> class Tiny(tf.Module):
    ...     @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    ...     def __call__(self, strings):
    ...         return tf.one_hot(tf.strings.length(strings) % 4, 4)
    >>> import tempfile; path = tempfile.mkdtemp()
    >>> tf.saved_model.save(Tiny(), path)
    >>> HubTextEncoder(path)(tf.constant(["ab", "abc"])).numpy().tolist()
    [[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
    """

    def __init__(
        self,
        handle: str,
        preprocessor: str | None = None,
        output_key: str | None = None,
        label: str | None = None,
        **kwargs,
    ):
        kwargs.pop("trainable", None)  # always frozen, also when restored from a config
        super().__init__(trainable=False, **kwargs)
        for name, value in (("handle", handle), ("preprocessor", preprocessor), ("output_key", output_key)):
            if not (isinstance(value, str) or (value is None and name != "handle")):
                raise TypeError(f"`{name}` must be a string. Got {value!r} ({type(value).__name__}) instead.")
        self.handle, self.preprocessor, self.output_key, self.label = handle, preprocessor, output_key, label
        label = label or f"`{handle}`"
        self._label = label
        self.encoder_module = _load(handle, label)
        self._encoder_fn = _callable(self.encoder_module, label)
        self.preprocessor_module = None
        self._preprocessor_fn = None
        if preprocessor is not None:
            self.preprocessor_module = _load(preprocessor, f"the preprocessor of {label}")
            self._preprocessor_fn = _callable(self.preprocessor_module, f"the preprocessor of {label}")
        self.output_dim = int(self._encode(tf.constant(["output_dim probe"])).shape[-1])
        self.supports_jit = False
        self.built = True

    def _encode(self, strings: tf.Tensor) -> tf.Tensor:
        inputs = strings if self._preprocessor_fn is None else self._preprocessor_fn(strings)
        outputs = select_output(self._encoder_fn(inputs), self.output_key, self._label)
        return tf.stop_gradient(tf.cast(outputs, tf.float32))

    def call(self, strings):
        return tf.cast(self._encode(tf.convert_to_tensor(strings, dtype=tf.string)), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_dim)

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("trainable", None)
        config.update(
            handle=self.handle, preprocessor=self.preprocessor, output_key=self.output_key, label=self.label
        )
        return config
