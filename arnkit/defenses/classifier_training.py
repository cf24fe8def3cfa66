"""The fit step shared by the robust-classifier baselines (AT_PGD, DOA), inside the training-run template
(`arnkit.runs.training`): fine-tune the workspace target on adversarial examples crafted against the model's
current weights at every batch (min-max training, started from the clean solution, which is cheaper on CPUs
than training from scratch).

A baseline supplies `craft(model, x, y, rng) -> x_adv` for one batch. Batch order and the random numbers each
batch draws are pure functions of (seed, epoch, batch); weights, optimizer state and the epoch are checkpointed
atomically after every epoch, so a resumed run repeats an uninterrupted one.

With `select`, each epoch ends with a score of the current weights on held-out images (lower is better; DOA:
its own attack's error on the first validation images) and the run keeps the best epoch's weights, as DOA's
`sticker_retrain.py` keeps its best epoch. Adversarial fine-tuning from a confident model can first collapse
it (near-uniform logits) and recover only later, so the last epoch is not always the one to ship.
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
Select = Callable[[Any], float]  # the current model -> its error on held-out images (%), lower is better


class ClassifierFitStep(FitStep):
    kind = "classifier"
    pool_size = None  # it crafts its own examples, every batch

    def __init__(self, key: str, craft: Craft, *, recipe: TargetRecipe, epochs: int, options: dict[str, Any],
                 seen: list[str], title: str, label: str, train_limit: int, eval_limit: int, resume: bool,
                 select: Select | None = None, dropout: float | None = None) -> None:
        self.key, self.craft, self.recipe, self.epochs, self.options = key, craft, recipe, epochs, options
        self.seen, self.title, self.label, self.train_limit = seen, title, label, train_limit
        self.eval_limit, self.resume, self.select, self.dropout = eval_limit, resume, select, dropout

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
        if self.dropout is not None:  # e.g. 0: fine-tune without the target's dropout (DOA's network has none)
            set_dropout(model, self.dropout)
        model.compile(optimizer=optimizer_for(self.recipe, int(self.epochs) * per_epoch),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        best = _Best()
        start_epoch = 0
        if self.resume and folder.checkpoint.exists():
            start_epoch = _restore(model, folder.checkpoint, self.key, best if self.select else None)

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
            if self.select is not None:
                best.offer(epoch + 1, float(self.select(model)), model)
                _save(model, folder.checkpoint, epoch + 1, best)
            else:
                _save(model, folder.checkpoint, epoch + 1)
        progress.finish()
        extra: dict[str, Any] = {"resumed_from_epoch": start_epoch}
        if self.select is not None:
            model.set_weights(best.weights)
            extra.update(selected_epoch=best.epoch, epoch_scores=[round(v, 4) for v in best.scores])
        return FitResult(model, logs, time.perf_counter() - started, extra)

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
                     context: RunContext | None = None, select: Select | None = None,
                     dropout: float | None = None) -> dict[str, Any]:
    """Fine-tune the target on `craft`'s examples with `recipe`'s optimizer; export it as the `key` classifier
    defense; return its run record. `options` are recorded and key the run folder; `label` (default: the key)
    names the run folder and the defense's column where two runs of one recipe sit side by side. `select`
    scores each epoch's weights (lower is better) and the best epoch is exported (the record says which).
    `dropout` replaces the rate of the target's Dropout layers while fine-tuning (None: keep it)."""
    if dropout is not None and not 0.0 <= float(dropout) < 1.0:
        raise ArnkitError(f"dropout must be in [0, 1), got {dropout}")
    ctx = context or RunContext.build(dataset, workspace=workspace, seed=seed, progress=progress)
    if int(epochs) < 1:
        raise ArnkitError(f"{key} needs epochs >= 1, got {epochs}")
    if int(train_limit) < 0:
        raise ArnkitError(f"train_limit must be >= 0 (0 = the whole split), got {train_limit}")
    step = ClassifierFitStep(key, craft, recipe=recipe, epochs=int(epochs), options=options, seen=list(seen),
                             title=title, label=label or key, train_limit=int(train_limit), eval_limit=eval_limit,
                             resume=resume, select=select, dropout=dropout)
    return run_training(ctx, step)


def set_dropout(model: Any, rate: float) -> int:
    """Give every Dropout layer of `model` the rate `rate` (before its train function is traced); returns how
    many it changed."""
    import keras

    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    for layer in layers:
        layer.rate = float(rate)
    return len(layers)


class _Best:
    """The per-epoch scores and the best epoch's weights so far (the first of equal scores wins)."""

    def __init__(self) -> None:
        self.scores: list[float] = []
        self.epoch = 0
        self.weights: list[np.ndarray] = []

    def offer(self, epoch: int, score: float, model: Any) -> None:
        self.scores.append(score)
        if not self.weights or score < self.scores[self.epoch - 1]:
            self.epoch, self.weights = epoch, [np.array(w) for w in model.get_weights()]


def _save(model: Any, path: Path, epoch: int, best: _Best | None = None) -> None:
    """Weights, optimizer state and the epoch count (and with selection, the scores and best weights so far),
    in one atomic file."""
    groups = {"w": model.get_weights(), "o": list(model.optimizer.variables)}
    if best is not None:
        groups.update(b=best.weights, s=[np.asarray(best.scores + [float(best.epoch)], np.float64)])
    checkpoints.save(path, "epoch", epoch, groups)


def _restore(model: Any, path: Path, key: str, best: _Best | None = None) -> int:
    model.optimizer.build(model.trainable_variables)
    sizes = {"w": len(model.get_weights()), "o": len(model.optimizer.variables)}
    if best is not None:
        sizes.update(b=sizes["w"], s=1)
    epoch, groups = checkpoints.restore(path, "epoch", sizes, what=key)
    model.set_weights(groups["w"])
    for variable, value in zip(model.optimizer.variables, groups["o"], strict=True):
        variable.assign(value)
    if best is not None:
        *scores, best_epoch = (float(v) for v in groups["s"][0])
        best.scores, best.epoch, best.weights = scores, int(best_epoch), list(groups["b"])
    return epoch
