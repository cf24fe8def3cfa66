"""`arnkit attack`: craft adversarial examples against the workspace's target, cached as HDF5."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from arnkit import adversarial_store, data
from arnkit import attacks as attack_registry
from arnkit.errors import ArnkitError
from arnkit.progress import NullProgress, Progress
from arnkit.workspace import Workspace

DEFAULT_LIMIT = 1000


def parse_shard(shard: str | None) -> tuple[int, int] | None:
    """'i/n' -> (i, n) with 0 <= i < n."""
    if shard is None:
        return None
    try:
        index, count = (int(part) for part in shard.split("/"))
    except ValueError:
        raise ArnkitError(f"--shard must look like i/n (e.g. 0/4), got '{shard}'") from None
    if not 0 <= index < count:
        raise ArnkitError(f"--shard {shard}: need 0 <= i < n")
    return index, count


def selection(n_split: int, limit: int | None) -> np.ndarray:
    """Indices of the split to attack: the first `limit` (0 or None = all)."""
    if limit is None or limit == 0:
        return np.arange(n_split)
    if limit < 0:
        raise ArnkitError(f"--limit must be >= 0, got {limit}")
    if limit > n_split:
        raise ArnkitError(f"--limit {limit} is larger than the split ({n_split}); use --limit 0 for all")
    return np.arange(limit)


def check_restarts(restarts: int) -> int:
    if int(restarts) != restarts or int(restarts) < 1:
        raise ArnkitError(f"--restarts must be >= 1, got {restarts}")
    return int(restarts)


def attack_spec(dataset: str, split: str, key: str, params: dict[str, Any], fingerprint: str, seed: int,
                limit: int | None, restarts: int = 1) -> dict[str, Any]:
    spec = {"dataset": dataset, "split": split, "attack": key, "params": params, "target": fingerprint,
            "seed": seed, "limit": limit or 0}
    # Only a multi-restart set gets the key: sets crafted before restarts existed (= 1) stay valid.
    if restarts > 1:
        spec["restarts"] = int(restarts)
    return spec


def run_with_restarts(instance: Any, model: Any, x: np.ndarray, y: np.ndarray, targets: np.ndarray | None, *,
                      seed: int, restarts: int, progress: Progress, label: str) -> Any:
    """Run `instance` with seeds seed, seed+1, ...; per image keep the first restart that succeeds, else the
    last one. Each restart after the first attacks only the images still unbroken (a success is final, so
    the others would be thrown away); targets stay the first seed's, so every restart aims at the same class."""
    result = None
    for restart in range(restarts):
        todo = np.arange(len(x)) if result is None else np.flatnonzero(~result.success)
        if result is not None and todo.size == 0:
            break
        progress.start(label if restarts == 1 else f"{label}, restart {restart + 1}/{restarts}", len(todo))
        part = instance(model, x[todo], y[todo], target=None if targets is None else targets[todo],
                        seed=seed + restart, on_batch=lambda n: progress.advance(n))
        progress.finish()
        if result is None:
            result = part
        else:  # todo rows had failed: take this restart's outcome (a success, or the newer failure)
            result.x_adv[todo], result.success[todo], result.pred[todo] = part.x_adv, part.success, part.pred
    return result


def summarize(x: np.ndarray, adv: adversarial_store.AdversarialSet) -> dict[str, Any]:
    from arnkit.attacks.base import norms

    dist = norms(x, adv.x_adv)
    return {
        "n": int(len(adv.labels)),
        "success_rate": float(np.mean(adv.success)) if len(adv.success) else 0.0,
        "undefended_error": float(np.mean(adv.pred != adv.labels)) if len(adv.labels) else 0.0,
        **{f"{name}_max": float(v.max()) if len(v) else 0.0 for name, v in dist.items()},
        **{f"{name}_mean": float(v.mean()) if len(v) else 0.0 for name, v in dist.items()},
    }


