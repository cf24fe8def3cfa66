"""Evaluation of defenses: error-rate arithmetic (`metrics`), threat models (`threat_models`), adaptive-attack
sanity checks (`sanity`), tables (`tables`) and figures (`figures`). The orchestration behind
`arnkit evaluate` is `arnkit.pipeline.evaluate.evaluate`."""

from arnkit.evaluation.metrics import error_rate, misclassified, worst_case
from arnkit.evaluation.threat_models import THREAT_MODELS, attacked_model, parse_threat_model

__all__ = ["THREAT_MODELS", "attacked_model", "error_rate", "misclassified", "parse_threat_model", "worst_case"]
