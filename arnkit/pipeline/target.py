"""Train (or reuse) the target classifier of a dataset, cached in the workspace as a `.keras` file."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

import arnkit
from arnkit import data, presets, runtime
from arnkit.errors import ArnkitError
from arnkit.fingerprint import model_fingerprint
from arnkit.io import load_model, save_model, write_json_atomic
from arnkit.presets import TargetRecipe
from arnkit.progress import NullProgress, Progress, keras_callback
from arnkit.workspace import Workspace

LEARNING_RATE = 1e-3
BATCH_SIZE = 128


def recipe_for(dataset: str, model: str) -> TargetRecipe:
    """The dataset's recipe; model options apply only to the dataset's own default model."""
    from arnkit import data as _data

    recipe = presets.get(dataset).target
    if recipe.model_options and model != _data.info(dataset).default_model:
        recipe = TargetRecipe(**{**asdict(recipe), "model_options": ()})
    return recipe


@dataclass
class TargetResult:
    dataset: str
    model: str
    path: str
    fingerprint: str
    test_accuracy: float
    test_error: float
    epochs: int
    seed: int
    train_seconds: float
    reused: bool
    arnkit_version: str
    runtime: dict[str, Any] | None = None  # TF, oneDNN and CPU it was trained on (None: an older record)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def target_spec(dataset: str, model: str, epochs: int, seed: int) -> dict[str, Any]:
    recipe = recipe_for(dataset, model)
    if recipe == TargetRecipe(epochs=recipe.epochs):  # the original recipe: keep its cache key unchanged
        return {"dataset": dataset, "model": model, "epochs": epochs, "seed": seed, "lr": LEARNING_RATE,
                "batch_size": BATCH_SIZE, "recipe": 1}
    return {"dataset": dataset, "model": model, "epochs": epochs, "seed": seed, "recipe": 2,
            **{k: v for k, v in recipe.to_dict().items() if k != "epochs"}}


def train_target(
    dataset: str = "mnist",
    model: str | None = None,
    *,
    epochs: int | None = None,
    seed: int = 0,
    workspace: str | Path | None = None,
    progress: Progress | None = None,
    force: bool = False,
) -> TargetResult:
    """Train the dataset's target classifier (or reuse the cached one) and report its test accuracy."""
    progress = progress or NullProgress()
    meta = data.info(dataset)
    reason = data.availability(meta.name, Workspace.resolve(workspace).data_dir)
    if reason is not None:
        raise ArnkitError(reason)
    import keras

    from arnkit.models import MODELS, build

    model_name = (model or meta.default_model).lower()
    if model_name not in MODELS:
        raise ArnkitError(f"unknown model '{model_name}'; choose one of: {', '.join(MODELS)}")
    recipe = recipe_for(meta.name, model_name)
    n_epochs = recipe.epochs if epochs is None else int(epochs)
    if n_epochs < 1:
        raise ArnkitError(f"--epochs must be >= 1, got {n_epochs}")
    ws = Workspace.resolve(workspace)
    spec = target_spec(meta.name, model_name, n_epochs, seed)
    path = ws.artifact("targets", f"{meta.name}-{model_name}", spec, "keras")
    record_path = path.with_suffix(".json")
    if path.exists() and record_path.exists() and not force:
        import json

        record = json.loads(record_path.read_text())
        # The file is where the spec puts it in *this* workspace (a copied or moved workspace stays usable).
        record["path"], record["reused"] = str(path), True
        return TargetResult(**record)

    x_train, y_train, _ = data.load_arrays(meta.name, "train", data_dir=ws.data_dir)
    x_test, y_test, _ = data.load_arrays(meta.name, "test", data_dir=ws.data_dir)
    keras.utils.set_random_seed(seed)
    net = build(model_name, meta.shape, meta.num_classes, **dict(recipe.model_options))
    steps_per_epoch = int(np.ceil(len(x_train) / recipe.batch_size))
    net.compile(optimizer=_optimizer(recipe, n_epochs * steps_per_epoch),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    start = time.perf_counter()
    net.fit(x_train, y_train, epochs=n_epochs, batch_size=recipe.batch_size, shuffle=True, verbose=0,
            callbacks=[keras_callback(progress, f"train {model_name} on {meta.name}", n_epochs * steps_per_epoch)])
    seconds = time.perf_counter() - start
    accuracy = evaluate_accuracy(net, x_test, y_test)
    save_model(net, path)
    result = TargetResult(
        dataset=meta.name, model=model_name, path=str(path), fingerprint=model_fingerprint(net),
        test_accuracy=accuracy, test_error=1.0 - accuracy, epochs=n_epochs, seed=seed,
        train_seconds=round(seconds, 2), reused=False, arnkit_version=arnkit.__version__,
        runtime=runtime.describe(),
    )
    write_json_atomic(record_path, result.to_dict())
    return result


def _optimizer(recipe: TargetRecipe, total_steps: int):
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


def ensure_target(dataset: str, model: str | None = None, *, workspace: str | Path | None = None, seed: int = 0,
                  progress: Progress | None = None):
    """The workspace's target for `dataset` as (keras model, TargetResult), training it if missing."""
    result = train_target(dataset, model, workspace=workspace, seed=seed, progress=progress)
    return load_model(result.path), result
