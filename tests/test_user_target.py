"""`--target PATH.keras`: a user's own Keras classifier, checked against the dataset and attacked, defended
and evaluated in place of the zoo target (issue 28, step 3), on the synthetic set (28x28x1, 4 classes)."""

import json

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

from arnkit import data
from arnkit.fingerprint import model_fingerprint
from arnkit.io import load_model
from arnkit.models import rescaled, wrappers
from arnkit_cli.main import app

runner = CliRunner()


def invoke(*args, workspace):
    return runner.invoke(app, [*map(str, args), "--workspace", str(workspace)])


def _cnn(head: list, *, input_shape=(28, 28, 1)) -> keras.Model:
    """The user's own small CNN (not a zoo model): a Sequential stack with the given head."""
    return keras.Sequential([keras.Input(input_shape), keras.layers.Conv2D(8, 3, activation="relu"),
                             keras.layers.MaxPooling2D(), keras.layers.Flatten(), *head], name="users_cnn")


def _fit(model: keras.Model, x: np.ndarray, y: np.ndarray, *, from_logits: bool) -> keras.Model:
    model.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits))
    model.fit(x, y, epochs=4, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """The user's files: logits, softmax (functional), [0, 255]-input, and three that are not classifiers of
    the synthetic set."""
    root = tmp_path_factory.mktemp("user_models")
    x, y, _ = data.load_arrays("synthetic", "train")
    keras.utils.set_random_seed(0)
    paths = {}
    paths["logits"] = root / "my.keras"
    _fit(_cnn([keras.layers.Dense(4)]), x, y, from_logits=True).save(paths["logits"])
    inputs = keras.Input((28, 28, 1))
    hidden = keras.layers.Flatten()(keras.layers.MaxPooling2D()(keras.layers.Conv2D(8, 3, activation="relu")(inputs)))
    softmax = keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(hidden), name="users_softmax")
    paths["softmax"] = root / "softmax.keras"
    _fit(softmax, x, y, from_logits=False).save(paths["softmax"])
    # A model for [0, 255] pixels that centres them itself (as keras.applications models do): fed [0, 1], every
    # image looks almost black.
    paths["pixels"] = root / "pixels255.keras"
    pixels = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Rescaling(1 / 127.5, offset=-1.0),
                               *_cnn([keras.layers.Dense(4)]).layers], name="users_pixels")
    _fit(pixels, x * 255.0, y, from_logits=True).save(paths["pixels"])
    paths["image"] = root / "image.keras"
    keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(1, 3, padding="same")]).save(paths["image"])
    paths["classes"] = root / "three.keras"
    _cnn([keras.layers.Dense(3)]).save(paths["classes"])
    paths["shape"] = root / "rgb.keras"
    _cnn([keras.layers.Dense(4)], input_shape=(32, 32, 3)).save(paths["shape"])
    return paths


