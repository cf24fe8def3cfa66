"""`arnkit evaluate`: error rates of the target alone and behind each defense, under one threat model, for
one attack, a list, or every registered attack (the dataset's versions of the paper's Tables 1-4), with the
adaptive-attack sanity checks, JSON/CSV/markdown tables and a PNG grid of adversarial vs restored images."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import arnkit
from arnkit import adversarial_store, data
from arnkit import attacks as attack_registry
from arnkit.defenses.base import Defense, no_defense
from arnkit.defenses.records import DefenseRecord
from arnkit.errors import ArnkitError
from arnkit.evaluation import convergence, figures, metrics, sanity, tables
from arnkit.evaluation.threat_models import attacked_model, parse_threat_model
from arnkit.progress import NullProgress, Progress
from arnkit.workspace import Workspace

DEFAULT_LIMIT = 1000
DEFAULT_DEFENSES = "none,arn"
RAISED_ATTACKS = ("pgd_n", "aa_n")
BPDA_ITERATIONS = (40, 100)  # Table 4
SANITY_LIMIT = 200
LARGE_EPS = 0.5
LARGE_EPS_STEPS = 100
ITERATION_PARAMS = ("steps", "apgd_iter")
GRID_IMAGES = 8
# The gradient-masking check's gradient-free attack, run on the sanity subset; its budget (defaults: see
# docs/attacks.md) can be shrunk here for quick runs.
GRADIENT_FREE_ATTACK = "spsa_n"
GRADIENT_FREE_PARAMS: dict[str, Any] = {}
# SPSA spends its whole budget (100 x 128 forward passes) on every image it cannot fool, 5-20 s through a
# pre-processor on 2 cores: the check runs both attacks on the first 50 sanity images.
GRADIENT_FREE_LIMIT = 50
MAX_ITERATIONS = 1000  # the convergence curve's cap on doubled iterations


@dataclass
class AttackSpec:
    """One column of a table: a registry attack with parameter overrides (e.g. a raised eps)."""

    key: str
    label: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def raised(self) -> bool:
        return "eps" in self.params


@dataclass
class ResolvedDefense:
    defense: Defense
    tag: str  # fingerprint that keys cached adaptive attacks
    seen: list[str] = field(default_factory=list)
    path: str = ""
    record: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {"name": self.defense.name, "kind": self.defense.kind, "fingerprint": self.tag, "seen": self.seen,
                "path": self.path}


# ------------------------------------------------------------------------------------------- attacks ---

def attack_specs(attack: str, dataset: str) -> list[AttackSpec]:
    """'all', one key, a comma list, or key@eps (e.g. pgd_n@0.4) -> the columns to evaluate."""
    text = str(attack).strip().lower()
    if text == "all":
        specs = [AttackSpec(key, key) for key in attack_registry.keys_for(dataset)]
        # Table 1's raised budget eps' (Section 4.2), from the dataset's info.
        raised = data.info(dataset).eps_raised
        if raised:
            specs += [AttackSpec(key, f"{key}@{raised:g}", {"eps": raised}) for key in RAISED_ATTACKS]
        return specs
    specs = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, _, eps = part.partition("@")
        entry = attack_registry.for_dataset(key, dataset)  # unknown / other dataset's patch -> one line
        if eps:
            try:
                value = float(eps)
            except ValueError:
                raise ArnkitError(f"'{part}': the budget after @ must be a number, e.g. pgd_n@0.4") from None
            if "eps" not in attack_registry.make(entry.key, dataset=dataset).params():
                raise ArnkitError(f"'{part}': {entry.key} has no eps budget; drop the @{eps}")
            specs.append(AttackSpec(entry.key, f"{entry.key}@{value:g}", {"eps": value}))
        else:
            specs.append(AttackSpec(entry.key, entry.key))
    if not specs:
        raise ArnkitError("--attack is empty; name an attack (see `arnkit attacks`) or 'all'")
    return specs


def iteration_param(key: str, dataset: str) -> str | None:
    params = attack_registry.make(key, dataset=dataset).params()
    return next((name for name in ITERATION_PARAMS if name in params), None)


def iteration_plan(spec: AttackSpec, dataset: str, threat: str, iterations: int | None) -> list[int | None]:
    """Iteration counts to run `spec` at: BPDA runs Table 4's 40 and 100 unless --iterations says otherwise."""
    name = iteration_param(spec.key, dataset)
    if iterations is not None:
        if name is None:
            raise ArnkitError(f"--iterations: {spec.key} has no iteration count; drop --iterations for it")
        if int(iterations) < 1:
            raise ArnkitError(f"--iterations must be >= 1, got {iterations}")
        return [int(iterations)]
    if threat == "bpda" and name == "steps":
        return list(BPDA_ITERATIONS)
    return [None]


