"""Error-rate arithmetic of the paper's tables: percentages of misclassified examples, per-example worst case."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from arnkit.errors import ArnkitError


def misclassified(pred: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Boolean mask of wrong predictions (pred: class ids or logits)."""
    pred = np.asarray(pred)
    labels = np.asarray(labels).reshape(-1)
    if pred.ndim > 2 and len(pred) == len(labels):
        # Per-pixel "predictions": an image-to-image model standing where a classifier should.
        raise ArnkitError(f"the model is not a classifier: its output per image has shape {pred.shape[1:]}, where "
                          "one vector of class scores, (N, classes), is expected; pass a classifier")
    if pred.ndim == 2:
        pred = pred.argmax(axis=1)
    pred = pred.reshape(-1)
    if pred.shape != labels.shape:
        raise ArnkitError(f"the model is not a classifier of these images: {len(pred)} predictions for "
                          f"{len(labels)} labels, where one class per image is expected; pass a classifier whose "
                          "output is (N, classes)")
    return pred != labels


def error_rate(wrong: np.ndarray) -> float:
    """Percentage (0-100) of True entries; 0 for an empty set."""
    wrong = np.asarray(wrong, dtype=bool)
    return float(100.0 * wrong.mean()) if wrong.size else 0.0


def worst_case(wrong_by_attack: Mapping[str, np.ndarray]) -> np.ndarray:
    """Per example: wrong under at least one attack (the attacker picks the best attack per image)."""
    masks = [np.asarray(m, dtype=bool) for m in wrong_by_attack.values()]
    if not masks:
        raise ArnkitError("worst case needs at least one attack")
    if len({m.shape for m in masks}) != 1:
        raise ArnkitError("worst case needs every attack on the same images; use one --limit for all")
    return np.logical_or.reduce(masks)


def accuracy(wrong: np.ndarray) -> float:
    """Fraction (0-1) of correct entries."""
    return 1.0 - error_rate(wrong) / 100.0
