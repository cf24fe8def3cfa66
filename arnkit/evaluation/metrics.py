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


# z for a two-sided 95% interval (the normal quantile 0.975)
Z95 = 1.959963984540054


def wilson_interval(wrong: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval (percent, 0-100) for `wrong` misclassified of `n` images: unlike the normal
    approximation it stays inside [0, 100] and is not zero-width at 0 or n errors. n = 0: (0, 100)."""
    if n <= 0:
        return 0.0, 100.0
    if not 0 <= wrong <= n:
        raise ArnkitError(f"an error count of {wrong} out of {n} images is impossible")
    p, z2 = wrong / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return float(100.0 * max(0.0, centre - half)), float(100.0 * min(1.0, centre + half))


def error_interval(error: float, n: int) -> list[float]:
    """The 95% Wilson interval of a table cell from its error rate (%) and image count, rounded like the
    cells: the count of wrong images is recovered exactly, since cells keep 4 decimals of a percent."""
    lo, hi = wilson_interval(int(round(float(error) * int(n) / 100.0)), int(n))
    return [round(lo, 4), round(hi, 4)]


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