def with_iterations(spec: AttackSpec, dataset: str, count: int | None) -> dict[str, Any]:
    params = dict(spec.params)
    if count is not None:
        params[iteration_param(spec.key, dataset)] = int(count)
    return params


# ------------------------------------------------------------------------------------------ defenses ---

def resolve_defenses(names: str | list[str], dataset: str, ws: Workspace, *, target_fingerprint: str,
                     seed: int, progress: Progress) -> list[ResolvedDefense]:
    """'none', a registry key (the newest defense of that recipe for this target, trained with its defaults
    if missing) or paths of defense files / run folders."""
    from arnkit.defenses import registry

    items = [n.strip() for n in names.split(",")] if isinstance(names, str) else [str(n) for n in names]
    items = [n for n in items if n]
    if not items:
        raise ArnkitError("--defense is empty; use e.g. --defense none,arn")
    if [i.lower() for i in items] == ["all"]:
        resolved_all = _all_trained(dataset, ws, target_fingerprint)
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
            resolved.append(_newest_or_trained(key, dataset, ws, target_fingerprint=target_fingerprint, seed=seed,
                                               progress=progress))
        elif key.endswith(".keras") or "/" in item or Path(item).exists():
            defense, record = registry.load_file(item, dataset)
            resolved.append(_resolved(defense, record))
        else:
            registry.get(item)  # one line naming the known defenses
    if len({r.path or r.defense.name for r in resolved}) != len(resolved):
        raise ArnkitError(f"--defense names a defense twice: {','.join(items)}")
    _distinct_names(resolved)
    return resolved


def _surrogate_keys() -> list[str]:
    from arnkit.defenses import registry

    return [key for key, recipe in registry.REGISTRY.items() if recipe.kind == "preprocessor"]


def _classifier_keys() -> list[str]:
    from arnkit.defenses import registry

    return [key for key, recipe in registry.REGISTRY.items() if recipe.kind == "classifier"]


def resolve_surrogate(surrogate: str, dataset: str, ws: Workspace, target_fingerprint: str) -> tuple[Any, str]:
    """(model, fingerprint) of the transfer attacker's pre-processor: the newest trained defense of a
    pre-processor key for this target, or a file. A robust classifier is refused: there is nothing to
    transfer through."""
    from arnkit.defenses import registry

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
    return defense.model, record.defense_fingerprint


def _all_trained(dataset: str, ws: Workspace, target_fingerprint: str) -> list[ResolvedDefense]:
    """`--defense all`: NONE, then every defense trained for this target (ablated ARN runs are the
    ablation study's, not a row here), one per exported file, by recipe then age."""
    from arnkit.defenses import registry

    found = [r for r in registry.find_defenses(ws, dataset, target_fingerprint=target_fingerprint)
             if not r.options.get("ablate")]
    order = list(registry.REGISTRY)
    found.sort(key=lambda r: order.index(r.key) if r.key in order else len(order))
    return [ResolvedDefense(no_defense(), "none")] + [_resolved(registry.load_record(r), r) for r in found]


def _resolved(defense: Defense, record: DefenseRecord) -> ResolvedDefense:
    return ResolvedDefense(defense, record.defense_fingerprint, list(record.seen), record.defense_path,
                           record.to_dict())


