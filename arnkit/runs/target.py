"""The target service: the dataset's target classifier, trained once and cached in the workspace as `.keras`,
or a user's own classifier (`--target PATH.keras`), checked against the dataset and wrapped to logits.

    ctx = with_target(ctx)                 # ctx.target.model, ctx.target.fingerprint
    record = train_target(ctx, "lenet")    # TargetResult (reused when the workspace has it)
    ctx = with_target(ctx, path="my.keras", input_scale=255)   # a user's model; kept by every later call
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

import arnkit
from arnkit import data, runtime
from arnkit.data import splits
from arnkit.errors import ArnkitError
from arnkit.fingerprint import model_fingerprint
from arnkit.io import building, load_model, read_json_record, save_model, sha256_file, write_json_atomic
from arnkit.presets import TargetRecipe
from arnkit.progress import keras_callback
from arnkit.runs.context import RunContext
from arnkit.runs.target_record import Target, TargetResult, TargetWarning

LEARNING_RATE = 1e-3
BATCH_SIZE = 128


def recipe_for(ctx: RunContext, model: str) -> TargetRecipe:
    """The dataset's recipe; model options apply only to the dataset's own default model."""
    recipe = ctx.preset.target
    if recipe.model_options and model != ctx.info.default_model:
        recipe = TargetRecipe(**{**asdict(recipe), "model_options": ()})
    return recipe


def target_spec(ctx: RunContext, model: str, epochs: int, seed: int) -> dict[str, Any]:
    """What keys the cached target file."""
    recipe = recipe_for(ctx, model)
    # The train split's definition (val held out) is part of the key: a target trained on another split is
    # never silently reused.
    split = {"splits": splits.definition(ctx.info.name)}
    if recipe == TargetRecipe(epochs=recipe.epochs):  # the original recipe
        return {"dataset": ctx.dataset, "model": model, "epochs": epochs, "seed": seed, "lr": LEARNING_RATE,
                "batch_size": BATCH_SIZE, "recipe": 1, **split}
    return {"dataset": ctx.dataset, "model": model, "epochs": epochs, "seed": seed, "recipe": 2,
            **{k: v for k, v in recipe.to_dict().items() if k != "epochs"}, **split}


def model_name(ctx: RunContext, model: str | None) -> str:
    """The zoo model `model` names (None: the dataset's default); unknown is one line."""
    from arnkit.models import MODELS

    name = (model or ctx.info.default_model).lower()
    if name not in MODELS:
        raise ArnkitError(f"unknown model '{name}'; choose one of: {', '.join(MODELS)}")
    return name


def train_target(ctx: RunContext, model: str | None = None, *, epochs: int | None = None, seed: int = 0,
                 force: bool = False) -> TargetResult:
    """Train the dataset's target classifier (or reuse the cached one, its file checked against its record's
    sha256) and report its test accuracy. `force` retrains it (the fix for a changed or damaged file)."""
    name = model_name(ctx, model)
    recipe = recipe_for(ctx, name)
    n_epochs = recipe.epochs if epochs is None else int(epochs)
    if n_epochs < 1:
        raise ArnkitError(f"--epochs must be >= 1, got {n_epochs}")
    path = ctx.workspace.artifact("targets", f"{ctx.info.name}-{name}", target_spec(ctx, name, n_epochs, seed), "keras")
    record_path = path.with_suffix(".json")
    if not force and (cached := _cached(path, record_path)) is not None:
        return cached
    with building(path):
        if not force and (cached := _cached(path, record_path)) is not None:
            return cached  # another process trained it while this one waited
        return _train(ctx, name, recipe, n_epochs, seed, path, record_path)


def _cached(path: Path, record_path: Path) -> TargetResult | None:
    """The cached target's record, its file checked against the record's sha256; None when not both exist."""
    if not (path.exists() and record_path.exists()):
        return None
    record = read_json_record(record_path, "target record")
    try:
        result = TargetResult(**record)
    except TypeError:
        raise ArnkitError(f"target record {record_path} is damaged (not a target record); delete it or rerun "
                          "`arnkit target train --rebuild`") from None
    if result.sha256 and sha256_file(path) != result.sha256:
        raise _changed(path, "its sha256 differs from the one in " + record_path.name)
    # The file is where the spec puts it in *this* workspace (a copied or moved workspace stays usable).
    result.path, result.reused = str(path), True
    return result


def _changed(path: Path, why: str) -> ArnkitError:
    return ArnkitError(f"target {path} was changed after arnkit trained it ({why}); its numbers and pools would "
                       f"be another model's: delete it, or rerun `arnkit target train --rebuild`")


def _train(ctx: RunContext, name: str, recipe: TargetRecipe, n_epochs: int, seed: int, path: Path,
           record_path: Path) -> TargetResult:
    import keras

    from arnkit.models import build

    ws, meta = ctx.workspace, ctx.info
    x_train, y_train, _ = data.load_arrays(meta.name, "train", data_dir=ws.data_dir)
    x_test, y_test, _ = data.load_arrays(meta.name, "test", data_dir=ws.data_dir)
    keras.utils.set_random_seed(seed)
    net = build(name, meta.shape, meta.num_classes, **dict(recipe.model_options))
    steps_per_epoch = int(np.ceil(len(x_train) / recipe.batch_size))
    net.compile(optimizer=optimizer_for(recipe, n_epochs * steps_per_epoch),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    start = time.perf_counter()
    net.fit(x_train, y_train, epochs=n_epochs, batch_size=recipe.batch_size, shuffle=True, verbose=0,
            callbacks=[keras_callback(ctx.progress, f"train {name} on {meta.name}", n_epochs * steps_per_epoch)])
    seconds = time.perf_counter() - start
    accuracy = evaluate_accuracy(net, x_test, y_test)
    save_model(net, path)
    result = TargetResult(
        dataset=meta.name, model=name, path=str(path), fingerprint=model_fingerprint(net),
        test_accuracy=accuracy, test_error=1.0 - accuracy, epochs=n_epochs, seed=seed,
        train_seconds=round(seconds, 2), reused=False, arnkit_version=arnkit.__version__,
        runtime=runtime.describe(), sha256=sha256_file(path),
        train_split={"split": "train", "n": len(x_train), "rule": splits.describe(meta.name),
                     **splits.definition(meta.name)},
    )
    write_json_atomic(record_path, ctx.workspace.relative_paths(result.to_dict()))
    return result


def optimizer_for(recipe: TargetRecipe, total_steps: int) -> Any:
    """The recipe's optimizer and schedule over `total_steps` (targets and the classifier defenses share it)."""
    import keras

    if recipe.schedule == "constant":
        schedule = recipe.learning_rate
    elif recipe.optimizer == "sgd":
        schedule = keras.optimizers.schedules.PiecewiseConstantDecay(
            [max(1, total_steps // 2)], [recipe.learning_rate, recipe.learning_rate * 0.1])
    else:
        schedule = keras.optimizers.schedules.CosineDecay(recipe.learning_rate, decay_steps=total_steps, alpha=0.05)
    if recipe.optimizer == "sgd":
        return keras.optimizers.SGD(schedule, momentum=recipe.momentum)
    return keras.optimizers.Adam(schedule)


def evaluate_accuracy(model: Any, x: np.ndarray, y: np.ndarray, batch_size: int = 1000) -> float:
    from arnkit.detection.detector import predict_labels

    return float(np.mean(predict_labels(model, x, batch_size) == y)) if len(x) else 0.0


def ensure(ctx: RunContext, model: str | None = None, *, seed: int = 0) -> Target:
    """The workspace's target `model` of `seed`, loaded (trained first if missing)."""
    result = train_target(ctx, model, seed=seed)
    loaded = load_model(result.path)
    # The fingerprint that keys pools and defenses is the loaded weights', never only the record's word.
    if model_fingerprint(loaded) != result.fingerprint:
        raise _changed(Path(result.path), f"its weights' fingerprint is not {result.fingerprint}, the record's")
    return Target(loaded, result)


def with_target(ctx: RunContext, model: str | None = None, *, seed: int = 0, path: str | Path | None = None,
                input_scale: float | None = None, output: str | None = None) -> RunContext:
    """`ctx` carrying the target: the user's model at `path` (checked and wrapped, see `from_file`), else the
    context's own user target, else the zoo target `model` (None: the dataset's default) of `seed`, trained if
    missing. Every training run defends the seed-0 target, whatever its own seed."""
    if path is not None:
        return ctx.replace(target=from_file(ctx, path, input_scale=input_scale, output=output))
    if ctx.target is not None and ctx.target.is_user and model is None:
        return ctx  # the user's model stays the target of everything downstream
    if ctx.target is not None and ctx.target.matches(model_name(ctx, model), seed):
        return ctx
    return ctx.replace(target=ensure(ctx, model, seed=seed))


# ----------------------------------------------------------------------------------- a user's model ---

OUTPUTS = ("auto", "logits", "probabilities")
CHECK_IMAGES = 256  # the first test images a user's model is checked on


def from_file(ctx: RunContext, path: str | Path, *, input_scale: float | None = None, input_offset: float = 0.0,
              output: str | None = None, check_images: int = CHECK_IMAGES) -> Target:
    """A user's Keras classifier as the run's target: loaded with safe_mode, checked against the dataset
    (input shape, class count, accuracy on the first `check_images` test images) before any long work, and
    wrapped to what the attacks read: images in [0, 1] -> logits.

    `input_scale` / `input_offset`: the model is fed `x * scale + offset` (255 for a model trained on [0, 255]
    pixels). `output`: "auto" (None) detects a softmax output (a softmax last layer, or outputs that are
    non-negative and sum to 1 on the probe images), "logits" or "probabilities" force it. Probabilities are
    attacked through the logits when the final softmax can be cut off, else through log-probabilities.

    The fingerprint is `model_fingerprint` of the model attacked; a wrapping without weights of its own (an
    input scale, a log) is folded into it, so that two wrappings of one file never share a cached artifact."""
    from arnkit.models import wrappers

    mode = (output or "auto").lower()
    if mode not in OUTPUTS:
        raise ArnkitError(f"--output must be one of {', '.join(OUTPUTS)}, got {output!r}")
    scale = 1.0 if input_scale is None else float(input_scale)
    offset = float(input_offset)
    if not np.isfinite(scale) or scale == 0.0 or not np.isfinite(offset):
        raise ArnkitError(f"--input-scale must be a finite non-zero number, got {input_scale}")
    source = Path(path).expanduser()
    if source.suffix != ".keras":
        raise ArnkitError(f"--target takes a Keras 3 classifier saved as .keras, got {source.name}; "
                          "save it with model.save('my.keras')")
    raw = load_model(source)
    meta, name = ctx.info, source.name
    _check_signature(raw, name, meta)

    size = meta.split_sizes.get("test")
    limit = min(int(check_images), int(size)) if size else int(check_images)
    x, y, _ = data.load_arrays(meta.name, "test", limit=limit, data_dir=ctx.workspace.data_dir)
    probe = np.asarray(raw.predict(x * scale + offset, batch_size=256, verbose=0))
    if probe.ndim != 2 or probe.shape[1] != meta.num_classes:
        raise ArnkitError(f"{name} is not a classifier of the {meta.num_classes} {meta.name} classes: it maps "
                          f"{len(x)} images to shape {probe.shape}, not ({len(x)}, {meta.num_classes}) logits or "
                          "probabilities")
    probabilities = mode == "probabilities" or (mode == "auto" and (wrappers.last_softmax(raw) or (
        bool(np.all(probe >= 0.0)) and bool(np.allclose(probe.sum(axis=1), 1.0, atol=1e-3)))))
    attacked, kind = raw, "logits"
    if probabilities:
        cut = wrappers.without_softmax(raw)
        attacked, kind = ((cut, "logits (softmax removed)") if cut is not None
                          else (wrappers.log_probabilities(raw), "log-probabilities"))
    if (scale, offset) != (1.0, 0.0):
        attacked = wrappers.rescaled(attacked, scale=scale, offset=offset)

    accuracy = evaluate_accuracy(attacked, x, y)
    wrapping = {"input_scale": scale, "input_offset": offset, "output": kind}
    fingerprint = model_fingerprint(attacked)
    if wrapping != {"input_scale": 1.0, "input_offset": 0.0, "output": "logits"}:
        digest = json.dumps([fingerprint, wrapping], sort_keys=True).encode()
        fingerprint = hashlib.sha256(digest).hexdigest()[:16]
    notes = []
    chance = 1.0 / meta.num_classes
    if accuracy < min(2 * chance, chance + 0.1):
        notes.append(f"{name} classifies {accuracy:.0%} of the first {len(x)} {meta.name} test images, near chance "
                     f"({chance:.0%}); the usual cause is an input range other than [0, 1]: a model trained on "
                     "[0, 255] pixels needs --input-scale 255 (in Python: arnkit.models.rescaled(model, scale=255))")
        warnings.warn(notes[-1], TargetWarning, stacklevel=2)
    record = TargetResult(
        dataset=meta.name, model="user", path=str(source.resolve()), fingerprint=fingerprint,
        test_accuracy=accuracy, test_error=1.0 - accuracy, epochs=0, seed=0, train_seconds=0.0, reused=True,
        arnkit_version=arnkit.__version__,
        user={"source": str(source.resolve()), "source_fingerprint": model_fingerprint(raw), **wrapping,
              "input_shape": list(meta.shape), "classes": meta.num_classes, "checked_images": int(len(x)),
              "warnings": notes},
    )
    return Target(attacked, record)


def _check_signature(model: Any, name: str, meta: data.DatasetInfo) -> None:
    """One line when the model cannot take the dataset's images or cannot be a classifier of its classes."""
    if len(getattr(model, "inputs", None) or [None]) != 1 or len(getattr(model, "outputs", None) or [None]) != 1:
        raise ArnkitError(f"{name} has several inputs or outputs; --target takes a classifier with one image input "
                          "and one output")
    try:
        shape = tuple(model.input_shape[1:])
    except (AttributeError, ValueError):
        shape = ()
    expected = tuple(meta.shape)
    if len(shape) != len(expected) or any(d is not None and int(d) != e for d, e in zip(shape, expected, strict=True)):
        raise ArnkitError(f"{name} takes inputs of shape {tuple(model.input_shape)}, but {meta.name} images are "
                          f"(N, {', '.join(map(str, expected))}) (NHWC in [0, 1]); use a model built for them")
    try:
        out = tuple(model.output_shape)
    except (AttributeError, ValueError):
        return  # no static shape: the probe batch checks it
    if len(out) != 2:
        raise ArnkitError(f"{name} is not a classifier: its output has shape {out}, where arnkit needs (N, "
                          f"{meta.num_classes}) logits or probabilities of the {meta.name} classes")
    if out[1] is not None and int(out[1]) != meta.num_classes:
        raise ArnkitError(f"{name} outputs {out[1]} classes, but {meta.name} has {meta.num_classes}; use a "
                          "classifier trained on this dataset's classes")