def _json(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_target_check_shows_and_fingerprints_it(models, tmp_path):
    record = _json(invoke("target", "check", "--dataset", "synthetic", "--target", models["logits"], "--json",
                          workspace=tmp_path))
    assert record["model"] == "user" and record["user"]["output"] == "logits"
    assert record["user"]["source"] == str(models["logits"].resolve()) and record["user"]["checked_images"] == 128
    assert record["fingerprint"] == model_fingerprint(load_model(models["logits"]))
    assert record["test_accuracy"] > 0.9 and record["user"]["warnings"] == []
    shown = invoke("target", "check", "--dataset", "synthetic", "--target", models["logits"], workspace=tmp_path)
    assert shown.exit_code == 0 and "your target on synthetic" in shown.output and record["fingerprint"] in shown.output
    assert not (tmp_path / "targets").exists()  # checking writes nothing


def test_attack_train_evaluate_against_the_users_model(models, tmp_path):
    fingerprint = model_fingerprint(load_model(models["logits"]))
    crafted = _json(invoke("attack", "--dataset", "synthetic", "--target", models["logits"], "--attack", "pgd_n",
                           "--limit", "32", "--json", workspace=tmp_path))
    assert crafted["target_fingerprint"] == fingerprint and crafted["success_rate"] > 0.5

    record = _json(invoke("train", "--dataset", "synthetic", "--target", models["logits"], "--width", "tiny",
                          "--steps", "5", "--pool-size", "64", "--batch-size", "16", "--seen", "fgsm,pgd_n",
                          "--eval-limit", "32", "--json", workspace=tmp_path))
    assert record["target_fingerprint"] == fingerprint and record["target_path"] == str(models["logits"].resolve())
    assert not (tmp_path / "targets").exists()  # the zoo target was never trained

    evaluation = _json(invoke("evaluate", "--dataset", "synthetic", "--target", models["logits"], "--attack", "pgd_n",
                              "--limit", "32", "--json", workspace=tmp_path))
    assert evaluation["target"]["fingerprint"] == fingerprint and evaluation["target"]["model"] == "user"
    arn = [d for d in evaluation["defenses"] if d["name"] != "none"]
    assert arn and arn[0]["path"] == record["defense_path"]  # the ARN trained for the user's model, reused

    detection = _json(invoke("detect", "--method", "lid", "--dataset", "synthetic", "--target", models["logits"],
                             "--limit", "64", "--adaptive-limit", "0", "--json", workspace=tmp_path))
    assert detection["target_fingerprint"] == fingerprint
    assert detection["restored"]["defense_path"] == record["defense_path"]
    assert not (tmp_path / "targets").exists()


def test_softmax_output_is_attacked_through_its_logits(models, tmp_path):
    record = _json(invoke("target", "check", "--dataset", "synthetic", "--target", models["softmax"], "--json",
                          workspace=tmp_path))
    assert record["user"]["output"] == "logits (softmax removed)" and record["test_accuracy"] > 0.9
    cw = ["--attack", "cw_n", "--param", "steps=30", "--param", "binary_search_steps=2", "--limit", "32", "--json"]
    through_logits = _json(invoke("attack", "--dataset", "synthetic", "--target", models["softmax"], *cw,
                                  workspace=tmp_path))
    assert through_logits["target_fingerprint"] == record["fingerprint"]
    assert through_logits["success_rate"] > 0.8
    # Forced to read the probabilities as logits, CW's margin loss saturates: far fewer successes.
    as_logits = _json(invoke("attack", "--dataset", "synthetic", "--target", models["softmax"], "--logits", *cw,
                             workspace=tmp_path))
    assert as_logits["target_fingerprint"] != record["fingerprint"]
    assert as_logits["success_rate"] < 0.25


def test_log_probabilities_keep_the_prediction(models):
    softmax = load_model(models["softmax"])
    x, _, _ = data.load_arrays("synthetic", "test", limit=16)
    probabilities = softmax.predict(x, verbose=0)
    scores = wrappers.log_probabilities(softmax).predict(x, verbose=0)
    np.testing.assert_allclose(np.exp(scores), probabilities, atol=1e-5)
    logits = wrappers.without_softmax(softmax).predict(x, verbose=0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(keras.ops.softmax(logits)), probabilities, atol=1e-5)


def test_input_range_warning_and_input_scale(models, tmp_path):
    near_chance = invoke("target", "check", "--dataset", "synthetic", "--target", models["pixels"], workspace=tmp_path)
    assert near_chance.exit_code == 0, near_chance.output
    assert "warning:" in near_chance.output and "--input-scale 255" in near_chance.output
    record = _json(invoke("target", "check", "--dataset", "synthetic", "--target", models["pixels"],
                          "--input-scale", "255", "--json", workspace=tmp_path))
    assert record["test_accuracy"] > 0.9 and record["user"]["input_scale"] == 255.0
    assert record["user"]["warnings"] == []
    # The one-line Python form does the same.
    x, y, _ = data.load_arrays("synthetic", "test")
    raw = load_model(models["pixels"])
    wrapped = rescaled(raw, scale=255)
    assert np.mean(np.argmax(wrapped.predict(x, verbose=0), 1) == y) > 0.9
    # A Sequential model is wrapped as one flat graph (LID reads its layers) with the same weights.
    assert [type(layer).__name__ for layer in wrapped.layers][:3] == ["InputLayer", "Rescaling", "Rescaling"]
    assert model_fingerprint(wrapped) == model_fingerprint(raw)
    assert record["fingerprint"] != model_fingerprint(raw)  # the wrapping is part of the artifacts' key


@pytest.mark.parametrize("which, message", [
    ("image", "is not a classifier"),
    ("classes", "outputs 3 classes, but synthetic has 4"),
    ("shape", "takes inputs of shape (None, 32, 32, 3), but synthetic images are (N, 28, 28, 1)"),
])
def test_a_model_that_does_not_fit_is_one_line(models, tmp_path, which, message):
    for command in (["train", "--width", "tiny", "--steps", "2"], ["attack", "--limit", "8"]):
        result = invoke(*command, "--dataset", "synthetic", "--target", models[which], workspace=tmp_path)
        assert result.exit_code == 1, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and message in lines[0], result.output
    for folder in ("targets", "defenses", "adversarial", "evaluations"):
        assert not (tmp_path / folder).exists()


def test_options_that_do_not_go_with_target_are_refused(models, tmp_path):
    result = invoke("attack", "--dataset", "synthetic", "--input-scale", "255", workspace=tmp_path)
    assert result.exit_code == 1 and "add --target PATH.keras" in result.output
    both = invoke("evaluate", "--dataset", "synthetic", "--target", models["logits"], "--target-model", "lenet",
                  workspace=tmp_path)
    assert both.exit_code == 1 and "--target-model is the old spelling of --target; pass only --target" in both.output
    study = invoke("evaluate", "--dataset", "synthetic", "--target", models["logits"], "--ablation",
                   workspace=tmp_path)
    assert study.exit_code == 1 and "drop --target" in study.output
    assert not (tmp_path / "targets").exists()


def test_at_pgd_trains_against_the_users_model(models, tmp_path):
    record = _json(invoke("train", "--dataset", "synthetic", "--defense", "at_pgd", "--target", models["logits"],
                          "--epochs", "1", "--train-limit", "64", "--attack-steps", "2", "--eval-limit", "32",
                          "--json", workspace=tmp_path))
    assert record["target_fingerprint"] == model_fingerprint(load_model(models["logits"]))
    assert not (tmp_path / "targets").exists()


@pytest.mark.parametrize("defense, flags", [
    ("apeg", ["--steps", "2", "--width", "4", "--batch-size", "16", "--pool-size", "32", "--seen", "fgsm"]),
    ("hgd", ["--steps", "2", "--width", "4", "--batch-size", "16", "--pool-size", "32", "--seen", "fgsm"]),
    ("doa", ["--epochs", "1", "--train-limit", "32", "--attack-steps", "2", "--roa", "7x7"]),
])
def test_every_baseline_trains_against_the_users_model(models, tmp_path, defense, flags):
    record = _json(invoke("train", "--dataset", "synthetic", "--defense", defense, "--target", models["softmax"],
                          *flags, "--eval-limit", "16", "--json", workspace=tmp_path))
    checked = _json(invoke("target", "check", "--dataset", "synthetic", "--target", models["softmax"], "--json",
                           workspace=tmp_path))
    assert record["target_fingerprint"] == checked["fingerprint"]
    assert record["target_path"] == str(models["softmax"].resolve())
    assert not (tmp_path / "targets").exists()
