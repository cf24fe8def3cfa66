"""A high-confidence L-inf attack for checking detectors: projected gradient ascent (Madry et al., ICLR 2018,
arXiv:1706.06083) on the Carlini-Wagner margin loss with a confidence margin kappa (Carlini & Wagner,
"Towards Evaluating the Robustness of Neural Networks", S&P 2017, arXiv:1608.04644). Distance: L-inf.
TensorFlow-only module.

Athalye, Carlini & Wagner ("Obfuscated Gradients Give a False Sense of Security", ICML 2018,
arXiv:1802.00420) report that LID detectors trained on ordinary attacks miss high-confidence adversarial
examples. The loss per example is min(max_{j != y} z_j - z_y, kappa) on the logits z: its gradient vanishes
once a wrong class leads by kappa, so with no random start every image moves only until it is misclassified
with that margin (a small, confident perturbation, unlike the eps-filling PGD on cross-entropy).

Arguments: eps (L-inf radius in [0,1] pixel units), kappa (logit margin), steps, step_size, batch_size.

    from arnkit.detection.high_confidence import HighConfidencePGD
    result = HighConfidencePGD(eps=0.3, kappa=20.0)(model, x, y, seed=0)
"""

from __future__ import annotations

from typing import Any, ClassVar

import tensorflow as tf

from arnkit.attacks.base import Attack
from arnkit.attacks.pgd import sign_gradient_descent
from arnkit.errors import ArnkitError


class HighConfidencePGD(Attack):
    """Untargeted L-inf PGD on the CW margin loss, stopping per example at margin kappa."""

    name: ClassVar[str] = "pgd_cw_high_confidence"
    distance: ClassVar[str] = "linf"
    targeted_by_default: ClassVar[bool] = False
    has_eps: ClassVar[bool] = True

    def __init__(self, *, eps: float = 0.3, kappa: float = 20.0, steps: int = 100, step_size: float = 0.01,
                 batch_size: int = 256) -> None:
        super().__init__(targeted=False, batch_size=batch_size)
        if not 0.0 <= eps <= 1.0:
            raise ArnkitError(f"eps must be in [0,1] (an L-inf radius in pixel units), got {eps}")
        if not kappa >= 0.0:
            raise ArnkitError(f"kappa must be >= 0 (a logit margin), got {kappa}")
        if int(steps) < 1 or not step_size > 0.0:
            raise ArnkitError(f"need steps >= 1 and step_size > 0, got {steps} and {step_size}")
        self.eps = float(eps)
        self.kappa = float(kappa)
        self.steps = int(steps)
        self.step_size = float(step_size)

    def run(self, model: Any, x: tf.Tensor, y: tf.Tensor, target: tf.Tensor | None, *, seed: int,
            batch: int) -> tf.Tensor:
        return sign_gradient_descent(model, x, x, y, eps=self.eps, step_size=self.step_size, steps=self.steps,
                                     ascend=True, margin_kappa=self.kappa)
