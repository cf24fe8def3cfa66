"""The self-checks of an adaptive (white / BPDA) evaluation, run on the first SANITY_LIMIT test images: the
sanity suite of `arnkit.evaluation.sanity` per defense (gradient and large eps once; iterations, gradient-free
and the white >= BPDA >= gray ordering for every attack of the table), Carlini et al. 2019's convergence curves, and the marks on the numbers that
are only lower bounds."""

from __future__ import annotations

from dataclasses import dataclass, field
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
from arnkit.evaluation.score import defended_predictions
from arnkit.evaluation.threat_models import AttackedModel
from arnkit.runs.adversarial import run_with_restarts

SANITY_LIMIT = 200
LARGE_EPS = 0.5
LARGE_EPS_STEPS = 100
# The gradient-masking check's gradient-free attack; its budget (defaults: see docs/attacks.md) can be shrunk
# here for quick runs.
GRADIENT_FREE_ATTACK = "spsa_n"
GRADIENT_FREE_PARAMS: dict[str, Any] = {}
# SPSA spends its whole budget (100 x 128 forward passes) on every image it cannot fool, so it runs only on the
# images the gradient attacks left correct (an image they broke cannot count against them), up to this many.
GRADIENT_FREE_LIMIT = 200
WORST_CASE = "worst case"


def sanity_suites(plan: EvaluationPlan, crafter: Crafter, classifier: Any, classifier_tag: str,
                  defenses: list[ResolvedDefense], x: np.ndarray, y: np.ndarray) -> list[dict[str, Any]]:
    """The suite for every real defense (the NONE row has nothing to check), on every attack of the table."""
    checks: list[dict[str, Any]] = []
    for r in defenses:
        if not r.defense.white_box_checks:
            continue
        checks += sanity_suite(plan, crafter, r, classifier, classifier_tag, x, y)
    return checks


@dataclass
class _Suite:
    """One defense's checks on the first SANITY_LIMIT images: what every check of it shares."""

    plan: EvaluationPlan
    crafter: Crafter
    resolved: ResolvedDefense
    classifier: Any
    am: AttackedModel
    xs: np.ndarray
    ys: np.ndarray
    _free: dict[tuple[float, bytes], np.ndarray] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.xs)

    def wrong(self, key: str, params: dict[str, Any], attacked: AttackedModel | None = None,
              restarts: int = 1) -> np.ndarray:
        """Per sanity image: misclassified by the defended pipeline after `key` crafted against `attacked`."""
        adv = self.crafter.craft(key, params, attacked or self.am, limit=self.n, restarts=restarts)
        pred, _ = defended_predictions(self.resolved.defense, self.classifier, adv.x_adv)
        return metrics.misclassified(pred, adv.labels)

    def gradient_free_wrong(self, eps: float, survivors: np.ndarray) -> np.ndarray:
        """The gradient-free attack at L-inf `eps` on the sanity images at `survivors` (indices), one restart:
        which of them it breaks. Not cached on disk (a subset is not a prefix); reused within the suite."""
        memo = (eps, survivors.tobytes())
        if memo not in self._free:
            attack = attack_registry.make(GRADIENT_FREE_ATTACK, dataset=self.plan.info,
                                          **{**GRADIENT_FREE_PARAMS, "eps": eps})
            if len(survivors):
                result = run_with_restarts(attack, self.am.model, self.xs[survivors], self.ys[survivors], None,
                                           seed=self.plan.seed, restarts=1, progress=self.crafter.ctx.progress,
                                           label=f"{GRADIENT_FREE_ATTACK} (gradient-free check)")
                pred, _ = defended_predictions(self.resolved.defense, self.classifier, result.x_adv)
                self._free[memo] = metrics.misclassified(pred, self.ys[survivors])
            else:
                self._free[memo] = np.zeros(0, bool)
        return self._free[memo]


def sanity_suite(plan: EvaluationPlan, crafter: Crafter, resolved: ResolvedDefense, classifier: Any,
                 classifier_tag: str, x: np.ndarray, y: np.ndarray) -> list[dict[str, Any]]:
    """The checks of `arnkit.evaluation.sanity` for one defense, on the first SANITY_LIMIT images: the gradient
    and large-eps checks once (they concern every attack column), then iterations, gradient-free and ordering
    for every attack of the table, each row naming its column and the cells it concerns (`columns`)."""
    n = min(len(x), SANITY_LIMIT)
    am = plan.threat.attacked_model(resolved.defense, classifier, classifier_tag=classifier_tag,
                                    defense_tag=resolved.tag)
    suite = _Suite(plan, crafter, resolved, classifier, am, x[:n], y[:n])
    name = resolved.defense.name
    columns = [plan.label(s, c) for s in plan.specs for c in plan.plans[s.label]]
    every = columns + ([WORST_CASE] if plan.several_columns else [])

    def row(check: sanity.SanityCheck, attack: str, concerns: list[str]) -> dict[str, Any]:
        return {"defense": name, "attack": attack, "columns": concerns, **check.to_dict()}

    per_attack = [attack_checks(plan, suite, spec, classifier_tag) for spec in plan.specs]
    rows = [row(sanity.gradient_check(am.model, suite.xs, suite.ys), "every column", every)]
    for label, checks in per_attack:
        rows += [row(c, label, [label]) for c in checks if c.name != "ordering"]
    large = {"eps": LARGE_EPS, "steps": LARGE_EPS_STEPS, "step_size": 2.5 * LARGE_EPS / LARGE_EPS_STEPS}
    accuracy = 100.0 - metrics.error_rate(suite.wrong("pgd_n", large))
    rows.append(row(sanity.large_eps_check(accuracy, plan.info.num_classes, LARGE_EPS), "every column", every))
    for label, checks in per_attack:
        rows += [row(c, label, [label]) for c in checks if c.name == "ordering"]
    return rows


