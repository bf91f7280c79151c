"""Best-epoch export and early stopping: the exported weights are the best epoch's, with both drivers and
across a resumption; metrics.json says which epoch and why."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfrs_twotower.data.batching import side_columns
from tfrs_twotower.sample_data import generate_sample
from tfrs_twotower.training.config import TrainingConfig
from tfrs_twotower.training.epoch_selection import EpochSelection, selection_metric
from tfrs_twotower.training.trainer import train


class Scripted(keras.callbacks.Callback):
    """Logs `val_scripted` = values[epoch] and keeps each epoch's weights; raises at `fail_at`."""

    def __init__(self, values, fail_at=None, name="val_scripted"):
        super().__init__()
        self.values, self.fail_at, self.name, self.weights_at = values, fail_at, name, {}

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.fail_at:
            raise RuntimeError("killed")

    def on_epoch_end(self, epoch, logs=None):
        logs[self.name] = self.values[epoch]
        self.weights_at[epoch + 1] = [w.numpy().copy() for w in self.model.weights]


def tiny_fit(selection, scripted, epochs, initial_epoch=0):
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    x, y = np.random.default_rng(0).normal(size=(32, 3)), np.zeros((32, 2))
    model.fit(x, y, epochs=epochs, initial_epoch=initial_epoch, verbose=0, callbacks=[scripted, selection])
    return model


def test_selection_metric_auto_and_last():
    assert selection_metric("auto", (1, 5, 10, 50, 100)) == "val_recall_at_100"
    assert selection_metric("auto", (1, 5, 10, 50, 100), corpus_size=60) == "val_recall_at_50"
    assert selection_metric("val_ndcg_at_10", (10,)) == "val_ndcg_at_10"
    assert selection_metric("none", (10,)) is None and selection_metric("last", (10,)) is None


def test_keeps_the_best_epochs_weights(tmp_path):
    scripted = Scripted([0.2, 0.7, 0.5, 0.6])
    selection = EpochSelection(str(tmp_path / "best"), metric="val_scripted")
    model = tiny_fit(selection, scripted, epochs=4)
    for got, want in zip(model.weights, scripted.weights_at[2], strict=True):
        np.testing.assert_array_equal(got.numpy(), want)
    assert not np.array_equal(model.weights[0].numpy(), scripted.weights_at[4][0])
    summary = selection.summary()
    assert summary["epoch"] == 2 and summary["last_epoch"] == 4 and summary["value"] == pytest.approx(0.7)
    assert summary["values"] == pytest.approx([0.2, 0.7, 0.5, 0.6]) and summary["metric"] == "val_scripted"
    assert [e["epoch"] for e in selection.history] == [1, 2, 3, 4]


def test_loss_is_minimised_and_ties_go_to_the_later_epoch(tmp_path):
    selection = EpochSelection(str(tmp_path / "a"), metric="val_scripted_loss")
    tiny_fit(selection, Scripted([0.5, 0.3, 0.3, 0.4], name="val_scripted_loss"), epochs=4)
    assert selection.summary()["epoch"] == 3 and selection.summary()["mode"] == "min"


def test_early_stopping_after_patience_epochs_without_improvement(tmp_path):
    selection = EpochSelection(str(tmp_path / "b"), metric="val_scripted", patience=2)
    scripted = Scripted([0.5, 0.9, 0.4, 0.3, 0.95, 0.1])
    model = tiny_fit(selection, scripted, epochs=6)
    assert sorted(scripted.weights_at) == [1, 2, 3, 4]  # epochs 3 and 4 did not improve on epoch 2
    summary = selection.summary()
    assert summary["epoch"] == 2 and summary["stopped_early"] and "without improvement" in summary["reason"]
    np.testing.assert_array_equal(model.weights[0].numpy(), scripted.weights_at[2][0])


