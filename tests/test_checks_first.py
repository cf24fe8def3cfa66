"""Issue 31, "every check before any work" and "models that break the contract": a bad option is one line before
the TensorFlow import or the first training step (nothing written), a default fits the data it runs on, a
header-less or out-of-range defense file and a non-classifier are named for what they are."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from arnkit.defenses import registry
from arnkit.errors import ArnkitError
from arnkit_cli.main import app

REPO = Path(__file__).resolve().parents[1]


def invoke(workspace: Path, *args: str):
    return CliRunner().invoke(app, [*args, "--workspace", str(workspace)])


def one_error_line(result) -> str:
    """The single `error:` line of a refused command (exit 1, no traceback)."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) <= 2, result.output  # one logical line (rich may wrap it once)
    assert lines[0].startswith("error:")
    return " ".join(lines)


def written(workspace: Path) -> list[str]:
    """Every file under the workspace: a refused command must leave none (no target, no run folder)."""
    return sorted(str(p.relative_to(workspace)) for p in workspace.rglob("*")) if workspace.exists() else []


@pytest.mark.parametrize("value", ["0", "-1"])
def test_batch_size_zero_is_one_line_and_writes_nothing(tmp_path, value):
    result = invoke(tmp_path, "train", "--dataset", "synthetic", "--batch-size", value)
    assert f"--batch-size must be >= 1, got {value}" in one_error_line(result)
    assert written(tmp_path) == []  # no target, no pools, no empty run folder


def test_options_are_checked_before_the_first_step(tmp_path):
    cases = [
        (["train", "--steps", "0"], "--steps must be >= 1, got 0"),
        (["train", "--defense", "at_pgd", "--epochs", "0"], "--epochs must be >= 1, got 0"),
        (["train", "--eval-limit", "5000"], "--eval-limit 5000 is larger than the synthetic test split (128)"),
        (["train", "--pool-size", "9999"], "--pool-size 9999 is larger than the synthetic train split (512)"),
        (["evaluate", "--limit", "5000"], "--limit 5000 is larger than the synthetic test split (128)"),
        (["evaluate", "--defense", "none,missing/arn.keras"], "defense missing/arn.keras does not exist"),
        (["evaluate", "--defense-kind", "detector"], "--defense-kind takes preprocessor or classifier"),
    ]
    for args, message in cases:
        result = invoke(tmp_path, *args, "--dataset", "synthetic")
        assert message in one_error_line(result), args
        assert not (tmp_path / "targets").exists()  # no target file was written: refused before any training
        assert written(tmp_path) == [], args


