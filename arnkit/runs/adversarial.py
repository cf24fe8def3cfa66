"""The adversarial-set service: attacks crafted against a model on a dataset split, cached in the workspace as
HDF5 with provenance, and returned as typed `AdversarialSet`s (callers never re-read the file), plus the
seen-attack pools that pre-processor defenses train on.

    adv = craft_set(ctx, "pgd_n", split="test", limit=1000)     # adv.x_adv, adv.labels, adv.path, adv.reused
    pools = seen_pools(ctx, ["pgd_n", "pgd_t"], pool_size=10000)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from arnkit import adversarial_store, data
from arnkit import attacks as attack_registry
from arnkit.adversarial_store import AdversarialSet
from arnkit.errors import ArnkitError
from arnkit.io import building, notify
from arnkit.progress import Progress
from arnkit.runs.context import RunContext

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
    if split != "test":  # train and val depend on the val rule; the test split never does
        spec["splits"] = data.splits.definition(dataset)
    # Only a multi-restart set gets the key: sets crafted before restarts existed (= 1) stay valid.
    if restarts > 1:
        spec["restarts"] = int(restarts)
    return spec


# The attack parameters that count work or bound it: a convergence run varies them, so its progress lines say them.
ITERATION_PARAMS = ("steps", "n_iter", "nb_iter", "iterations", "max_iter", "n_queries")


def progress_label(key: str, where: str, params: dict[str, Any]) -> str:
    """'pgd_n on mnist/test (eps 0.3, steps 40)': the progress task's name, which names what differs between
    the crafts of one run (a convergence curve crafts one attack at many iteration counts and budgets)."""
    parts = [f"eps {params['eps']:.4g}"] if isinstance(params.get("eps"), int | float) else []
    parts += [f"{name} {params[name]}" for name in ITERATION_PARAMS if isinstance(params.get(name), int)]
    return f"{key} on {where}" + (f" ({', '.join(parts)})" if parts else "")


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



def check_request(ctx: RunContext, attack: str, *, split: str, limit: int | None, params: dict[str, Any] | None,
                  shard: str | None = None, restarts: int = 1) -> tuple[Any, Any, int]:
    """Validate a crafting request without doing any work: (registry entry, attack instance, restarts).
    A bad name, parameter, shard, restart count or limit is one line."""
    restarts = check_restarts(restarts)
    entry = attack_registry.for_dataset(attack, ctx.dataset)
    instance = attack_registry.make(entry.key, dataset=ctx.info, **dict(params or {}))
    parse_shard(shard)
    size = ctx.info.split_sizes.get(split)
    if size:
        selection(size, limit)
    return entry, instance, restarts


def craft_set(ctx: RunContext, attack: str, *, split: str = "test", limit: int | None = DEFAULT_LIMIT,
              params: dict[str, Any] | None = None, seed: int | None = None, shard: str | None = None,
              model: Any = None, fingerprint: str | None = None, restarts: int = 1) -> AdversarialSet:
    """Craft `attack` (with `params` over the dataset's budget) on the split against `model` (None: the
    context's target), or load the cached set; `seed` None is the context's. `restarts` > 1 reruns the attack
    with seeds seed+1, ... on the images it has not broken yet."""
    entry, instance, restarts = check_request(ctx, attack, split=split, limit=limit, params=params, shard=shard,
                                              restarts=restarts)
    seed = ctx.seed if seed is None else int(seed)
    meta, ws, progress = ctx.info, ctx.workspace, ctx.progress
    if model is None:
        target = ctx.require_target()
        model, fingerprint = target.model, target.fingerprint
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
    adv = _reusable(path, meta.name, fingerprint, part_idx, y_all)
    if adv is None:
        with building(path):
            # Crafted by another process meanwhile? (A damaged file was named once already.)
            adv = _reusable(path, meta.name, fingerprint, part_idx, y_all, quiet=True)
            if adv is None:
                targets = None
                if instance.targeted:
                    from arnkit.attacks.base import random_targets

                    targets = random_targets(y_all[idx], meta.num_classes, seed)[np.searchsorted(idx, part_idx)]
                result = run_with_restarts(instance, model, x_all[part_idx], y_all[part_idx], targets, seed=seed,
                                           restarts=restarts, progress=progress,
                                           label=progress_label(entry.key, f"{meta.name}/{split}", param_record))
                adv = AdversarialSet(
                    x_adv=result.x_adv, indices=part_idx, labels=y_all[part_idx], success=result.success,
                    pred=result.pred, targets=result.target,
                    attrs={"attack": entry.key, "params": param_record, "dataset": meta.name, "split": split,
                           "target_fingerprint": fingerprint, "seed": seed, "limit": limit or 0,
                           "shard": shard or "", "restarts": restarts,
                           "split_rule": "" if split == "test" else data.splits.describe(meta.name),
                           "seconds": round(time.perf_counter() - start, 3)},
                )
                adversarial_store.save(path, adv)
    adv.path = str(path)
    adv.attrs["path"] = str(path)
    if "seconds" not in adv.attrs:  # an older file: its load time stands in
        adv.attrs["seconds"] = round(time.perf_counter() - start, 3)
    return adv


def _reusable(path: Path, dataset: str, fingerprint: str, indices: np.ndarray, labels: np.ndarray, *,
              quiet: bool = False) -> AdversarialSet | None:
    """The cached set at `path` when it is intact and covers exactly `indices` with the dataset's `labels`
    there; None when it is missing, or damaged (one line says so: a set is derived, so it is crafted again)."""
    if not path.exists():
        return None
    try:
        adv = adversarial_store.load(path, dataset=dataset, target_fingerprint=fingerprint)
    except adversarial_store.DamagedSet as exc:
        if not quiet:
            notify(f"{exc.problem}; crafting it again")
        return None
    problem = _mismatch(adv, indices, labels)
    if problem:
        if not quiet:
            notify(f"adversarial set {path} does not match the dataset ({problem}); crafting it again")
        return None
    adv.reused = True
    return adv


def _mismatch(adv: AdversarialSet, indices: np.ndarray, labels: np.ndarray) -> str:
    """What is wrong with a stored set's indices and labels against the split ('' when nothing)."""
    stored = np.asarray(adv.indices)
    if stored.shape != indices.shape or not np.array_equal(stored, indices):
        outside = int(np.sum((stored < 0) | (stored >= len(labels)))) if stored.ndim == 1 else len(stored)
        return (f"{outside} stored indices lie outside the split of {len(labels)}" if outside
                else "its indices are not the requested images")
    if len(adv.labels) != len(stored) or len(adv.x_adv) != len(stored):
        return "its arrays have different lengths"
    wrong = int(np.sum(np.asarray(adv.labels) != labels[stored]))
    return f"{wrong} labels differ from the dataset's at the stored indices" if wrong else ""


def describe_set(ctx: RunContext, adv: AdversarialSet) -> dict[str, Any]:
    """The record `arnkit attack` prints for a crafted or loaded set: provenance, success and distances."""
    x_all, _, _ = data.load_arrays(ctx.dataset, str(adv.attrs.get("split", "test")), data_dir=ctx.workspace.data_dir)
    seconds = float(adv.attrs.get("seconds", 0.0))
    return {"attack": adv.attrs.get("attack"), "dataset": ctx.dataset, "split": adv.attrs.get("split"),
            "path": adv.path, "reused": adv.reused, "target_fingerprint": adv.attrs.get("target_fingerprint"),
            "seed": adv.attrs.get("seed"), "params": adv.attrs.get("params"), "shard": adv.attrs.get("shard") or None,
            "restarts": adv.attrs.get("restarts", 1), "seconds": round(seconds, 3),
            "images_per_second": round(len(adv.labels) / max(seconds, 1e-9), 2),
            **summarize(x_all[adv.indices], adv)}


@dataclass
class Pools:
    """The seen-attack pools: x_adv (N, K, H, W, C), one column per seen attack, aligned by dataset index with
    the natural images x_nat (N, H, W, C)."""

    x_adv: np.ndarray
    x_nat: np.ndarray
    paths: list[str]
    keys: list[str]


def parse_seen(ctx: RunContext, seen: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """The seen attacks (None: the dataset's preset); unknown, repeated or another dataset's is one line."""
    if seen is None:
        keys = list(ctx.preset.seen)
    elif isinstance(seen, str):
        keys = [part.strip().lower() for part in seen.split(",") if part.strip()]
    else:
        keys = [str(k).lower() for k in seen]
    if not keys:
        raise ArnkitError("--seen needs at least 1 seen attack, e.g. --seen pgd_n,pgd_t")
    for key in keys:
        attack_registry.for_dataset(key, ctx.dataset)  # unknown, or a patch of another dataset -> one line
    if len(set(keys)) != len(keys):
        raise ArnkitError(f"--seen lists an attack twice: {','.join(keys)}")
    return keys


def seen_pools(ctx: RunContext, seen: list[str], *, pool_size: int, seed: int | None = None) -> Pools:
    """Each seen attack crafted once over the first `pool_size` training images against the context's
    target, cached as HDF5, aligned by dataset index."""
    meta = ctx.info
    x_train, _, _ = data.load_arrays(meta.name, "train", data_dir=ctx.workspace.data_dir)
    pools, paths, indices = [], [], None
    for key in seen:
        adv = craft_set(ctx, key, split="train", limit=pool_size, seed=seed)
        if adv.x_adv.shape[1:] != tuple(meta.shape):
            raise ArnkitError(f"pool {key} has images of shape {adv.x_adv.shape[1:]}, the dataset {meta.shape}; "
                              "delete the pool file and rerun")
        if indices is not None and not np.array_equal(indices, adv.indices):
            raise ArnkitError(f"pool {key} covers other training images than {seen[0]}; use the same --pool-size")
        indices = adv.indices
        pools.append(adv.x_adv)
        paths.append(adv.path)
    return Pools(np.stack(pools, axis=1), x_train[indices], paths, list(seen))