def craft(
    dataset: str = "mnist",
    attack: str = "pgd_n",
    *,
    split: str = "test",
    limit: int | None = DEFAULT_LIMIT,
    eps: float | None = None,
    params: dict[str, Any] | None = None,
    seed: int = 0,
    shard: str | None = None,
    workspace: str | Path | None = None,
    progress: Progress | None = None,
    model: Any = None,
    fingerprint: str | None = None,
    restarts: int = 1,
) -> dict[str, Any]:
    """Craft `attack` on the dataset split against the target (trained on demand); cache and summarize.
    `restarts` > 1 reruns the attack with seeds seed+1, ... on the images it has not broken yet."""
    from arnkit.pipeline.target import ensure_target

    progress = progress or NullProgress()
    restarts = check_restarts(restarts)
    meta = data.info(dataset)
    entry = attack_registry.for_dataset(attack, meta.name)
    ws = Workspace.resolve(workspace)
    overrides = dict(params or {})
    if eps is not None:
        overrides["eps"] = float(eps)
    instance = attack_registry.make(entry.key, dataset=meta.name, **overrides)
    if model is None:
        model, record = ensure_target(meta.name, workspace=ws.root, progress=progress)
        fingerprint = record.fingerprint
    elif fingerprint is None:
        from arnkit.fingerprint import model_fingerprint

        fingerprint = model_fingerprint(model)
    x_all, y_all, _ = data.load_arrays(meta.name, split, data_dir=ws.data_dir)
    idx = selection(len(x_all), limit)
    param_record = instance.params()
    spec = attack_spec(meta.name, split, entry.key, param_record, fingerprint, seed, limit, restarts)
    shard_t = parse_shard(shard)
    name = f"{meta.name}-{split}-{entry.key}"
    if shard_t:
        part_idx = np.array_split(idx, shard_t[1])[shard_t[0]]
        path = ws.artifact("adversarial", f"{name}-shard{shard_t[0]}of{shard_t[1]}", spec, "h5")
    else:
        part_idx = idx
        path = ws.artifact("adversarial", name, spec, "h5")

    start = time.perf_counter()
    reused = path.exists()
    if reused:
        adv = adversarial_store.load(path, dataset=meta.name, target_fingerprint=fingerprint)
    else:
        targets = None
        if instance.targeted:
            from arnkit.attacks.base import random_targets

            targets = random_targets(y_all[idx], meta.num_classes, seed)[np.searchsorted(idx, part_idx)]
        result = run_with_restarts(instance, model, x_all[part_idx], y_all[part_idx], targets, seed=seed,
                                   restarts=restarts, progress=progress, label=f"{entry.key} on {meta.name}/{split}")
        adv = adversarial_store.AdversarialSet(
            x_adv=result.x_adv, indices=part_idx, labels=y_all[part_idx], success=result.success, pred=result.pred,
            targets=result.target,
            attrs={"attack": entry.key, "params": param_record, "dataset": meta.name, "split": split,
                   "target_fingerprint": fingerprint, "seed": seed, "limit": limit or 0,
                   "shard": shard or "", "restarts": restarts, "seconds": round(time.perf_counter() - start, 3)},
        )
        adversarial_store.save(path, adv)
    seconds = time.perf_counter() - start
    summary = summarize(x_all[adv.indices], adv)
    return {"attack": entry.key, "dataset": meta.name, "split": split, "path": str(path), "reused": reused,
            "target_fingerprint": fingerprint, "seed": seed, "params": param_record, "shard": shard,
            "restarts": restarts,
            "seconds": round(float(adv.attrs.get("seconds", seconds)), 3),
            "images_per_second": round(len(adv.labels) / max(float(adv.attrs.get("seconds", seconds)), 1e-9), 2),
            **summary}


def merge_shards(dataset: str = "mnist", attack: str = "pgd_n", *, shards: int, split: str = "test",
                 limit: int | None = DEFAULT_LIMIT, eps: float | None = None, params: dict[str, Any] | None = None,
                 seed: int = 0, workspace: str | Path | None = None, restarts: int = 1) -> dict[str, Any]:
    """Merge the `shards` shard files of one crafting job into the full cached set."""
    from arnkit.pipeline.target import ensure_target

    meta = data.info(dataset)
    entry = attack_registry.for_dataset(attack, meta.name)
    ws = Workspace.resolve(workspace)
    overrides = dict(params or {})
    if eps is not None:
        overrides["eps"] = float(eps)
    instance = attack_registry.make(entry.key, dataset=meta.name, **overrides)
    _, record = ensure_target(meta.name, workspace=ws.root)
    spec = attack_spec(meta.name, split, entry.key, instance.params(), record.fingerprint, seed, limit,
                       check_restarts(restarts))
    name = f"{meta.name}-{split}-{entry.key}"
    parts = []
    for i in range(shards):
        part_path = ws.artifact("adversarial", f"{name}-shard{i}of{shards}", spec, "h5")
        if not part_path.exists():
            raise ArnkitError(f"shard {i}/{shards} is missing; run `arnkit attack ... --shard {i}/{shards}` first")
        parts.append(adversarial_store.load(part_path, dataset=meta.name, target_fingerprint=record.fingerprint))
    merged = adversarial_store.merge(parts)
    merged.attrs["seconds"] = sum(float(p.attrs.get("seconds", 0.0)) for p in parts)
    path = adversarial_store.save(ws.artifact("adversarial", name, spec, "h5"), merged)
    x_all, _, _ = data.load_arrays(meta.name, split, data_dir=ws.data_dir)
    return {"attack": entry.key, "dataset": meta.name, "path": str(path), "shards": shards,
            **summarize(x_all[merged.indices], merged)}


def list_attacks() -> list[dict[str, Any]]:
    """Every registered attack: distance, targeted, and its defaults per dataset (what the dataset's budgets
    set for it, on the datasets the pipeline offers it for; arnkit.data.budgets)."""
    rows = []
    for key, entry in attack_registry.REGISTRY.items():
        try:
            cls = entry.attack_class()
        except (ImportError, AttributeError) as exc:
            rows.append({"key": key, "description": entry.description, "available": False, "reason": str(exc)})
            continue
        targeted = entry.fixed.get("targeted", cls.targeted_by_default)
        rows.append({"key": key, "description": entry.description, "available": True, "distance": cls.distance,
                     "targeted": bool(targeted), "has_eps": cls.has_eps,
                     "datasets": list(entry.datasets) if entry.datasets else "all",
                     "defaults": _dataset_defaults(entry, cls)})
    return rows


def _dataset_defaults(entry: attack_registry.AttackEntry, cls: type) -> dict[str, dict[str, Any]]:
    defaults = {}
    for name in data.SOURCES:
        params = data.info(name).attack_params(cls) if entry.applies_to(name) else {}
        if params:  # a dataset that sets nothing for the attack (the stickers) lists nothing
            defaults[name] = {**params, **entry.fixed}
    return defaults
