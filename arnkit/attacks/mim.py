"""Momentum iterative method, L-inf (Dong et al., "Boosting Adversarial Attacks with Momentum", CVPR 2018,
arXiv:1710.06081; MI-FGSM). Distance: L-inf. TensorFlow-only module.

From x itself (no random start), each step adds the gradient of the cross-entropy, divided by its mean
absolute value per example, to a running sum g <- decay * g + grad / mean|grad|. Then it steps `step_size`
along sign(g) (ascent when untargeted, descent toward the target when targeted), projecting onto the eps-ball
and onto [0,1]. The momentum keeps the direction steady across steps: the paper's point is that this
transfers better to other models than PGD / iterative FGSM.

Defaults are the paper's: T = 10 iterations of step eps / T with decay mu = 1.0. At MNIST's eps .3 that is 10
steps of .03. (cleverhans's own function default is a step of .06 = 2 eps / T.) Leave `step_size` unset and it
follows eps / steps, so a raised budget (`mim_n@0.4`) or another step count still walks exactly eps.
Next to the repo's PGD (ARN's 40 steps of .01 from a random start, .4 of walk for eps .3) this is shorter and
deterministic: the paper's attack as published, not PGD's schedule with momentum added.

Arguments: eps (L-inf radius in [0,1] pixel units), steps, step_size (None = eps / steps), decay, targeted,
batch_size.

    from arnkit import attacks
    attack = attacks.make("mim_n", dataset="mnist")    # eps .3, 10 steps of .03, decay 1
    result = attack(model, x, y, seed=0)               # model maps [0,1] images to logits

The update is cleverhans's `momentum_iterative_method` (cleverhans 4.0.0, tf2), called per batch. It works on
Keras 3 models as they are: it only calls the model on a tensor and takes the input gradient.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import tensorflow as tf
from cleverhans.tf2.attacks.momentum_iterative_method import momentum_iterative_method

from arnkit.attacks.base import Attack
from arnkit.attacks.pgd import _check_eps
from arnkit.errors import ArnkitError


class MIM(Attack):
    """L-inf momentum iterative method (MI-FGSM, Dong et al. 2018), through cleverhans."""

    name: ClassVar[str] = "mim"
    distance: ClassVar[str] = "linf"
    targeted_by_default: ClassVar[bool] = False
    has_eps: ClassVar[bool] = True

    def __init__(self, *, eps: float = 0.3, steps: int = 10, step_size: float | None = None,
                 decay: float = 1.0, targeted: bool | None = None, batch_size: int = 256) -> None:
        super().__init__(targeted=targeted, batch_size=batch_size)
        self.eps = _check_eps(eps)
        if int(steps) < 1:
            raise ArnkitError(f"steps must be >= 1, got {steps}")
        self.steps = int(steps)
        # Resolved here, so params() records the step actually taken (it keys cached adversarial sets).
        self.step_size = self.eps / self.steps if step_size is None else float(step_size)
        if not self.step_size >= 0.0:
            raise ArnkitError(f"step_size must be >= 0, got {step_size}")
        if not decay >= 0.0:
            raise ArnkitError(f"decay must be >= 0 (0: iterative FGSM, no momentum), got {decay}")
        self.decay = float(decay)

    def run(self, model: Any, x: tf.Tensor, y: tf.Tensor, target: tf.Tensor | None, *, seed: int,
            batch: int) -> tf.Tensor:
        # MIM starts at x and draws nothing at random: seed and batch do not change it.
        labels = target if self.targeted else y
        # The base class has validated x; cleverhans's own range asserts would only add a host round trip.
        return momentum_iterative_method(model, x, eps=self.eps, eps_iter=self.step_size, nb_iter=self.steps,
                                         norm=np.inf, clip_min=0.0, clip_max=1.0, y=labels,
                                         targeted=self.targeted, decay_factor=self.decay, sanity_checks=False)
