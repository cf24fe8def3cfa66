"""The fit step shared by the robust-classifier baselines (AT_PGD, DOA), inside the training-run template
(`arnkit.runs.training`): fine-tune the workspace target on adversarial examples crafted against the model's
current weights at every batch (min-max training, started from the clean solution, which is cheaper on CPUs
than training from scratch).

A baseline supplies `craft(model, x, y, rng) -> x_adv` for one batch. Batch order and the random numbers each
batch draws are pure functions of (seed, epoch, batch); weights, optimizer state and the epoch are checkpointed
atomically after every epoch, so a resumed run repeats an uninterrupted one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from arnkit import data
from arnkit.errors import ArnkitError
from arnkit.presets import TargetRecipe
from arnkit.progress import Progress, resumed
from arnkit.runs import checkpoints
from arnkit.runs.adversarial import Pools
from arnkit.runs.context import RunContext
from arnkit.runs.target import optimizer_for
from arnkit.runs.training import FitResult, FitStep, RunFolder, RunPlan, run_training

Craft = Callable[[Any, np.ndarray, np.ndarray, np.random.Generator], np.ndarray]


class ClassifierFitStep(FitStep):
    kind = "classifier"
    pool_size = None  # it crafts its own examples, every batch

    def __init__(self, key: str, craft: Craft, *, recipe: TargetRecipe, epochs: int, options: dict[str, Any],
                 seen: list[str], title: str, label: str, train_limit: int, eval_limit: int, resume: bool) -> None:
        self.key, self.craft, self.recipe, self.epochs, self.options = key, craft, recipe, epochs, options
        self.seen, self.title, self.label, self.train_limit = seen, title, label, train_limit
        self.eval_limit, self.resume = eval_limit, resume

    def plan(self, ctx: RunContext, pools: Pools | None) -> RunPlan:
        spec = {"dataset": ctx.dataset, "defense": self.key, "target": ctx.require_target().fingerprint,
                "seed": ctx.seed, **self.options}
        return RunPlan(label=self.label, folder=f"{ctx.dataset}-{self.label}", spec=spec, options=self.options)

    def fit(self, ctx: RunContext, folder: RunFolder, pools: Pools | None) -> FitResult:
        import keras

        x, y, _ = data.load_arrays(ctx.dataset, "train", limit=int(self.train_limit) or None,
                                   data_dir=ctx.workspace.data_dir)
        batch = self.recipe.batch_size
        per_epoch = int(np.ceil(len(x) / batch))
        keras.utils.set_random_seed(ctx.seed)
        target = ctx.require_target().model
        model = keras.models.clone_model(target)
        model.set_weights(target.get_weights())
        model.compile(optimizer=optimizer_for(self.recipe, int(self.epochs) * per_epoch),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        start_epoch = _restore(model, folder.checkpoint, self.key) if self.resume and folder.checkpoint.exists() else 0

        started, progress, seed = time.perf_counter(), ctx.progress, ctx.seed
        progress.start(self.title, int(self.epochs) * per_epoch)
        progress.advance(start_epoch * per_epoch)
        resumed(progress, "epoch", start_epoch, int(self.epochs), folder.checkpoint)
        logs: dict[str, float] = {}
        for epoch in range(start_epoch, int(self.epochs)):
            order = np.random.default_rng([seed, epoch]).permutation(len(x))
            for b in range(per_epoch):
                idx = order[b * batch:(b + 1) * batch]
                xb, yb = x[idx], y[idx].astype(np.int32)
                x_adv = self.craft(model, xb, yb, np.random.default_rng([seed, epoch, b]))
                out = model.train_on_batch(x_adv, yb, return_dict=True)
                logs = {k: float(v) for k, v in out.items()}
                progress.advance(1, **logs)
            _save(model, folder.checkpoint, epoch + 1)
        progress.finish()
        return FitResult(model, logs, time.perf_counter() - started, {"resumed_from_epoch": start_epoch})

    def export(self, model: Any, path: Path, plan: RunPlan, ctx: RunContext) -> None:
        from arnkit.defenses.files import save_defense_file

        save_defense_file(model, path, key=self.key, kind="classifier", dataset=ctx.dataset, seen=list(self.seen))

    def as_defense(self, model: Any, path: Path) -> Any:
        from arnkit.runs.defense import Defense

        return Defense(self.key, "classifier", model)


def fine_tune_target(key: str, dataset: str, craft: Craft, *, recipe: TargetRecipe, epochs: int,
                     options: dict[str, Any], seen: list[str], title: str, label: str = "", train_limit: int = 0,
                     eval_limit: int = 1000, resume: bool = True, seed: int = 0,
                     workspace: str | Path | None = None, progress: Progress | None = None,
                     context: RunContext | None = None) -> dict[str, Any]:
    """Fine-tune the target on `craft`'s examples with `recipe`'s optimizer; export it as the `key` classifier
    defense; return its run record. `options` are recorded and key the run folder; `label` (default: the key)
    names the run folder and the defense's column where two runs of one recipe sit side by side."""
    ctx = context or RunContext.build(dataset, workspace=workspace, seed=seed, progress=progress)
    if int(epochs) < 1:
        raise ArnkitError(f"{key} needs epochs >= 1, got {epochs}")
    if int(train_limit) < 0:
        raise ArnkitError(f"train_limit must be >= 0 (0 = the whole split), got {train_limit}")
    step = ClassifierFitStep(key, craft, recipe=recipe, epochs=int(epochs), options=options, seen=list(seen),
                             title=title, label=label or key, train_limit=int(train_limit), eval_limit=eval_limit,
                             resume=resume)
    return run_training(ctx, step)


def _save(model: Any, path: Path, epoch: int) -> None:
    """Weights, optimizer state and the epoch count, in one atomic file."""
    checkpoints.save(path, "epoch", epoch, {"w": model.get_weights(), "o": list(model.optimizer.variables)})


def _restore(model: Any, path: Path, key: str) -> int:
    model.optimizer.build(model.trainable_variables)
    epoch, groups = checkpoints.restore(path, "epoch", {"w": len(model.get_weights()),
                                                        "o": len(model.optimizer.variables)}, what=key)
    model.set_weights(groups["w"])
    for variable, value in zip(model.optimizer.variables, groups["o"], strict=True):
        variable.assign(value)
    return epoch
