"""Helpers for the text encoder tests: a fresh Python process, a tiny TF Hub-format text model."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def run_fresh_python(code: str, env: dict | None = None, timeout: float = 240) -> object:
    """Runs `code` in a new interpreter and returns the JSON object it prints on its last stdout line."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), full_env.get("PYTHONPATH", "")])
    full_env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    full_env.update(env or {})
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )
    assert result.returncode == 0, f"subprocess failed:\n{result.stderr[-4000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def fresh_python():
    return run_fresh_python


VOCAB = ["<unk>", "red", "blue", "shoes", "shirt", "running"]
HUB_DIM = 6


def build_hub_model(path, kind: str = "tensor") -> None:
    """Saves a TF Hub-format text model like NNLM: a vocabulary asset, a lookup table, an embedding variable.

    kind: "tensor" returns `[N, 6]`; "dict" returns {"default": [N, 6], "sequence": [N, T, 6]};
    "signature" has no `__call__`, only a 'default' signature taking `sentences`;
    "preprocessor" maps strings to {"ids": ragged->dense ids}; "encoder" maps that dict to
    {"pooled_output": [N, 6], "sequence_output": [N, T, 6]} (the BERT/ALBERT pair).
    """
    import tempfile

    import tensorflow as tf

    vocab_file = pathlib.Path(tempfile.mkdtemp()) / "vocab.txt"
    vocab_file.write_text("\n".join(VOCAB) + "\n")

    class Model(tf.Module):
        def __init__(self):
            super().__init__()
            self.vocab = tf.saved_model.Asset(str(vocab_file))
            self.table = tf.lookup.StaticHashTable(
                tf.lookup.TextFileInitializer(
                    self.vocab,
                    tf.string,
                    tf.lookup.TextFileIndex.WHOLE_LINE,
                    tf.int64,
                    tf.lookup.TextFileIndex.LINE_NUMBER,
                ),
                default_value=0,
            )
            self.embeddings = tf.Variable(
                tf.eye(len(VOCAB), HUB_DIM) + 0.5 * tf.ones([len(VOCAB), HUB_DIM]), trainable=True
            )

        def ids(self, strings):
            return self.table.lookup(tf.strings.split(tf.strings.lower(strings))).to_tensor(-1)

        def embed(self, ids):
            mask = tf.cast(ids >= 0, tf.float32)[..., None]
            sequence = tf.gather(self.embeddings, tf.maximum(ids, 0)) * mask
            return tf.reduce_sum(sequence, 1) / tf.maximum(tf.reduce_sum(mask, 1), 1.0), sequence

    model = Model()
    strings_spec = tf.TensorSpec([None], tf.string)
    signatures = None
    if kind == "tensor":
        model.__call__ = tf.function(lambda s: model.embed(model.ids(s))[0], input_signature=[strings_spec])
    elif kind == "dict":
        model.__call__ = tf.function(
            lambda s: dict(zip(("default", "sequence"), model.embed(model.ids(s)), strict=True)),
            input_signature=[strings_spec],
        )
    elif kind == "signature":
        fn = tf.function(lambda sentences: {"default": model.embed(model.ids(sentences))[0]})
        signatures = {"default": fn.get_concrete_function(tf.TensorSpec([None], tf.string, name="sentences"))}
    elif kind == "preprocessor":
        model.__call__ = tf.function(lambda s: {"ids": model.ids(s)}, input_signature=[strings_spec])
    elif kind == "encoder":
        model.__call__ = tf.function(
            lambda inputs: dict(
                zip(("pooled_output", "sequence_output"), model.embed(inputs["ids"]), strict=True)
            ),
            input_signature=[{"ids": tf.TensorSpec([None, None], tf.int64)}],
        )
    else:
        raise ValueError(kind)
    tf.saved_model.save(model, str(path), signatures=signatures)


def hub_reference(texts: list[str]):
    """The numpy reference of `build_hub_model`'s pooled output."""
    import numpy as np

    table = np.eye(len(VOCAB), HUB_DIM) + 0.5
    rows = []
    for text in texts:
        ids = [VOCAB.index(w) if w in VOCAB else 0 for w in text.lower().split()]
        rows.append(table[ids].mean(0) if ids else np.zeros(HUB_DIM))
    return np.stack(rows)


@pytest.fixture(scope="session")
def tiny_hub():
    """The tiny TF Hub model helpers: `.build(path, kind)`, `.reference(texts)`, `.dim`."""
    import types

    return types.SimpleNamespace(build=build_hub_model, reference=hub_reference, dim=HUB_DIM)
