"""ARN's run: its fit step in the shared training-run template (`arnkit.runs.training`), and `train_defense`,
the registry's trainer for `arn`. The networks, losses and trainers sit beside it in this folder.

    record = train_defense("mnist", "pgd_n,pgd_t", steps=3000)       # what `arnkit train` runs
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from arnkit import backend
from arnkit.defenses import arn_recipes
from arnkit.errors import ArnkitError
from arnkit.progress import Progress, resumed
from arnkit.runs.adversarial import Pools, parse_seen
from arnkit.runs.batches import numpy_batches, step_batches
from arnkit.runs.context import RunContext
from arnkit.runs.training import FitResult, FitStep, RunFolder, RunPlan, run_training

DEFAULT_BATCH = 64
# Every other per-dataset default (seen attacks, pool, steps, learning rate, width, guidance) is data in
# arnkit.presets.
STRATEGIES = ("default", "mirrored", "multiworker", "dataparallel")  # the last is JAX's
ABLATABLE = ("adv", "nor", "att")


def check_backend_options(strategy: str, *, adaptive: bool = False) -> None:
    """Refuse, before any long work, a strategy or option the running Keras backend cannot train with."""
    if strategy not in STRATEGIES:
        raise ArnkitError(f"unknown strategy '{strategy}'; choose one of: {', '.join(STRATEGIES)}")
    if backend.is_tensorflow():
        if strategy == "dataparallel":
            make_strategy(strategy)  # its one-line refusal
        return
    if backend.name() not in ("jax", "torch"):
        raise ArnkitError(f"ARN trains on the tensorflow, jax or torch backend, this process runs Keras on "
                          f"{backend.name()}: set KERAS_BACKEND=jax")
    if strategy in ("mirrored", "multiworker"):
        advice = ("use --strategy dataparallel (keras.distribution.DataParallel over the local devices)"
                  if backend.name() == "jax" else "drop --strategy (torch trains on one device)")
        raise ArnkitError(f"--strategy {strategy} is tf.distribute's; under KERAS_BACKEND={backend.name()} {advice}")
    if strategy == "dataparallel" and backend.name() == "torch":
        raise ArnkitError("--strategy dataparallel is keras.distribution's JAX data parallel; under "
                          "KERAS_BACKEND=torch drop --strategy, or set KERAS_BACKEND=jax")
    if adaptive:
        backend.require_tensorflow("--adaptive (ARN trained against white-box PGD through itself)")


def make_strategy(name: str):
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "dataparallel":
        raise ArnkitError("--strategy dataparallel is the JAX backend's; on TensorFlow use --strategy mirrored "
                          "(local GPUs) or multiworker (TF_CONFIG)")
    raise ArnkitError(f"unknown strategy '{name}'; choose one of: {', '.join(STRATEGIES)}")


def arn_config(ctx: RunContext, *, n_steps: int, width: str | None, objective: str, learning_rate: float | None,
               lr_schedule: str | None, guide_weight: float | None, adaptive: bool, ablate: tuple[str, ...],
               config_overrides: dict[str, Any] | None) -> tuple[Any, str]:
    """(ARNConfig, width) from the dataset's preset, then the given options."""
    from arnkit.defenses.arn.config import ARNConfig

    preset, meta = ctx.preset, ctx.info
    # The preset's ARN schedule applies to the paper objective; the reference objective keeps its own.
    paper = objective == "paper"
    overrides = dict(config_overrides or {})
    preset_rate = preset.arn.learning_rate
    if adaptive and preset.arn.adaptive.learning_rate is not None:
        preset_rate = preset.arn.adaptive.learning_rate
    if learning_rate is not None:
        overrides["learning_rate"] = float(learning_rate)
    elif paper and preset_rate is not None:
        overrides.setdefault("learning_rate", preset_rate)
    if width is None:
        width = preset.arn.width if paper else "default"
    if guide_weight is None:
        guide_weight = preset.arn.guide_weight if paper else 0.0
    if guide_weight:
        overrides["guide_weight"] = float(guide_weight)
    if lr_schedule is not None:
        overrides["lr_schedule"] = lr_schedule
    elif paper and preset.arn.lr_schedule != "constant":
        overrides.setdefault("lr_schedule", preset.arn.lr_schedule)
    if adaptive:
        leak = preset.arn.adaptive
        for name, value in (("adaptive_share", leak.share), ("adaptive_steps", leak.steps),
                            ("adaptive_eps", meta.eps if leak.eps is None else leak.eps),
                            ("adaptive_step_size", leak.step_size), ("adaptive_update", leak.update)):
            overrides.setdefault(name, value)
    if overrides.get("adaptive_families"):
        # The other families' budgets are the dataset's, as every evaluated attack's are (arnkit/data/budgets.py).
        budgets = meta.budgets
        for name, value in (("adaptive_l2_eps", budgets.l2_eps), ("adaptive_flow_eps", budgets.flow_eps),
                            ("adaptive_patch", budgets.patch)):
            overrides.setdefault(name, value)
    if overrides.get("lr_schedule", "constant") != "constant":
        # The schedule spans this run; it is part of the config, so of the run's id and its checkpoints.
        overrides.setdefault("lr_decay_steps", n_steps)
    config = ARNConfig.with_weights(preset.arn.weights, objective=objective, preset=width, seed=ctx.seed,
                                    **{f"use_{term}": False for term in ablate}, **overrides)
    return config, width


