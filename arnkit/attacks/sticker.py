"""Sticker patches AP1-AP4: the masked, unbounded attack DOA (Wu et al. ICLR 2020) runs on LISA, after RP2
(Eykholt et al. CVPR 2018). Distance: "patch" (free inside the mask, zero outside; no eps). TensorFlow-only.

DOA's `sign/experiment/physical_attack.py` (tongwu2020/phattacks) is untargeted and works "in digit space":
no expectation over transformations and no printability term. The perturbation starts uniform in [0, 1) on the
mask (then clipped so that x + delta stays in [0, 1]) and is driven by Adam with lr 0.1, created afresh at every
iteration, for 10, 100 or 1,000 iterations. A fresh Adam's first step is lr * g / (|g| + 1e-8), i.e. a signed
gradient step of size lr, so this module takes exactly that step:

    delta <- clip(x + M * (delta - step_size * sign(grad L)), 0, 1) - x

DOA's loss term lambda * ||delta||_2 is computed there but never back-propagated (only the cross-entropy is),
so it is left out. Where we differ: L is -log(1 - p_y) (see `arnkit.attacks.rp2.classification_loss`) rather
than -CE(y); both push p_y down, and the sign of the gradient is the same direction whenever both are non-zero,
but -CE's gradient underflows to exactly zero in float32 on a very confident prediction, which would stall a
signed step. Each example keeps its last adversarial delta (or the final one if none was), so the result's
success agrees with the optimization. `targeted=True` minimizes the target's cross-entropy instead.

Arguments: mask (a name in `arnkit.attacks.masks.MASKS`, default "ap1", or an (H, W[, C]) array in [0, 1]),
steps (100: DOA's middle setting), step_size (0.1), random_start (True), targeted, batch_size.

    from arnkit import attacks
    attack = attacks.make("ap2", dataset="lisa")      # mask ap2, 100 signed steps of .1 from a random start
    result = attack(model, x, y, seed=0)
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import tensorflow as tf

from arnkit.attacks.base import Attack
from arnkit.attacks.masks import make_mask, mask_spec
from arnkit.attacks.rp2 import _is_adversarial, classification_loss
from arnkit.errors import ArnkitError


@tf.function(reduce_retracing=True)
def masked_sign_loop(model: Any, x: tf.Tensor, labels: tf.Tensor, mask: tf.Tensor, targeted: tf.Tensor,
                     steps: tf.Tensor, step_size: tf.Tensor, random_start: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Signed-gradient descent of the loss on the masked perturbation; the image of each example's best delta."""
    start = tf.random.stateless_uniform(tf.shape(x), seed) * tf.cast(random_start, tf.float32)
    delta = tf.clip_by_value(x + mask * start, 0.0, 1.0) - x
    best = delta
    found = tf.zeros([tf.shape(x)[0]], tf.bool)
    for _ in tf.range(steps):
        with tf.GradientTape() as tape:
            tape.watch(delta)
            logits = model(x + delta, training=False)
            # summed: each example's step follows its own loss, whatever the batch size
            loss = tf.reduce_sum(classification_loss(logits, labels, targeted))
        grad = tape.gradient(loss, delta, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        success = _is_adversarial(logits, labels, targeted)
        best = tf.where(success[:, None, None, None], delta, best)
        found = tf.logical_or(found, success)
        delta = tf.clip_by_value(x + mask * (delta - step_size * tf.sign(grad)), 0.0, 1.0) - x
    success = _is_adversarial(model(x + delta, training=False), labels, targeted)
    best = tf.where(tf.logical_or(success, tf.logical_not(found))[:, None, None, None], delta, best)
    return x + best


class StickerPatch(Attack):
    """Masked signed-gradient patch attack from a random start (DOA's LISA sticker attack)."""

    name: ClassVar[str] = "sticker"
    distance: ClassVar[str] = "patch"
    targeted_by_default: ClassVar[bool] = False
    has_eps: ClassVar[bool] = False

    def __init__(self, *, mask: str | np.ndarray = "ap1", steps: int = 100, step_size: float = 0.1,
                 random_start: bool = True, targeted: bool | None = None, batch_size: int = 256) -> None:
        super().__init__(targeted=targeted, batch_size=batch_size)
        self.mask = mask_spec(mask)
        if int(steps) < 0:
            raise ArnkitError(f"steps must be >= 0, got {steps}")
        if not step_size > 0.0:
            raise ArnkitError(f"step_size must be > 0, got {step_size}")
        self.steps = int(steps)
        self.step_size = float(step_size)
        self.random_start = bool(random_start)

    def mask_for(self, shape: tuple[int, int, int]) -> np.ndarray:
        """The mask this attack applies to images of shape (H, W, C)."""
        return make_mask(self.mask, shape[:2], shape[2])

    def run(self, model: Any, x: tf.Tensor, y: tf.Tensor, target: tf.Tensor | None, *, seed: int,
            batch: int) -> tf.Tensor:
        labels = target if self.targeted else y
        mask = tf.constant(self.mask_for(tuple(x.shape[1:])))
        # random starts differ between batches of a call but repeat between calls
        draw = tf.constant([seed, batch * 1_000_003 + 7], tf.int64)
        return masked_sign_loop(model, x, labels, mask, tf.constant(self.targeted), tf.constant(self.steps),
                                tf.constant(self.step_size), tf.constant(self.random_start), draw)