def _newest_or_trained(key: str, dataset: str, ws: Workspace, *, target_fingerprint: str, seed: int,
                       progress: Progress) -> ResolvedDefense:
    from arnkit import presets
    from arnkit.defenses import registry

    # A full (not ablated) run for this target; one with the dataset's default seen attacks first.
    records = (registry.find_defenses(ws, dataset, key, target_fingerprint=target_fingerprint, ablate=[],
                                      seen=list(presets.get(dataset).seen))
               or registry.find_defenses(ws, dataset, key, target_fingerprint=target_fingerprint, ablate=[]))
    # The recipe's plain run before an opt-in variant (an adaptive ARN is named by its path, or by --defense all).
    records = sorted(records, key=lambda r: bool(r.options.get("adaptive")))
    record = records[0] if records else registry.get(key).train(dataset, workspace=ws.root, seed=seed,
                                                               progress=progress)
    return _resolved(registry.load_record(record), record)


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


# ---------------------------------------------------------------------------------------- prediction ---

def defended_predictions(defense: Defense, classifier: Any, x: np.ndarray, batch_size: int = 500
                         ) -> tuple[np.ndarray, np.ndarray | None]:
    """(predicted classes, restored images or None) of the defended pipeline on x."""
    return defense.predict(classifier, x, batch_size)


# -------------------------------------------------------------------------------------------- crafting ---

def _craft(dataset: str, key: str, params: dict[str, Any], *, limit: int, seed: int, ws: Workspace,
           progress: Progress, model: Any, tag: str, restarts: int = 1) -> adversarial_store.AdversarialSet:
    from arnkit.pipeline.attack import craft

    record = craft(dataset, key, split="test", limit=limit, params=params, seed=seed, workspace=ws.root,
                   progress=progress, model=model, fingerprint=tag, restarts=restarts)
    adv = adversarial_store.load(record["path"], dataset=dataset, target_fingerprint=tag)
    adv.attrs["path"] = record["path"]
    return adv


def _sanity_suite(spec: AttackSpec, iterations: int | None, resolved: ResolvedDefense, threat: str,
                  classifier: Any, classifier_tag: str, dataset: str, x: np.ndarray, y: np.ndarray, *,
                  seed: int, ws: Workspace, progress: Progress, restarts: int = 1) -> list[dict[str, Any]]:
    """The checks of `arnkit.evaluation.sanity` for one defense, on the first SANITY_LIMIT images."""
    meta = data.info(dataset)
    n = min(len(x), SANITY_LIMIT)
    xs, ys = x[:n], y[:n]
    am = attacked_model(threat, resolved.defense, classifier, classifier_tag=classifier_tag,
                        defense_tag=resolved.tag)
    checks = [sanity.gradient_check(am.model, xs, ys)]

    def defended_error(key: str, params: dict[str, Any], attacked: Any, tag: str, restarts: int = 1,
                       limit: int | None = None) -> float:
        adv = _craft(dataset, key, params, limit=min(n, limit or n), seed=seed, ws=ws, progress=progress,
                     model=attacked, tag=tag, restarts=restarts)
        pred, _ = defended_predictions(resolved.defense, classifier, adv.x_adv)
        return metrics.error_rate(metrics.misclassified(pred, adv.labels))

    name = iteration_param(spec.key, dataset)
    if name is not None:
        base_count = iterations or int(attack_registry.make(spec.key, dataset=dataset).params()[name])
        error = defended_error(spec.key, with_iterations(spec, dataset, base_count), am.model, am.tag, restarts)
        doubled = defended_error(spec.key, with_iterations(spec, dataset, 2 * base_count), am.model, am.tag,
                                 restarts)
        checks.append(sanity.iterations_check(error, doubled, base_count))
        strongest = with_iterations(spec, dataset, 2 * base_count)
    else:
        checks.append(sanity.SanityCheck("iterations", True, None, "not applicable",
                                         f"{spec.key} has no iteration count"))
        error = defended_error(spec.key, dict(spec.params), am.model, am.tag, restarts)
        strongest = dict(spec.params)
    checks.append(_gradient_free_check(spec, strongest, defended_error, am, dataset))
    large = {"eps": LARGE_EPS, "steps": LARGE_EPS_STEPS, "step_size": 2.5 * LARGE_EPS / LARGE_EPS_STEPS}
    checks.append(sanity.large_eps_check(100.0 - defended_error("pgd_n", large, am.model, am.tag),
                                         meta.num_classes, LARGE_EPS))
    if threat == "white" and resolved.defense.restores:
        from arnkit.attacks.adaptive import BPDA

        params = with_iterations(spec, dataset, iterations)
        others = {
            "bpda": defended_error(spec.key, params, BPDA(resolved.defense.model, classifier),
                                   f"{classifier_tag}+{resolved.tag}:bpda"),
            "gray": defended_error(spec.key, params, classifier, classifier_tag),
        }
        checks.append(sanity.ordering_check(error, others))
    return [{"defense": resolved.defense.name, "attack": spec.label, **c.to_dict()} for c in checks]