def recipe_config(ctx: RunContext, chosen: arn_recipes.Resolved, *, ablate: tuple[str, ...] = ()
                  ) -> tuple[Any, str, int, int]:
    """(ARNConfig, width, steps, batch size) of a resolved recipe on the context's dataset: the preset, then the
    recipe's values, then the user's flags (already merged into `chosen.options`)."""
    opts = chosen.options
    n_steps = ctx.preset.arn.steps if opts.get("steps") is None else int(opts["steps"])
    if n_steps < 1:
        raise ArnkitError(f"--steps must be >= 1, got {n_steps}")
    batch_size = DEFAULT_BATCH if opts.get("batch_size") is None else int(opts["batch_size"])
    if batch_size < 1:
        raise ArnkitError(f"--batch-size must be >= 1, got {batch_size}")
    config, width = arn_config(ctx, n_steps=n_steps, width=opts.get("width"), objective=opts.get("objective") or "paper",
                               learning_rate=opts.get("learning_rate"), lr_schedule=opts.get("lr_schedule"),
                               guide_weight=opts.get("guide_weight"), adaptive=bool(opts.get("adaptive")),
                               ablate=ablate, config_overrides=chosen.config_overrides)
    return config, width, n_steps, batch_size


class ARNFitStep(FitStep):
    """ARN's networks and four-player game (`arnkit.defenses.arn.ARN`) fitted on the seen-attack pools:
    TensorFlow fits in chunks under a tf.distribute strategy; JAX and torch step through `trainer_for`."""

    key, kind = "arn", "preprocessor"

    def __init__(self, *, seen: list[str], n_steps: int, width: str, objective: str, config: Any, batch_size: int,
                 pool_size: int, ablate: tuple[str, ...], strategy: str, checkpoint_every: int, resume: bool,
                 eval_limit: int, tensorboard: bool, on_checkpoint: Callable[[int, Any], None] | None,
                 recipe: arn_recipes.Resolved | None = None) -> None:
        self.seen, self.n_steps, self.width, self.objective = seen, n_steps, width, objective
        self.config, self.batch_size, self.pool_size, self.ablate = config, batch_size, pool_size, ablate
        self.strategy, self.checkpoint_every, self.resume = strategy, checkpoint_every, resume
        self.eval_limit, self.tensorboard, self.on_checkpoint = eval_limit, tensorboard, on_checkpoint
        self.recipe = recipe or arn_recipes.resolve(None, {})

    @property
    def leak(self) -> dict[str, Any] | None:
        """The adaptive options (ARN leaked to white-box PGD while it trains), else None."""
        if not self.config.adaptive:
            return None
        return {name.removeprefix("adaptive_"): value for name, value in self.config.to_dict().items()
                if name.startswith("adaptive_")}

    def plan(self, ctx: RunContext, pools: Pools | None) -> RunPlan:
        spec = {"dataset": ctx.dataset, "seen": self.seen, "steps": self.n_steps, "batch_size": self.batch_size,
                "pool": self.pool_size, "config": self.config.to_dict(), "target": ctx.require_target().fingerprint,
                "seed": ctx.seed}
        leak, named = self.leak, self.recipe.keyed_name
        if named:  # two recipes never share a run folder, even where their settings agree
            spec["recipe"] = named
        options = {"ablate": sorted(self.ablate), "width": self.width, "objective": self.objective,
                   "steps": self.n_steps, "recipe": self.recipe.recipe.name, **({"adaptive": leak} if leak else {})}
        tags = [tag for tag in (named, "adaptive" if leak else None) if tag]
        label = "_".join(["arn", *dict.fromkeys(tags), "+".join(self.seen)])
        return RunPlan(label=label, folder="-".join([ctx.dataset, "arn", *([named] if named else []), *self.seen]),
                       spec=spec, options=options, header={"adaptive": leak} if leak else {})

    def recipe_settings(self) -> dict[str, Any]:
        """The recipe's resolved settings: every option it could pin, as this run trains it."""
        config = self.config
        return {"steps": self.n_steps, "width": self.width, "objective": self.objective,
                "batch_size": self.batch_size, "learning_rate": config.learning_rate,
                "lr_schedule": config.lr_schedule, "guide_weight": config.guide_weight,
                "adaptive": config.adaptive, "overridden": list(self.recipe.overridden)}

    def fit(self, ctx: RunContext, folder: RunFolder, pools: Pools | None) -> FitResult:
        import keras

        from arnkit.defenses.arn.export import export_preprocessor

        assert pools is not None
        keras.utils.set_random_seed(ctx.seed)
        started = time.perf_counter()
        progress = ctx.progress
        progress.start(f"ARN on {ctx.dataset} (seen {','.join(self.seen)})", self.n_steps)
        loop = self._fit_tf if backend.is_tensorflow() else self._fit_stepped
        arn, start_step, history = loop(ctx, folder, pools)
        progress.finish()
        seconds = time.perf_counter() - started
        leak = self.leak
        record = {"adaptive": leak, "steps": self.n_steps, "resumed_from": start_step, "width": self.width,
                  "objective": self.objective, "ablate": list(self.ablate), "strategy": self.strategy,
                  "batch_size": self.batch_size, "config": self.config.to_dict(),
                  "recipe": self.recipe.recipe.name, "recipe_settings": self.recipe_settings()}
        return FitResult(export_preprocessor(arn), history, seconds, record)

    def _build(self, ctx: RunContext, pools: Pools, *, guided: bool) -> Any:
        from arnkit.defenses.arn.model import ARN

        return ARN(image_shape=ctx.info.shape, num_attacks=len(pools.keys), config=self.config,
                   guide=ctx.require_target().model if guided else None)

    def _fit_tf(self, ctx: RunContext, folder: RunFolder, pools: Pools) -> tuple[Any, int, dict[str, float]]:
        """The TensorFlow loop: `ARN.fit` in chunks under the tf.distribute strategy, a checkpoint after each."""
        import keras

        from arnkit.progress import keras_callback

        dist = make_strategy(self.strategy)
        with dist.scope():
            arn = self._build(ctx, pools, guided=self.config.guide_weight > 0 or self.config.adaptive)
            arn.compile()
        if self.resume and folder.checkpoint.exists():
            arn.restore_checkpoint(folder.checkpoint)
        start_step = arn.step
        ctx.progress.advance(start_step)
        resumed(ctx.progress, "step", start_step, self.n_steps, folder.checkpoint)
        batches = step_batches(pools.x_adv, pools.x_nat, batch_size=self.batch_size, seed=ctx.seed)
        callbacks = []
        if self.tensorboard:
            callbacks.append(keras.callbacks.TensorBoard(log_dir=str(folder.path / "tensorboard")))
        forward = keras_callback(_NoStartStop(ctx.progress), "", self.n_steps)
        history: dict[str, float] = {}
        step = start_step
        while step < self.n_steps:
            chunk = min(self.checkpoint_every, self.n_steps - step)
            fit = arn.fit(batches(step), epochs=1, steps_per_epoch=chunk, verbose=0, shuffle=False,
                          callbacks=[forward, *callbacks])
            history = {k: float(v[-1]) for k, v in fit.history.items()}
            step = arn.step
            arn.save_checkpoint(folder.checkpoint)
            if self.on_checkpoint is not None:
                self.on_checkpoint(step, arn)
        arn.use_averaged_weights()  # after the last checkpoint, which keeps the raw weights to resume from
        return arn, start_step, history

    def _fit_stepped(self, ctx: RunContext, folder: RunFolder, pools: Pools) -> tuple[Any, int, dict[str, float]]:
        """The JAX and torch loop: `trainer_for` (JAX: one jitted step, DataParallel over local devices with
        --strategy dataparallel; torch: autograd), numpy batches that are a pure function of (seed, step), a
        checkpoint every `checkpoint_every` steps."""
        from arnkit.defenses.arn import data_parallel, trainer_for

        if self.strategy == "dataparallel":
            data_parallel()
        arn = self._build(ctx, pools, guided=self.config.guide_weight > 0)
        arn.compile()
        if self.resume and folder.checkpoint.exists():
            arn.restore_checkpoint(folder.checkpoint)
        trainer = trainer_for(arn, seed=ctx.seed)
        start_step = trainer.step
        ctx.progress.advance(start_step)
        resumed(ctx.progress, "step", start_step, self.n_steps, folder.checkpoint)
        batch = numpy_batches(pools.x_adv, pools.x_nat, batch_size=self.batch_size, seed=ctx.seed)
        history: dict[str, float] = {}
        while trainer.step < self.n_steps:
            chunk = min(self.checkpoint_every, self.n_steps - trainer.step)
            logs = trainer.fit(batch, chunk, on_step=lambda _step, values: ctx.progress.advance(
                1, **{k: values[k] for k in ("e_loss", "g_loss", "mse")}))
            history = logs[-1]
            trainer.sync()
            arn.save_checkpoint(folder.checkpoint)
            if self.on_checkpoint is not None:
                self.on_checkpoint(trainer.step, arn)
        arn.use_averaged_weights()
        return arn, start_step, history

    def export(self, model: Any, path: Path, plan: RunPlan, ctx: RunContext) -> None:
        from arnkit.defenses.files import save_defense_file

        save_defense_file(model, path, key="arn", kind="preprocessor", dataset=ctx.dataset, seen=self.seen,
                          **plan.header)

    def as_defense(self, model: Any, path: Path) -> Any:
        from arnkit.runs.defense import Defense

        return Defense("arn", "preprocessor", model)


