"""The end-of-training report explains its numbers: baselines next to Recall@K, the loss per pair, and
the example query's positive's rank when it is not shown."""

import types

import numpy as np

from tfrs_twotower.training.config import TrainingConfig
from tfrs_twotower.training.report import print_report, reading_the_metrics


def _result(**extra):
    config = TrainingConfig(
        training_data_path="t", input_schema_path="s", job_dir="j", train_batch_size=256, eval_top_k="1,10"
    )
    metrics = {"loss": 1024.0, "val_loss": 350.0, "val_recall_at_1": 0.05, "val_recall_at_10": 0.3}
    baselines = {"random": {1: 0.0025, 10: 0.025}, "most_popular": {1: 0.01, 10: 0.08}}
    fields = dict(
        config=config,
        metrics=metrics,
        baselines=baselines,
        candidate_ids=["i"] * 400,
        record_counts={},
        paths={},
        example=None,
    )
    return types.SimpleNamespace(**{**fields, **extra})


def test_reading_the_metrics_shows_baselines_and_loss_per_pair():
    text = reading_the_metrics(_result())
    rows = {line.split("  ")[2].strip(): line for line in text.splitlines() if line.startswith("    ")}
    assert rows["this model"].split()[-2:] == ["0.0500", "0.3000"]
    assert rows["most popular"].split()[-2:] == ["0.0100", "0.0800"]
    assert rows["random"].split()[-2:] == ["0.0025", "0.0250"]
    assert "all 400 candidates" in text
    assert "summed over each batch of 256 pairs" in text and "about 4.00 per pair" in text
    assert f"ln(256) = {np.log(256):.2f}" in text
    assert "evaluation batches of 100: about 3.50 per pair" in text  # val_loss 350 / 100


def test_mean_loss_and_no_baselines():
    result = _result(baselines=None)
    result.config.loss_reduction = "mean"
    text = reading_the_metrics(result)
    assert "most popular" not in text and "per pair (mean over each batch of 256)" in text


def test_positive_rank_is_shown_when_not_in_the_top(capsys):
    example = {
        "query": {},
        "positive": "i9",
        "rank": 37,
        "num_candidates": 400,
        "top": [("i1", 3.0), ("i2", 2.0)],
    }
    print_report(_result(example=example))
    assert "the positive i9 is at rank 37 of 400" in capsys.readouterr().out
    example = {**example, "positive": "i2", "rank": 2}
    print_report(_result(example=example))
    out = capsys.readouterr().out
    assert "i2  score=2.0000  <- positive" in out and "at rank" not in out