def _gradient_free_check(spec: AttackSpec, strongest: dict[str, Any], defended_error: Any, am: Any,
                         dataset: str) -> sanity.SanityCheck:
    """SPSA against the strongest gradient attack at the same L-inf budget on the same first
    GRADIENT_FREE_LIMIT images. The table's attack (at its doubled iteration count) is the reference when it is
    an untargeted L-inf gradient attack; otherwise PGD_N-100 at the table attack's eps (or the dataset's), since
    a targeted or L2 attack is not the same budget."""
    attack = attack_registry.make(spec.key, dataset=dataset, **spec.params)
    linf = attack.distance == "linf" and "eps" in attack.params()
    eps = float(attack.eps) if linf else float(attack_registry.make("pgd_n", dataset=dataset).eps)
    few = GRADIENT_FREE_LIMIT
    if linf and not attack.targeted and not attack.gradient_free:
        gradient = {spec.label: defended_error(spec.key, strongest, am.model, am.tag, limit=few)}
    else:
        pgd = {"eps": eps, "steps": 100, "step_size": 2.5 * eps / 100}
        gradient = {f"pgd_n@{eps:g}": defended_error("pgd_n", pgd, am.model, am.tag, limit=few)}
    free = {f"{GRADIENT_FREE_ATTACK}@{eps:g}": defended_error(GRADIENT_FREE_ATTACK, {**GRADIENT_FREE_PARAMS,
                                                                                     "eps": eps},
                                                              am.model, am.tag, limit=few)}
    return sanity.gradient_free_check(gradient, free)


def _convergence_curves(spec: AttackSpec, count: int | None, resolved: list[ResolvedDefense], threat: str,
                        classifier: Any, classifier_tag: str, dataset: str, x: np.ndarray, y: np.ndarray, *,
                        seed: int, ws: Workspace, progress: Progress, restarts: int, max_iterations: int,
                        out_dir: Path) -> dict[str, Any]:
    """Carlini et al. 2019's two curves for the table's first attack, per defense, on the sanity subset:
    error vs iterations (doubling) and error vs eps (a grid from 0). Writes a PNG and a CSV per curve; the
    CSV and the returned points are the data read back from the drawn lines."""
    n = min(len(x), SANITY_LIMIT)
    ys = y[:n]
    name = iteration_param(spec.key, dataset)
    attack = attack_registry.make(spec.key, dataset=dataset, **spec.params)
    base = (count or int(attack.params()[name])) if name else None
    params_at_base = with_iterations(spec, dataset, base)
    has_eps = attack.distance == "linf" and "eps" in attack.params()
    default_eps = float(attack_registry.make(spec.key, dataset=dataset).eps) if has_eps else 0.0
    # MNIST-sized budgets go to LARGE_EPS (any image can reach mid-grey); small ones (8/255) to 4x the default.
    cap = LARGE_EPS if default_eps >= 0.1 else min(1.0, 4.0 * default_eps)
    out: dict[str, Any] = {"attack": spec.label, "n": n, "threat_model": threat, "iterations": {}, "eps": {}}
    for r in resolved:
        am = attacked_model(threat, r.defense, classifier, classifier_tag=classifier_tag, defense_tag=r.tag)

        def error(params: dict[str, Any], am: Any = am, r: ResolvedDefense = r) -> float:
            adv = _craft(dataset, spec.key, params, limit=n, seed=seed, ws=ws, progress=progress, model=am.model,
                         tag=am.tag, restarts=restarts)
            pred, _ = defended_predictions(r.defense, classifier, adv.x_adv)
            return metrics.error_rate(metrics.misclassified(pred, ys))

        def at_eps(eps: float) -> dict[str, Any]:
            params = {**params_at_base, "eps": eps}
            # Madry's step rule (as for the large-eps check), so the walk grows with the budget.
            if name == "steps" and "step_size" in attack.params() and eps > 0:
                params["step_size"] = 2.5 * eps / params_at_base.get("steps", base)
            return params

        if name is not None:
            out["iterations"][r.defense.name] = convergence.iteration_curve(
                lambda k, error=error: error(with_iterations(spec, dataset, k)), base, max_iterations)
        if has_eps:
            grid = convergence.eps_grid(float(attack.eps), max(cap, float(attack.eps)))
            out["eps"][r.defense.name] = convergence.eps_curve(lambda e, error=error: error(at_eps(e)), grid)
    title = f"{spec.label} ({threat}), n={n}"
    for kind, xlabel, log_x in (("iterations", f"attack iterations ({name})", True), ("eps", "L-inf eps", False)):
        curves = out[kind]
        if not curves:
            continue
        png, plotted = figures.curve_png(out_dir / f"convergence-{kind}.png",
                                         {d: c["points"] for d, c in curves.items()}, xlabel=xlabel,
                                         title=title, log_x=log_x)
        out[f"{kind}_png"] = str(png)
        out[f"{kind}_csv"] = tables.write_curve_csv(out_dir / f"convergence-{kind}.csv", plotted, kind)
        for d, points in plotted.items():  # what was drawn, in the JSON as in the CSV
            curves[d]["plotted"] = points
    return out


