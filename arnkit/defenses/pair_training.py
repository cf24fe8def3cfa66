"""The fit step shared by the pre-processor baselines (APE-GAN, HGD): an image-to-image network learns to
map the seen-attack pools back to their natural images, inside the training-run template
(`arnkit.runs.training`). The pools are ARN's own (`arnkit.runs.adversarial.seen_pools`), so no attack is
crafted twice, and the batches are ARN's (`step_batches`: batch s is a pure function of (seed, s)). Every
variable, optimizer slots included, is checkpointed atomically, so a resumed run repeats an uninterrupted one.

A baseline supplies `build(meta, target, seed) -> PairTrainer`: the exported pre-processor, the variables a
checkpoint holds, and one training step on (adversarial, natural) batches.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arnkit.errors import ArnkitError
from arnkit.progress import Progress, resumed
from arnkit.runs import checkpoints
from arnkit.runs.adversarial import Pools, parse_seen
from arnkit.runs.batches import step_batches
from arnkit.runs.context import RunContext
from arnkit.runs.training import FitResult, FitStep, RunFolder, RunPlan, run_training


@dataclass
class PairTrainer:
    preprocessor: Any  # keras.Model, images -> images in [0, 1]: what is exported
    variables: list[Any]  # every variable a checkpoint saves and restores, in a fixed order
    step: Callable[[Any, Any], dict[str, Any]]  # (x_adv (B, H, W, C), x_nat (B, H, W, C)) -> losses


def flatten_pairs(batch: dict[str, Any]) -> tuple[Any, Any]:
    """(B, K, H, W, C) adversarial + (B, H, W, C) natural -> (B*K, ...) pairs, each natural image repeated."""
    import tensorflow as tf

    adv = batch["adversarial"]
    k = tf.shape(adv)[1]
    flat_adv = tf.reshape(adv, tf.concat([[-1], tf.shape(adv)[2:]], 0))
    flat_nat = tf.reshape(tf.repeat(batch["natural"][:, None], k, axis=1), tf.shape(flat_adv))
    return flat_adv, flat_nat


class PairFitStep(FitStep):
    kind = "preprocessor"

    def __init__(self, key: str, build: Callable[[Any, Any, int], PairTrainer], *, seen: list[str], steps: int,
                 batch_size: int, pool_size: int, options: dict[str, Any], checkpoint_every: int, resume: bool,
                 eval_limit: int) -> None:
        self.key, self.build, self.seen, self.steps, self.batch_size = key, build, seen, steps, batch_size
        self.pool_size, self.options, self.checkpoint_every = pool_size, options, checkpoint_every
        self.resume, self.eval_limit = resume, eval_limit
        self.trainer: PairTrainer | None = None

    def prepare(self, ctx: RunContext) -> None:
        import keras

        keras.utils.set_random_seed(ctx.seed)
        self.trainer = self.build(ctx.info, ctx.require_target().model, ctx.seed)  # a bad option fails here

    def plan(self, ctx: RunContext, pools: Pools | None) -> RunPlan:
        spec = {"dataset": ctx.dataset, "defense": self.key, "seen": self.seen, "steps": self.steps,
                "batch_size": self.batch_size, "pool": self.pool_size, "target": ctx.require_target().fingerprint,
                "seed": ctx.seed, **self.options}
        return RunPlan(label=f"{self.key}_{'+'.join(self.seen)}", folder=f"{ctx.dataset}-{self.key}-{'-'.join(self.seen)}",
                       spec=spec, options={"steps": self.steps, "batch_size": self.batch_size, **self.options})

    def fit(self, ctx: RunContext, folder: RunFolder, pools: Pools | None) -> FitResult:
        import tensorflow as tf

        assert pools is not None and self.trainer is not None
        trainer, progress = self.trainer, ctx.progress
        start = 0
        if self.resume and folder.checkpoint.exists():
            start, groups = checkpoints.restore(folder.checkpoint, "step", {"v": len(trainer.variables)},
                                                what=self.key)
            for variable, value in zip(trainer.variables, groups["v"], strict=True):
                variable.assign(value)
        batches = step_batches(pools.x_adv, pools.x_nat, batch_size=self.batch_size, seed=ctx.seed)
        step_fn = tf.function(trainer.step, reduce_retracing=True)
        started = time.perf_counter()
        progress.start(f"{self.key.upper()} on {ctx.dataset} (seen {','.join(self.seen)})", self.steps)
        progress.advance(start)
        resumed(progress, "step", start, self.steps, folder.checkpoint)
        losses: dict[str, float] = {}
        step = start
        for batch in batches(start):
            if step >= self.steps:
                break
            adv, nat = flatten_pairs(batch)
            out = step_fn(adv, nat)
            step += 1
            losses = {name: float(value) for name, value in out.items()}
            progress.advance(1, **losses)
            if step % self.checkpoint_every == 0 or step == self.steps:
                _save(trainer.variables, folder.checkpoint, step)
        progress.finish()
        return FitResult(trainer.preprocessor, losses, time.perf_counter() - started, {"resumed_from": start})

    def export(self, model: Any, path: Path, plan: RunPlan, ctx: RunContext) -> None:
        from arnkit.defenses.files import save_defense_file

        save_defense_file(model, path, key=self.key, kind="preprocessor", dataset=ctx.dataset, seen=self.seen)

    def as_defense(self, model: Any, path: Path) -> Any:
        from arnkit.runs.defense import Defense

        return Defense(self.key, "preprocessor", model)


def _save(variables: list[Any], path: Path, step: int) -> None:
    checkpoints.save(path, "step", step, {"v": variables})


def train_pair_defense(key: str, dataset: str, build: Callable[[Any, Any, int], PairTrainer], *,
                       seen: str | list[str] | None, steps: int, batch_size: int, pool_size: int | None,
                       options: dict[str, Any], checkpoint_every: int = 250, resume: bool = True,
                       eval_limit: int = 1000, seed: int = 0, workspace: str | Path | None = None,
                       progress: Progress | None = None, context: RunContext | None = None) -> dict[str, Any]:
    """Train the `key` pre-processor on the seen pools of `dataset`; export it; return its run record.
    `options` (the recipe's own settings) are recorded and key the run folder."""
    ctx = context or RunContext.build(dataset, workspace=workspace, seed=seed, progress=progress)
    keys = parse_seen(ctx, seen)
    if int(steps) < 1:
        raise ArnkitError(f"{key} needs steps >= 1, got {steps}")
    if int(batch_size) < 1:
        raise ArnkitError(f"{key} needs batch_size >= 1, got {batch_size}")
    pool = ctx.preset.pool if pool_size is None else int(pool_size)
    step = PairFitStep(key, build, seen=keys, steps=int(steps), batch_size=int(batch_size), pool_size=pool,
                       options=options, checkpoint_every=checkpoint_every, resume=resume, eval_limit=eval_limit)
    return run_training(ctx, step)


def built_optimizer(optimizer: Any, variables: list[Any]) -> Any:
    """The optimizer with its slots created, so a checkpoint can restore them before the first step."""
    optimizer.build(variables)
    return optimizer


def channels(width: int | str | None, default: int, name: str) -> int:
    """A base channel count from --width (a number here, not ARN's preset names)."""
    if width is None:
        return int(default)
    if isinstance(width, str) and not width.strip().isdigit():
        raise ArnkitError(f"{name} --width takes a number of channels (default {default}), got '{width}'")
    if int(width) < 1:
        raise ArnkitError(f"{name} --width must be >= 1 channel, got {width}")
    return int(width)
