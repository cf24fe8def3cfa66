"""Adversarial-example detectors: per-example features from a classifier's activations, and a binary
classifier on top (the paper's Section 4.3 "adversarial examples detection").

    from arnkit import detection
    entry = detection.get("lid")
    f_nat = entry.features(model, x_nat, x_nat)               # (N, F)
    f_adv = entry.features(model, x_adv, x_nat)
    detector, auc, split = detection.train_detector(f_adv, f_nat, seed=0)

- lid.py              local intrinsic dimensionality (Ma et al., ICLR 2018)
- detector.py         MinMaxScaler -> LogisticRegressionCV, noisy negatives, ROC AUC
- high_confidence.py  a high-confidence CW-margin PGD to check a detector against (TensorFlow only)

`DETECTORS` maps a method name to its feature function; kernel density (`kd`) and Mahalanobis features can
join it with the same signature `features(model, x, x_reference, *, on_batch=None, **params) -> (N, F)`
(`on_batch(n)` reports progress).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from arnkit.detection.detector import detector_scores, noisy_negatives, train_detector
from arnkit.errors import ArnkitError


@dataclass(frozen=True)
class DetectorEntry:
    key: str
    module: str  # arnkit.detection.<module>
    function: str  # features(model, x, x_reference, **params) -> (N, F)
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def features(self, model: Any, x: Any, x_reference: Any, **params: Any):
        func = getattr(importlib.import_module(f"arnkit.detection.{self.module}"), self.function)
        return func(model, x, x_reference, **{**self.defaults, **params})


DETECTORS: dict[str, DetectorEntry] = {
    "lid": DetectorEntry("lid", "lid", "lid_features", {"k": 20, "batch_size": 100},
                         "local intrinsic dimensionality of every layer (Ma et al., ICLR 2018)"),
}


def get(method: str) -> DetectorEntry:
    try:
        return DETECTORS[str(method).lower()]
    except KeyError:
        raise ArnkitError(f"unknown detection method '{method}'; known methods: {', '.join(DETECTORS)}") from None


__all__ = ["DETECTORS", "DetectorEntry", "detector_scores", "get", "noisy_negatives", "train_detector"]
