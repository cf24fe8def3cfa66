"""Sanity checks for adaptive evaluations (Carlini et al. 2019, arXiv:1902.06705; Pintor et al. 2022,
"Indicators of Attack Failure", arXiv:2106.09947). Each check is reported, pass or fail, never hidden:

- gradient: the loss gradient through the attacked pipeline is finite and nonzero (else the attack is blind:
  gradient masking, the failure BPDA and EOT exist for);
- iterations: doubling the attack's iterations changes the error rate by at most 0.5 points (else the attack
  had not converged and the number is optimistic);
- large_eps: an unbounded-enough budget (L-inf 0.5 on MNIST) drives accuracy to chance or below (any image can
  be pushed to mid-grey, so a defense that survives it is masking gradients, not robust);
- ordering: the white-box attack is at least as strong as BPDA and transfer/gray-box attacks (a weaker white
  box means its gradients are unreliable);
- gradient_free: no gradient-free attack (SPSA, Square) beats the gradient attacks at the same budget (after
  AutoAttack's `checks.py`, which flags Square beating APGD): an attack that never looks at the gradient
  can only win if the gradient misleads.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

ITERATION_TOLERANCE = 0.5  # points of error rate
CHANCE_TOLERANCE = 2.0  # points above chance, for sampling noise on a few hundred images
NONZERO_FRACTION = 0.9
GRADIENT_FREE_TOLERANCE = 2.0  # points of error rate, for the randomness of both attacks on a small subset


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


def input_gradients(model: Any, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """d CE(model(x), y) / dx per example (zeros where the graph is cut), on the running Keras backend."""
    from keras import ops

    from arnkit.attacks.gradients import loss_gradient

    out = []
    for start in range(0, len(x), batch_size):
        xb = ops.convert_to_tensor(np.asarray(x[start:start + batch_size], np.float32))
        yb = ops.convert_to_tensor(np.asarray(y[start:start + batch_size], np.int32))
        out.append(np.asarray(ops.convert_to_numpy(loss_gradient(model, xb, yb, loss="ce"))))
    return np.concatenate(out) if out else np.zeros_like(x)


def gradient_check(model: Any, x: np.ndarray, y: np.ndarray) -> SanityCheck:
    grads = input_gradients(model, x, y)
    finite = bool(np.all(np.isfinite(grads)))
    per_example = np.abs(grads.reshape(len(grads), -1)).max(axis=1) if len(grads) else np.zeros(0)
    nonzero = float(np.mean(per_example > 0)) if len(per_example) else 0.0
    passed = finite and nonzero >= NONZERO_FRACTION
    return SanityCheck("gradient", passed, {"finite": finite, "nonzero_fraction": round(nonzero, 4)},
                       f"finite and nonzero for >= {NONZERO_FRACTION:.0%} of examples",
                       "" if passed else "the gradient through the defense is masked: use --threat-model bpda")


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


def ordering_check(white_error: float, others: dict[str, float]) -> SanityCheck:
    strongest = max(others.values()) if others else white_error
    passed = white_error >= strongest
    return SanityCheck("ordering", passed, {"white": round(white_error, 3),
                                            **{k: round(v, 3) for k, v in others.items()}},
                       "white-box error >= BPDA and gray-box/transfer error",
                       "" if passed else "the white-box attack is weaker than a proxy attack: its gradients mislead")


def gradient_free_check(gradient_errors: dict[str, float], free_errors: dict[str, float]) -> SanityCheck:
    """Flag when the strongest gradient-free attack's error exceeds the strongest gradient attack's by more
    than GRADIENT_FREE_TOLERANCE points (errors in %, same images, same threat model and budget)."""
    best_gradient = max(gradient_errors.values()) if gradient_errors else 0.0
    best_free = max(free_errors.values()) if free_errors else 0.0
    passed = best_free <= best_gradient + GRADIENT_FREE_TOLERANCE
    return SanityCheck("gradient_free", passed,
                       {**{k: round(v, 3) for k, v in gradient_errors.items()},
                        **{k: round(v, 3) for k, v in free_errors.items()}},
                       f"gradient-free error <= gradient-attack error + {GRADIENT_FREE_TOLERANCE} points",
                       "" if passed else "a gradient-free attack beats the gradient attacks: gradients are masked",
                       {"gradient": sorted(gradient_errors), "gradient_free": sorted(free_errors)})
