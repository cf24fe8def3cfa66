"""Sticker patches AP1-AP4: the masked, unbounded attack DOA (Wu et al. ICLR 2020) runs on LISA, after RP2
(Eykholt et al. CVPR 2018). Distance: "patch" (free inside the mask, zero outside; no eps). TensorFlow-only.

DOA's `sign/experiment/physical_attack.py` (tongwu2020/phattacks) is untargeted and works "in digit space":
no expectation over transformations and no printability term. The perturbation starts uniform in [0, 1) on the
mask (then clipped so that x + delta stays in [0, 1]) and is driven by Adam with lr 0.1, created afresh at every
iteration, for 10, 100 or 1,000 iterations, on one batch of all 1,148 LISA test images. A fresh Adam's first
step is lr * g / (|g| + eps), eps = 1e-8, so this module takes exactly that step:

    delta <- clip(x + M * (delta - step_size * g / (|g| + adam_eps)), 0, 1) - x

with g the gradient of the summed per-example loss divided by `loss_mean_over` (DOA: the batch mean over
1,148 images). `adam_eps=0` makes it a pure signed step (g / |g|, and 0 where g is 0). With DOA's loss -CE(y)
and eps 1e-8, g on a confidently classified sign is far below 1e-8 and the step stalls there: that is part of
DOA's attack as run, and why it fools fewer signs than a signed step would. DOA's loss term lambda *
||delta||_2 is computed there but never back-propagated (only the cross-entropy is), so it is left out.

Two settings (`arnkit.data.budgets.DOA_STICKER` gives the dataset's, DOA's):
- DOA's (the budgets' default on LISA): loss "ce" (-CE(y)), adam_eps 1e-8, loss_mean_over 1148, keep_best False
  (the final iterate is returned).
- arnkit's stronger one (this constructor's defaults): loss "not_label", -log(1 - p_y) (see
  `arnkit.attacks.rp2.classification_loss`), whose gradient does not underflow on a confident prediction;
  adam_eps 0 (pure signed steps); keep_best True (each example keeps its last adversarial delta, or the final one
  if none was). It measures robustness, not the paper's numbers.
`targeted=True` minimizes the target's cross-entropy under either setting.

Arguments: mask (a name in `arnkit.attacks.masks.MASKS`, default "ap1", or an (H, W[, C]) array in [0, 1]),
steps (100: DOA's middle setting), step_size (0.1, DOA's Adam lr), random_start (True), loss ("ce" or
"not_label"), adam_eps (>= 0), loss_mean_over (>= 1), keep_best, targeted, batch_size.

    from arnkit import attacks
    attack = attacks.make("ap2", dataset="lisa")      # mask ap2, DOA's 100 fresh-Adam steps of lr .1
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

LOSSES = ("ce", "not_label")  # DOA's -CE(y); arnkit's -log(1 - p_y)


def sticker_loss(logits: tf.Tensor, labels: tf.Tensor, targeted: tf.Tensor, doa_ce: tf.Tensor) -> tf.Tensor:
    """Per-example loss to minimize: the target's CE (targeted), else -CE(y) (DOA) or -log(1 - p_y)."""
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    untargeted = tf.where(doa_ce, -ce, classification_loss(logits, labels, tf.constant(False)))
    return tf.where(targeted, ce, untargeted)


@tf.function(reduce_retracing=True)
def masked_sign_loop(model: Any, x: tf.Tensor, labels: tf.Tensor, mask: tf.Tensor, targeted: tf.Tensor,
                     steps: tf.Tensor, step_size: tf.Tensor, random_start: tf.Tensor, seed: tf.Tensor,
                     doa_ce: tf.Tensor, adam_eps: tf.Tensor, loss_mean_over: tf.Tensor,
                     keep_best: tf.Tensor) -> tf.Tensor:
    """Fresh-Adam (or signed) descent of the loss on the masked perturbation; the image of the returned delta."""
    start = tf.random.stateless_uniform(tf.shape(x), seed) * tf.cast(random_start, tf.float32)
    delta = tf.clip_by_value(x + mask * start, 0.0, 1.0) - x
    best = delta
    found = tf.zeros([tf.shape(x)[0]], tf.bool)
    for _ in tf.range(steps):
        with tf.GradientTape() as tape:
            tape.watch(delta)
            logits = model(x + delta, training=False)
            # summed, then divided by a fixed count: each example's step follows its own loss, whatever the
            # batch size or --limit (DOA's batch mean is over its one batch of 1,148 images)
            loss = tf.reduce_sum(sticker_loss(logits, labels, targeted, doa_ce)) / loss_mean_over
        grad = tape.gradient(loss, delta, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        success = _is_adversarial(logits, labels, targeted)
        best = tf.where(success[:, None, None, None], delta, best)
        found = tf.logical_or(found, success)
        # a fresh Adam's first step; with adam_eps = 0 it is sign(grad) (and 0 where grad is 0)
        direction = tf.math.divide_no_nan(grad, tf.abs(grad) + adam_eps)
        delta = tf.clip_by_value(x + mask * (delta - step_size * direction), 0.0, 1.0) - x
    success = _is_adversarial(model(x + delta, training=False), labels, targeted)
    final = tf.logical_or(tf.logical_not(keep_best), tf.logical_or(success, tf.logical_not(found)))
    best = tf.where(final[:, None, None, None], delta, best)
    return x + best


class StickerPatch(Attack):
    """Masked fresh-Adam / signed-gradient patch attack from a random start (DOA's LISA sticker attack)."""

    name: ClassVar[str] = "sticker"
    distance: ClassVar[str] = "patch"
    targeted_by_default: ClassVar[bool] = False
    has_eps: ClassVar[bool] = False

    def __init__(self, *, mask: str | np.ndarray = "ap1", steps: int = 100, step_size: float = 0.1,
                 random_start: bool = True, loss: str = "not_label", adam_eps: float = 0.0,
                 loss_mean_over: int = 1, keep_best: bool = True, targeted: bool | None = None,
                 batch_size: int = 256) -> None:
        super().__init__(targeted=targeted, batch_size=batch_size)
        self.mask = mask_spec(mask)
        if int(steps) < 0:
            raise ArnkitError(f"steps must be >= 0, got {steps}")
        if not step_size > 0.0:
            raise ArnkitError(f"step_size must be > 0, got {step_size}")
        if loss not in LOSSES:
            raise ArnkitError(f"unknown sticker loss '{loss}'; choose one of {', '.join(LOSSES)}")
        if not adam_eps >= 0.0:
            raise ArnkitError(f"adam_eps must be >= 0 (0 = a pure signed step), got {adam_eps}")
        if int(loss_mean_over) < 1:
            raise ArnkitError(f"loss_mean_over must be >= 1 (DOA's batch: 1148), got {loss_mean_over}")
        self.steps = int(steps)
        self.step_size = float(step_size)
        self.random_start = bool(random_start)
        self.loss = str(loss)
        self.adam_eps = float(adam_eps)
        self.loss_mean_over = int(loss_mean_over)
        self.keep_best = bool(keep_best)

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
                                tf.constant(self.step_size), tf.constant(self.random_start), draw,
                                tf.constant(self.loss == "ce"), tf.constant(self.adam_eps, tf.float32),
                                tf.constant(float(self.loss_mean_over), tf.float32), tf.constant(self.keep_best))
