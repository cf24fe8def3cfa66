"""The self-checks of an adaptive (white / BPDA) evaluation, run on the first SANITY_LIMIT test images: the
sanity suite of `arnkit.evaluation.sanity` per defense (gradient, iterations, gradient-free, large eps and the
white >= BPDA >= gray ordering), Carlini et al. 2019's convergence curves, and the marks on the numbers that
are only lower bounds."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from arnkit import attacks as attack_registry
from arnkit.evaluation import convergence, figures, metrics, sanity, tables
from arnkit.evaluation.craft import Crafter
from arnkit.evaluation.plan import (
    AttackSpec,
    EvaluationPlan,
    default_iterations,
    iteration_param,
    with_iterations,
)
from arnkit.evaluation.resolve import ResolvedDefense
from arnkit.evaluation.score import defended_error as error_on
from arnkit.evaluation.score import defended_predictions
from arnkit.evaluation.threat_models import AttackedModel

SANITY_LIMIT = 200
LARGE_EPS = 0.5
LARGE_EPS_STEPS = 100
# The gradient-masking check's gradient-free attack, run on the sanity subset; its budget (defaults: see
# docs/attacks.md) can be shrunk here for quick runs.
GRADIENT_FREE_ATTACK = "spsa_n"
GRADIENT_FREE_PARAMS: dict[str, Any] = {}
# SPSA spends its whole budget (100 x 128 forward passes) on every image it cannot fool, 5-20 s through a
# pre-processor on 2 cores: the check runs both attacks on the first 50 sanity images.
GRADIENT_FREE_LIMIT = 50

# error(attack key, params, attacked model, restarts=1, limit=None) -> error rate (%) behind the defense
DefendedError = Callable[..., float]


def sanity_suites(plan: EvaluationPlan, crafter: Crafter, classifier: Any, classifier_tag: str,
                  defenses: list[ResolvedDefense], x: np.ndarray, y: np.ndarray) -> list[dict[str, Any]]:
    """The suite for every real defense (the NONE row has nothing to check), on the table's first column."""
    checks: list[dict[str, Any]] = []
    for r in defenses:
        if not r.defense.white_box_checks:
            continue
        checks += sanity_suite(plan, crafter, r, classifier, classifier_tag, x, y)
    return checks


def sanity_suite(plan: EvaluationPlan, crafter: Crafter, resolved: ResolvedDefense, classifier: Any,
                 classifier_tag: str, x: np.ndarray, y: np.ndarray) -> list[dict[str, Any]]:
    """The checks of `arnkit.evaluation.sanity` for one defense, on the first SANITY_LIMIT images."""
    spec, iterations, info, threat, restarts = plan.first, plan.first_count, plan.info, plan.threat, plan.restarts
    n = min(len(x), SANITY_LIMIT)
    xs, ys = x[:n], y[:n]
    am = threat.attacked_model(resolved.defense, classifier, classifier_tag=classifier_tag, defense_tag=resolved.tag)
    checks = [sanity.gradient_check(am.model, xs, ys)]

    def defended_error(key: str, params: dict[str, Any], attacked: AttackedModel, restarts: int = 1,
                       limit: int | None = None) -> float:
        adv = crafter.craft(key, params, attacked, limit=min(n, limit or n), restarts=restarts)
        return error_on(resolved.defense, classifier, adv)

    name = iteration_param(spec.key, info)
    if name is not None:
        base_count = iterations or default_iterations(spec.key, info, name)
        error = defended_error(spec.key, with_iterations(spec, info, base_count), am, restarts)
        doubled = defended_error(spec.key, with_iterations(spec, info, 2 * base_count), am, restarts)
        checks.append(sanity.iterations_check(error, doubled, base_count))
        strongest = with_iterations(spec, info, 2 * base_count)
    else:
        checks.append(sanity.SanityCheck("iterations", True, None, "not applicable",
                                         f"{spec.key} has no iteration count"))
        error = defended_error(spec.key, dict(spec.params), am, restarts)
        strongest = dict(spec.params)
    checks.append(gradient_free_check(plan, spec, strongest, defended_error, am))
    large = {"eps": LARGE_EPS, "steps": LARGE_EPS_STEPS, "step_size": 2.5 * LARGE_EPS / LARGE_EPS_STEPS}
    checks.append(sanity.large_eps_check(100.0 - defended_error("pgd_n", large, am), info.num_classes, LARGE_EPS))
    if threat.ordering_against and resolved.defense.restores:
        params = with_iterations(spec, info, iterations)
        others = {other.name: defended_error(spec.key, params, other.attacked_model(
            resolved.defense, classifier, classifier_tag=classifier_tag, defense_tag=resolved.tag))
            for other in threat.ordering_against}
        checks.append(sanity.ordering_check(error, others))
    return [{"defense": resolved.defense.name, "attack": spec.label, **c.to_dict()} for c in checks]


