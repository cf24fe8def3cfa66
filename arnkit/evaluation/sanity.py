"""Sanity checks for adaptive evaluations (Carlini et al. 2019, arXiv:1902.06705; Pintor et al. 2022,
"Indicators of Attack Failure", arXiv:2106.09947). Each check is reported, pass or fail, never hidden:

- gradient: the loss gradient through the attacked pipeline is finite and nonzero, for cross-entropy AND for
  the margin loss DLR (else the attack is blind: gradient masking, the failure BPDA and EOT exist for; saturated
  logits zero CE's gradient but not DLR's, a flat margin the reverse);
- iterations: doubling the attack's iterations changes the error rate by at most 0.5 points (else the attack
  had not converged and the number is optimistic);
- large_eps: an unbounded-enough budget (L-inf 0.5 on MNIST) drives accuracy to chance or below (any image can
  be pushed to mid-grey, so a defense that survives it is masking gradients, not robust);
- ordering: the white-box attack is at least as strong as BPDA and transfer/gray-box attacks (a weaker white
  box means its gradients are unreliable);
- gradient_free: a gradient-free attack (SPSA), run on the images the gradient attacks left correct, fools
  at most GRADIENT_FREE_TOLERANCE points of the images more (after AutoAttack's `checks.py`, which flags
  Square beating APGD): an attack that never looks at the gradient can only win if the gradient misleads.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

ITERATION_TOLERANCE = 0.5  # points of error rate
CHANCE_TOLERANCE = 2.0  # points above chance, for sampling noise on a few hundred images
NONZERO_FRACTION = 0.9
GRADIENT_FREE_TOLERANCE = 2.0  # points of error rate, for the randomness of both attacks on a small subset
GRADIENT_LOSSES = ("ce", "dlr")  # the gradient check's losses: cross-entropy and the margin loss DLR


@dataclass
class SanityCheck:
    name: str
    passed: bool
    value: Any
    expected: str
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def input_gradients(model: Any, x: np.ndarray, y: np.ndarray, batch_size: int = 256, loss: str = "ce") -> np.ndarray:
    """d loss(model(x), y) / dx per example (zeros where the graph is cut), on the running Keras backend."""
    from keras import ops

    from arnkit.attacks.gradients import loss_gradient

    out = []
    for start in range(0, len(x), batch_size):
        xb = ops.convert_to_tensor(np.asarray(x[start:start + batch_size], np.float32))
        yb = ops.convert_to_tensor(np.asarray(y[start:start + batch_size], np.int32))
        out.append(np.asarray(ops.convert_to_numpy(loss_gradient(model, xb, yb, loss=loss))))
    return np.concatenate(out) if out else np.zeros_like(x)


def gradient_health(grads: np.ndarray) -> dict[str, Any]:
    """{"finite": no NaN/inf anywhere, "nonzero_fraction": share of examples with some nonzero entry}."""
    finite = bool(np.all(np.isfinite(grads)))
    per_example = np.abs(grads.reshape(len(grads), -1)).max(axis=1) if len(grads) else np.zeros(0)
    nonzero = float(np.mean(per_example > 0)) if len(per_example) else 0.0
    return {"finite": finite, "nonzero_fraction": round(nonzero, 4)}


def predicted_classes(model: Any, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    from keras import ops

    return np.concatenate([np.argmax(np.asarray(ops.convert_to_numpy(model(x[i:i + batch_size], training=False))), -1)
                           for i in range(0, len(x), batch_size)]) if len(x) else np.zeros(0, int)


def gradient_check(model: Any, x: np.ndarray, y: np.ndarray) -> SanityCheck:
    """The input gradient of each loss in GRADIENT_LOSSES is finite and nonzero for >= NONZERO_FRACTION of
    the examples; one loss failing flags the check (the attacker may use either). DLR is judged on the images
    the attacked model classifies correctly: a misclassified image needs no gradient, and DLR is flat (1)
    wherever the true class ranks third."""
    correct = predicted_classes(model, x) == np.asarray(y)
    health: dict[str, dict[str, Any]] = {}
    for loss in GRADIENT_LOSSES:
        keep = correct if loss == "dlr" else np.ones(len(x), bool)
        health[loss] = {**gradient_health(input_gradients(model, x[keep], y[keep], loss=loss)),
                        "images": int(keep.sum())}
    bad = [loss for loss, h in health.items()
           if h["images"] and not (h["finite"] and h["nonzero_fraction"] >= NONZERO_FRACTION)]
    detail = "" if not bad else (f"the {' and '.join(bad)} gradient through the defense is masked (zero or not "
                                 "finite): use --threat-model bpda")
    return SanityCheck("gradient", not bad, health,
                       f"finite and nonzero for >= {NONZERO_FRACTION:.0%} of examples, for the "
                       f"{' and '.join(GRADIENT_LOSSES)} losses (dlr: on the correctly classified ones)", detail)


def iterations_check(error_n: float, error_2n: float, iterations: int) -> SanityCheck:
    gap = abs(error_2n - error_n)
    passed = gap <= ITERATION_TOLERANCE
    return SanityCheck("iterations", passed, {"iterations": iterations, "error": round(error_n, 3),
                                              "error_doubled": round(error_2n, 3), "gap": round(gap, 3)},
                       f"|error(2x iterations) - error| <= {ITERATION_TOLERANCE} points",
                       "" if passed else "the attack has not converged: raise --iterations")


def large_eps_check(accuracy_pct: float, num_classes: int, eps: float) -> SanityCheck:
    chance = 100.0 / num_classes
    passed = accuracy_pct <= chance + CHANCE_TOLERANCE
    return SanityCheck("large_eps", passed, {"eps": eps, "accuracy": round(accuracy_pct, 3),
                                             "chance": round(chance, 3)},
                       f"accuracy <= chance + {CHANCE_TOLERANCE} points at L-inf eps {eps}",
                       "" if passed else "the defense survives an unbounded-enough budget: gradients are masked")


def ordering_check(white_error: float, others: dict[str, float], restarts: int = 1) -> SanityCheck:
    """White-box error >= every proxy's (BPDA, gray box); all errors come from the same attack at the same
    iterations and the same number of restarts, else the comparison leans one way."""
    strongest = max(others.values()) if others else white_error
    passed = white_error >= strongest
    alike = f"every error with {restarts} restart{'s' if restarts != 1 else ''}"
    return SanityCheck("ordering", passed, {"white": round(white_error, 3),
                                            **{k: round(v, 3) for k, v in others.items()}, "restarts": restarts},
                       "white-box error >= BPDA and gray-box/transfer error",
                       (alike if passed else
                        f"the white-box attack is weaker than a proxy attack: its gradients mislead ({alike})"))


def tolerance_images(n: int) -> int:
    """GRADIENT_FREE_TOLERANCE points of n images, as a whole number of images (rounded down)."""
    return int(np.floor(GRADIENT_FREE_TOLERANCE * n / 100.0 + 1e-9))


def gradient_free_check(n: int, gradient_errors: dict[str, float], gradient_error: float, survivors: int,
                        tried: int, fooled: int, free_attack: str) -> SanityCheck:
    """Flag when the gradient-free attack fools more than GRADIENT_FREE_TOLERANCE points of the n checked
    images that the gradient attacks (errors in %, on the same n images and threat model) left correct.

    `survivors`: images the gradient attacks left correct; `tried`: how many of them the gradient-free attack
    ran on (all, up to its limit); `fooled`: how many of those it broke."""
    allowed = tolerance_images(n)
    passed = fooled <= allowed
    gain = 100.0 * fooled / n if n else 0.0
    stated = f"{GRADIENT_FREE_TOLERANCE:g} points ({allowed} of {n} images)"
    detail = (f"{free_attack} broke {fooled} of the {tried} images the gradient attacks left correct "
              f"(+{gain:.2f} points); tolerance {stated}")
    if not passed:
        detail = "a gradient-free attack beats the gradient attacks: gradients are masked; " + detail
    return SanityCheck("gradient_free", passed,
                       {**{k: round(v, 3) for k, v in gradient_errors.items()},
                        "gradient_error": round(gradient_error, 3), "n": n, "survivors": survivors,
                        "tried": tried, "fooled": fooled, "gain": round(gain, 3), "tolerance_images": allowed},
                       f"the gradient-free attack breaks <= {stated} the gradient attacks left correct", detail,
                       {"gradient": sorted(gradient_errors), "gradient_free": free_attack})
