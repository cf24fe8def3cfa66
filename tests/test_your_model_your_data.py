"""End to end on data and a model arnkit did not write (issue 28's "must show"): scikit-learn's digits as PNG
class folders at 16x16 and a user-defined Keras CNN saved as .keras, through the CLI (import, train, evaluate,
detect) and through the one Python call, `arnkit.defend`."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner
from user_fixtures import digits_arrays, user_cnn, write_digits

from arnkit import data
from arnkit.fingerprint import model_fingerprint
from arnkit.io import load_model
from arnkit_cli.main import app

pytestmark = pytest.mark.slow
FAST_TRAIN = ("--width", "tiny", "--steps", "30", "--eval-limit", "50")


def cli(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def test_cli_defends_a_users_cnn_on_a_users_image_folders(tmp_path):
    ws = tmp_path / "ws"
    png = write_digits(tmp_path / "png")
    cli("data", "import", "folder", png, "--name", "digits", "--workspace", ws)
    x_train, y_train, info = data.load_arrays("digits", "train", data_dir=ws / "data")
    assert info.shape == (16, 16, 1) and info.num_classes == 10 and info.eps == pytest.approx(0.3)
    model = user_cnn(info.shape, info.num_classes, x_train, y_train)
    model.save(tmp_path / "my.keras")
    mine = model_fingerprint(load_model(tmp_path / "my.keras"))  # the weights as loaded from the file

    trained = json.loads(cli("train", "--dataset", "digits", "--target", tmp_path / "my.keras", *FAST_TRAIN,
                             "--workspace", ws, "--json").stdout)
    assert trained["target_fingerprint"] == mine and trained["dataset"] == "digits"
    assert set(trained["evaluation"]) == {"clean", "pgd_n", "pgd_t"}
    assert trained["evaluation"]["pgd_n"]["none"] > 50.0  # the seen attacks break the bare CNN
    assert not (ws / "targets").exists() or not list((ws / "targets").glob("digits-*.keras"))  # no zoo target

    result = json.loads(cli("evaluate", "--dataset", "digits", "--target", tmp_path / "my.keras", "--attack",
                            "pgd_n,pgd_t", "--limit", "50", "--workspace", ws, "--json").stdout)
    assert result["target"]["fingerprint"] == mine and result["n"] == 50
    defenses = {row["defense"] for row in result["rows"]}
    assert "none" in defenses and len(defenses) == 2  # NONE and the ARN just trained for this CNN
    errors = {(row["defense"], row["label"]): row["error"] for row in result["rows"]}
    assert errors[("none", "pgd_n")] > 50.0
    for row in result["rows"]:
        if row["attack"] in ("pgd_n", "pgd_t"):
            with h5py.File(row["adversarial_path"]) as handle:  # crafted at the dataset's budget, not MNIST's
                params = json.loads(handle.attrs["params"])
                assert params["eps"] == pytest.approx(0.3) and handle.attrs["dataset"] == "digits"

    detected = json.loads(cli("detect", "--method", "lid", "--dataset", "digits", "--target", tmp_path / "my.keras",
                              "--limit", "200", "--adaptive-limit", "0", "--workspace", ws, "--json").stdout)
    assert detected["dataset"] == "digits" and detected["target_fingerprint"] == mine
    assert 0.0 <= detected["auc"] <= 1.0


def test_one_python_call_defends_a_model_on_arrays_and_reuses_its_work(tmp_path):
    import arnkit

    images, labels = digits_arrays()
    x = np.repeat(np.repeat(images[..., None] / 16.0, 2, axis=1), 2, axis=2).astype(np.float32)  # 16x16
    test = np.arange(len(x)) % 5 == 0
    (x_train, y_train), (x_test, y_test) = (x[~test], labels[~test]), (x[test], labels[test])
    model = user_cnn(x.shape[1:], 10, x_train, y_train)
    options = {"width": "tiny", "steps": 30, "eval_limit": 50}

    result = arnkit.defend(model, (x_train, y_train), (x_test, y_test), workspace=tmp_path, **options)
    assert set(result.table) == {"clean", "pgd_n", "pgd_t"} and set(result.table["pgd_n"]) == {"none", "arn"}
    assert result.record["target_fingerprint"] == model_fingerprint(load_model(result.target_path))
    assert result.preprocessor.output_shape[1:] == (16, 16, 1)
    logits = np.asarray(result.protected.predict(x_test[:8], verbose=0))
    assert logits.shape == (8, 10)
    restored = np.asarray(result.preprocessor.predict(x_test[:8], verbose=0))
    np.testing.assert_allclose(logits, np.asarray(model.predict(restored, verbose=0)), rtol=1e-4, atol=1e-4)
    assert data.info(result.dataset, tmp_path / "data").eps == pytest.approx(0.3)

    again = arnkit.defend(model, (x_train, y_train), (x_test, y_test), workspace=tmp_path, **options)
    assert again.record["reused"] and again.dataset == result.dataset and again.table == result.table


@pytest.mark.parametrize("args, kwargs, message", [
    (("model", "ok", "ok"), {"defense": "nope"}, "unknown defense 'nope'"),
    (("not a model", "ok", "ok"), {}, "not a model"),
    (("object", "ok", "ok"), {}, "keras.Model or the path of a .keras file"),
    (("model", "images", "ok"), {}, "pair \\(images, labels\\)"),
    (("model", "too bright", "ok"), {}, "outside \\[0, 1\\]"),
    (("missing.keras", "ok", "ok"), {}, "not a .keras file"),
])
def test_one_call_refuses_bad_input_in_one_line_before_any_work(tmp_path, args, kwargs, message):
    """Bad input to `arnkit.defend` is one ArnkitError line, and nothing is trained or crafted."""
    import keras

    import arnkit
    from arnkit.errors import ArnkitError

    x = np.random.default_rng(0).random((40, 16, 16, 1), dtype=np.float32)
    y = np.arange(40) % 4
    model = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Flatten(), keras.layers.Dense(4)])
    values = {"model": model, "ok": (x, y), "images": x, "too bright": (x * 300, y), "object": object(),
              "not a model": "not a model", "missing.keras": str(tmp_path / "missing.keras")}
    with pytest.raises(ArnkitError, match=message):
        arnkit.defend(*(values[a] for a in args), workspace=tmp_path / "ws", **kwargs)
    for folder in ("data", "defenses", "adversarial", "evaluations"):
        assert not (tmp_path / "ws" / folder).exists()
