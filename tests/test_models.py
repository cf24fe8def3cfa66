"""The target-model zoo: shapes, `.keras` round trips, one training step, paper sizes, and safe loading."""

from __future__ import annotations

import json
import pickle
import zipfile

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from arnkit import io as arnkit_io  # noqa: E402
from arnkit.errors import ArnkitError  # noqa: E402
from arnkit.models import MODELS, PRESETS, build, canonical_name  # noqa: E402

# One entry per builder (aliases such as "wrn" share a builder), so a newly registered model is tested at once.
ZOO = [name for name in MODELS if canonical_name(name) == name]
MNIST_SHAPE, CIFAR_SHAPE = (28, 28, 1), (32, 32, 3)


def tiny_model(name: str, input_shape=CIFAR_SHAPE, num_classes: int = 10) -> keras.Model:
    return build(name, input_shape, num_classes, preset="tiny")


def random_images(shape, n: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *shape), dtype=np.float32)


def test_registry_names_every_paper_model_and_aliases():
    assert {"lenet", "resnet", "wide_resnet", "vgg19", "lisa_cnn"} <= set(ZOO)
    assert MODELS["wrn"] is MODELS["wide_resnet"] and MODELS["vgg"] is MODELS["vgg19"]
    for name in ZOO:
        assert {"paper", "cpu", "tiny"} <= set(PRESETS[name]), name


@pytest.mark.parametrize("name", ZOO)
@pytest.mark.parametrize("input_shape", [MNIST_SHAPE, CIFAR_SHAPE], ids=["mnist", "cifar"])
def test_logits_shape(name, input_shape):
    model = tiny_model(name, input_shape, num_classes=7)
    logits = np.asarray(model(random_images(input_shape, n=3), training=False))
    assert logits.shape == (3, 7)
    assert np.all(np.isfinite(logits))
    # Logits, not probabilities: no softmax at the end.
    assert not np.allclose(logits.sum(-1), 1.0)


@pytest.mark.parametrize("name", ZOO)
def test_keras_round_trip_gives_identical_outputs(name, tmp_path):
    keras.utils.set_random_seed(1)
    model = tiny_model(name)
    x = random_images(CIFAR_SHAPE, n=5, seed=1)
    path = arnkit_io.save_model(model, tmp_path / f"{name}.keras")
    loaded = arnkit_io.load_model(path)
    np.testing.assert_allclose(np.asarray(loaded(x, training=False)), np.asarray(model(x, training=False)),
                               atol=1e-6, rtol=0)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]


@pytest.mark.parametrize("name", ZOO)
def test_one_fit_step_updates_every_trainable_weight(name):
    keras.utils.set_random_seed(2)
    model = tiny_model(name, num_classes=4)
    x = random_images(CIFAR_SHAPE, n=8, seed=2)
    y = np.arange(8) % 4
    before = [np.array(w) for w in model.trainable_weights]
    # Eager: tracing a graph for a single step costs more than the step on 2 shared cores.
    model.compile(optimizer=keras.optimizers.SGD(0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), run_eagerly=True)
    history = model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    unchanged = [w.path for w, old in zip(model.trainable_weights, before, strict=True)
                 if np.array_equal(np.array(w), old)]
    assert not unchanged, f"no gradient reached {unchanged}"


# ---- paper-size configurations (parameter counts from the papers; exact ones computed by hand) ----

def trainable_count(model: keras.Model) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_lenet_and_lisa_cnn_exact_parameter_counts():
    # LeNet: 3*3*32+32 + 3*3*32*64+64 + 7*7*64*200+200 + 200*10+10.
    assert build("lenet", MNIST_SHAPE, 10, preset="paper").count_params() == 648_226
    # LISA-CNN, 16 classes: 8*8*3*64+64 + 6*6*64*128+128 + 5*5*128*128+128 + 512*16+16.
    assert build("lisa_cnn", CIFAR_SHAPE, 16, preset="paper").count_params() == 725_328


def test_resnet_parameter_counts_match_he_et_al():
    # ResNet-20 with option-A shortcuts: 0.27M in He et al. Table 6; exactly 269,722 trainable.
    assert trainable_count(build("resnet", CIFAR_SHAPE, 10, depth=20)) == 269_722
    resnet110 = build("resnet", CIFAR_SHAPE, 10, preset="paper")
    assert resnet110.name == "resnet110"
    assert trainable_count(resnet110) == 1_727_962  # "1.7M" in the paper
    assert sum(isinstance(layer, keras.layers.Conv2D) for layer in resnet110.layers) == 109  # + 1 dense = 110


