"""Step 2 of issue 28, "your data": a user's images imported as a workspace dataset (arnkit.data.user_import),
found by the data layer, the run context and the CLI, with its own attack budgets; every bad input is one line
and writes nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner
from user_fixtures import digits_arrays as _digits
from user_fixtures import write_digits

from arnkit import attacks, data, presets
from arnkit.data.user_import import import_folder, import_npz
from arnkit.errors import ArnkitError
from arnkit.runs.context import RunContext
from arnkit_cli.main import app

runner = CliRunner()


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def digits_png(tmp_path_factory):
    return write_digits(tmp_path_factory.mktemp("digits") / "png")


def _nothing_written(ws):
    user = ws / "data" / "user"
    return not user.exists() or not any(user.iterdir())


# -- importing -----------------------------------------------------------------------------------------------
def test_import_folder_with_the_cli_then_the_data_layer_finds_it(digits_png, tmp_path):
    ws = tmp_path / "ws"
    result = cli("data", "import", "folder", digits_png, "--name", "digits", "--workspace", ws, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["shape"] == [16, 16, 1] and out["num_classes"] == 10
    assert out["class_names"] == [str(i) for i in range(10)]
    assert out["counts"] == {"train": 1437, "test": 360}
    assert out["eps"] == pytest.approx(0.3) and out["eps_default"] and "grayscale" in out["eps_rule"]

    meta = json.loads((ws / "data" / "user" / "digits" / "dataset.json").read_text())
    assert meta["budget_rule"] == "arnkit.data.budgets.derived(eps, shape)" and len(meta["sha256"]) == 64
    assert meta["source"] == str(digits_png.resolve()) and meta["arnkit_version"] and meta["created"]

    info = data.info("digits", ws / "data")
    assert info.shape == (16, 16, 1) and info.split_sizes == {"train": 1437, "test": 360}
    assert info.eps == pytest.approx(0.3) and data.availability("digits", ws / "data") is None
    x, y, _ = data.load_arrays("digits", "test", data_dir=ws / "data", limit=50)
    assert x.shape == (50, 16, 16, 1) and x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0
    assert y.dtype == np.int64 and set(np.unique(y)) <= set(range(10))

    listed = cli("datasets", "--json", "--workspace", ws)
    rows = {r["name"]: r for r in json.loads(listed.stdout)["datasets"]}
    assert rows["digits"]["available"] and rows["digits"]["eps"] == pytest.approx(0.3)
    assert rows["digits"]["shape"] == [16, 16, 1] and rows["mnist"]["available"]  # built-ins unchanged

    # Attacks take the dataset's eps, and the run context its derived preset.
    assert attacks.make("pgd_n", dataset=info).eps == pytest.approx(0.3)
    ctx = RunContext.build("digits", workspace=ws)
    assert ctx.info == info and ctx.preset.dataset == "digits" and ctx.preset.at_pgd.eps == pytest.approx(0.3)
    assert presets.for_info(info) == ctx.preset
    with pytest.raises(ArnkitError, match="presets.for_info"):  # a name alone never gets another's numbers
        presets.get("digits")


def test_terminal_says_which_eps_default_was_picked(tmp_path):
    png = write_digits(tmp_path / "png", rgb=True, n=200)
    result = cli("data", "import", "folder", png, "--name", "digits-rgb", "--workspace", tmp_path / "ws")
    assert result.exit_code == 0, result.output
    assert "eps 0.03137" in result.output and "RGB" in result.output and "--eps" in result.output


def test_rgb_import_defaults_to_8_over_255_and_given_eps_wins(tmp_path):
    png = write_digits(tmp_path / "png", rgb=True, n=300)
    ws = tmp_path / "ws"
    out = import_folder(png, ws / "data", name="digits")
    assert out["shape"] == [16, 16, 3] and out["eps"] == pytest.approx(8 / 255)
    info = data.info("digits", ws / "data")
    assert attacks.make("pgd_n", dataset=info).eps == pytest.approx(8 / 255)
    assert RunContext.build("digits", workspace=ws).preset.at_pgd.step_size == pytest.approx(2 / 255)

    given = import_folder(png, ws / "data", name="digits", eps=0.05, force=True)
    assert given["eps"] == pytest.approx(0.05) and not given["eps_default"] and given["eps_rule"] == "given (--eps)"
    info = data.info("digits", ws / "data")
    assert attacks.make("pgd_n", dataset=info).eps == pytest.approx(0.05)
    assert attacks.make("fgsm", dataset=info).eps == pytest.approx(0.05)
    ctx = RunContext.build("digits", workspace=ws)
    assert ctx.preset.at_pgd.eps == pytest.approx(0.05) and ctx.preset.at_pgd.step_size == pytest.approx(0.05 / 4)


def test_mixed_gray_and_colour_make_an_rgb_dataset(tmp_path):
    png = write_digits(tmp_path / "png", n=100)
    Image.new("RGB", (16, 16), (200, 10, 10)).save(png / "train" / "3" / "red.png")
    out = import_folder(png, tmp_path / "data", name="mixed")
    assert out["shape"] == [16, 16, 3]
    x, _, _ = data.load_arrays("mixed", "test", data_dir=tmp_path / "data")
    assert np.array_equal(x[..., 0], x[..., 2])  # the grayscale images were replicated


def test_single_tree_is_split_stratified_and_seeded(tmp_path):
    png = write_digits(tmp_path / "png", split=False, n=500)
    a = import_folder(png, tmp_path / "a", name="flat", test_fraction=0.2)
    b = import_folder(png, tmp_path / "b", name="flat", test_fraction=0.2)
    assert a["counts"]["train"] + a["counts"]["test"] == 500 and 90 <= a["counts"]["test"] <= 110
    assert a["sha256"] == b["sha256"]  # the same split twice
    _, y_test, _ = data.load_arrays("flat", "test", data_dir=tmp_path / "a")
    assert set(np.unique(y_test)) == set(range(10))


def test_size_resizes_mixed_sizes(tmp_path):
    png = write_digits(tmp_path / "png", n=100)
    Image.new("L", (24, 20)).save(png / "train" / "0" / "odd.png")
    out = import_folder(png, tmp_path / "data", name="resized", size="12x12")
    assert out["shape"] == [12, 12, 1]


def test_import_npz_float_and_uint8(tmp_path):
    images, labels = _digits(300)
    x = np.repeat(np.repeat(images / 16.0, 2, axis=1), 2, axis=2).astype(np.float32)  # NHW, 16x16
    np.savez(tmp_path / "f.npz", x_train=x[:200], y_train=labels[:200], x_test=x[200:], y_test=labels[200:],
             class_names=np.array([f"digit{i}" for i in range(10)]))
    out = import_npz(tmp_path / "f.npz", tmp_path / "data", name="npzf")
    assert out["shape"] == [16, 16, 1] and out["class_names"][3] == "digit3" and out["eps"] == pytest.approx(0.3)
    back, _, _ = data.load_arrays("npzf", "train", data_dir=tmp_path / "data")
    assert np.array_equal(back[..., 0], x[:200])

    rgb = np.repeat((x[..., None] * 255).astype(np.uint8), 3, axis=-1)
    np.savez(tmp_path / "u.npz", x_train=rgb[:200], y_train=labels[:200], x_test=rgb[200:], y_test=labels[200:])
    result = cli("data", "import", "npz", tmp_path / "u.npz", "--name", "npzu", "--eps", "0.1",
                 "--workspace", tmp_path, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["shape"] == [16, 16, 3] and out["eps"] == pytest.approx(0.1)
    assert out["class_names"] == [str(i) for i in range(10)]


def test_target_train_on_the_imported_digits(digits_png, tmp_path):
    ws = tmp_path / "ws"
    assert cli("data", "import", "folder", digits_png, "--name", "digits", "--workspace", ws).exit_code == 0
    result = cli("target", "train", "--dataset", "digits", "--epochs", "3", "--workspace", ws, "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["dataset"] == "digits" and record["model"] == "lenet"
    assert record["test_accuracy"] > 0.6  # chance is 0.1


# -- bad input: one line each, nothing written ------------------------------------------------------------
def _refused(ws, *args, message):
    result = cli("data", "import", *args, "--workspace", ws)
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "error:" in text and message in text, text
    assert result.output.count("error:") == 1
    assert _nothing_written(ws)
    return text


def test_empty_folder_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    _refused(tmp_path / "ws", "folder", tmp_path / "empty", "--name", "x", message="no class folders with images")


def test_single_class_is_refused(tmp_path):
    png = write_digits(tmp_path / "png", split=False, n=10)
    for folder in list(png.iterdir()):
        if folder.name != "0":
            for f in folder.iterdir():
                f.unlink()
            folder.rmdir()
    _refused(tmp_path / "ws", "folder", png, "--name", "x", message="a single class (0)")


def test_mixed_sizes_without_size_are_refused(tmp_path):
    png = write_digits(tmp_path / "png", n=50)
    Image.new("L", (24, 20)).save(png / "train" / "1" / "odd.png")
    _refused(tmp_path / "ws", "folder", png, "--name", "x", message="different sizes")


@pytest.mark.parametrize("content", [b"not an image at all", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00"])
def test_corrupt_or_non_image_file_is_refused_by_name(tmp_path, content):
    png = write_digits(tmp_path / "png", n=50)
    (png / "train" / "2" / "broken.png").write_bytes(content)
    _refused(tmp_path / "ws", "folder", png, "--name", "x", message="broken.png is not a readable PNG or JPEG")


def test_other_image_format_is_refused_by_name(tmp_path):
    png = write_digits(tmp_path / "png", n=50)
    Image.new("L", (16, 16)).save(png / "train" / "2" / "pic.bmp")
    _refused(tmp_path / "ws", "folder", png, "--name", "x", message="pic.bmp is a BMP image")


def test_test_class_not_among_training_classes_is_refused(tmp_path):
    png = write_digits(tmp_path / "png", n=50)
    (png / "test" / "cat").mkdir()
    Image.new("L", (16, 16)).save(png / "test" / "cat" / "c.png")
    _refused(tmp_path / "ws", "folder", png, "--name", "x", message="test class 'cat' is not among the training")


def test_an_existing_name_is_refused_unless_force(tmp_path):
    png = write_digits(tmp_path / "png", n=60)
    first = import_folder(png, tmp_path / "data", name="digits")
    with pytest.raises(ArnkitError, match="already exists.*--force") as caught:
        import_folder(png, tmp_path / "data", name="digits", eps=0.1)
    assert "\n" not in str(caught.value)
    assert data.info("digits", tmp_path / "data").eps == pytest.approx(0.3)  # untouched
    again = import_folder(png, tmp_path / "data", name="digits", eps=0.1, force=True)
    assert again["eps"] == pytest.approx(0.1) and again["path"] == first["path"]
    assert "warning" not in again  # the same images: cached targets and sets still match them
    other = write_digits(tmp_path / "other", n=80)
    assert "targets/digits-*" in import_folder(other, tmp_path / "data", name="digits", eps=0.1, force=True)["warning"]
    assert data.info("digits", tmp_path / "data").eps == pytest.approx(0.1)
    assert [p.name for p in (tmp_path / "data" / "user").iterdir()] == ["digits"]  # no leftovers


@pytest.mark.parametrize("name", ["mnist", "LISA", "cifar10", "synthetic"])
def test_a_builtin_name_is_refused(tmp_path, name):
    png = write_digits(tmp_path / "png", n=30)
    _refused(tmp_path / "ws", "folder", png, "--name", name, message="is a built-in dataset's")


def test_images_too_small_for_a_patch_are_refused(tmp_path):
    png = write_digits(tmp_path / "png", split=False, n=30, side=6)
    _refused(tmp_path / "ws", "folder", png, "--name", "x", message="smaller than 8x8")
    _refused(tmp_path / "ws", "folder", png, "--name", "x", "--size", "4x4", message="smaller than 8x8")
    # From 8x8 on, the derived ROA rectangle fits the image.
    budgets = data.budgets.derived(0.3, (8, 8, 1))
    assert 1 <= budgets.patch < 8


def test_a_bad_eps_is_refused(tmp_path):
    png = write_digits(tmp_path / "png", n=30)
    _refused(tmp_path / "ws", "folder", png, "--name", "x", "--eps", "3", message="--eps must be")


def _npz(path, **overrides):
    images, labels = _digits(60)
    x = np.repeat(np.repeat(images / 16.0, 2, axis=1), 2, axis=2).astype(np.float32)
    arrays = {"x_train": x[:40], "y_train": labels[:40], "x_test": x[40:], "y_test": labels[40:], **overrides}
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


@pytest.mark.parametrize("overrides, message", [
    ({"y_test": None}, "lacks the array(s) y_test"),
    ({"x_train": np.zeros((40, 16), np.float32)}, "images must be NHWC"),
    ({"x_test": np.zeros((20, 12, 12), np.float32)}, "both splits need the same image shape"),
    ({"y_train": np.zeros((40, 2), np.int64)}, "one integer label per image"),
    ({"y_test": np.full(20, 12)}, "y_test has label 12, but there are 10 classes"),
    ({"class_names": np.array(["a", "b"])}, "y_train has label 9, but there are 2 classes"),
    ({"y_test": np.full(20, -1)}, "negative label"),
    ({"x_train": np.full((40, 16, 16), np.nan, np.float32)}, "NaN"),
    ({"x_train": np.full((40, 16, 16), 2.0, np.float32)}, "outside [0, 1]"),
    ({"x_train": np.full((40, 16, 16), 300, np.int32)}, "outside 0-255"),
    ({"y_train": np.zeros(40, np.int64)}, "a single class"),
    ({"x_train": np.zeros((40, 6, 6), np.float32), "x_test": np.zeros((20, 6, 6), np.float32)}, "smaller than 8x8"),
])
def test_bad_npz_is_refused(tmp_path, overrides, message):
    path = _npz(tmp_path / "bad.npz", **overrides)
    _refused(tmp_path / "ws", "npz", path, "--name", "x", message=message)


def test_unreadable_npz_is_refused(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"junk")
    _refused(tmp_path / "ws", "npz", tmp_path / "junk.npz", "--name", "x", message="not a readable .npz")


def test_unknown_user_dataset_names_the_import(tmp_path):
    with pytest.raises(ArnkitError, match="unknown dataset 'nope'.*arnkit data import folder"):
        RunContext.build("nope", workspace=tmp_path)
    result = cli("target", "train", "--dataset", "nope", "--workspace", tmp_path)
    assert result.exit_code == 1 and "unknown dataset 'nope'" in result.output