def test_unwritable_output_is_refused_first(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = invoke(tmp_path / "ws", "report", "--output", str(blocker / "report.md"))
    assert f"--output {blocker / 'report.md'} cannot be written ({blocker} is a file)" in one_error_line(result)


def test_explicit_limit_past_the_split_is_refused_before_training(tmp_path):
    # The library path (no CLI preflight) refuses it too, before the target trains.
    from arnkit.pipeline.train import train

    with pytest.raises(ArnkitError, match=r"--eval-limit 5000 is larger than the synthetic test split \(128\)"):
        train("synthetic", "at_pgd", workspace=tmp_path, eval_limit=5000)
    assert not (tmp_path / "targets").exists()


# `python -c _CHILD REPORT arnkit-args...`: run the CLI, record at exit whether TensorFlow was imported.
_CHILD = textwrap.dedent("""
    import atexit, json, sys
    report, sys.argv = sys.argv[1], ["arnkit", *sys.argv[2:]]
    atexit.register(lambda: open(report, "w").write(json.dumps("tensorflow" in sys.modules)))
    from arnkit_cli.main import main
    main()
""")


def test_unknown_names_are_refused_without_importing_tensorflow(tmp_path):
    cases = [
        (["train", "--defense", "madry"], "unknown defense 'madry'; known defenses: none, arn, at_pgd"),
        (["train", "--seen", "pgd_n,pgd_x"], "unknown attack 'pgd_x'; known attacks: fgsm"),
        (["evaluate", "--attack", "pgd_n@0.1,nope"], "unknown attack 'nope'"),
        (["evaluate", "--defense", "none,arnn"], "unknown defense 'arnn'"),
        (["attack", "--attack", "bim"], "unknown attack 'bim'"),
    ]
    report = tmp_path / "tf.json"
    env = {**os.environ, "ARNKIT_WORKSPACE": str(tmp_path / "ws"), "COLUMNS": "200", "PYTHONPATH": str(REPO)}
    for args, message in cases:
        report.unlink(missing_ok=True)
        done = subprocess.run([sys.executable, "-c", _CHILD, str(report), *args, "--dataset", "synthetic"],
                              env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert done.returncode == 1, done.stderr[-2000:]
        assert message in done.stderr and "Traceback" not in done.stderr
        assert json.loads(report.read_text()) is False, args  # refused before the ~10 s TensorFlow import
        assert not (tmp_path / "ws").exists()


# ------------------------------------------------------------------------------------------- contracts ---

@pytest.fixture(scope="module")
def keras_models(tmp_path_factory):
    """Header-less .keras files for the synthetic 28x28x1 images: an untrained plain classifier, an
    image-to-image model whose outputs span [-0.1, 2.03], and one that stays in [0, 1]."""
    import keras

    folder = tmp_path_factory.mktemp("models")
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(28, 28, 1))
    plain = keras.Model(inputs, keras.layers.Dense(4)(keras.layers.Flatten()(inputs)))
    stretched = keras.Model(inputs, keras.layers.Rescaling(2.13, offset=-0.1)(inputs))
    clipped = keras.Model(inputs, keras.layers.Rescaling(0.5, offset=0.25)(inputs))
    paths = {}
    for name, model in {"plain": plain, "stretched": stretched, "clipped": clipped}.items():
        paths[name] = folder / f"{name}.keras"
        model.save(paths[name])
    return paths


def test_headerless_classifier_as_defense_needs_its_kind_stated(keras_models):
    with pytest.raises(ArnkitError) as caught:
        registry.load_file(keras_models["plain"], "synthetic")
    message = str(caught.value)
    assert "plain.keras has no arnkit header and maps images to a vector (4,)" in message
    assert "a classifier, not a pre-processor; if it is a robust classifier pass --defense-kind classifier" in message
    defense, record = registry.load_file(keras_models["plain"], "synthetic", kind="classifier")
    assert defense.kind == record.kind == "classifier"


def test_preprocessor_out_of_range_is_one_line_naming_the_range(keras_models):
    with pytest.raises(ArnkitError) as caught:
        registry.load_file(keras_models["stretched"], "synthetic")
    message = str(caught.value)
    assert message.startswith("stretched.keras ")
    assert "is not a pre-processor of images in [0, 1]: on a probe batch its outputs span [-0.1, 2.03]" in message
    with pytest.raises(ArnkitError, match="is not a pre-processor of images in"):  # stating the kind is no way out
        registry.load_file(keras_models["stretched"], "synthetic", kind="preprocessor")
    defense, _ = registry.load_file(keras_models["clipped"], "synthetic")  # in range: a pre-processor
    assert defense.kind == "preprocessor"


def test_non_classifier_is_named_as_such(keras_models):
    from arnkit.evaluation.metrics import misclassified

    with pytest.raises(ArnkitError) as caught:
        registry.load_file(keras_models["clipped"], "synthetic", kind="classifier")
    assert str(caught.value).startswith("clipped.keras maps images to images of the same shape, ")
    assert "so it is no classifier" in str(caught.value)
    # Where an image-to-image model slips in as the classifier, its per-pixel "predictions" are named.
    with pytest.raises(ArnkitError) as caught:
        misclassified(np.zeros((50, 28, 28, 1)), np.zeros(50, np.int64))
    assert "the model is not a classifier: its output per image has shape (28, 28, 1)" in str(caught.value)
    assert "predictions for 50 labels" not in str(caught.value)
    with pytest.raises(ArnkitError, match="the model is not a classifier of these images: 784 predictions for 50"):
        misclassified(np.zeros(784), np.zeros(50, np.int64))


def test_softmax_classifier_defense_is_attacked_through_its_logits(tmp_path):
    import keras

    from arnkit.runs.target_record import TargetWarning

    inputs = keras.Input(shape=(28, 28, 1))
    logits = keras.layers.Dense(4)(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, keras.layers.Softmax()(logits))
    model.save(tmp_path / "soft.keras")
    with pytest.warns(TargetWarning) as caught:
        defense, _ = registry.load_file(tmp_path / "soft.keras", "synthetic", kind="classifier")
    assert "ends in a softmax; it is attacked through its logits (softmax removed" in str(caught[0].message)
    x = np.random.default_rng(0).uniform(size=(4, 28, 28, 1)).astype("float32")
    out = np.asarray(defense.model.predict(x, verbose=0))
    assert not np.allclose(out.sum(axis=1), 1.0)  # logits now, not probabilities
    assert np.allclose(np.asarray(model.predict(x, verbose=0)), keras.ops.convert_to_numpy(keras.ops.softmax(out)),
                       atol=1e-5)


# --------------------------------------------------------------------------------------------- messages ---

def test_lambda_layer_refusal_is_whole_and_its_fix_works(tmp_path):
    import keras

    from arnkit.io import load_model

    inputs = keras.Input(shape=(4,))
    keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2)(inputs)).save(tmp_path / "lam.keras")
    with pytest.raises(ArnkitError) as caught:
        load_model(tmp_path / "lam.keras")
    assert str(caught.value) == ("cannot load lam.keras safely: it contains a Lambda layer, whose Python code arnkit "
                                 "does not run; rebuild the model with built-in layers instead of the Lambda and "
                                 "save it again")