def gradient_free_check(plan: EvaluationPlan, spec: AttackSpec, strongest: dict[str, Any],
                        defended_error: DefendedError, am: AttackedModel) -> sanity.SanityCheck:
    """SPSA against the strongest gradient attack at the same L-inf budget on the same first
    GRADIENT_FREE_LIMIT images. The table's attack (at its doubled iteration count) is the reference when it is
    an untargeted L-inf gradient attack; otherwise PGD_N-100 at the table attack's eps (or the dataset's), since
    a targeted or L2 attack is not the same budget."""
    attack = attack_registry.make(spec.key, dataset=plan.info, **spec.params)
    linf = attack.distance == "linf" and "eps" in attack.params()
    eps = float(attack.eps) if linf else float(attack_registry.make("pgd_n", dataset=plan.info).eps)
    few = GRADIENT_FREE_LIMIT
    if linf and not attack.targeted and not attack.gradient_free:
        gradient = {spec.label: defended_error(spec.key, strongest, am, limit=few)}
    else:
        pgd = {"eps": eps, "steps": 100, "step_size": 2.5 * eps / 100}
        gradient = {f"pgd_n@{eps:g}": defended_error("pgd_n", pgd, am, limit=few)}
    free = {f"{GRADIENT_FREE_ATTACK}@{eps:g}": defended_error(GRADIENT_FREE_ATTACK, {**GRADIENT_FREE_PARAMS,
                                                                                     "eps": eps}, am, limit=few)}
    return sanity.gradient_free_check(gradient, free)


def convergence_curves(plan: EvaluationPlan, crafter: Crafter, classifier: Any, classifier_tag: str,
                       defenses: list[ResolvedDefense], x: np.ndarray, y: np.ndarray, out_dir: Path) -> dict[str, Any]:
    """Carlini et al. 2019's two curves for the table's first attack, per defense, on the sanity subset:
    error vs iterations (doubling) and error vs eps (a grid from 0). Writes a PNG and a CSV per curve; the
    CSV and the returned points are the data read back from the drawn lines."""
    spec, count, info, threat = plan.first, plan.first_count, plan.info, plan.threat
    n = min(len(x), SANITY_LIMIT)
    ys = y[:n]
    name = iteration_param(spec.key, info)
    attack = attack_registry.make(spec.key, dataset=info, **spec.params)
    base = (count or int(attack.params()[name])) if name else None
    params_at_base = with_iterations(spec, info, base)
    has_eps = attack.distance == "linf" and "eps" in attack.params()
    default_eps = float(attack_registry.make(spec.key, dataset=info).eps) if has_eps else 0.0
    # MNIST-sized budgets go to LARGE_EPS (any image can reach mid-grey); small ones (8/255) to 4x the default.
    cap = LARGE_EPS if default_eps >= 0.1 else min(1.0, 4.0 * default_eps)
    out: dict[str, Any] = {"attack": spec.label, "n": n, "threat_model": threat.name, "iterations": {}, "eps": {}}
    for r in defenses:
        am = threat.attacked_model(r.defense, classifier, classifier_tag=classifier_tag, defense_tag=r.tag)

        def error(params: dict[str, Any], am: AttackedModel = am, r: ResolvedDefense = r) -> float:
            adv = crafter.craft(spec.key, params, am, limit=n, restarts=plan.restarts)
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
                lambda k, error=error: error(with_iterations(spec, info, k)), base, plan.max_iterations)
        if has_eps:
            grid = convergence.eps_grid(float(attack.eps), max(cap, float(attack.eps)))
            out["eps"][r.defense.name] = convergence.eps_curve(lambda e, error=error: error(at_eps(e)), grid)
    title = f"{spec.label} ({threat.name}), n={n}"
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


def mark_lower_bounds(rows: list[dict[str, Any]], checks: list[dict[str, Any]], curves: dict[str, Any] | None,
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
