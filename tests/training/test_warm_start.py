"""Warm start: a run starts from a finished run's towers and optimizer state, on new data with new ids;
a setting that changes the weights' shapes is refused, naming it."""

import json
from types import SimpleNamespace

import keras
import numpy as np
import pytest

from tfrs_twotower.errors import ConfigError
from tfrs_twotower.sample_data import generate_sample
from tfrs_twotower.training.config import TrainingConfig
from tfrs_twotower.training.trainer import train


class FirstWeights(keras.callbacks.Callback):
    """The towers' and the optimizer's variables when training begins."""

    def on_train_begin(self, logs=None):
        self.towers = [
            w.numpy().copy() for w in self.model.query_tower.weights + self.model.candidate_tower.weights
        ]
        self.optimizer = [v.numpy().copy() for v in self.model.optimizer.variables]


def id_tables(model):
    """`{id(table variable): vocabulary}` of the Id features with a vocabulary, by feature too."""
    found = {}
    for side, tower in (("query", model.query_tower), ("candidate", model.candidate_tower)):
        for name, encoder in tower.feature_encoder.encoders.items():
            if getattr(encoder, "vocabulary", None) is not None:
                found[id(encoder.embedding.weights[0])] = encoder.vocabulary
                found[(side, name)] = (encoder.vocabulary, encoder.embedding.weights[0])
        bias = getattr(tower, "bias", None)  # --candidate_bias: a 1-wide table keyed by the candidate Id
        if getattr(getattr(bias, "ids", None), "vocabulary", None) is not None:
            found[id(bias.ids.embedding.weights[0])] = bias.ids.vocabulary
            found[(side, "bias")] = (bias.ids.vocabulary, bias.ids.embedding.weights[0])
    return found


def _key(old_tables, variable):
    """The (side, feature) of `variable`, an Id table of the warm model, among the old model's."""
    side = "query" if "query_tower" in variable.path else "candidate"
    if "_bias/" in variable.path:
        return side, "bias"
    name = variable.path.split("_features/")[1].split("/")[0]
    return side, name


