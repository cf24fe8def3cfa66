"""The training run shared by the robust-classifier baselines (AT_PGD, DOA): fine-tune the workspace target on
adversarial examples crafted against the model's current weights at every batch (min-max training, started
from the clean solution, which is cheaper on CPUs than training from scratch).

A baseline supplies `craft(model, x, y, rng) -> x_adv` for one batch. Batch order and the random numbers each
batch draws are pure functions of (seed, epoch, batch); weights, optimizer state and the epoch are checkpointed
atomically after every epoch, so a resumed run repeats an uninterrupted one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import arnkit
from arnkit import data, runtime
from arnkit.errors import ArnkitError
from arnkit.io import atomic_path, write_json_atomic
from arnkit.presets import TargetRecipe
from arnkit.progress import NullProgress, Progress
from arnkit.workspace import Workspace

Craft = Callable[[Any, np.ndarray, np.ndarray, np.random.Generator], np.ndarray]


def fine_tune_target(key: str, dataset: str, craft: Craft, *, recipe: TargetRecipe, epochs: int,
                     options: dict[str, Any], seen: list[str], title: str, label: str = "", train_limit: int = 0,
                     eval_limit: int = 1000, resume: bool = True, seed: int = 0,
                     workspace: str | Path | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Fine-tune the target on `craft`'s examples with `recipe`'s optimizer; export it as the `key` classifier
    defense; return its run record. `options` are recorded and key the run folder; `label` (default: the key)
    names the run folder and the defense's column where two runs of one recipe sit side by side."""
    import keras

    from arnkit.defenses.base import Defense
    from arnkit.defenses.files import save_defense_file
    from arnkit.fingerprint import model_fingerprint
    from arnkit.pipeline.evaluate import ResolvedDefense, closing_report
    from arnkit.pipeline.target import _optimizer, ensure_target

    progress = progress or NullProgress()
    meta = data.info(dataset)
    ws = Workspace.resolve(workspace)
    if int(epochs) < 1:
        raise ArnkitError(f"{key} needs epochs >= 1, got {epochs}")
    if int(train_limit) < 0:
        raise ArnkitError(f"train_limit must be >= 0 (0 = the whole split), got {train_limit}")

    phases: dict[str, float] = {}
    clock = time.perf_counter()
    target, target_record = ensure_target(meta.name, workspace=ws.root, progress=progress)
    phases["target"], clock = time.perf_counter() - clock, time.perf_counter()
    spec = {"dataset": meta.name, "defense": key, "target": target_record.fingerprint, "seed": seed, **options}
    label = label or key
    run_dir = ws.artifact("defenses", f"{meta.name}-{label}", spec, "d")
    run_dir.mkdir(parents=True, exist_ok=True)
    defense_path, record_path, checkpoint = run_dir / f"{key}.keras", run_dir / "record.json", run_dir / "checkpoint.npz"
    if defense_path.exists() and record_path.exists():
        return {**json.loads(record_path.read_text()), "reused": True}

    x, y, _ = data.load_arrays(meta.name, "train", limit=int(train_limit) or None, data_dir=ws.data_dir)
    batch = recipe.batch_size
    per_epoch = int(np.ceil(len(x) / batch))
    keras.utils.set_random_seed(seed)
    model = keras.models.clone_model(target)
    model.set_weights(target.get_weights())
    model.compile(optimizer=_optimizer(recipe, int(epochs) * per_epoch),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    start_epoch = _restore(model, checkpoint, key) if resume and checkpoint.exists() else 0

    started = time.perf_counter()
    progress.start(title, int(epochs) * per_epoch)
    progress.advance(start_epoch * per_epoch)
    logs: dict[str, float] = {}
    for epoch in range(start_epoch, int(epochs)):
        order = np.random.default_rng([seed, epoch]).permutation(len(x))
        for b in range(per_epoch):
            idx = order[b * batch:(b + 1) * batch]
            xb, yb = x[idx], y[idx].astype(np.int32)
            x_adv = craft(model, xb, yb, np.random.default_rng([seed, epoch, b]))
            out = model.train_on_batch(x_adv, yb, return_dict=True)
            logs = {k: float(v) for k, v in out.items()}
            progress.advance(1, **logs)
        _save(model, checkpoint, epoch + 1)
    progress.finish()
    phases[key], clock = time.perf_counter() - started, time.perf_counter()

    fingerprint = model_fingerprint(model)
    save_defense_file(model, defense_path, key=key, kind="classifier", dataset=meta.name, seen=list(seen))
    resolved = ResolvedDefense(Defense(key, "classifier", model), fingerprint, list(seen), str(defense_path))
    evaluation, report = closing_report(meta.name, list(seen), resolved, limit=eval_limit, seed=seed,
                                        workspace=ws.root, progress=progress)
    phases["report"] = time.perf_counter() - clock
    record = {
        "key": key, "kind": "classifier", "label": label, "dataset": meta.name, "seen": list(seen), "options": options,
        "defense_path": str(defense_path), "defense_fingerprint": fingerprint,
        "target_fingerprint": target_record.fingerprint, "target_path": target_record.path, "seed": seed,
        "arnkit_version": arnkit.__version__, "resumed_from_epoch": start_epoch, "final_losses": logs,
        "train_seconds": round(phases[key], 2), "phase_seconds": {k: round(v, 2) for k, v in phases.items()},
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


def _restore(model: Any, path: Path, key: str) -> int:
    try:
        with np.load(path) as saved:
            weights = [saved[f"w{i}"] for i in range(len(model.get_weights()))]
            model.set_weights(weights)
            model.optimizer.build(model.trainable_variables)
            for i, variable in enumerate(model.optimizer.variables):
                variable.assign(saved[f"o{i}"])
            return int(saved["epoch"])
    except (OSError, KeyError, ValueError) as exc:
        raise ArnkitError(f"{key} checkpoint {path} is unreadable ({exc}); delete it to start over, or pass "
                          "resume=False") from None
