"""`arnkit train`: the config-free ARN run. Trains the target if missing, crafts the seen-attack pools if
missing, trains ARN with periodic atomic checkpoints (resumable), exports the pre-processor, and reports
clean and seen-attack error with and without the defense on held-out test images (gray-box)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import arnkit
from arnkit import adversarial_store, backend, data, presets, runtime
from arnkit import attacks as attack_registry
from arnkit.errors import ArnkitError
from arnkit.io import write_json_atomic
from arnkit.progress import NullProgress, Progress
from arnkit.workspace import Workspace

DEFAULT_BATCH = 64
# Every other per-dataset default (seen attacks, pool, steps, learning rate, width, guidance) is data in
# arnkit.presets.
STRATEGIES = ("default", "mirrored", "multiworker", "dataparallel")  # the last is JAX's


def parse_seen(seen: str | list[str] | tuple[str, ...] | None, dataset: str) -> list[str]:
    if seen is None:
        keys = list(presets.get(dataset).seen)
    elif isinstance(seen, str):
        keys = [part.strip().lower() for part in seen.split(",") if part.strip()]
    else:
        keys = [str(k).lower() for k in seen]
    if not keys:
        raise ArnkitError("--seen needs at least 1 seen attack, e.g. --seen pgd_n,pgd_t")
    for key in keys:
        attack_registry.for_dataset(key, dataset)  # unknown, or a patch of another dataset -> one line
    if len(set(keys)) != len(keys):
        raise ArnkitError(f"--seen lists an attack twice: {','.join(keys)}")
    return keys


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


def seen_pools(dataset: str, seen: list[str], *, pool_size: int, seed: int, workspace: Path,
               progress: Progress) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(x_adv (N, K, H, W, C), x_nat (N, H, W, C), pool paths): each seen attack crafted once over the first
    `pool_size` training images against the target, cached as HDF5, aligned by dataset index."""
    from arnkit.pipeline.attack import craft

    x_train, _, meta = data.load_arrays(dataset, "train", data_dir=workspace / "data")
    pools, paths, indices = [], [], None
    for key in seen:
        record = craft(dataset, key, split="train", limit=pool_size, seed=seed, workspace=workspace,
                       progress=progress)
        adv = adversarial_store.load(record["path"], dataset=dataset, target_fingerprint=record["target_fingerprint"])
        if adv.x_adv.shape[1:] != tuple(meta.shape):
            raise ArnkitError(f"pool {key} has images of shape {adv.x_adv.shape[1:]}, the dataset {meta.shape}; "
                              "delete the pool file and rerun")
        if indices is not None and not np.array_equal(indices, adv.indices):
            raise ArnkitError(f"pool {key} covers other training images than {seen[0]}; use the same --pool-size")
        indices = adv.indices
        pools.append(adv.x_adv)
        paths.append(record["path"])
    return np.stack(pools, axis=1), x_train[indices], paths


def train(dataset: str = "mnist", defense: str = "arn", *, seed: int = 0, workspace: str | Path | None = None,
          progress: Progress | None = None, **options: Any) -> dict[str, Any]:
    """`arnkit train`: any registry recipe (ARN by default) with its own defaults. `options` are the recipe's
    (`DefenseRecipe.options`); None means "not given". One that does not apply to the recipe is refused in one
    line, with the command-line flags it does take, before any work starts."""
    from arnkit.defenses import registry

    recipe = registry.get(defense)
    given = {name: value for name, value in options.items() if value is not None}
    if given.get("adaptive") is False:
        given.pop("adaptive")  # the flag's off position applies to every recipe
    if given.get("adaptive") and recipe.kind == "classifier":
        raise ArnkitError(f"--adaptive leaks a pre-processor to white-box attacks while it trains; {recipe.key} is a "
                          "robust classifier, adversarially trained on its own attacks already: drop --adaptive")
    misplaced = sorted(set(given) - set(recipe.options))
    if misplaced:
        def flags(names: Any) -> str:
            return ", ".join("--" + name.replace("_", "-") for name in names)
        takes = [name for name in recipe.options if name in CLI_OPTIONS]
        raise ArnkitError(f"{flags(misplaced)} do not apply to --defense {recipe.key}; it takes {flags(takes)}")
    return recipe.train(dataset, workspace=workspace, seed=seed, progress=progress, **given).to_dict()


# The recipe options `arnkit train` exposes as flags (the rest are for library callers and benchmarks).
CLI_OPTIONS = ("seen", "steps", "width", "objective", "batch_size", "pool_size", "ablate", "strategy", "resume",
               "learning_rate", "lr_schedule", "guide_weight", "eval_limit", "tensorboard", "epochs", "eps",
               "attack_steps", "step_size", "train_limit", "roa", "guide_layer", "adaptive")