def test_a_resumed_run_still_exports_the_best_epoch(tmp_path):
    first = Scripted([0.2, 0.9, 0.5, 0.6])
    tiny_fit(EpochSelection(str(tmp_path / "c"), metric="val_scripted"), first, epochs=2)
    # A new process: the selection's state and the epoch-2 weights are read back from the directory.
    selection = EpochSelection(str(tmp_path / "c"), metric="val_scripted")
    model = tiny_fit(selection, Scripted([0.2, 0.9, 0.5, 0.6]), epochs=4, initial_epoch=2)
    assert selection.summary()["epoch"] == 2 and [e["epoch"] for e in selection.history] == [1, 2, 3, 4]
    np.testing.assert_array_equal(model.weights[0].numpy(), first.weights_at[2][0])


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    directory = tmp_path_factory.mktemp("sample")
    return generate_sample(str(directory), num_pairs=500, num_users=40, num_items=30, seed=4)


def config(sample, job_dir, **overrides):
    values = dict(
        training_data_path=sample.train_jsonl,
        input_schema_path=sample.schema,
        job_dir=str(job_dir),
        num_epochs=4,
        train_batch_size=64,
        verbose=0,
        best_epoch_metric="val_scripted",
    )
    return TrainingConfig(**{**values, **overrides})


@pytest.mark.parametrize(
    "driver", ["fit", pytest.param("custom_loop", marks=pytest.mark.slow)], ids=["keras_fit", "custom_loop"]
)
def test_train_exports_the_best_epoch_also_after_a_resumption(sample, tmp_path, driver):
    extra = {"checkpoint_every_steps": 3} if driver == "custom_loop" else {}
    job = tmp_path / "job"
    killed = Scripted([0.2, 0.9, 0.5, 0.6], fail_at=2)
    with pytest.raises(RuntimeError, match="killed"):
        train(config(sample, job, **extra), callbacks=[killed])
    result = train(config(sample, job, **extra), callbacks=[Scripted([0.2, 0.9, 0.5, 0.6])])

    # The model and its exports hold epoch 2's weights (from the first, interrupted process).
    tower = result.model.candidate_tower
    index = {id(w): i for i, w in enumerate(result.model.weights)}
    for weight in tower.weights:
        np.testing.assert_array_equal(weight.numpy(), killed.weights_at[2][index[id(weight)]])
    docs = [json.loads(line) for line in open(sample.candidates_jsonl)][:5]
    columns = {k: tf.constant(v) for k, v in side_columns(result.schema.candidate, docs).items()}
    served = tf.saved_model.load(result.paths["candidate_model"]).signatures["serving_default"](**columns)
    np.testing.assert_allclose(served["encoding"].numpy(), tower(columns).numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(tower.weights[0].numpy(), killed.weights_at[1][index[id(tower.weights[0])]])

    metrics = json.loads((job / "metrics.json").read_text())
    assert metrics["exported_epoch"]["epoch"] == 2 and metrics["exported_epoch"]["last_epoch"] == 4
    assert metrics["exported_epoch"]["metric"] == "val_scripted"
    assert metrics["exported_epoch"]["values"] == pytest.approx([0.2, 0.9, 0.5, 0.6])
    assert [e["epoch"] for e in metrics["per_epoch"]] == [1, 2, 3, 4]
    assert metrics["final"]["val_scripted"] == pytest.approx(0.9) and result.metrics == metrics["final"]
    assert len(result.history) == 4 and result.exported_epoch["epoch"] == 2


def test_without_evaluation_data_or_with_none_the_last_epoch_is_exported(sample, tmp_path):
    result = train(config(sample, tmp_path / "a", num_epochs=2, eval_split=0.0, best_epoch_metric="auto"))
    assert result.exported_epoch == {
        "epoch": 2,
        "last_epoch": 2,
        "reason": "the last epoch (no evaluation data to select by)",
    }
    with pytest.raises(ValueError, match="early_stopping_patience.*best_epoch_metric"):
        config(sample, tmp_path / "b", best_epoch_metric="none", early_stopping_patience=2).validate()


def test_an_unknown_metric_names_the_logged_ones(sample, tmp_path):
    with pytest.raises(ValueError, match=r"names `val_recal_at_10`.*'val_recall_at_10'"):
        train(config(sample, tmp_path / "job", num_epochs=1, best_epoch_metric="val_recal_at_10"))
