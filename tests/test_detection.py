"""LID detection (Ma et al. 2018): the estimator against hand-computed k-NN values, the detector, the
high-confidence check attack, and `arnkit detect` (pipeline + CLI) on the synthetic dataset."""

import json
import os

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from arnkit.detection import DETECTORS, get, train_detector
from arnkit.detection.lid import feature_layers, lid_estimates, lid_features
from arnkit.errors import ArnkitError


def hand_lid(query, refs, k):
    """LID from the definition, one point at a time."""
    dists = sorted(float(np.hypot(*(query - r))) for r in refs)[:k]
    return -1.0 / np.mean([np.log(d / dists[-1]) for d in dists])


def test_lid_matches_hand_computed_knn():
    # Neighbours at distances 1, 2, 4 (and a far one): mean log(r_i/r_3) = -log 2, so LID = 1/log 2.
    refs = np.array([[1.0, 0.0], [0.0, 2.0], [-4.0, 0.0], [10.0, 10.0]])
    np.testing.assert_allclose(lid_estimates(np.zeros((1, 2)), refs, k=3), [1 / np.log(2)], rtol=1e-9)
    rng = np.random.default_rng(0)
    queries, refs = rng.normal(size=(5, 2)), rng.normal(size=(12, 2))
    expected = [hand_lid(q, refs, 4) for q in queries]
    np.testing.assert_allclose(lid_estimates(queries, refs, k=4), expected, rtol=1e-9)
    # Asking for more neighbours than exist uses all of them.
    np.testing.assert_allclose(lid_estimates(queries, refs, k=50), [hand_lid(q, refs, 12) for q in queries],
                               rtol=1e-9)


def test_exclude_self_drops_the_point_itself():
    points = np.random.default_rng(1).normal(size=(8, 2))
    expected = [hand_lid(points[i], np.delete(points, i, axis=0), 3) for i in range(len(points))]
    excluded = lid_estimates(points, points, k=3, exclude_self=True)
    np.testing.assert_allclose(excluded, expected, rtol=1e-9)
    # Counted as its own neighbour at distance ~0, a point gets an LID near 0.
    assert np.all(lid_estimates(points, points, k=3) < 0.2) and np.all(excluded > 0.5)
    with pytest.raises(ArnkitError, match="exclude_self"):
        lid_estimates(points, points[:5], k=3, exclude_self=True)
    with pytest.raises(ArnkitError, match="at least 2"):
        lid_estimates(points[:2], points[:2], k=3, exclude_self=True)


def test_detector_auc_chance_on_identical_and_high_on_separable():
    rng = np.random.default_rng(0)
    _, auc_same, split = train_detector(rng.normal(size=(300, 4)), rng.normal(size=(300, 4)), seed=0)
    assert 0.35 <= auc_same <= 0.65
    assert split["n_test"] == 120 and split["n_test_positive"] == 60
    assert len(np.intersect1d(split["train_index"], split["test_index"])) == 0
    detector, auc_far, _ = train_detector(rng.normal(3.0, 1.0, size=(300, 4)), rng.normal(size=(300, 4)), seed=0)
    assert auc_far > 0.95
    assert detector.predict_proba(np.full((1, 4), 3.0))[0, 1] > 0.9
    with pytest.raises(ArnkitError, match="too few"):
        train_detector(np.ones((2, 3)), np.zeros((2, 3)))


def test_lid_features_shape_and_self_exclusion(tiny_classifier, synthetic_data):
    x = synthetic_data[2][:40]
    layers = feature_layers(tiny_classifier)
    assert [layer.name for layer in layers] == ["conv1", "pool1", "conv2", "pool2", "fc1", "logits"]
    natural = lid_features(tiny_classifier, x, x, k=10, batch_size=20)
    assert natural.shape == (40, len(layers)) and np.all(np.isfinite(natural)) and np.all(natural > 0)
    np.testing.assert_allclose(natural, lid_features(tiny_classifier, x, x.copy(), k=10, batch_size=20,
                                                     exclude_self=True))
    # Uniform-noise images are far off the data manifold: their LID against clean batches is higher.
    noise = np.random.default_rng(0).uniform(size=x.shape).astype(np.float32)
    assert np.median(lid_features(tiny_classifier, noise, x, k=10, batch_size=20)[:, 0]) > np.median(natural[:, 0])
    with pytest.raises(ArnkitError, match="minibatch i"):
        lid_features(tiny_classifier, x, x[:10])