def test_wide_resnet_and_vgg_parameter_counts():
    # WRN-16-4: 2.7M in Zagoruyko & Komodakis Table 4.
    assert trainable_count(build("wrn", CIFAR_SHAPE, 10, depth=16, widen_factor=4)) == pytest.approx(2.75e6, rel=0.01)
    vgg = build("vgg19", CIFAR_SHAPE, 10, preset="paper")
    assert trainable_count(vgg) == pytest.approx(20.0e6, rel=0.01)
    assert sum(isinstance(layer, keras.layers.Conv2D) for layer in vgg.layers) == 16


@pytest.mark.slow
@pytest.mark.parametrize(("widen_factor", "expected"), [(10, 36.5e6), (20, 145.8e6)])
def test_wide_resnet_28_parameter_counts(widen_factor, expected):
    model = build("wide_resnet", CIFAR_SHAPE, 10, depth=28, widen_factor=widen_factor)
    assert trainable_count(model) == pytest.approx(expected, rel=0.002)


def test_option_a_shortcut_subsamples_and_zero_pads_channels():
    from arnkit.models.resnet import _pad_shortcut

    inputs = keras.Input((6, 6, 2))
    shortcut = keras.Model(inputs, _pad_shortcut(inputs, filters=6, stride=2, prefix="test"))
    x = random_images((6, 6, 2), n=2)
    out = np.asarray(shortcut(x))
    expected = np.zeros((2, 3, 3, 6), np.float32)
    expected[..., 2:4] = x[:, ::2, ::2, :]
    np.testing.assert_array_equal(out, expected)
    assert not shortcut.weights  # parameter-free, as in the paper's option A


def test_projection_shortcut_variant_builds():
    model = build("resnet", CIFAR_SHAPE, 10, preset="tiny", shortcut="projection")
    assert any(layer.name.endswith("_proj") for layer in model.layers)


# ---- user mistakes give one-line ArnkitErrors ----

def assert_one_line(error: pytest.ExceptionInfo) -> None:
    assert "\n" not in str(error.value) and "Traceback" not in str(error.value)


def test_unknown_model_lists_known_ones():
    with pytest.raises(ArnkitError, match="unknown model 'resnet9000'") as error:
        build("resnet9000", CIFAR_SHAPE, 10)
    for name in MODELS:
        assert name in str(error.value)
    assert_one_line(error)


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("resnet", {"depth": 21}, "6n\\+2"),
        ("resnet", {"shortcut": "magic"}, "shortcut"),
        ("wrn", {"depth": 12}, "6n\\+4"),
        ("vgg", {"width_scale": 0}, "width_scale"),
        ("lenet", {"depht": 3}, "does not take"),
        ("resnet", {"preset": "huge"}, "no preset 'huge'"),
    ],
)
def test_bad_options_raise_arnkit_error(name, kwargs, message):
    with pytest.raises(ArnkitError, match=message) as error:
        build(name, CIFAR_SHAPE, 10, **kwargs)
    assert_one_line(error)


def test_lisa_cnn_rejects_images_too_small():
    with pytest.raises(ArnkitError, match="at least 27x27"):
        build("lisa_cnn", (16, 16, 3), 10)


def test_keyword_arguments_override_a_preset():
    model = build("resnet", CIFAR_SHAPE, 10, preset="tiny", depth=14)
    assert model.name == "resnet14"


# ---- arnkit.io.load_model refuses unsafe or broken files ----

@pytest.fixture(scope="module")
def small_saved_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "small.keras"
    arnkit_io.save_model(build("lenet", MNIST_SHAPE, 10, preset="tiny"), path)
    return path


def test_refuses_legacy_hdf5_saved_by_keras(tmp_path):
    legacy = tmp_path / "legacy.h5"
    build("lenet", MNIST_SHAPE, 10, preset="tiny").save(legacy)  # Keras 3 still writes the legacy format
    with pytest.raises(ArnkitError, match="legacy HDF5") as error:
        arnkit_io.load_model(legacy)
    assert_one_line(error)


