"""Evaluation of defenses.

Pure helpers (layer 1): error-rate arithmetic (`metrics`), adaptive-attack sanity checks (`sanity`),
convergence curves (`convergence`), tables (`tables`) and figures (`figures`).

Orchestration (layer 4), one piece per step: threat models as objects (`threat_models`), `plan` (columns,
iteration counts, limits), `resolve` (targets, defenses, surrogate, images), `craft` (adversarial sets),
`score` (rows), `checks` (sanity suite, convergence curves, lower bounds), `write` (folder, record, tables,
grid), composed by `runner.evaluate_plan`; the ablation and seen/unseen studies (`studies`) on top.
`arnkit evaluate` resolves its inputs in `arnkit.pipeline.evaluate.evaluate`."""

from arnkit.evaluation.metrics import error_rate, misclassified, worst_case
from arnkit.evaluation.threat_models import THREAT_MODELS, ThreatModel, attacked_model, parse_threat_model

__all__ = ["THREAT_MODELS", "ThreatModel", "attacked_model", "error_rate", "misclassified", "parse_threat_model",
           "worst_case"]
