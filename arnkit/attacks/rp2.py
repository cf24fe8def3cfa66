"""Robust Physical Perturbations, RP2 (Eykholt et al., "Robust Physical-World Attacks on Deep Learning Visual
Classification", CVPR 2018, arXiv:1707.08945). Distance: "patch" (the perturbation is confined to a mask and
unbounded inside it, so there is no eps). TensorFlow-only module.

The adversarial image is x_adv = clip(x + M * delta, 0, 1) for a mask M (see `arnkit.attacks.masks`). Adam
minimizes, per example,

    norm_weight * ||M * delta||_2  +  mean over views of L(model(T(x_adv)))

with L the cross-entropy of the target (targeted) or, untargeted, -log(1 - p_y): the cross-entropy of "any
class but the true label y". (The paper attacks with a target; the obvious untargeted loss -CE(y) = log p_y has
a vanishing gradient on a confident model, so the norm term wins and delta stays near zero: with the octagon
mask and 50-200 steps it fooled 0% of the tests' tiny synthetic-data LeNet, -log(1 - p_y) 100%. Both fall with
p_y, so they push the same way.) The views are the image itself plus `eot_samples` random transformations T
of it drawn afresh at every step: the paper's expectation over physical conditions, simulated here on one image
by a brightness shift, a contrast change about the image mean, and a small rotation / scaling / translation
(bilinear, edges repeated). The transformation is applied to the whole image, sticker included, as a camera
would see it. The non-printability score (NPS) of the paper is omitted: there is no printer colour palette to
score against here.

Each example returns the last delta whose untransformed image was adversarial (or the final delta if none
was), so the base class's success check on the clean view agrees with the optimization.

Arguments: mask ("octagon", "ap1", "ap2", "ap3" or an (H, W[, C]) array in [0, 1]), steps (500 in the paper),
lr (Adam, .01), norm_weight (the paper's lambda, .02), eot_samples (random views per step), brightness
(max additive shift), contrast (max relative change), rotation (max degrees), scale (max relative change),
translation (max shift as a fraction of the image size), targeted, batch_size.

    from arnkit.attacks.rp2 import RP2
    attack = RP2.for_dataset("lisa", mask="ap1")      # 500 Adam steps, lr .01, lambda .02
    result = attack(model, x, y, seed=0)              # model maps [0,1] images to logits
    result.success_rate
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import tensorflow as tf

from arnkit.attacks.base import Attack
from arnkit.attacks.masks import make_mask, mask_spec
from arnkit.errors import ArnkitError


def random_views(images: tf.Tensor, seed: tf.Tensor, brightness: tf.Tensor, contrast: tf.Tensor,
                 rotation: tf.Tensor, scale: tf.Tensor, translation: tf.Tensor) -> tf.Tensor:
    """One random photometric + affine transformation per image (stateless, seeded by `seed`, shape [2]).

    Rotation is in degrees, translation a fraction of the size; all ranges are symmetric about the identity.
    The affine gradient is TensorFlow's registered one for ImageProjectiveTransformV3 (the inverse warp of
    the output gradient), an approximation of the exact adjoint that is close for these small warps.
    """
    shape = tf.shape(images)
    n, h, w = shape[0], shape[1], shape[2]
    hf, wf = tf.cast(h, tf.float32), tf.cast(w, tf.float32)
    u = tf.random.stateless_uniform([n, 6], seed, -1.0, 1.0)
    angle = u[:, 0] * rotation * (math.pi / 180.0)
    zoom = 1.0 + u[:, 1] * scale
    shift_x, shift_y = u[:, 2] * translation * wf, u[:, 3] * translation * hf
    # The op maps each output pixel (col, row) to the input point (a0 col + a1 row + a2, b0 col + b1 row + b2):
    # rotate and zoom about the image centre, then shift.
    a0, a1 = tf.cos(angle) / zoom, -tf.sin(angle) / zoom
    b0, b1 = tf.sin(angle) / zoom, tf.cos(angle) / zoom
    cx, cy = (wf - 1.0) / 2.0, (hf - 1.0) / 2.0
    a2 = cx - a0 * cx - a1 * cy + shift_x
    b2 = cy - b0 * cx - b1 * cy + shift_y
    zeros = tf.zeros_like(a0)
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    warped = tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=tf.stack([h, w]), fill_value=0.0,
        interpolation="BILINEAR", fill_mode="NEAREST")
    mean = tf.reduce_mean(warped, axis=[1, 2, 3], keepdims=True)
    gain = (1.0 + u[:, 4] * contrast)[:, None, None, None]
    offset = (u[:, 5] * brightness)[:, None, None, None]
    return tf.clip_by_value((warped - mean) * gain + mean + offset, 0.0, 1.0)


def _is_adversarial(logits: tf.Tensor, labels: tf.Tensor, targeted: tf.Tensor) -> tf.Tensor:
    pred = tf.argmax(logits, axis=-1, output_type=labels.dtype)
    return tf.where(targeted, tf.equal(pred, labels), tf.not_equal(pred, labels))


def classification_loss(logits: tf.Tensor, labels: tf.Tensor, targeted: tf.Tensor) -> tf.Tensor:
    """Per-view loss to minimize: CE of the target, or -log(1 - p_label) to leave the true label.

    -log(1 - p_y) = logsumexp(z) - logsumexp_{j != y}(z) is the cross-entropy of "any class but y". Unlike
    -CE(y), whose gradient vanishes on a confident model (and then lambda * ||M delta|| pulls delta back to
    zero), it keeps a full-size gradient until the label flips.
    """
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    is_label = tf.one_hot(labels, tf.shape(logits)[-1], on_value=True, off_value=False)
    others = tf.reduce_logsumexp(tf.where(is_label, -np.inf, logits), axis=-1)
    leave = tf.reduce_logsumexp(logits, axis=-1) - others
    return tf.where(targeted, ce, leave)


@tf.function(reduce_retracing=True)
def masked_adam_loop(model: Any, x: tf.Tensor, labels: tf.Tensor, mask: tf.Tensor, targeted: tf.Tensor,
                     steps: tf.Tensor, lr: tf.Tensor, norm_weight: tf.Tensor, eot_samples: tf.Tensor,
                     view_params: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Optimize delta with Adam; return the clipped masked image of each example's best delta."""
    beta1, beta2, adam_eps = 0.9, 0.999, 1e-8
    batch = tf.shape(x)[0]
    views_labels = tf.tile(labels, [eot_samples + 1])
    delta = tf.zeros_like(x)
    first_moment = tf.zeros_like(x)
    second_moment = tf.zeros_like(x)
    best = tf.zeros_like(x)
    found = tf.zeros([batch], tf.bool)
    for step in tf.range(steps):
        with tf.GradientTape() as tape:
            tape.watch(delta)
            x_adv = tf.clip_by_value(x + mask * delta, 0.0, 1.0)
            transformed = random_views(tf.tile(x_adv, [eot_samples, 1, 1, 1]), seed + tf.stack([tf.constant(0, tf.int64), tf.cast(step, tf.int64)]),
                                       *tf.unstack(view_params))
            logits = model(tf.concat([x_adv, transformed], axis=0), training=False)
            per_view = classification_loss(logits, views_labels, targeted)
            per_example = tf.reduce_mean(tf.reshape(per_view, [eot_samples + 1, batch]), axis=0)
            # the epsilon keeps the gradient of the norm finite (zero) at delta = 0
            norm = tf.sqrt(tf.reduce_sum(tf.square(mask * delta), axis=[1, 2, 3]) + 1e-12)
            # summed over the batch: each example's delta sees its own loss, whatever the batch size
            loss = tf.reduce_sum(norm_weight * norm + per_example)
        grad = tape.gradient(loss, delta, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        success = _is_adversarial(logits[:batch], labels, targeted)
        best = tf.where(success[:, None, None, None], delta, best)
        found = tf.logical_or(found, success)
        t = tf.cast(step + 1, tf.float32)
        first_moment = beta1 * first_moment + (1.0 - beta1) * grad
        second_moment = beta2 * second_moment + (1.0 - beta2) * tf.square(grad)
        m_hat = first_moment / (1.0 - tf.pow(beta1, t))
        v_hat = second_moment / (1.0 - tf.pow(beta2, t))
        delta = delta - lr * m_hat / (tf.sqrt(v_hat) + adam_eps)
    final = tf.clip_by_value(x + mask * delta, 0.0, 1.0)
    success = _is_adversarial(model(final, training=False), labels, targeted)
    best = tf.where(tf.logical_or(success, tf.logical_not(found))[:, None, None, None], delta, best)
    return tf.clip_by_value(x + mask * best, 0.0, 1.0)


class RP2(Attack):
    """Masked perturbation optimized with Adam under random transformations (Eykholt et al. 2018)."""

    name: ClassVar[str] = "rp2"
    distance: ClassVar[str] = "patch"
    targeted_by_default: ClassVar[bool] = False
    has_eps: ClassVar[bool] = False

    def __init__(self, *, mask: str | np.ndarray = "octagon", steps: int = 500, lr: float = 0.01,
                 norm_weight: float = 0.02, eot_samples: int = 1, brightness: float = 0.1, contrast: float = 0.1,
                 rotation: float = 5.0, scale: float = 0.05, translation: float = 0.0625,
                 targeted: bool | None = None, batch_size: int = 256) -> None:
        super().__init__(targeted=targeted, batch_size=batch_size)
        self.mask = mask_spec(mask)
        if int(steps) < 0:
            raise ArnkitError(f"steps must be >= 0, got {steps}")
        if not lr > 0.0:
            raise ArnkitError(f"lr must be > 0, got {lr}")
        if not norm_weight >= 0.0:
            raise ArnkitError(f"norm_weight must be >= 0, got {norm_weight}")
        if int(eot_samples) < 0:
            raise ArnkitError(f"eot_samples must be >= 0 (0 = no random views), got {eot_samples}")
        for pname, value in (("brightness", brightness), ("contrast", contrast), ("rotation", rotation),
                             ("scale", scale), ("translation", translation)):
            if not value >= 0.0:
                raise ArnkitError(f"{pname} must be >= 0 (a maximum change), got {value}")
        if not scale < 1.0:
            raise ArnkitError(f"scale must be < 1 (a relative zoom change), got {scale}")
        self.steps = int(steps)
        self.lr = float(lr)
        self.norm_weight = float(norm_weight)
        self.eot_samples = int(eot_samples)
        self.brightness = float(brightness)
        self.contrast = float(contrast)
        self.rotation = float(rotation)
        self.scale = float(scale)
        self.translation = float(translation)

    def mask_for(self, shape: tuple[int, int, int]) -> np.ndarray:
        """The mask this attack applies to images of shape (H, W, C)."""
        return make_mask(self.mask, shape[:2], shape[2])

    def run(self, model: Any, x: tf.Tensor, y: tf.Tensor, target: tf.Tensor | None, *, seed: int,
            batch: int) -> tf.Tensor:
        labels = target if self.targeted else y
        mask = tf.constant(self.mask_for(tuple(x.shape[1:])))
        # transformations differ between batches of a call but repeat between calls
        draw = tf.constant([seed, batch * 1_000_003], tf.int64)
        view_params = tf.constant([self.brightness, self.contrast, self.rotation, self.scale, self.translation],
                                  tf.float32)
        return masked_adam_loop(model, x, labels, mask, tf.constant(self.targeted), tf.constant(self.steps),
                                tf.constant(self.lr), tf.constant(self.norm_weight),
                                tf.constant(self.eot_samples), view_params, draw)