def test_symlinked_lisa_image_is_named_as_a_symlink(tmp_path):
    from arnkit.data.lisa import LisaFiles
    from arnkit.data.lisa_builder import collect_records

    root = tmp_path / "lisa"
    root.mkdir()
    (tmp_path / "elsewhere.png").write_bytes(b"x")
    (root / "stop.png").symlink_to(tmp_path / "elsewhere.png")
    header = ("Filename;Annotation tag;Upper left corner X;Upper left corner Y;Lower right corner X;"
              "Lower right corner Y;Occluded,On another road;Origin file;Origin frame number;Origin track;"
              "Origin track frame number")
    (root / "allAnnotations.csv").write_text(header + "\nstop.png;stop;1;1;5;5;0,0;a;0;b;0\n")
    with pytest.raises(ArnkitError) as caught:
        collect_records(LisaFiles("original", root))
    assert f"{root / 'stop.png'} is a symbolic link to {tmp_path / 'elsewhere.png'}, outside {root}" \
        in str(caught.value)
    assert "points outside" not in str(caught.value)


def test_centred_images_are_told_the_range_seen_not_to_divide_by_255():
    from arnkit.attacks import make

    x = np.random.default_rng(0).uniform(-0.5, 0.5, size=(2, 28, 28, 1)).astype("float32")
    with pytest.raises(ArnkitError) as caught:
        make("fgsm", eps=0.1)(None, x, np.zeros(2, np.int64))
    message = str(caught.value)
    assert "images must be in [0, 1], got range [-0.5" in message and "shift them into [0, 1]" in message
    assert "255" not in message


# ------------------------------------------------------------------------------ every defense, defaults ---

# Why `--steps` (or, for the robust classifiers, which take no steps, `--epochs`) is the only override: this
# test is about the defaults fitting the data (the closing report's eval limit, pool and batch sizes on a
# 128-image test split), so every other option keeps the recipe's default; the step count only shortens the
# fit, and 1 is the smallest each recipe accepts.
SMALLEST = {"arn": ["--steps", "1"], "apeg": ["--steps", "1"], "hgd": ["--steps", "1"],
            "at_pgd": ["--epochs", "1"], "doa": ["--epochs", "1"]}


@pytest.fixture(scope="module")
def shared_workspace(tmp_path_factory):
    """One workspace for the registry sweep: the synthetic target trains once, and the pools are shared."""
    return tmp_path_factory.mktemp("defaults")


@pytest.mark.parametrize("key", list(registry.REGISTRY))
def test_every_defense_trains_with_its_defaults_and_closes_with_its_report(shared_workspace, key):
    assert set(SMALLEST) == set(registry.REGISTRY), "a new defense needs its smallest step count here"
    result = invoke(shared_workspace, "train", "--dataset", "synthetic", "--defense", key, *SMALLEST[key], "--json")
    assert result.exit_code == 0, result.output[-3000:]
    record = json.loads(result.stdout)
    assert record["key"] == key and Path(record["defense_path"]).exists()
    evaluation = record["evaluation"]
    assert set(evaluation) >= {"clean", *record["seen"]}
    assert all(set(cells) == {"none", key} for cells in evaluation.values())
    written_report = json.loads(Path(record["evaluation_files"]["json"]).read_text())
    assert written_report["n"] == 128  # the default eval limit (1000) clamped to the synthetic test split
