"""The training run shared by the pre-processor baselines (APE-GAN, HGD): an image-to-image network learns to
map the seen-attack pools back to their natural images. The pools are ARN's own (`pipeline.train.seen_pools`),
so no attack is crafted twice, and the batches are ARN's (`step_batches`: batch s is a pure function of
(seed, s)). Every variable, optimizer slots included, is checkpointed atomically, so a resumed run repeats an
uninterrupted one.

A baseline supplies `build(meta, target, seed) -> PairTrainer`: the exported pre-processor, the variables a
checkpoint holds, and one training step on (adversarial, natural) batches.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import arnkit
from arnkit import data, presets, runtime
from arnkit.errors import ArnkitError
from arnkit.io import atomic_path, write_json_atomic
from arnkit.progress import NullProgress, Progress
from arnkit.workspace import Workspace


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


def train_pair_defense(key: str, dataset: str, build: Callable[[Any, Any, int], PairTrainer], *,
                       seen: str | list[str] | None, steps: int, batch_size: int, pool_size: int | None,
                       options: dict[str, Any], checkpoint_every: int = 250, resume: bool = True,
                       eval_limit: int = 1000, seed: int = 0, workspace: str | Path | None = None,
                       progress: Progress | None = None) -> dict[str, Any]:
    """Train the `key` pre-processor on the seen pools of `dataset`; export it; return its run record.
    `options` (the recipe's own settings) are recorded and key the run folder."""
    import keras
    import tensorflow as tf

    from arnkit.defenses.base import Defense
    from arnkit.defenses.files import save_defense_file
    from arnkit.fingerprint import model_fingerprint
    from arnkit.pipeline.evaluate import ResolvedDefense, closing_report
    from arnkit.pipeline.target import ensure_target
    from arnkit.pipeline.train import parse_seen, seen_pools, step_batches

    progress = progress or NullProgress()
    meta = data.info(dataset)
    ws = Workspace.resolve(workspace)
    keys = parse_seen(seen, meta.name)
    if int(steps) < 1:
        raise ArnkitError(f"{key} needs steps >= 1, got {steps}")
    if int(batch_size) < 1:
        raise ArnkitError(f"{key} needs batch_size >= 1, got {batch_size}")
    pool = presets.get(meta.name).pool if pool_size is None else int(pool_size)

    phases: dict[str, float] = {}
    clock = time.perf_counter()
    target, target_record = ensure_target(meta.name, workspace=ws.root, progress=progress)
    keras.utils.set_random_seed(seed)
    trainer = build(meta, target, seed)  # before the pools: a bad option fails before any crafting
    phases["target"], clock = time.perf_counter() - clock, time.perf_counter()
    x_adv, x_nat, pool_paths = seen_pools(meta.name, keys, pool_size=pool, seed=seed, workspace=ws.root,
                                          progress=progress)
    phases["pools"], clock = time.perf_counter() - clock, time.perf_counter()
    spec = {"dataset": meta.name, "defense": key, "seen": keys, "steps": int(steps), "batch_size": int(batch_size),
            "pool": pool, "target": target_record.fingerprint, "seed": seed, **options}
    run_dir = ws.artifact("defenses", f"{meta.name}-{key}-{'-'.join(keys)}", spec, "d")
    run_dir.mkdir(parents=True, exist_ok=True)
    defense_path, record_path, checkpoint = run_dir / f"{key}.keras", run_dir / "record.json", run_dir / "checkpoint.npz"
    if defense_path.exists() and record_path.exists():
        return {**json.loads(record_path.read_text()), "reused": True}

    start = _restore(trainer.variables, checkpoint) if resume and checkpoint.exists() else 0
    batches = step_batches(x_adv, x_nat, batch_size=int(batch_size), seed=seed)
    step_fn = tf.function(trainer.step, reduce_retracing=True)
    started = time.perf_counter()
    progress.start(f"{key.upper()} on {meta.name} (seen {','.join(keys)})", int(steps))
    progress.advance(start)
    losses: dict[str, float] = {}
    step = start
    for batch in batches(start):
        if step >= int(steps):
            break
        adv, nat = flatten_pairs(batch)
        out = step_fn(adv, nat)
        step += 1
        losses = {name: float(value) for name, value in out.items()}
        progress.advance(1, **losses)
        if step % checkpoint_every == 0 or step == int(steps):
            _save(trainer.variables, checkpoint, step)
    progress.finish()
    phases[key], clock = time.perf_counter() - started, time.perf_counter()

    preprocessor = trainer.preprocessor
    save_defense_file(preprocessor, defense_path, key=key, kind="preprocessor", dataset=meta.name, seen=keys)
    fingerprint = model_fingerprint(preprocessor)
    resolved = ResolvedDefense(Defense(key, "preprocessor", preprocessor), fingerprint, keys, str(defense_path))
    evaluation, report = closing_report(meta.name, keys, resolved, limit=eval_limit, seed=seed, workspace=ws.root,
                                        progress=progress)
    phases["report"] = time.perf_counter() - clock
    record = {
        "key": key, "kind": "preprocessor", "label": f"{key}_{'+'.join(keys)}", "dataset": meta.name, "seen": keys,
        "options": {"steps": int(steps), "batch_size": int(batch_size), **options},
        "pool_size": int(len(x_nat)), "pools": pool_paths, "defense_path": str(defense_path),
        "defense_fingerprint": fingerprint, "target_fingerprint": target_record.fingerprint,
        "target_path": target_record.path, "seed": seed, "arnkit_version": arnkit.__version__,
        "resumed_from": start, "final_losses": losses, "train_seconds": round(phases[key], 2),
        "phase_seconds": {k: round(v, 2) for k, v in phases.items()}, "runtime": runtime.describe(),
        "evaluation": evaluation, "evaluation_files": report["files"], "reused": False,
    }
    write_json_atomic(record_path, record)
    return record


def _save(variables: list[Any], path: Path, step: int) -> None:
    arrays = {f"v{i}": np.asarray(v) for i, v in enumerate(variables)}
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, step=np.int64(step), **arrays)


def _restore(variables: list[Any], path: Path) -> int:
    try:
        with np.load(path) as saved:
            if len(saved.files) - 1 != len(variables):
                raise ValueError(f"{len(saved.files) - 1} arrays for {len(variables)} variables")
            for i, variable in enumerate(variables):
                variable.assign(saved[f"v{i}"])
            return int(saved["step"])
    except (OSError, KeyError, ValueError) as exc:
        raise ArnkitError(f"checkpoint {path} is unreadable ({exc}); delete it to start over, or pass "
                          "resume=False") from None


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