def train_defense(
    dataset: str = "mnist",
    seen: str | list[str] | None = None,
    *,
    steps: int | None = None,
    width: str | None = None,
    objective: str = "paper",
    batch_size: int = DEFAULT_BATCH,
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
    adaptive: bool = False,
    config_overrides: dict[str, Any] | None = None,
    on_checkpoint: Callable[[int, Any], None] | None = None,
) -> dict[str, Any]:
    """Train ARN on the dataset with the seen attacks; return the run record (paths, losses, errors).

    `lr_schedule`: "constant" or "cosine" (decay to 0 over `steps`); None = the dataset's default.
    `width`: a preset name; None = the dataset's preset (`arnkit.presets`).
    `guide_weight` > 0 adds the logit-guided term (beyond the paper, `ARNConfig.guide_weight`), guided by the
    workspace's target; None = the dataset's preset for the paper objective, 0 = the paper.
    `adaptive`: beyond the paper, leak the defense to white-box PGD while it trains, with the dataset's
    `presets.AdaptivePreset` (`ARNConfig.adaptive_*`; config_overrides may set any of them).
    `config_overrides` sets any other `ARNConfig` field (e.g. learning_rate, include_natural).
    `on_checkpoint(step, arn)` is called after each checkpoint is written (benchmarks evaluate snapshots
    there; with a constant learning rate the snapshot at step s is the run of s steps)."""
    import keras

    from arnkit.defenses.arn import ARN, ARNConfig, export_preprocessor
    from arnkit.defenses.files import save_defense_file
    from arnkit.fingerprint import model_fingerprint
    from arnkit.pipeline.target import ensure_target

    progress = progress or NullProgress()
    meta = data.info(dataset)
    ws = Workspace.resolve(workspace)
    keys = parse_seen(seen, meta.name)
    preset = presets.get(meta.name)
    n_steps = preset.arn.steps if steps is None else int(steps)
    if n_steps < 1:
        raise ArnkitError(f"--steps must be >= 1, got {n_steps}")
    pool = preset.pool if pool_size is None else int(pool_size)
    eval_limit = min(int(eval_limit), meta.split_sizes.get("test", eval_limit)) if eval_limit else 0
    unknown = set(ablate) - {"adv", "nor", "att"}
    if unknown:
        raise ArnkitError(f"--ablate takes adv, nor, att; got {', '.join(sorted(unknown))}")
    check_backend_options(strategy, adaptive=adaptive)
    # The preset's ARN schedule applies to the paper objective; the reference objective keeps its own.
    paper = objective == "paper"
    overrides = dict(config_overrides or {})
    if learning_rate is not None:
        overrides["learning_rate"] = float(learning_rate)
    elif paper and preset.arn.learning_rate is not None:
        overrides.setdefault("learning_rate", preset.arn.learning_rate)
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
    if overrides.get("lr_schedule", "constant") != "constant":
        # The schedule spans this run; it is part of the config, so of the run's id and its checkpoints.
        overrides.setdefault("lr_decay_steps", n_steps)
    config = ARNConfig.for_dataset(meta.name if meta.name != "synthetic" else "mnist", objective=objective,
                                   preset=width, seed=seed, **{f"use_{term}": False for term in ablate},
                                   **overrides)

    # Wall seconds of each phase of this call (a cached artifact costs its load time only).
    phases: dict[str, float] = {}
    clock = time.perf_counter()
    target, target_record = ensure_target(meta.name, workspace=ws.root, progress=progress)
    phases["target"], clock = time.perf_counter() - clock, time.perf_counter()
    x_adv, x_nat, pool_paths = seen_pools(meta.name, keys, pool_size=pool, seed=seed, workspace=ws.root,
                                          progress=progress)
    phases["pools"], clock = time.perf_counter() - clock, time.perf_counter()
    spec = {"dataset": meta.name, "seen": keys, "steps": n_steps, "batch_size": batch_size, "pool": pool,
            "config": config.to_dict(), "target": target_record.fingerprint, "seed": seed}
    run_dir = ws.artifact("defenses", f"{meta.name}-arn-{'-'.join(keys)}", spec, "d")
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = run_dir / "checkpoint.npz"
    defense_path = run_dir / "arn.keras"
    record_path = run_dir / "record.json"
    if defense_path.exists() and record_path.exists():
        record = json.loads(record_path.read_text())
        record["reused"] = True
        return record

    keras.utils.set_random_seed(seed)
    started = time.perf_counter()
    progress.start(f"ARN on {meta.name} (seen {','.join(keys)})", n_steps)
    if backend.is_tensorflow():
        arn, start_step, history = _train_tf(
            ARN, meta, keys, config, target, strategy=strategy, checkpoint=checkpoint, resume=resume,
            x_adv=x_adv, x_nat=x_nat, batch_size=batch_size, seed=seed, n_steps=n_steps,
            checkpoint_every=checkpoint_every, tensorboard=tensorboard, run_dir=run_dir, progress=progress,
            on_checkpoint=on_checkpoint)
    else:
        arn, start_step, history = _train_stepped(
            ARN, meta, keys, config, target, strategy=strategy, checkpoint=checkpoint, resume=resume,
            x_adv=x_adv, x_nat=x_nat, batch_size=batch_size, seed=seed, n_steps=n_steps,
            checkpoint_every=checkpoint_every, progress=progress, on_checkpoint=on_checkpoint)
    progress.finish()
    train_seconds = time.perf_counter() - started
    phases["arn"], clock = time.perf_counter() - clock, time.perf_counter()

    preprocessor = export_preprocessor(arn)
    leak = {name.removeprefix("adaptive_"): value for name, value in config.to_dict().items()
            if name.startswith("adaptive_")} if config.adaptive else None
    save_defense_file(preprocessor, defense_path, key="arn", kind="preprocessor", dataset=meta.name, seen=keys,
                      **({"adaptive": leak} if leak else {}))
    fingerprint = model_fingerprint(preprocessor)
    evaluation, report = evaluate_gray_box(meta.name, keys, preprocessor, limit=eval_limit, seed=seed,
                                           workspace=ws.root, progress=progress, fingerprint=fingerprint)
    phases["report"] = time.perf_counter() - clock
    record = {
        "key": "arn", "kind": "preprocessor", "label": f"arn{'_adaptive' if leak else ''}_{'+'.join(keys)}",
        "dataset": meta.name, "seen": keys,
        "options": {"ablate": sorted(ablate), "width": width, "objective": objective, "steps": n_steps,
                    **({"adaptive": leak} if leak else {})},
        "adaptive": leak, "steps": n_steps, "resumed_from": start_step, "width": width,
        "objective": objective, "ablate": list(ablate), "strategy": strategy, "batch_size": batch_size,
        "pool_size": int(len(x_nat)), "pools": pool_paths, "defense_path": str(defense_path),
        "defense_fingerprint": fingerprint, "target_fingerprint": target_record.fingerprint,
        "target_path": target_record.path, "config": config.to_dict(), "final_losses": history,
        "train_seconds": round(train_seconds, 2), "seed": seed, "arnkit_version": arnkit.__version__,
        "evaluation": evaluation, "reused": False,
        "phase_seconds": {name: round(seconds, 2) for name, seconds in phases.items()},
        "runtime": runtime.describe(),
        "target_clean_error": evaluation["clean"]["none"] / 100.0,
        "evaluation_files": report["files"],
    }
    write_json_atomic(record_path, record)
    return record