def _mark_lower_bounds(rows: list[dict[str, Any]], checks: list[dict[str, Any]], curves: dict[str, Any] | None,
                       label: str) -> None:
    """A white-box number whose attack did not converge (iterations check failed, or the convergence curve
    never settled within its cap) is a lower bound on the error: say so on the checked column's rows."""
    iteration_checks = [c for c in checks if c["name"] == "iterations" and c["value"] is not None]
    checked = {c["defense"] for c in iteration_checks}
    unconverged = {c["defense"] for c in iteration_checks if not c["passed"]}
    if curves:
        checked |= set(curves["iterations"])
        unconverged |= {d for d, c in curves["iterations"].items() if not c["converged"]}
    for row in rows:
        if row["label"] == label and row["defense"] in checked:  # unchecked rows claim nothing
            row["lower_bound"] = row["defense"] in unconverged


# ------------------------------------------------------------------------------------------- evaluate ---

def evaluate(
    dataset: str = "mnist",
    attack: str = "pgd_n",
    *,
    defenses: str | list[str] | list[ResolvedDefense] = DEFAULT_DEFENSES,
    threat_model: str = "gray",
    limit: int | None = None,
    iterations: int | None = None,
    restarts: int = 1,
    convergence_curves: bool = False,
    max_iterations: int = MAX_ITERATIONS,
    surrogate: str | None = None,
    target_model: str | None = None,
    sanity_checks: bool = True,
    seed: int = 0,
    target_seed: int | None = None,
    workspace: str | Path | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Evaluate `defenses` against `attack` under `threat_model`; write tables and figures; return the record.

    `defenses`: 'none', 'arn' (the newest full ARN for the target, trained if missing), paths of exported
    `.keras` pre-processors, or already resolved defenses (the ablation and matrix studies pass those).

    `target_model` evaluates the defenses in front of another classifier of the zoo (cross-model, Table 5):
    the defenses stay those trained for the dataset's default target.

    `target_seed`: the seed of the workspace target (None = `seed`); `arnkit train`'s report passes 0, the
    target every `arnkit train` run defends.

    `restarts`: run each attack with seeds seed, seed+1, ... and keep per image the first restart that fools
    the attacked model (else the last); the error is that of the per-image best.

    `convergence_curves` (white / bpda): error vs iterations (doubled from the attack's count up to
    `max_iterations`) and error vs eps for the first attack, per defense, on the sanity subset: PNGs and
    CSVs beside the tables, the points in the record's `convergence`."""
    from arnkit.pipeline.attack import check_restarts
    from arnkit.pipeline.target import ensure_target

    progress = progress or NullProgress()
    started = time.perf_counter()
    meta = data.info(dataset)
    ws = Workspace.resolve(workspace)
    threat = parse_threat_model(threat_model).name
    restarts = check_restarts(restarts)
    specs = attack_specs(attack, meta.name)
    split_size = meta.split_sizes.get("test")
    # The default (None) is DEFAULT_LIMIT images, or the whole split when it is smaller; 0 is the whole split.
    n_limit = min(DEFAULT_LIMIT, split_size or DEFAULT_LIMIT) if limit is None else int(limit)
    if n_limit < 0:
        raise ArnkitError(f"--limit must be >= 0, got {limit}")
    if split_size and n_limit > split_size:
        raise ArnkitError(f"--limit {n_limit} is larger than the {meta.name} test split ({split_size}); "
                          "use --limit 0 for all of it")
    plans = {spec.label: iteration_plan(spec, meta.name, threat, iterations) for spec in specs}
    if convergence_curves:
        if threat not in ("white", "bpda"):
            raise ArnkitError("--convergence applies to --threat-model white or bpda (the attacker's own "
                              "iterations and budget); add --threat-model white")
        name = iteration_param(specs[0].key, meta.name)
        if name is not None:
            first = plans[specs[0].label][0]
            base = first or int(attack_registry.make(specs[0].key, dataset=meta.name).params()[name])
            convergence.check_max_iterations(max_iterations, base)
    if threat == "transfer" and not surrogate:
        raise ArnkitError("the transfer threat model needs --surrogate: a pre-processor the attacker trained, as a "
                          "key (apeg, hgd, arn: the newest for this target) or a .keras path (e.g. the arn.keras "
                          "of `arnkit train --seed 1`)")
    if surrogate and threat != "transfer":
        raise ArnkitError("--surrogate only applies to --threat-model transfer")
    if surrogate and not Path(surrogate).exists() and str(surrogate).lower() in _classifier_keys():
        raise ArnkitError(f"--surrogate {surrogate} is a robust classifier; the transfer threat model needs a "
                          f"pre-processor: {', '.join(_surrogate_keys())} or a .keras path")
    if surrogate and str(surrogate).lower() not in _surrogate_keys() and not Path(surrogate).exists():
        raise ArnkitError(f"surrogate {surrogate} does not exist; pass a pre-processor key ({', '.join(_surrogate_keys())}) "
                          "or the path of one (e.g. the arn.keras of `arnkit train --seed 1`)")

    t_seed = seed if target_seed is None else int(target_seed)
    base_target, base_record = ensure_target(meta.name, workspace=ws.root, seed=t_seed, progress=progress)
    if target_model:
        classifier, target_record = ensure_target(meta.name, target_model, workspace=ws.root, seed=t_seed,
                                                  progress=progress)
    else:
        classifier, target_record = base_target, base_record
    surrogate_model, surrogate_tag = (resolve_surrogate(surrogate, meta.name, ws, base_record.fingerprint)
                                      if surrogate else (None, ""))
    if isinstance(defenses, list | tuple) and defenses and isinstance(defenses[0], ResolvedDefense):
        resolved = list(defenses)
    else:
        resolved = resolve_defenses(defenses, meta.name, ws, target_fingerprint=base_record.fingerprint,
                                    seed=seed, progress=progress)
    x, y, _ = data.load_arrays(meta.name, "test", limit=n_limit or None, data_dir=ws.data_dir)

    rows: list[dict[str, Any]] = []
    wrong: dict[str, dict[str, np.ndarray]] = {r.defense.name: {} for r in resolved}
    grid_source: tuple[np.ndarray, np.ndarray] | None = None
    restored_for_grid: dict[str, np.ndarray] = {}
    for r in resolved:
        pred, _ = defended_predictions(r.defense, classifier, x)
        rows.append({"defense": r.defense.name, "threat_model": threat, "attack": "clean", "label": "clean",
                     "iterations": None, "seen": False, "n": len(x),
                     "error": round(metrics.error_rate(metrics.misclassified(pred, y)), 4), "seconds": 0.0, "params": {}})
    for spec in specs:
        for count in plans[spec.label]:
            params = with_iterations(spec, meta.name, count)
            label = spec.label if len(plans[spec.label]) == 1 else f"{spec.label} x{count}"
            crafted: dict[str, adversarial_store.AdversarialSet] = {}
            for r in resolved:
                am = attacked_model(threat, r.defense, classifier, classifier_tag=target_record.fingerprint,
                                    defense_tag=r.tag, surrogate=surrogate_model, surrogate_tag=surrogate_tag)
                start = time.perf_counter()
                if am.tag not in crafted:
                    crafted[am.tag] = _craft(meta.name, spec.key, params, limit=n_limit, seed=seed, ws=ws,
                                             progress=progress, model=am.model, tag=am.tag, restarts=restarts)
                adv = crafted[am.tag]
                pred, restored = defended_predictions(r.defense, classifier, adv.x_adv)
                mask = metrics.misclassified(pred, adv.labels)
                wrong[r.defense.name][label] = mask
                rows.append({"defense": r.defense.name, "threat_model": threat, "attack": spec.key, "label": label,
                             "iterations": count, "restarts": restarts,
                             "seen": spec.key in r.seen and not spec.raised, "n": len(mask),
                             "error": round(metrics.error_rate(mask), 4), "params": params,
                             "seconds": round(float(adv.attrs.get("seconds", 0.0)) + time.perf_counter() - start, 3),
                             "adversarial_path": str(adv.attrs.get("path", ""))})
                if grid_source is None:
                    grid_source = (adv.x_adv[:GRID_IMAGES], adv.labels[:GRID_IMAGES])
                if restored is not None and r.defense.name not in restored_for_grid and \
                        len(restored_for_grid) < 4 and spec is specs[0]:
                    restored_for_grid[r.defense.name] = restored[:GRID_IMAGES]
    if sum(len(p) for p in plans.values()) > 1:
        for r in resolved:
            mask = metrics.worst_case(wrong[r.defense.name])
            rows.append({"defense": r.defense.name, "threat_model": threat, "attack": "worst_case",
                         "label": "worst case", "iterations": None, "seen": False, "n": len(mask),
                         "error": round(metrics.error_rate(mask), 4), "seconds": 0.0, "params": {}})

    checks: list[dict[str, Any]] = []
    if sanity_checks and threat in ("white", "bpda"):
        for r in resolved:
            if not r.defense.white_box_checks:
                continue
            checks += _sanity_suite(specs[0], plans[specs[0].label][0], r, threat, classifier,
                                    target_record.fingerprint, meta.name, x, y, seed=seed, ws=ws, progress=progress,
                                    restarts=restarts)

    spec_record = {"dataset": meta.name, "threat_model": threat, "attacks": [s.label for s in specs],
                   "defenses": [r.tag for r in resolved], "target": target_record.fingerprint, "limit": n_limit,
                   "iterations": iterations, "surrogate": surrogate_tag, "seed": seed, "sanity": sanity_checks}
    if restarts > 1:  # keyed only when used: earlier evaluation folders keep their names
        spec_record["restarts"] = restarts
    if convergence_curves:
        spec_record["convergence"] = {"max_iterations": int(max_iterations)}
    attack_name = specs[0].label if len(specs) == 1 else ("all" if attack == "all" else f"{len(specs)}attacks")
    out_dir = ws.artifact("evaluations", f"{meta.name}-{threat}-{attack_name}".replace("@", "eps"), spec_record, "d")
    out_dir.mkdir(parents=True, exist_ok=True)
    curves = None
    if convergence_curves:
        curves = _convergence_curves(specs[0], plans[specs[0].label][0], resolved, threat, classifier,
                                     target_record.fingerprint, meta.name, x, y, seed=seed, ws=ws,
                                     progress=progress, restarts=restarts, max_iterations=max_iterations,
                                     out_dir=out_dir)
    if threat in ("white", "bpda"):
        first = plans[specs[0].label]
        _mark_lower_bounds(rows, checks, curves, specs[0].label if len(first) == 1 else f"{specs[0].label} x{first[0]}")
    record = {
        "title": f"{meta.name}: error rates (%) under the {threat} threat model",
        "dataset": meta.name, "threat_model": threat, "split": "test", "n": len(x), "seed": seed,
        "restarts": restarts,
        "target": {"model": target_record.model, "fingerprint": target_record.fingerprint,
                   "path": target_record.path},
        "cross_model": bool(target_model),
        "defenses": [r.describe() for r in resolved], "surrogate": {"path": surrogate, "fingerprint": surrogate_tag}
        if surrogate else None,
        "attacks": [{"key": s.key, "label": s.label, "params": s.params, "iterations": plans[s.label]} for s in specs],
        "rows": rows, "sanity": checks, "sanity_passed": all(c["passed"] for c in checks),
        "convergence": curves,
        "arnkit_version": arnkit.__version__, "seconds": 0.0,
    }
    if grid_source is not None:
        grid_rows = {"natural": x[:GRID_IMAGES], "adversarial": grid_source[0], **{
            f"restored ({name})": images for name, images in restored_for_grid.items() if name != "none"}}
        from arnkit.detection.detector import predict_labels

        captions = {name: [str(int(c)) for c in predict_labels(classifier, images)]
                    for name, images in grid_rows.items()}
        record["grid_png"] = str(figures.image_grid_png(out_dir / "grid.png", grid_rows, captions=captions,
                                                        title=f"{specs[0].label} ({threat}); captions: predicted class"))
    record["seconds"] = round(time.perf_counter() - started, 2)
    record["files"] = tables.write_tables(out_dir, "results", record)
    return record


def closing_report(dataset: str, attack_keys: list[str], defense: ResolvedDefense, *, limit: int, seed: int,
                   workspace: str | Path, progress: Progress | None = None
                   ) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """The report a training run closes with: this evaluation, gray box, of the new defense beside NONE on
    clean and seen-attack test images (the workspace's seed-0 target, the one every training run defends).
    Returns ({label: {"none": error %, <defense name>: error %}}, the evaluation record)."""
    result = evaluate(dataset, ",".join(attack_keys), defenses=[ResolvedDefense(no_defense(), "none"), defense],
                      threat_model="gray", limit=limit, sanity_checks=False, seed=seed, target_seed=0,
                      workspace=workspace, progress=progress)
    rows: dict[str, dict[str, float]] = {}
    for row in result["rows"]:
        if row["label"] != "worst case":
            rows.setdefault(row["label"], {})[row["defense"]] = float(row["error"])
    return rows, result


def run_evaluation(dataset: str = "mnist", attack: str | None = None, *, ablation: bool = False,
                   matrix: str | None = None, train_steps: int | None = None, **options: Any) -> dict[str, Any]:
    """`arnkit evaluate`: one evaluation, the ablation study (`ablation`) or the seen/unseen matrix (`matrix`)."""
    from arnkit.pipeline import studies

    if ablation and matrix:
        raise ArnkitError("--ablation and --matrix are separate studies; pass one of them")
    if ablation or matrix:
        threat = parse_threat_model(options.get("threat_model", "gray")).name
        if threat != "gray":
            raise ArnkitError("--ablation and --matrix run in the paper's gray-box setting; drop --threat-model")
        from arnkit.pipeline.attack import check_restarts

        if check_restarts(options.get("restarts", 1)) != 1:
            raise ArnkitError("--restarts applies to one evaluation, not to --ablation or --matrix; drop it")
        if options.get("convergence_curves"):
            raise ArnkitError("--convergence applies to one white-box evaluation, not to --ablation or --matrix")
        common = {k: options[k] for k in ("limit", "seed", "workspace", "progress") if k in options}
        if ablation:
            return studies.evaluate_ablation(dataset, attack, train_steps=train_steps, **common)
        return studies.evaluate_matrix(dataset, matrix, attack, train_steps=train_steps, **common)
    if train_steps is not None:
        raise ArnkitError("--train-steps applies to --ablation and --matrix; train a defense with `arnkit train`")
    return evaluate(dataset, attack or "pgd_n", **options)
