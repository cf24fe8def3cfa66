"""The target service: the dataset's target classifier, trained once and cached in the workspace as `.keras`.

    ctx = with_target(ctx)                 # ctx.target.model, ctx.target.fingerprint
    record = train_target(ctx, "lenet")    # TargetResult (reused when the workspace has it)
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Any

import numpy as np

import arnkit
from arnkit import data, runtime
from arnkit.errors import ArnkitError
from arnkit.fingerprint import model_fingerprint
from arnkit.io import load_model, save_model, write_json_atomic
from arnkit.presets import TargetRecipe
from arnkit.progress import keras_callback
from arnkit.runs.context import RunContext
from arnkit.runs.target_record import Target, TargetResult

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
    if recipe == TargetRecipe(epochs=recipe.epochs):  # the original recipe: keep its cache key unchanged
        return {"dataset": ctx.dataset, "model": model, "epochs": epochs, "seed": seed, "lr": LEARNING_RATE,
                "batch_size": BATCH_SIZE, "recipe": 1}
    return {"dataset": ctx.dataset, "model": model, "epochs": epochs, "seed": seed, "recipe": 2,
            **{k: v for k, v in recipe.to_dict().items() if k != "epochs"}}


def model_name(ctx: RunContext, model: str | None) -> str:
    """The zoo model `model` names (None: the dataset's default); unknown is one line."""
    from arnkit.models import MODELS

    name = (model or ctx.info.default_model).lower()
    if name not in MODELS:
        raise ArnkitError(f"unknown model '{name}'; choose one of: {', '.join(MODELS)}")
    return name


def train_target(ctx: RunContext, model: str | None = None, *, epochs: int | None = None, seed: int = 0,
                 force: bool = False) -> TargetResult:
    """Train the dataset's target classifier (or reuse the cached one) and report its test accuracy."""
    import keras

    from arnkit.models import build

    name = model_name(ctx, model)
    recipe = recipe_for(ctx, name)
    n_epochs = recipe.epochs if epochs is None else int(epochs)
    if n_epochs < 1:
        raise ArnkitError(f"--epochs must be >= 1, got {n_epochs}")
    ws, meta = ctx.workspace, ctx.info
    path = ws.artifact("targets", f"{meta.name}-{name}", target_spec(ctx, name, n_epochs, seed), "keras")
    record_path = path.with_suffix(".json")
    if path.exists() and record_path.exists() and not force:
        record = json.loads(record_path.read_text())
        # The file is where the spec puts it in *this* workspace (a copied or moved workspace stays usable).
        record["path"], record["reused"] = str(path), True
        return TargetResult(**record)

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
        runtime=runtime.describe(),
    )
    write_json_atomic(record_path, result.to_dict())
    return result


def optimizer_for(recipe: TargetRecipe, total_steps: int) -> Any:
    """The recipe's optimizer and schedule over `total_steps` (targets and the classifier defenses share it)."""
    import keras

    if recipe.optimizer == "sgd":
        schedule = keras.optimizers.schedules.PiecewiseConstantDecay(
            [max(1, total_steps // 2)], [recipe.learning_rate, recipe.learning_rate * 0.1])
        return keras.optimizers.SGD(schedule, momentum=recipe.momentum)
    schedule = keras.optimizers.schedules.CosineDecay(recipe.learning_rate, decay_steps=total_steps, alpha=0.05)
    return keras.optimizers.Adam(schedule)


def evaluate_accuracy(model: Any, x: np.ndarray, y: np.ndarray, batch_size: int = 1000) -> float:
    from arnkit.detection.detector import predict_labels

    return float(np.mean(predict_labels(model, x, batch_size) == y)) if len(x) else 0.0


def ensure(ctx: RunContext, model: str | None = None, *, seed: int = 0) -> Target:
    """The workspace's target `model` of `seed`, loaded (trained first if missing)."""
    result = train_target(ctx, model, seed=seed)
    return Target(load_model(result.path), result)


def with_target(ctx: RunContext, model: str | None = None, *, seed: int = 0) -> RunContext:
    """`ctx` carrying the target `model` (None: the dataset's default) of `seed`, trained if missing. Every
    training run defends the seed-0 target, whatever its own seed."""
    if ctx.target is not None and ctx.target.matches(model_name(ctx, model), seed):
        return ctx
    return ctx.replace(target=ensure(ctx, model, seed=seed))
