"""`arnkit attack`: craft adversarial examples against the workspace's target, cached as HDF5."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from arnkit import adversarial_store, data
from arnkit import attacks as attack_registry
from arnkit.errors import ArnkitError
from arnkit.progress import Progress
from arnkit.runs.adversarial import (
    DEFAULT_LIMIT,
    attack_spec,
    check_request,
    check_restarts,
    craft_set,
    describe_set,
    summarize,
)
from arnkit.runs.context import RunContext
from arnkit.runs.target import with_target


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
    target: str | Path | None = None,
    input_scale: float | None = None,
    target_output: str | None = None,
) -> dict[str, Any]:
    """`arnkit attack`: craft `attack` on the dataset split against the target (trained on demand; `target`: a
    user's .keras classifier, see `arnkit.runs.target.from_file`), cached; return its summary. `restarts` > 1
    reruns the attack with seeds seed+1, ... on the images it has not broken yet."""
    ctx = RunContext.build(dataset, workspace=workspace, seed=seed, progress=progress)
    overrides = dict(params or {})
    if eps is not None:
        overrides["eps"] = float(eps)
    # Every option is checked before the target trains.
    check_request(ctx, attack, split=split, limit=limit, params=overrides, shard=shard, restarts=restarts)
    if model is None:
        ctx = with_target(ctx, path=target, input_scale=input_scale, output=target_output)
    adv = craft_set(ctx, attack, split=split, limit=limit, params=overrides, shard=shard, model=model,
                    fingerprint=fingerprint, restarts=restarts)
    return describe_set(ctx, adv)


def merge_shards(dataset: str = "mnist", attack: str = "pgd_n", *, shards: int, split: str = "test",
                 limit: int | None = DEFAULT_LIMIT, eps: float | None = None, params: dict[str, Any] | None = None,
                 seed: int = 0, workspace: str | Path | None = None, restarts: int = 1,
                 target: str | Path | None = None, input_scale: float | None = None,
                 target_output: str | None = None) -> dict[str, Any]:
    """Merge the `shards` shard files of one crafting job into the full cached set."""
    ctx = RunContext.build(dataset, workspace=workspace, seed=seed)
    meta, ws = ctx.info, ctx.workspace
    entry = attack_registry.for_dataset(attack, meta.name)
    overrides = dict(params or {})
    if eps is not None:
        overrides["eps"] = float(eps)
    instance = attack_registry.make(entry.key, dataset=meta, **overrides)
    record = with_target(ctx, path=target, input_scale=input_scale, output=target_output).require_target().record
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
