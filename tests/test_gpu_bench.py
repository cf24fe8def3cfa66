"""bench/gpu: the paper-scale reproduction a lent GPU machine runs, here in smoke mode on CPU under JAX with
TensorFlow blocked (the GPU machines have none), through the same run.sh; and its carried gray-box bundle."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("jax")

REPO = Path(__file__).resolve().parents[1]
WITHOUT_TF = REPO / "tests" / "backend_runs" / "without_tensorflow.py"


@pytest.mark.slow
def test_smoke_run_writes_the_row_and_step_time_without_tensorflow(tmp_path):
    carry = tmp_path / "carry"
    carry.mkdir()
    # A bundle crafted against some other target: its columns must be left out, loudly, never scored.
    np.savez(carry / "graybox.npz", meta=json.dumps({"target_fingerprint": "not-this-one", "columns": ["cw_n"],
                                                     "params": {"cw_n": {}}}),
             **{"cw_n/x": np.zeros((4, 28, 28, 1), np.float32), "cw_n/y": np.zeros(4, np.int64)})
    out = tmp_path / "out"
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "OUT": str(out), "ARNKIT_PROGRESS": "plain",
           "PYTHON": f"{sys.executable} {WITHOUT_TF}"}
    env.pop("KERAS_BACKEND", None)  # run.sh sets jax itself
    done = subprocess.run(["bash", str(REPO / "bench/gpu/run.sh"), "--smoke", "--dataset", "synthetic",
                           "--limit", "64", "--pool-size", "128", "--carry", str(carry)],
                          env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    result = json.loads((out / "result.json").read_text())
    assert result["steps_run"] == 50 and result["width"] == "tiny" and not result["budget_limited"]
    assert result["step_ms"] > 0 and result["devices"] and "cpu" in result["devices"][0].lower()
    assert set(result["row"]) == {"clean", "pgd_n", "pgd_t", "pgd_n@0.4"}
    for column, cell in result["row"].items():
        assert cell["n"] == 64 and 0 <= cell["arn"] <= 100, column
    # Undefended, the white-box-on-L sets break the target; the stronger budget never does less.
    assert result["row"]["pgd_n"]["none"] >= 90 and result["row"]["pgd_n@0.4"]["none"] >= result["row"]["pgd_n"]["none"]
    assert "cw_n" in result["missing"] and "not-this-one" in done.stdout
    assert "| ARN_PP (ours / paper) |" in (out / "row.md").read_text()
    assert (out / "run.log").read_text().count("ms (first, compiling") == 1


def test_budget_caps_the_steps_and_a_matching_bundle_is_scored(tmp_path):
    sys.path.insert(0, str(REPO / "bench" / "gpu"))
    try:
        import reproduce
    finally:
        sys.path.pop(0)
    args = reproduce.parse_args(["--smoke"])
    assert (args.width, args.steps, args.limit) == ("tiny", 50, 100)
    args = reproduce.parse_args([])
    assert (args.width, args.steps, args.limit, args.learning_rate) == ("reference", 20000, 1000, 1e-4)
    assert reproduce.steps_within(330, 0.010, 20000) == 20000
    assert reproduce.steps_within(330, 0.030, 20000) == 11000
    assert reproduce.steps_within(1, 5.0, 20000) == 1
    x = np.random.default_rng(0).random((5, 28, 28, 1), dtype=np.float32)
    np.savez(tmp_path / "b.npz", meta=json.dumps({"target_fingerprint": "abc", "columns": ["sta_n"],
                                                  "params": {"sta_n": {"eps": None}}}),
             **{"sta_n/x": x, "sta_n/y": np.arange(5)})
    sets = reproduce.bundle_columns(tmp_path / "b.npz", "abc", limit=3)
    assert list(sets) == ["sta_n"] and sets["sta_n"]["x"].shape == (3, 28, 28, 1)
    np.testing.assert_array_equal(sets["sta_n"]["y"], [0, 1, 2])
    assert reproduce.bundle_columns(tmp_path / "b.npz", "xyz", limit=3) == {}
    assert reproduce.bundle_columns(tmp_path / "missing.npz", "abc", limit=3) == {}
