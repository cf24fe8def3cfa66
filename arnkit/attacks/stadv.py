"""Spatially transformed adversarial examples, stAdv / STA (Xiao et al., ICLR 2018, arXiv:1801.02612).

Distance: "spatial" (no pixel budget; the flow-smoothness loss is the size of the perturbation).

Each pixel gets a displacement (a flow field, pixels); the adversarial image is the clean image
bilinearly resampled along that flow. Per example the attack minimises

    c * L_adv(x_flow) + tau * L_flow(flow)

L_adv is the Carlini-Wagner margin with confidence `confidence` (untargeted: Z_y - max_{i!=y} Z_i,
targeted: max_{i!=t} Z_i - Z_t, both floored at -confidence) and L_flow is Eq. 4 of the paper,
sum_p sum_{q in N(p)} sqrt(||du_p - du_q||^2 + ||dv_p - dv_q||^2) over 4-neighbours.

Optimiser (a deliberate change from the paper's L-BFGS and advertorch's L-BFGS-B over the absolute
sampling grid): Adam on the flow (learning rate cosine-decayed to a tenth within each search step),
the whole batch inside one `tf.function`, with a per-example binary search over the constant c
(success: c moves halfway down toward the largest failing c; failure: c moves up, x10 until a success
is seen) and CW-style early abort. Each search step restarts Adam from the smoothest successful flow
found so far, which lowered the mean L_flow of successes by ~20% against restarting from zero.
Adam needs one forward/backward per step, no line search, and runs batched in the graph; with the
defaults (4 x 50 steps) it reached 100% untargeted error and 100% target hits on 1,000 MNIST test
images of the paper LeNet at 8-15 img/s on 2 shared CPU cores (bench/bench_spatial_attacks.py), where
advertorch's L-BFGS-B (1000 iterations x 5 search steps) ran at 0.54 img/s on the same machine class.
Across all search steps the successful flow with the smallest L_flow is kept; examples never made
adversarial come back as the clean image. The result's `extras["flow"]` holds the L_flow of each returned
image (0 for failures).

Arguments: targeted, confidence (kappa, logits), tau (flow-loss weight, 0.05 as in the paper's MNIST
experiments), initial_const (starting c), steps (Adam steps per search step), search_steps,
learning_rate (Adam, pixels), abort_early, border ("edge" or "zeros" sampling outside the image),
batch_size.

    from arnkit.attacks.stadv import STA
    result = STA(targeted=True)(model, x, y, seed=0)
    result.success, result.extras["flow"]
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import tensorflow as tf

from arnkit.attacks.base import Attack, RunOutput
from arnkit.attacks.spatial_ops import BORDERS, flow_smoothness, flow_warp
from arnkit.errors import ArnkitError

_BIG = 1e10


def cw_margin(logits: tf.Tensor, labels: tf.Tensor, targeted: bool) -> tf.Tensor:
    """Per-example CW margin; <= 0 exactly when the prediction is adversarial (ties aside)."""
    one_hot = tf.one_hot(labels, tf.shape(logits)[-1], dtype=logits.dtype)
    label_logit = tf.reduce_sum(one_hot * logits, axis=-1)
    best_other = tf.reduce_max(logits - _BIG * one_hot, axis=-1)
    return best_other - label_logit if targeted else label_logit - best_other


class STA(Attack):
    name: ClassVar[str] = "sta"
    distance: ClassVar[str] = "spatial"
    targeted_by_default: ClassVar[bool] = False
    has_eps: ClassVar[bool] = False

    def __init__(self, *, targeted: bool | None = None, confidence: float = 0.0, tau: float = 0.05,
                 initial_const: float = 10.0, steps: int = 50, search_steps: int = 4,
                 learning_rate: float = 0.05, abort_early: bool = True, border: str = "edge",
                 batch_size: int = 256) -> None:
        super().__init__(targeted=targeted, batch_size=batch_size)
        if steps < 1 or search_steps < 1:
            raise ArnkitError(f"steps and search_steps must be >= 1, got {steps} and {search_steps}")
        if tau < 0 or confidence < 0 or initial_const <= 0 or learning_rate <= 0:
            raise ArnkitError("tau and confidence must be >= 0; initial_const and learning_rate must be > 0")
        if border not in BORDERS:
            raise ArnkitError(f"border must be one of {BORDERS}, got {border!r}")
        self.confidence = float(confidence)
        self.tau = float(tau)
        self.initial_const = float(initial_const)
        self.steps = int(steps)
        self.search_steps = int(search_steps)
        self.learning_rate = float(learning_rate)
        self.abort_early = bool(abort_early)
        self.border = border

    def run(self, model: Any, x: tf.Tensor, y: tf.Tensor, target: tf.Tensor | None, *, seed: int,
            batch: int) -> RunOutput:
        labels = target if self.targeted else y
        x_adv, flow_loss = self.compiled_for(model, self._build)(x, tf.cast(labels, tf.int32))
        return RunOutput(x_adv, {"flow": flow_loss.numpy().astype(np.float64)})

    def merge_extras(self, batches: list[dict[str, Any]]) -> dict[str, Any]:
        if not batches:  # no images: an empty per-example array
            return {"flow": np.zeros(0)}
        return super().merge_extras(batches)

    def _build(self, model: Any):
        targeted, kappa, tau = self.targeted, self.confidence, self.tau
        steps, search_steps, lr = self.steps, self.search_steps, self.learning_rate
        border, abort_early = self.border, self.abort_early
        check_every = max(steps // 10, 1)
        beta1, beta2, adam_eps = 0.9, 0.999, 1e-8

        def is_adversarial(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
            pred = tf.argmax(logits, axis=-1, output_type=tf.int32)
            hit = tf.equal(pred, labels) if targeted else tf.not_equal(pred, labels)
            return hit & (cw_margin(logits, labels, targeted) <= -kappa)

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, None], tf.float32),
                                      tf.TensorSpec([None], tf.int32)])
        def attack(x: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            n = tf.shape(x)[0]
            flow_shape = tf.concat([tf.shape(x)[:3], [2]], axis=0)
            const = tf.fill([n], tf.constant(self.initial_const, tf.float32))
            lower = tf.zeros([n])
            upper = tf.fill([n], tf.constant(_BIG, tf.float32))
            best_flow_loss = tf.fill([n], tf.constant(np.inf, tf.float32))
            best_adv = x
            best_flow = tf.zeros(flow_shape)
            flow = tf.zeros(flow_shape)

            for _ in tf.range(search_steps):
                # warm start from the smoothest success so far (else where the last search step ended)
                has_best = tf.math.is_finite(best_flow_loss)[:, None, None, None]
                flow = tf.where(has_best, best_flow, flow)
                m = tf.zeros(flow_shape)
                v = tf.zeros(flow_shape)
                found = tf.zeros([n], tf.bool)
                previous = tf.constant(np.inf, tf.float32)
                t = tf.constant(0)
                stalled = tf.constant(False)
                while t < steps and not stalled:
                    with tf.GradientTape() as tape:
                        tape.watch(flow)
                        x_adv = flow_warp(x, flow, border)
                        logits = model(x_adv, training=False)
                        adv_loss = tf.maximum(cw_margin(logits, labels, targeted), -kappa)
                        smooth = flow_smoothness(flow)
                        per_example = const * adv_loss + tau * smooth
                        total = tf.reduce_sum(per_example)
                    grad = tape.gradient(total, flow, unconnected_gradients=tf.UnconnectedGradients.ZERO)
                    # keep the smoothest successful flow seen so far (checked before this step's update)
                    success = is_adversarial(logits, labels)
                    better = success & (smooth < best_flow_loss)
                    best_flow_loss = tf.where(better, smooth, best_flow_loss)
                    best_adv = tf.where(better[:, None, None, None], x_adv, best_adv)
                    best_flow = tf.where(better[:, None, None, None], flow, best_flow)
                    # step 0 evaluates the warm start itself: only successes the optimiser reaches at this c count
                    found = found | (success & (t > 0))
                    t += 1
                    m = beta1 * m + (1.0 - beta1) * grad
                    v = beta2 * v + (1.0 - beta2) * tf.square(grad)
                    tf_t = tf.cast(t, tf.float32)
                    m_hat = m / (1.0 - tf.pow(beta1, tf_t))
                    v_hat = v / (1.0 - tf.pow(beta2, tf_t))
                    # cosine decay to lr/10 within each search step: big early moves, a settled end point
                    step_lr = lr * (0.55 + 0.45 * tf.cos(np.pi * tf_t / steps))
                    flow = flow - step_lr * m_hat / (tf.sqrt(v_hat) + adam_eps)
                    if abort_early and t % check_every == 0:
                        # CW-style: stop this search step when the batch loss stopped falling
                        stalled = total > 0.9999 * previous
                        previous = total
                # binary search on c per example: success -> smaller c (less weight on fooling)
                upper = tf.where(found, tf.minimum(upper, const), upper)
                lower = tf.where(found, lower, tf.maximum(lower, const))
                bracketed = upper < _BIG * 0.5
                const = tf.where(bracketed, (lower + upper) / 2.0, const * 10.0)

            succeeded = tf.math.is_finite(best_flow_loss)
            return best_adv, tf.where(succeeded, best_flow_loss, tf.zeros_like(best_flow_loss))

        return attack


__all__ = ["STA", "cw_margin"]
