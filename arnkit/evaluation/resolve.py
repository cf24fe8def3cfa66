"""Resolve what an evaluation runs on, once: the target classifier(s), the defenses in front of them, the
transfer attacker's surrogate, and the test images."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from arnkit import data
from arnkit.data.base import DatasetInfo
from arnkit.errors import ArnkitError
from arnkit.evaluation.threat_models import ThreatModel
from arnkit.progress import Progress
from arnkit.runs import target as target_service
from arnkit.runs.context import RunContext
from arnkit.runs.defense import Defense, no_defense
from arnkit.runs.defense_record import DefenseRecord
from arnkit.runs.scoring import ResolvedDefense
from arnkit.workspace import Workspace


def resolved_from_record(defense: Defense, record: DefenseRecord) -> ResolvedDefense:
    return ResolvedDefense(defense, record.defense_fingerprint, list(record.seen), record.defense_path,
                           record.to_dict())


# -------------------------------------------------------------------------------------------- target ---

def ensure_target_for(ctx: RunContext, *, model: str | None = None, seed: int) -> tuple[Any, Any]:
    """(classifier, its TargetResult): the ONE place the evaluation asks the target service for a target
    (trained on demand)."""
    target = target_service.ensure(ctx, model, seed=seed)
    return target.model, target.record


@dataclass(frozen=True)
class Targets:
    """The classifier the defenses stand in front of, and the target they were trained for."""

    classifier: Any
    record: Any  # the classifier's TargetResult (model, fingerprint, path)
    defended_fingerprint: str  # the dataset's default target: the defenses trained for it are evaluated
    cross_model: bool  # the classifier is another zoo model (Table 5)
    user: bool = False  # the classifier is the user's model (`--target PATH.keras`), the defenses' own


def resolve_targets(ctx: RunContext, *, target_model: str | None, seed: int) -> Targets:
    """The dataset's default target (the defenses' own) and, with `target_model`, the other classifier the
    defenses are put in front of (cross-model, Table 5). A context carrying the user's model (`--target`)
    evaluates that model and the defenses trained for it."""
    if ctx.target is not None and ctx.target.is_user:
        if target_model:
            raise ArnkitError("a zoo model name as --target (cross-model) puts the zoo target's defenses in front "
                              "of another zoo model; with your own .keras as --target, there is no zoo model")
        return Targets(ctx.target.model, ctx.target.record, ctx.target.fingerprint, False, user=True)
    base_target, base_record = ensure_target_for(ctx, seed=seed)
    if target_model:
        classifier, record = ensure_target_for(ctx, model=target_model, seed=seed)
    else:
        classifier, record = base_target, base_record
    return Targets(classifier, record, base_record.fingerprint, bool(target_model))


def load_test_images(info: DatasetInfo, ws: Workspace, limit: int, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """The first `limit` images and labels of `split` (test, or val; 0: all of them)."""
    x, y, _ = data.load_arrays(info.name, split, limit=limit or None, data_dir=ws.data_dir)
    return x, y


# ------------------------------------------------------------------------------------------ defenses ---

def resolve_defenses(names: str | list[str], info: DatasetInfo, ws: Workspace, *, target_fingerprint: str,
                     seed: int, progress: Progress, context: RunContext | None = None,
                     kind: str | None = None) -> list[ResolvedDefense]:
    """'none', a registry key (the newest defense of that recipe for this target, trained with its defaults
    if missing) or paths of defense files / run folders. `context`: the run context whose (user's) target a
    missing defense is trained for (None: the workspace's zoo target). `kind`: what a header-less file is
    (`--defense-kind`)."""
    from arnkit.defenses import registry

    dataset = info.name
    items = [n.strip() for n in names.split(",")] if isinstance(names, str) else [str(n) for n in names]
    items = [n for n in items if n]
    if not items:
        raise ArnkitError("--defense is empty; use e.g. --defense none,arn")
    if [i.lower() for i in items] == ["all"]:
        resolved_all = _all_trained(info, ws, target_fingerprint)
        if len(resolved_all) == 1:
            raise ArnkitError(f"--defense all found no trained defense for the {dataset} target in {ws.root}; "
                              f"train one first (`arnkit train --dataset {dataset} [--defense KEY]`)")
        _distinct_names(resolved_all)
        return resolved_all
    resolved = []
    for item in items:
        key = item.lower()
        if key == "all":
            raise ArnkitError("--defense all stands alone; drop the other names")
        if key == "none":
            resolved.append(ResolvedDefense(no_defense(), "none"))
        elif key in registry.REGISTRY:
            resolved.append(_newest_or_trained(key, info, ws, target_fingerprint=target_fingerprint, seed=seed,
                                               progress=progress, context=context))
        elif key.endswith(".keras") or "/" in item or Path(item).exists():
            defense, record = registry.load_file(item, info, kind)
            resolved.append(resolved_from_record(defense, record))
        else:
            registry.get(item)  # one line naming the known defenses
    if len({r.path or r.defense.name for r in resolved}) != len(resolved):
        raise ArnkitError(f"--defense names a defense twice: {','.join(items)}")
    _distinct_names(resolved)
    return resolved


def _all_trained(info: DatasetInfo, ws: Workspace, target_fingerprint: str) -> list[ResolvedDefense]:
    """`--defense all`: NONE, then every defense trained for this target (ablated ARN runs are the
    ablation study's, not a row here), one per exported file, by recipe then age."""
    from arnkit.defenses import registry

    found = [r for r in registry.find_defenses(ws, info.name, target_fingerprint=target_fingerprint)
             if not r.options.get("ablate")]
    order = list(registry.REGISTRY)
    found.sort(key=lambda r: order.index(r.key) if r.key in order else len(order))
    return [ResolvedDefense(no_defense(), "none")] + [resolved_from_record(registry.load_record(r, info), r)
                                                      for r in found]


def _newest_or_trained(key: str, info: DatasetInfo, ws: Workspace, *, target_fingerprint: str, seed: int,
                       progress: Progress, context: RunContext | None = None) -> ResolvedDefense:
    from arnkit import presets
    from arnkit.defenses import registry

    dataset = info.name
    # A full (not ablated) run for this target; one with the dataset's default seen attacks first.
    records = (registry.find_defenses(ws, dataset, key, target_fingerprint=target_fingerprint, ablate=[],
                                      seen=list(presets.for_info(info).seen))
               or registry.find_defenses(ws, dataset, key, target_fingerprint=target_fingerprint, ablate=[]))
    # The recipe's plain run before an opt-in variant (an adaptive ARN is named by its path, or by --defense all).
    records = sorted(records, key=lambda r: bool(r.options.get("adaptive")))
    # A user's target travels in the context, so the defense trained here is trained for it.
    train_context = {"context": context.replace(seed=seed)} if context is not None else {}
    record = records[0] if records else registry.get(key).train(dataset, workspace=ws.root, seed=seed,
                                                               progress=progress, **train_context)
    return resolved_from_record(registry.load_record(record, info), record)


def _distinct_names(resolved: list[ResolvedDefense]) -> None:
    """Different files with the same stem (every run exports `arn.keras`) get their run folder's name, then
    their fingerprint, as the table label."""
    relabels = (lambda r: str(r.record.get("label") or r.defense.name),
                lambda r: f"{Path(r.path).parent.name}/{r.defense.name}", lambda r: f"{r.defense.name}@{r.tag[:8]}")
    for label in relabels:
        names = [r.defense.name for r in resolved]
        clashing = [r for r in resolved if r.path and names.count(r.defense.name) > 1]
        if not clashing:
            return
        for r in clashing:
            r.defense.name = label(r)


# ----------------------------------------------------------------------------------------- surrogate ---

@dataclass(frozen=True)
class Surrogate:
    """The transfer attacker's own pre-processor."""

    model: Any
    tag: str  # its defense fingerprint: keys the transfer examples
    path: str  # --surrogate as given (a key or a path), for the record


def _surrogate_keys() -> list[str]:
    from arnkit.defenses import registry

    return [key for key, recipe in registry.REGISTRY.items() if recipe.kind == "preprocessor"]


def _classifier_keys() -> list[str]:
    from arnkit.defenses import registry

    return [key for key, recipe in registry.REGISTRY.items() if recipe.kind == "classifier"]


def check_surrogate_option(threat: ThreatModel, surrogate: str | None) -> None:
    """--surrogate goes with the transfer threat model, and names a pre-processor (before any long work)."""
    if threat.needs_surrogate and not surrogate:
        raise ArnkitError("the transfer threat model needs --surrogate: a pre-processor the attacker trained, as a "
                          "key (apeg, hgd, arn: the newest for this target) or a .keras path (e.g. the arn.keras "
                          "of `arnkit train --seed 1`)")
    if surrogate and not threat.needs_surrogate:
        raise ArnkitError("--surrogate only applies to --threat-model transfer")
    if surrogate and not Path(surrogate).exists() and str(surrogate).lower() in _classifier_keys():
        raise ArnkitError(f"--surrogate {surrogate} is a robust classifier; the transfer threat model needs a "
                          f"pre-processor: {', '.join(_surrogate_keys())} or a .keras path")
    if surrogate and str(surrogate).lower() not in _surrogate_keys() and not Path(surrogate).exists():
        raise ArnkitError(f"surrogate {surrogate} does not exist; pass a pre-processor key ({', '.join(_surrogate_keys())}) "
                          "or the path of one (e.g. the arn.keras of `arnkit train --seed 1`)")


def resolve_surrogate(surrogate: str, info: DatasetInfo, ws: Workspace, target_fingerprint: str) -> Surrogate:
    """The transfer attacker's pre-processor: the newest trained defense of a pre-processor key for this
    target, or a file. A robust classifier is refused: there is nothing to transfer through."""
    from arnkit.defenses import registry

    dataset = info.name
    key = str(surrogate).lower()
    if key in registry.REGISTRY and not Path(surrogate).exists():
        records = registry.find_defenses(ws, dataset, key, target_fingerprint=target_fingerprint)
        if not records:
            raise ArnkitError(f"no {key} is trained for the {dataset} target in {ws.root}; run `arnkit train "
                              f"--dataset {dataset} --defense {key}` first")
        defense, record = registry.load_record(records[0]), records[0]
    else:
        defense, record = registry.load_file(surrogate, dataset)
    if not defense.restores or defense.is_identity:
        raise ArnkitError(f"surrogate {surrogate} is a robust classifier; the transfer threat model needs the "
                          "attacker's own pre-processor (a key such as apeg or hgd, or a .keras path)")
    return Surrogate(defense.model, record.defense_fingerprint, surrogate)