def _train_tf(ARN, meta, keys, config, target, *, strategy, checkpoint, resume, x_adv, x_nat, batch_size, seed,
              n_steps, checkpoint_every, tensorboard, run_dir, progress, on_checkpoint):
    """The TensorFlow loop: `ARN.fit` in chunks under the tf.distribute strategy, a checkpoint after each."""
    import keras

    from arnkit.progress import keras_callback

    dist = make_strategy(strategy)
    with dist.scope():
        arn = ARN(image_shape=meta.shape, num_attacks=len(keys), config=config,
                  guide=target if config.guide_weight > 0 or config.adaptive else None)
        arn.compile()
    if resume and checkpoint.exists():
        arn.restore_checkpoint(checkpoint)
    start_step = arn.step
    progress.advance(start_step)
    batches = step_batches(x_adv, x_nat, batch_size=batch_size, seed=seed)
    callbacks = []
    if tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(run_dir / "tensorboard")))
    forward = keras_callback(_NoStartStop(progress), "", n_steps)
    history: dict[str, float] = {}
    step = start_step
    while step < n_steps:
        chunk = min(checkpoint_every, n_steps - step)
        fit = arn.fit(batches(step), epochs=1, steps_per_epoch=chunk, verbose=0, shuffle=False,
                      callbacks=[forward, *callbacks])
        history = {k: float(v[-1]) for k, v in fit.history.items()}
        step = arn.step
        arn.save_checkpoint(checkpoint)
        if on_checkpoint is not None:
            on_checkpoint(step, arn)
    return arn, start_step, history


