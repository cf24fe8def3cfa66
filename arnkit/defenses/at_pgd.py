"""AT_PGD, the paper's adversarial-training baseline (Madry et al., ICLR 2018): the robust classifier is the
defense. arnkit fine-tunes the workspace target on untargeted L-inf PGD examples crafted against the model's
current weights at every batch (min-max training), which is the same game started from a clean solution, and
cheaper on CPUs than training from scratch.

    record = registry.get("at_pgd").train("mnist", workspace=ws)     # or `arnkit train --defense at_pgd`
    defense = registry.load_record(record)                          # kind "classifier": protect() is itself

Training is resumable: weights and optimizer state are checkpointed atomically after every epoch, and batch
order and PGD starts are pure functions of (seed, epoch, batch), so a resumed run repeats an uninterrupted one.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

import arnkit
from arnkit import data, presets, runtime
from arnkit.errors import ArnkitError
from arnkit.io import atomic_path, write_json_atomic
from arnkit.progress import NullProgress, Progress
from arnkit.workspace import Workspace

SEEN = ("pgd_n",)  # the attack it trains on, for the seen/unseen split of the tables


def train_at_pgd(dataset: str = "mnist", *, epochs: int | None = None, eps: float | None = None,
                 steps: int | None = None, step_size: float | None = None, train_limit: int = 0,
                 eval_limit: int = 1000, resume: bool = True, seed: int = 0, workspace: str | Path | None = None,
                 progress: Progress | None = None) -> dict[str, Any]:
    """Fine-tune the workspace target with PGD adversarial training; export it; return the run record.

    Defaults come from `arnkit.presets` (`at_pgd`); `train_limit` uses the first N training images (0 = all)."""
    import keras
    import tensorflow as tf

    from arnkit.attacks.pgd import sign_gradient_descent
    from arnkit.defenses.base import Defense
    from arnkit.defenses.files import save_defense_file
    from arnkit.fingerprint import model_fingerprint
    from arnkit.pipeline.evaluate import ResolvedDefense, closing_report
    from arnkit.pipeline.target import _optimizer, ensure_target

    progress = progress or NullProgress()
    meta = data.info(dataset)
    ws = Workspace.resolve(workspace)
    preset = presets.get(meta.name).at_pgd
    n_epochs = preset.recipe.epochs if epochs is None else int(epochs)
    eps = preset.eps if eps is None else float(eps)
    n_steps = preset.steps if steps is None else int(steps)
    step_size = preset.step_size if step_size is None else float(step_size)
    if n_epochs < 1 or n_steps < 1:
        raise ArnkitError(f"AT_PGD needs epochs >= 1 and steps >= 1, got {n_epochs} and {n_steps}")
    if not 0.0 < eps <= 1.0 or not step_size > 0.0:
        raise ArnkitError(f"AT_PGD eps must be in (0, 1] and the step size > 0, got {eps} and {step_size}")
    if int(train_limit) < 0:
        raise ArnkitError(f"train_limit must be >= 0 (0 = the whole split), got {train_limit}")

    phases: dict[str, float] = {}
    clock = time.perf_counter()
    target, target_record = ensure_target(meta.name, workspace=ws.root, progress=progress)
    phases["target"], clock = time.perf_counter() - clock, time.perf_counter()
    options = {"epochs": n_epochs, "eps": eps, "steps": n_steps, "step_size": step_size,
               "train_limit": int(train_limit), "recipe": preset.recipe.to_dict()}
    spec = {"dataset": meta.name, "defense": "at_pgd", "target": target_record.fingerprint, "seed": seed, **options}
    run_dir = ws.artifact("defenses", f"{meta.name}-at_pgd", spec, "d")
    run_dir.mkdir(parents=True, exist_ok=True)
    defense_path, record_path, checkpoint = run_dir / "at_pgd.keras", run_dir / "record.json", run_dir / "checkpoint.npz"
    if defense_path.exists() and record_path.exists():
        return {**json.loads(record_path.read_text()), "reused": True}

    x, y, _ = data.load_arrays(meta.name, "train", limit=int(train_limit) or None, data_dir=ws.data_dir)
    batch = preset.recipe.batch_size
    per_epoch = int(np.ceil(len(x) / batch))
    keras.utils.set_random_seed(seed)
    model = keras.models.clone_model(target)
    model.set_weights(target.get_weights())
    model.compile(optimizer=_optimizer(preset.recipe, n_epochs * per_epoch),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    start_epoch = _restore(model, checkpoint) if resume and checkpoint.exists() else 0

    started = time.perf_counter()
    progress.start(f"AT_PGD on {meta.name} (PGD-{n_steps}, eps {eps:.4g})", n_epochs * per_epoch)
    progress.advance(start_epoch * per_epoch)
    logs: dict[str, float] = {}
    for epoch in range(start_epoch, n_epochs):
        order = np.random.default_rng([seed, epoch]).permutation(len(x))
        for b in range(per_epoch):
            idx = order[b * batch:(b + 1) * batch]
            xb, yb = x[idx], y[idx].astype(np.int32)
            noise = np.random.default_rng([seed, epoch, b]).uniform(-eps, eps, xb.shape).astype(np.float32)
            x_start = np.clip(xb + noise, 0.0, 1.0)
            x_adv = sign_gradient_descent(model, tf.constant(xb), tf.constant(x_start), tf.constant(yb), eps=eps,
                                          step_size=step_size, steps=n_steps, ascend=True)
            out = model.train_on_batch(x_adv, yb, return_dict=True)
            logs = {k: float(v) for k, v in out.items()}
            progress.advance(1, **logs)
        _save(model, checkpoint, epoch + 1)
    progress.finish()
    phases["at_pgd"], clock = time.perf_counter() - started, time.perf_counter()

    fingerprint = model_fingerprint(model)
    save_defense_file(model, defense_path, key="at_pgd", kind="classifier", dataset=meta.name, seen=list(SEEN))
    resolved = ResolvedDefense(Defense("at_pgd", "classifier", model), fingerprint, list(SEEN), str(defense_path))
    evaluation, report = closing_report(meta.name, list(SEEN), resolved, limit=eval_limit, seed=seed,
                                        workspace=ws.root, progress=progress)
    phases["report"] = time.perf_counter() - clock
    record = {
        "key": "at_pgd", "kind": "classifier", "dataset": meta.name, "seen": list(SEEN), "options": options,
        "defense_path": str(defense_path), "defense_fingerprint": fingerprint,
        "target_fingerprint": target_record.fingerprint, "target_path": target_record.path, "seed": seed,
        "arnkit_version": arnkit.__version__, "resumed_from_epoch": start_epoch, "final_losses": logs,
        "train_seconds": round(phases["at_pgd"], 2), "phase_seconds": {k: round(v, 2) for k, v in phases.items()},
        "runtime": runtime.describe(), "evaluation": evaluation, "evaluation_files": report["files"],
        "reused": False,
    }
    write_json_atomic(record_path, record)
    return record


def _save(model: Any, path: Path, epoch: int) -> None:
    """Weights, optimizer state and the epoch count, in one atomic file."""
    arrays = {f"w{i}": np.asarray(w) for i, w in enumerate(model.get_weights())}
    arrays.update({f"o{i}": np.asarray(v) for i, v in enumerate(model.optimizer.variables)})
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, epoch=np.int64(epoch), **arrays)


def _restore(model: Any, path: Path) -> int:
    try:
        with np.load(path) as saved:
            weights = [saved[f"w{i}"] for i in range(len(model.get_weights()))]
            model.set_weights(weights)
            model.optimizer.build(model.trainable_variables)
            for i, variable in enumerate(model.optimizer.variables):
                variable.assign(saved[f"o{i}"])
            return int(saved["epoch"])
    except (OSError, KeyError, ValueError) as exc:
        raise ArnkitError(f"AT_PGD checkpoint {path} is unreadable ({exc}); delete it to start over, or pass "
                          "resume=False") from None