def attack_checks(plan: EvaluationPlan, suite: _Suite, spec: AttackSpec,
                  classifier_tag: str) -> tuple[str, list[sanity.SanityCheck]]:
    """(the column checked: the spec at its first iteration count, [iterations, gradient_free, ordering?])."""
    info, threat, restarts = plan.info, plan.threat, plan.restarts
    count = plan.plans[spec.label][0]
    label = plan.label(spec, count)
    name = iteration_param(spec.key, info)
    if name is not None:
        base = count or default_iterations(spec.key, info, name)
        params, strongest = with_iterations(spec, info, base), with_iterations(spec, info, 2 * base)
        wrong = suite.wrong(spec.key, params, restarts=restarts)
        doubled = suite.wrong(spec.key, strongest, restarts=restarts)
        checks = [sanity.iterations_check(metrics.error_rate(wrong), metrics.error_rate(doubled), base)]
        masks = {label: wrong, f"{spec.key} x{2 * base}": doubled}
    else:
        params = dict(spec.params)
        wrong = suite.wrong(spec.key, params, restarts=restarts)
        checks = [sanity.SanityCheck("iterations", True, None, "not applicable",
                                     f"{spec.key} has no iteration count")]
        masks = {label: wrong}
    checks.append(gradient_free_check(plan, suite, spec, masks))
    resolved = suite.resolved
    if threat.ordering_against and resolved.defense.restores:
        # Every error of the comparison with the same attack, iterations AND restarts (a white box with N
        # restarts against one-restart proxies would lean toward passing).
        others = {other.name: metrics.error_rate(suite.wrong(spec.key, params, other.attacked_model(
            resolved.defense, suite.classifier, classifier_tag=classifier_tag, defense_tag=resolved.tag),
            restarts=restarts)) for other in threat.ordering_against}
        checks.append(sanity.ordering_check(metrics.error_rate(wrong), others, restarts))
    return label, checks


def gradient_free_check(plan: EvaluationPlan, suite: _Suite, spec: AttackSpec,
                        masks: dict[str, np.ndarray]) -> sanity.SanityCheck:
    """SPSA against the gradient attacks at the same L-inf budget, on the sanity images. The gradient attacks
    are the table's attack (at its iterations and twice them) when it is an untargeted L-inf gradient attack;
    otherwise PGD_N-100 at the table attack's eps (or the dataset's), since a targeted or L2 attack is not the
    same budget. SPSA then runs on every image they left correct (up to GRADIENT_FREE_LIMIT): an image it
    breaks there is one the gradient missed."""
    attack = attack_registry.make(spec.key, dataset=plan.info, **spec.params)
    linf = attack.distance == "linf" and "eps" in attack.params()
    eps = float(attack.eps) if linf else float(attack_registry.make("pgd_n", dataset=plan.info).eps)
    if not (linf and not attack.targeted and not attack.gradient_free):
        pgd = {"eps": eps, "steps": 100, "step_size": 2.5 * eps / 100}
        masks = {f"pgd_n@{eps:g}": suite.wrong("pgd_n", pgd, restarts=plan.restarts)}
    broken = np.logical_or.reduce(list(masks.values()))
    survivors = np.flatnonzero(~broken)[:GRADIENT_FREE_LIMIT]
    fooled = suite.gradient_free_wrong(eps, survivors)
    return sanity.gradient_free_check(
        suite.n, {k: metrics.error_rate(m) for k, m in masks.items()}, metrics.error_rate(broken),
        int((~broken).sum()), len(survivors), int(fooled.sum()), f"{GRADIENT_FREE_ATTACK}@{eps:g}")


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
    """A white-box number whose attack did not converge (its column's iterations check failed, or the
    convergence curve of column `label` never settled within its cap) is a lower bound on the error: say so
    on the checked rows."""
    iteration_checks = [c for c in checks if c["name"] == "iterations" and c["value"] is not None]
    checked = {(c["defense"], c["attack"]) for c in iteration_checks}
    unconverged = {(c["defense"], c["attack"]) for c in iteration_checks if not c["passed"]}
    if curves:
        checked |= {(d, label) for d in curves["iterations"]}
        unconverged |= {(d, label) for d, c in curves["iterations"].items() if not c["converged"]}
    for row in rows:
        if (row["defense"], row["label"]) in checked:  # unchecked rows claim nothing
            row["lower_bound"] = (row["defense"], row["label"]) in unconverged
