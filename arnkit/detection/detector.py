"""The binary detector on top of per-example features (LID and future KD / Mahalanobis features), and the
noisy negatives it is trained with, as in Ma et al. (ICLR 2018, arXiv:1801.02613) and Feinman et al.
("Detecting Adversarial Samples from Artifacts", 2017, arXiv:1703.00410).

Positives are adversarial examples; negatives are natural examples AND natural examples with random
Gaussian noise, so that the detector learns "adversarial", not merely "perturbed". The detector is a
MinMaxScaler followed by a logistic regression with C cross-validated on log-loss, fitted on a seeded, stratified 80% of the
examples and scored by ROC AUC on the other 20%.

    from arnkit.detection.detector import train_detector, detector_scores
    detector, auc, split = train_detector(f_adv, np.concatenate([f_nat, f_noisy]), seed=0)
    p_adv = detector_scores(detector, f_restored)      # probability of "adversarial"
"""

from __future__ import annotations

from typing import Any

import numpy as np

from arnkit.errors import ArnkitError

TEST_FRACTION = 0.2
CV_FOLDS = 5


def train_detector(features_pos: np.ndarray, features_neg: np.ndarray, seed: int = 0, *,
                   test_fraction: float = TEST_FRACTION) -> tuple[Any, float, dict[str, Any]]:
    """Fit MinMaxScaler -> LogisticRegressionCV on a seeded stratified split; return (detector, test AUC,
    split details).

    The details hold `train_index` / `test_index` (rows of the stacked [positives; negatives]), `y_test`,
    `scores_test`, the ROC curve (`fpr`, `tpr`), the counts, and the chosen inverse regularization `C`.
    """
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.metrics import roc_auc_score, roc_curve
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler
    from threadpoolctl import threadpool_limits

    pos = np.asarray(features_pos, np.float64)
    neg = np.asarray(features_neg, np.float64)
    if pos.ndim != 2 or neg.ndim != 2 or pos.shape[1] != neg.shape[1]:
        raise ArnkitError(f"features must be 2-D with the same number of columns, got {pos.shape} and {neg.shape}")
    smallest = min(len(pos), len(neg))
    if smallest * test_fraction < 1 or smallest * (1 - test_fraction) < 2:
        raise ArnkitError(f"too few examples to train and test a detector ({len(pos)} adversarial, {len(neg)} "
                          "natural); use a larger --limit")
    x = np.concatenate([pos, neg])
    y = np.concatenate([np.ones(len(pos), np.int64), np.zeros(len(neg), np.int64)])
    if not np.all(np.isfinite(x)):
        raise ArnkitError("detector features contain NaN or Inf; check the model's activations")
    train_index, test_index = train_test_split(np.arange(len(x)), test_size=test_fraction, stratify=y,
                                               random_state=seed)
    folds = int(min(CV_FOLDS, np.bincount(y[train_index]).min()))
    detector = make_pipeline(MinMaxScaler(), LogisticRegressionCV(**_logistic_cv_args(max(folds, 2))))
    # The fits are tiny (a few features): one BLAS thread avoids thread thrashing on busy small machines.
    with threadpool_limits(1, user_api="blas"):
        detector.fit(x[train_index], y[train_index])
    scores = detector_scores(detector, x[test_index])
    auc = float(roc_auc_score(y[test_index], scores))
    fpr, tpr, _ = roc_curve(y[test_index], scores)
    details = {
        "train_index": train_index, "test_index": test_index, "y_test": y[test_index], "scores_test": scores,
        "fpr": fpr, "tpr": tpr, "n_train": int(len(train_index)), "n_test": int(len(test_index)),
        "n_train_positive": int(y[train_index].sum()), "n_test_positive": int(y[test_index].sum()),
        "cv_folds": max(folds, 2), "C": float(np.ravel(detector[-1].C_)[0]),
    }
    return detector, auc, details


def _logistic_cv_args(folds: int) -> dict[str, Any]:
    """L2 logistic regression, C chosen by cross-validated log-loss: accuracy (the old default) often picks the
    strongest regularization, whose probabilities all sit near 0.5 and make a 0.5 threshold meaningless."""
    import inspect

    from sklearn.linear_model import LogisticRegressionCV

    args: dict[str, Any] = {"cv": folds, "max_iter": 1000, "scoring": "neg_log_loss"}
    if "use_legacy_attributes" in inspect.signature(LogisticRegressionCV).parameters:  # scikit-learn >= 1.8
        args.update(use_legacy_attributes=False, l1_ratios=(0.0,))
    return args


def detector_scores(detector: Any, features: np.ndarray) -> np.ndarray:
    """Probability that each row is adversarial."""
    features = np.asarray(features, np.float64)
    if len(features) == 0:
        return np.zeros(0)
    return detector.predict_proba(features)[:, 1]


def predict_labels(model: Any, x: np.ndarray, batch_size: int = 500) -> np.ndarray:
    from keras import ops

    out = [np.argmax(ops.convert_to_numpy(model(x[i:i + batch_size], training=False)), -1)
           for i in range(0, len(x), batch_size)]
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def noisy_negatives(model: Any, x: np.ndarray, y: np.ndarray, *, target_l2: float, seed: int = 0,
                    min_accuracy: float = 0.98, halvings: int = 8) -> tuple[np.ndarray, float, float]:
    """Gaussian-noise copies of `x`, clipped to [0,1], that the model still classifies correctly.

    sigma starts where the noise has the adversarial perturbation's L2 norm (`target_l2`: sigma = L2 /
    sqrt(pixels)) and is halved until at least `min_accuracy` of the images the model gets right stay right
    under noise. Returns (noisy images, sigma, that accuracy).
    """
    x = np.asarray(x, np.float32)
    correct = predict_labels(model, x) == y
    if not correct.any():
        raise ArnkitError("the model misclassifies every natural image; train the target first")
    noise = np.random.default_rng(seed).standard_normal(x.shape).astype(np.float32)
    sigma = float(target_l2) / np.sqrt(x[0].size) if len(x) else 0.0
    accuracy = 1.0
    for _ in range(halvings + 1):
        noisy = np.clip(x + sigma * noise, 0.0, 1.0)
        accuracy = float(np.mean(predict_labels(model, noisy[correct]) == y[correct]))
        if accuracy >= min_accuracy or sigma == 0.0:
            break
        sigma /= 2.0
    return noisy, float(sigma), accuracy
