"""A training run's stages called one by one, as scripts and benchmarks do: the same model as `train`."""

import json

import numpy as np
import pytest

import tfrs_twotower as tt
from tfrs_twotower.sample_data import generate_sample
from tfrs_twotower.training.outputs import write_report


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    directory = tmp_path_factory.mktemp("sample")
    return generate_sample(str(directory), num_pairs=600, num_users=40, num_items=30, seed=5)


def config(sample, job_dir, **overrides):
    values = dict(
        training_data_path=sample.train_jsonl,
        input_schema_path=sample.schema,
        job_dir=str(job_dir),
        num_epochs=1,
        train_batch_size=64,
        verbose=0,
    )
    return tt.TrainingConfig(**{**values, **overrides})


def test_build_model_from_explicit_settings_and_a_scan(sample):
    schema = tt.load_schema(sample.schema)
    scan = tt.scan(sample.train_jsonl, schema, eval_split=0.0)
    model = tt.build_model(
        schema=schema, scan=scan, output_dim=8, hidden_units=[16], sampling_bias_correction="counts"
    )
    batch = next(iter(tt.make_dataset(sample.train_jsonl, schema, batch_size=4, shuffle_buffer=0)))
    assert model.query_tower(batch["query"]).shape == (4, 9)  # output_dim + the candidate bias column
    assert (16, 8) in [tuple(w.shape) for w in model.query_tower.trainable_weights]  # hidden -> output
    # The scan's candidate counts reach the logQ correction.
    assert isinstance(model.frequency_estimator, tt.tasks.CandidateFrequencies)
    # Keyword settings override the config's.
    over = tt.build_model(tt.TrainingConfig(output_dim=32), schema, output_dim=4)
    assert over.query_tower(batch["query"]).shape == (4, 4)
    with pytest.raises(ValueError, match="candidate_counts"):
        tt.build_model(schema=schema, sampling_bias_correction="counts")


def test_stages_one_by_one_make_the_same_model_as_train(sample, tmp_path):
    cfg = config(sample, tmp_path / "staged")
    import keras

    keras.utils.set_random_seed(cfg.seed)
    inputs = tt.prepare_inputs(cfg)
    model = tt.build_model(cfg, inputs.schema, inputs=inputs)
    tt.build_weights(model, cfg, inputs)
    history = tt.fit(model, inputs, cfg)
    paths, embeddings = tt.export_job(model, inputs, cfg.job_dir)
    final = write_report(cfg.job_dir, history, inputs.record_counts(), 1.0, 10)

    whole = tt.train(config(sample, tmp_path / "whole"))
    assert len(history) == 1 and final["loss"] == pytest.approx(whole.metrics["loss"], rel=1e-4)
    np.testing.assert_allclose(embeddings, whole.candidate_embeddings, rtol=1e-4, atol=1e-5)
    assert np.load(paths["embeddings.npy"]).shape == embeddings.shape


def test_a_model_with_nothing_to_train_fails_early_naming_the_settings(tmp_path):
    # No projection, no hidden layers and only frozen features (vectors): nothing for gradients to update.
    schema = {
        "query": {"taste": {"feature_type": "Vector", "config": {"length": 4}}},
        "candidate": {
            "item": {"feature_type": "Id", "config": {"num_buckets": 10, "embedding_dim": 0}},
            "style": {"feature_type": "Vector", "config": {"length": 4}},
        },
    }
    (tmp_path / "schema.json").write_text(json.dumps(schema))
    rng = np.random.default_rng(0)
    with open(tmp_path / "train.jsonl", "w") as f:
        for i in range(40):
            query = {"taste": rng.normal(size=4).round(3).tolist()}
            candidate = {"item": f"i{i % 7}", "style": rng.normal(size=4).round(3).tolist()}
            f.write(json.dumps({"query": query, "candidate": candidate}) + "\n")
    cfg = tt.TrainingConfig(
        training_data_path=str(tmp_path / "train.jsonl"),
        input_schema_path=str(tmp_path / "schema.json"),
        job_dir=str(tmp_path / "job"),
        output_dim=4,
        tower_projection=False,
        num_epochs=1,
        train_batch_size=8,
        verbose=0,
    )
    message = r"no trainable variables.*--tower_projection false and --num_hidden_layers 0.*`taste` \(Vector"
    with pytest.raises(ValueError, match=message) as error:
        tt.train(cfg)
    assert "Set --tower_projection true" in str(error.value)
    assert not (tmp_path / "job" / "checkpoints").exists()  # it failed before training