def train_defense(
    dataset: str = "mnist",
    seen: str | list[str] | None = None,
    *,
    steps: int | None = None,
    width: str | None = None,
    objective: str | None = None,
    batch_size: int | None = None,
    pool_size: int | None = None,
    ablate: tuple[str, ...] = (),
    strategy: str = "default",
    checkpoint_every: int = 250,
    resume: bool = True,
    eval_limit: int = 1000,
    tensorboard: bool = False,
    seed: int = 0,
    workspace: str | Path | None = None,
    progress: Progress | None = None,
    learning_rate: float | None = None,
    lr_schedule: str | None = None,
    guide_weight: float | None = None,
    adaptive: bool | None = None,
    config_overrides: dict[str, Any] | None = None,
    on_checkpoint: Callable[[int, Any], None] | None = None,
    context: RunContext | None = None,
    recipe: str | None = None,
) -> dict[str, Any]:
    """Train ARN on the dataset with the seen attacks; return the run record (paths, losses, errors).

    `lr_schedule`: "constant" or "cosine" (decay to 0 over `steps`); None = the dataset's default.
    `width`: a preset name; None = the dataset's preset (`arnkit.presets`).
    `guide_weight` > 0 adds the logit-guided term (beyond the paper, `ARNConfig.guide_weight`), guided by the
    workspace's target; None = the dataset's preset for the paper objective, 0 = the paper.
    `adaptive`: beyond the paper, leak the defense to white-box PGD while it trains, with the dataset's
    `presets.AdaptivePreset` (`ARNConfig.adaptive_*`; config_overrides may set any of them).
    `config_overrides` sets any other `ARNConfig` field (e.g. learning_rate, include_natural; the levers
    generator="residual_unet" and, with `adaptive`, adaptive_families="pgd_linf,flow", whose budgets are then
    the dataset's).
    `on_checkpoint(step, arn)` is called after each checkpoint is written (benchmarks evaluate snapshots
    there; with a constant learning rate the snapshot at step s is the run of s steps).
    `context`: the command's run context (else one is built from dataset, workspace, seed and progress).
    `recipe`: a row of `arnkit.defenses.arn_recipes` (None = its DEFAULT_RECIPE); the options above that are
    not None override the recipe's values, which override the dataset's preset."""
    chosen = arn_recipes.resolve(recipe, {"steps": steps, "width": width, "objective": objective,
                                          "batch_size": batch_size, "learning_rate": learning_rate,
                                          "lr_schedule": lr_schedule, "guide_weight": guide_weight,
                                          "adaptive": adaptive}, config_overrides)
    arn_recipes.check_backend(chosen.recipe, backend.name())
    ctx = context or RunContext.build(dataset, workspace=workspace, seed=seed, progress=progress)
    meta = ctx.info
    keys = parse_seen(ctx, seen)
    pool = ctx.preset.pool if pool_size is None else int(pool_size)
    eval_limit = min(int(eval_limit), meta.split_sizes.get("test", eval_limit)) if eval_limit else 0
    unknown = set(ablate) - set(ABLATABLE)
    if unknown:
        raise ArnkitError(f"--ablate takes adv, nor, att; got {', '.join(sorted(unknown))}")
    check_backend_options(strategy, adaptive=bool(chosen.options.get("adaptive")))
    config, width, n_steps, batch_size = recipe_config(ctx, chosen, ablate=ablate)
    objective = chosen.options.get("objective") or "paper"
    step = ARNFitStep(seen=keys, n_steps=n_steps, width=width, objective=objective, config=config,
                      batch_size=batch_size, pool_size=pool, ablate=ablate, strategy=strategy,
                      checkpoint_every=checkpoint_every, resume=resume, eval_limit=eval_limit,
                      tensorboard=tensorboard, on_checkpoint=on_checkpoint, recipe=chosen)
    return run_training(ctx, step)


class _NoStartStop:
    """Forward step advances to a progress bar that the caller opened (one bar across fit chunks)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def start(self, task: str, total: int | None) -> None:
        pass

    def advance(self, amount: int = 1, **info: float) -> None:
        self.progress.advance(amount, **info)

    def finish(self) -> None:
        pass
