"""Score defenses on clean and adversarial test images: the table's rows (error rates in %), one per defense
and column, and the worst case per defense over the columns."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from arnkit import adversarial_store
from arnkit.evaluation import metrics
from arnkit.evaluation.craft import ColumnSets, Crafter
from arnkit.evaluation.plan import EvaluationPlan, with_iterations
from arnkit.evaluation.resolve import ResolvedDefense, Surrogate, Targets
from arnkit.evaluation.threat_models import ThreatModel
from arnkit.evaluation.write import GRID_IMAGES
from arnkit.runs import scoring
from arnkit.runs.defense import Defense


def defended_predictions(defense: Defense, classifier: Any, x: np.ndarray, batch_size: int = 500
                         ) -> tuple[np.ndarray, np.ndarray | None]:
    """(predicted classes, restored images or None) of the defended pipeline on x."""
    return defense.predict(classifier, x, batch_size)


def defended_error(defense: Defense, classifier: Any, adv: adversarial_store.AdversarialSet) -> float:
    """Error rate (%) of `defense` in front of `classifier` on an adversarial set."""
    pred, _ = defended_predictions(defense, classifier, adv.x_adv)
    return metrics.error_rate(metrics.misclassified(pred, adv.labels))


def clean_rows(defenses: list[ResolvedDefense], classifier: Any, x: np.ndarray, y: np.ndarray,
               threat: ThreatModel) -> list[dict[str, Any]]:
    """One 'clean' row per defense (the rows gray-box scoring writes too)."""
    return scoring.clean_rows(defenses, classifier, x, y, threat.name)


@dataclass
class ScoredColumns:
    """The attack rows, each defense's per-column misclassification masks (for the worst case), and the
    images of the grid: the first column's adversarial images and up to four defenses' restorations."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    wrong: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    grid_adversarial: np.ndarray | None = None
    restored: dict[str, np.ndarray] = field(default_factory=dict)


def score_columns(plan: EvaluationPlan, crafter: Crafter, targets: Targets, defenses: list[ResolvedDefense],
                  surrogate: Surrogate | None) -> ScoredColumns:
    """Every column (attack spec x iteration count) against every defense, crafting each column's sets once
    per attacked model."""
    scored = ScoredColumns(wrong={r.defense.name: {} for r in defenses})
    classifier = targets.classifier
    for spec in plan.specs:
        for count in plan.plans[spec.label]:
            params = with_iterations(spec, plan.info, count)
            label = plan.label(spec, count)
            sets = ColumnSets(crafter, spec.key, params, plan.limit, plan.restarts)
            for r in defenses:
                am = plan.threat.attacked_model(r.defense, classifier, classifier_tag=targets.record.fingerprint,
                                                defense_tag=r.tag, surrogate=surrogate.model if surrogate else None,
                                                surrogate_tag=surrogate.tag if surrogate else "")
                start = time.perf_counter()
                adv = sets.get(am)
                pred, restored = defended_predictions(r.defense, classifier, adv.x_adv)
                mask = metrics.misclassified(pred, adv.labels)
                scored.wrong[r.defense.name][label] = mask
                scored.rows.append(scoring.attack_row(
                    r, plan.threat.name, key=spec.key, label=label, iterations=count, restarts=plan.restarts,
                    raised=spec.raised, wrong=mask, params=params, adversarial_path=str(adv.attrs.get("path", "")),
                    seconds=float(adv.attrs.get("seconds", 0.0)) + time.perf_counter() - start))
                if scored.grid_adversarial is None:
                    scored.grid_adversarial = adv.x_adv[:GRID_IMAGES]
                if restored is not None and r.defense.name not in scored.restored and \
                        len(scored.restored) < 4 and spec is plan.first:
                    scored.restored[r.defense.name] = restored[:GRID_IMAGES]
    return scored


def worst_case_rows(defenses: list[ResolvedDefense], wrong: dict[str, dict[str, np.ndarray]],
                    threat: ThreatModel) -> list[dict[str, Any]]:
    """Per defense, the error when each image meets the column that fools it (any column counts)."""
    return scoring.worst_case_rows(defenses, threat.name, wrong)