@pytest.fixture(scope="module")
def old_and_new(tmp_path_factory):
    old = generate_sample(
        str(tmp_path_factory.mktemp("old")), num_pairs=600, num_users=40, num_items=30, seed=1
    )
    # The new data: later pairs of the same users and items, plus pairs of new users and new items.
    lines = [json.loads(line) for line in open(old.train_jsonl)]
    fresh = []
    for i, record in enumerate(lines[:120]):
        record = json.loads(json.dumps(record))
        record["query"]["user_id"] += "_new"
        if i % 2:
            record["candidate"]["item_id"] += "_new"
        fresh.append(record)
    directory = tmp_path_factory.mktemp("new")
    with open(directory / "train.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in lines[300:] + fresh)
    return old, SimpleNamespace(train_jsonl=str(directory / "train.jsonl"), schema=old.schema)


def config(files, job_dir, **overrides):
    values = dict(
        training_data_path=files.train_jsonl,
        input_schema_path=files.schema,
        job_dir=str(job_dir),
        num_epochs=2,
        train_batch_size=64,
        verbose=0,
        learning_rate=0.2,
        best_epoch_metric="none",
    )
    return TrainingConfig(**{**values, **overrides})


@pytest.fixture(scope="module")
def finished(old_and_new, tmp_path_factory):
    old, _ = old_and_new
    job = tmp_path_factory.mktemp("jobs") / "old"
    result = train(config(old, job))
    return job, result


def test_warm_start_begins_from_the_old_weights_and_optimizer_state(old_and_new, finished, tmp_path):
    _, new = old_and_new
    job, old_result = finished
    assert (job / "weights" / "weights.index").exists()
    old_towers = [
        w.numpy() for w in old_result.model.query_tower.weights + old_result.model.candidate_tower.weights
    ]
    old_optimizer = [v.numpy() for v in old_result.model.optimizer.variables]

    first = FirstWeights()
    warm = train(config(new, tmp_path / "warm", num_epochs=1, warm_start_from=str(job)), callbacks=[first])
    new_tables, old_tables = id_tables(warm.model), id_tables(old_result.model)
    warm_weights = warm.model.query_tower.weights + warm.model.candidate_tower.weights
    for got, want, variable in zip(first.towers, old_towers, warm_weights, strict=True):
        if id(variable) not in new_tables:
            np.testing.assert_array_equal(got, want)
            continue
        # An Id table from a vocabulary: each id the old run knew keeps its row, new ids start fresh.
        vocabulary, (old_vocabulary, _) = new_tables[id(variable)], old_tables[_key(old_tables, variable)]
        old_row = {value: i + 1 for i, value in enumerate(old_vocabulary)}
        shared = [(i + 1, old_row[v]) for i, v in enumerate(vocabulary) if v in old_row]
        assert shared and len(shared) < len(vocabulary)  # the new data has old and new ids
        np.testing.assert_array_equal(got[[r for r, _ in shared]], want[[o for _, o in shared]])
        np.testing.assert_array_equal(got[0], want[0])  # the unknown-id row
    # Adagrad's accumulators carry over; the step count (the optimizer's first variable) restarts.
    assert int(first.optimizer[0]) == 0 and int(old_optimizer[0]) > 0
    for got, want in zip(first.optimizer[2:], old_optimizer[2:], strict=True):
        if got.shape == want.shape and got.ndim == 2 and got.shape[0] > 100:  # hashed tables only
            np.testing.assert_array_equal(got, want)
    assert any(np.array_equal(g, w) for g, w in zip(first.optimizer[2:], old_optimizer[2:], strict=True))

    cold = train(config(new, tmp_path / "cold", num_epochs=1))
    assert warm.history[0]["loss"] < cold.history[0]["loss"]
    assert warm.history[0]["val_recall_at_10"] > cold.history[0]["val_recall_at_10"]
    # New candidates joined the corpus.
    assert len(warm.candidate_ids) > len(old_result.candidate_ids)


def test_a_different_optimizer_keeps_the_weights_only(old_and_new, finished, tmp_path):
    _, new = old_and_new
    job, old_result = finished
    first = FirstWeights()
    train(
        config(
            new,
            tmp_path / "adam",
            num_epochs=1,
            optimizer="adam",
            learning_rate=0.01,
            warm_start_from=str(job),
        ),
        callbacks=[first],
    )
    projection = len(old_result.model.query_tower.weights) - 2  # the query tower's projection kernel
    np.testing.assert_array_equal(first.towers[projection], old_result.model.query_tower.weights[-2].numpy())


@pytest.mark.parametrize(
    "change, message",
    [
        ({"output_dim": 32}, r"output_dim=64, this one 32.*--output_dim must match: set --output_dim 64"),
        ({"num_hidden_layers": 1}, r"num_hidden_layers=0, this one 1"),
    ],
)
def test_a_setting_that_changes_the_weights_is_named(old_and_new, finished, tmp_path, change, message):
    _, new = old_and_new
    job, _ = finished
    with pytest.raises(ConfigError, match=message):
        train(config(new, tmp_path / "bad", warm_start_from=str(job), **change))


def test_a_schema_change_names_the_feature(old_and_new, finished, tmp_path):
    _, new = old_and_new
    job, _ = finished
    schema = json.loads(open(new.schema).read())
    schema["candidate"]["item_id"]["config"]["num_buckets"] = 500
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(schema))
    with pytest.raises(
        ConfigError, match=r"candidate feature `item_id` has num_buckets=1000 there and 500 here"
    ):
        train(config(new, tmp_path / "bad", input_schema_path=str(path), warm_start_from=str(job)))
    with pytest.raises(ConfigError, match="holds no finished run's weights"):
        train(config(new, tmp_path / "bad2", warm_start_from=str(tmp_path / "nowhere")))