def test_high_confidence_attack_reaches_the_margin(tiny_classifier, synthetic_data):
    from arnkit.detection.high_confidence import HighConfidencePGD

    x, y = synthetic_data[2][:16], synthetic_data[3][:16]
    result = HighConfidencePGD(eps=0.3, kappa=5.0, steps=40, step_size=0.02)(tiny_classifier, x, y, seed=0)
    assert result.success_rate >= 0.8
    assert np.abs(result.x_adv - x).max() <= 0.3 + 1e-6
    logits = np.array(tiny_classifier(result.x_adv))
    true = logits[np.arange(16), y]
    logits[np.arange(16), y] = -np.inf
    margins = (logits.max(1) - true)[result.success]
    assert np.median(margins) >= 5.0 - 0.5


def test_unknown_method_lists_known_ones(tmp_path):
    from arnkit.pipeline.detect import detect

    assert "lid" in DETECTORS and get("LID").key == "lid"
    with pytest.raises(ArnkitError, match="unknown detection method 'kd'.*lid"):
        detect("kd", "synthetic", "fgsm", workspace=tmp_path)
    with pytest.raises(ArnkitError, match="unknown attack 'nope'"):
        detect("lid", "synthetic", "nope", workspace=tmp_path)
    assert not (tmp_path / "targets").exists()  # nothing was trained


def _identity_defense(path):
    import keras

    from arnkit.io import save_model

    inputs = keras.Input(shape=(28, 28, 1))
    save_model(keras.Model(inputs, keras.layers.Identity()(inputs)), path)


@pytest.fixture(scope="module")
def detect_run(tmp_path_factory):
    """One pipeline run on synthetic; an identity 'defense' left by a fake `arnkit train` run is found."""
    from arnkit.pipeline.detect import detect

    ws = tmp_path_factory.mktemp("ws")
    run_dir = ws / "defenses" / "synthetic-arn-fgsm-pgd_n-000000000000.d"
    run_dir.mkdir(parents=True)
    _identity_defense(run_dir / "arn.keras")
    (run_dir / "record.json").write_text(json.dumps({"defense_path": str(run_dir / "arn.keras")}))
    return ws, detect("lid", "synthetic", "fgsm", limit=64, seed=0, workspace=ws, adaptive_limit=16)


def test_pipeline_writes_record_and_roc(detect_run):
    ws, record = detect_run
    assert os.path.exists(record["path"]) and os.path.exists(record["roc_path"])
    assert record["roc_path"].endswith(".png") and open(record["roc_path"], "rb").read(4) == b"\x89PNG"
    assert json.loads(open(record["path"]).read())["auc"] == record["auc"]
    for key in ("method", "attack", "params", "target_fingerprint", "seed", "arnkit_version", "counts", "noise",
                "split", "recall_adversarial", "false_positive_rate", "layers"):
        assert key in record, key
    assert record["method"] == "lid" and record["attack"] == "fgsm" and record["params"]["k"] == 20
    assert record["counts"]["used"] >= 20 and record["counts"]["negatives"] == 2 * record["counts"]["used"]
    # FGSM at eps .3 on the synthetic squares is easy to spot.
    assert record["auc"] > 0.8
    assert 0 < record["noise"]["sigma"] and record["noise"]["accuracy_on_correct"] >= 0.98
    # The identity "defense" restores nothing: the target still misclassifies every restored image.
    restored = record["restored"]
    assert restored["source"].endswith("record.json") and restored["n"] == record["counts"]["used"]
    assert restored["target_accuracy"] == 0.0 and 0.0 <= restored["recall"] <= 1.0
    adaptive = record["adaptive"]
    assert adaptive["n_attacked"] == 16 and adaptive["params"]["kappa"] == 20.0
    assert adaptive["auc"] is None or 0.0 <= adaptive["auc"] <= 1.0


def test_cli_json_schema_and_errors(detect_run):
    from arnkit_cli.detect_cmds import register

    ws, record = detect_run
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        pass

    register(app)
    runner = CliRunner()
    result = runner.invoke(app, ["detect", "--method", "lid", "--dataset", "synthetic", "--attack", "fgsm",
                                 "--limit", "64", "--adaptive-limit", "16", "--workspace", str(ws), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["reused"] is True and out["path"] == record["path"] and out["auc"] == record["auc"]
    assert {"auc", "restored", "adaptive", "roc_path", "counts"} <= set(out)
    bad = runner.invoke(app, ["detect", "--method", "kd", "--dataset", "synthetic", "--workspace", str(ws)])
    assert bad.exit_code == 1 and "unknown detection method" in bad.output and "lid" in bad.output
    assert "Traceback" not in bad.output