def test_refuses_hdf5_disguised_as_keras(tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "disguised.keras"
    with h5py.File(path, "w") as handle:
        handle.attrs["model_config"] = json.dumps({"class_name": "Sequential"})
    with pytest.raises(ArnkitError, match="legacy HDF5"):
        arnkit_io.load_model(path)


@pytest.mark.parametrize("suffix", [".pkl", ".keras"])
def test_refuses_pickles(tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    with pytest.raises(ArnkitError, match="pickle") as error:
        arnkit_io.load_model(path)
    assert_one_line(error)


def test_refuses_random_bytes_with_keras_suffix(tmp_path):
    path = tmp_path / "corrupt.keras"
    path.write_bytes(b"K" + np.random.default_rng(0).bytes(4096))
    with pytest.raises(ArnkitError, match="not a valid .keras") as error:
        arnkit_io.load_model(path)
    assert_one_line(error)


def test_refuses_a_zip_that_is_not_a_keras_archive(tmp_path):
    path = tmp_path / "other.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "not a model")
    with pytest.raises(ArnkitError, match="cannot load other.keras safely") as error:
        arnkit_io.load_model(path)
    assert_one_line(error)


def test_refuses_missing_file(tmp_path):
    with pytest.raises(ArnkitError, match="not found"):
        arnkit_io.load_model(tmp_path / "absent.keras")


def test_refuses_python_lambda_without_running_it(tmp_path, monkeypatch):
    marker = tmp_path / "lambda_ran"
    monkeypatch.setenv("ARNKIT_TEST_MARKER", str(marker))

    # A Python lambda is stored as bytecode; creating a file stands in for arbitrary code.
    leave_marker = lambda t: (open(__import__("os").environ["ARNKIT_TEST_MARKER"], "w").close(), t)[1]  # noqa: E731
    inputs = keras.Input((4,))
    hostile = keras.Model(inputs, keras.layers.Lambda(leave_marker)(inputs))
    path = tmp_path / "hostile_lambda.keras"
    hostile.save(path)
    marker.unlink()  # building the model ran it once; loading must not run it again
    with pytest.raises(ArnkitError, match="cannot load hostile_lambda.keras safely") as error:
        arnkit_io.load_model(path)
    assert_one_line(error)
    assert not marker.exists()
    # The refusal is safe_mode's doing: the same file loads (and runs the code) when safety is off.
    keras.saving.load_model(path, safe_mode=False)
    assert marker.exists()


def rewrite_config(source, target, edit) -> None:
    with zipfile.ZipFile(source) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    edit(config)
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def _activation_from_os(config):
    dense = next(layer for layer in config["config"]["layers"] if layer["class_name"] == "Dense")
    dense["config"]["activation"] = {"module": "os", "class_name": "function", "config": "getcwd",
                                     "registered_name": "function"}


def _layer_class_from_subprocess(config):
    dense = next(layer for layer in config["config"]["layers"] if layer["class_name"] == "Dense")
    dense.update(module="subprocess", class_name="Popen", registered_name=None)


@pytest.mark.parametrize("edit", [_activation_from_os, _layer_class_from_subprocess], ids=["function", "class"])
def test_refuses_config_naming_arbitrary_python(small_saved_model, tmp_path, edit):
    path = tmp_path / "hostile_config.keras"
    rewrite_config(small_saved_model, path, edit)
    with pytest.raises(ArnkitError, match="safely") as error:
        arnkit_io.load_model(path)
    assert_one_line(error)
    # The untouched archive loads, so the refusal is about the edit, not the file.
    assert arnkit_io.load_model(small_saved_model).count_params() > 0


def test_lisa_cnn_dropout_is_training_only_and_adds_no_weights():
    plain = build("lisa_cnn", CIFAR_SHAPE, 16, preset="paper")
    dropped = build("lisa_cnn", CIFAR_SHAPE, 16, preset="paper", dropout=0.5)
    assert dropped.count_params() == plain.count_params() == 725_328
    dropped.set_weights(plain.get_weights())
    x = np.random.default_rng(0).random((4, *CIFAR_SHAPE), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(dropped(x, training=False)), np.asarray(plain(x, training=False)), atol=1e-6)
    assert not np.allclose(np.asarray(dropped(x, training=True)), np.asarray(plain(x, training=False)))
    with pytest.raises(ArnkitError, match="dropout"):
        build("lisa_cnn", CIFAR_SHAPE, 16, dropout=1.0)