def _train_stepped(ARN, meta, keys, config, target, *, strategy, checkpoint, resume, x_adv, x_nat, batch_size,
                   seed, n_steps, checkpoint_every, progress, on_checkpoint):
    """The JAX and torch loop: `trainer_for` (JAX: one jitted step, DataParallel over local devices with
    --strategy dataparallel; torch: autograd), numpy batches that are a pure function of (seed, step), a
    checkpoint every `checkpoint_every` steps."""
    from arnkit.defenses.arn import data_parallel, trainer_for

    if strategy == "dataparallel":
        data_parallel()
    arn = ARN(image_shape=meta.shape, num_attacks=len(keys), config=config,
              guide=target if config.guide_weight > 0 else None)
    arn.compile()
    if resume and checkpoint.exists():
        arn.restore_checkpoint(checkpoint)
    trainer = trainer_for(arn, seed=seed)
    start_step = trainer.step
    progress.advance(start_step)
    batch = numpy_batches(x_adv, x_nat, batch_size=batch_size, seed=seed)
    history: dict[str, float] = {}
    while trainer.step < n_steps:
        chunk = min(checkpoint_every, n_steps - trainer.step)
        logs = trainer.fit(batch, chunk, on_step=lambda _step, values: progress.advance(
            1, **{k: values[k] for k in ("e_loss", "g_loss", "mse")}))
        history = logs[-1]
        trainer.sync()
        arn.save_checkpoint(checkpoint)
        if on_checkpoint is not None:
            on_checkpoint(trainer.step, arn)
    return arn, start_step, history


def numpy_batches(x_adv: np.ndarray, x_nat: np.ndarray, *, batch_size: int, seed: int):
    """`batch(step)` -> (x_adv, x_nat) for the JAX and torch loop: epoch e = step // steps_per_epoch is a
    permutation seeded by (seed, e), so a resumed run sees the batches an uninterrupted one would."""
    n = len(x_nat)
    if n < batch_size:
        raise ArnkitError(f"the pools hold {n} images, fewer than --batch-size {batch_size}; lower --batch-size")
    per_epoch = n // batch_size

    def batch(step: int):
        epoch, within = divmod(int(step), per_epoch)
        idx = np.random.default_rng([int(seed), epoch]).permutation(n)[within * batch_size:(within + 1) * batch_size]
        return x_adv[idx], x_nat[idx]

    return batch


def step_batches(x_adv: np.ndarray, x_nat: np.ndarray, *, batch_size: int, seed: int):
    """`batches(start)`: a tf.data.Dataset of training batches from step `start` on, where batch s is a pure
    function of (seed, s): epoch e = s // steps_per_epoch uses a stateless permutation seeded by (seed, e).
    So a resumed run sees exactly the batches an uninterrupted one would (tf.data's reshuffling shuffle
    draws a new order for every new iterator, which breaks that)."""
    import tensorflow as tf

    n = len(x_nat)
    if n < batch_size:
        raise ArnkitError(f"the pools hold {n} images, fewer than --batch-size {batch_size}; lower --batch-size")
    per_epoch = n // batch_size
    adv_t, nat_t = tf.constant(x_adv, tf.float32), tf.constant(x_nat, tf.float32)

    def batch(step):
        epoch, within = step // per_epoch, step % per_epoch
        keys = tf.random.stateless_uniform([n], seed=tf.stack([tf.cast(seed, tf.int64), epoch]))
        idx = tf.argsort(keys)[within * batch_size:(within + 1) * batch_size]
        return {"adversarial": tf.gather(adv_t, idx), "natural": tf.gather(nat_t, idx)}

    def batches(start: int):
        return tf.data.Dataset.range(int(start), 2**62).map(batch).prefetch(2)

    return batches


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


def evaluate_gray_box(dataset: str, attack_keys: list[str], preprocessor: Any, *, limit: int, seed: int,
                      workspace: Path, progress: Progress, fingerprint: str | None = None
                      ) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """ARN's closing report (`arnkit.pipeline.evaluate.closing_report`) for a pre-processor:
    ({row: {"none": error %, "arn": error %}}, the evaluation record)."""
    from arnkit.defenses.base import Defense
    from arnkit.fingerprint import model_fingerprint
    from arnkit.pipeline.evaluate import ResolvedDefense, closing_report

    defense = ResolvedDefense(Defense("arn", "preprocessor", preprocessor), fingerprint or model_fingerprint(preprocessor),
                              list(attack_keys))
    return closing_report(dataset, attack_keys, defense, limit=limit, seed=seed, workspace=workspace,
                          progress=progress)
