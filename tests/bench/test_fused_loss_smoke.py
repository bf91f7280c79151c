"""Smoke test of bench/fused_loss.py (`--small`), so the benchmark cannot rot."""

import json

import pytest

from tfrs_twotower.tasks import fused_softmax


@pytest.mark.skipif(not fused_softmax.built(), reason="the _softmax_kernel extension is not built")
def test_small_run_times_both_paths_and_checks_they_agree(tmp_path, load_bench):
    out = tmp_path / "fused_loss.json"
    result = load_bench("fused_loss").main(["--small", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert [row["loss"] for row in result["rows"]] == ["plain", "temperature + logQ + hits"]
    for row in result["rows"]:
        assert row["tf_ops_ms"] > 0 and row["fused_ms"] > 0
        assert row["relative_loss_difference"] < 1e-5
    fast = [isa for isa in fused_softmax.supported_isas() if isa != "portable"]
    assert [row["isa"] for row in result["code_paths"]] == fast
