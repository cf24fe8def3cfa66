"""PGD's TensorFlow path: the signed-gradient steps as traced chunks with the faster first-layer input gradient
(arnkit.attacks.input_gradients). TensorFlow-only module: arnkit.attacks.pgd imports it on that backend only.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from arnkit.attacks.input_gradients import fast_input_gradients

# Steps traced per graph. A Python-unrolled chunk called from a Python loop: measured on 2-core CPUs, a
# graph-level tf.while_loop over single steps ran about half the traces ~1.7x slower (same ops, more CPU time),
# and unrolling all steps makes tracing slow for long attacks. Chunks of 10 matched full unrolling.
STEPS_PER_GRAPH = 10


def _capped_margin(logits: tf.Tensor, labels: tf.Tensor, kappa: tf.Tensor) -> tf.Tensor:
    """min(max_{i != y} Z_i - Z_y, kappa): CW's margin, flat once the example is kappa past the boundary."""
    true_mask = tf.one_hot(labels, tf.shape(logits)[-1], dtype=logits.dtype)
    true_logit = tf.reduce_sum(logits * true_mask, axis=-1)
    best_other = tf.reduce_max(logits - 1e9 * true_mask, axis=-1)
    return tf.minimum(best_other - true_logit, kappa)


@tf.function
def _sign_gradient_steps(model: Any, x: tf.Tensor, x_adv: tf.Tensor, labels: tf.Tensor, eps: tf.Tensor,
                         step_size: tf.Tensor, direction: tf.Tensor, kappa: tf.Tensor, n: int,
                         margin: bool) -> tf.Tensor:
    lower = tf.maximum(x - eps, 0.0)
    upper = tf.minimum(x + eps, 1.0)
    for _ in range(n):
        with tf.GradientTape() as tape:
            tape.watch(x_adv)
            logits = tf.cast(model(x_adv, training=False), tf.float32)  # a bfloat16 twin gives bfloat16
            # Per-example losses: the tape sums them.
            if margin:
                loss = _capped_margin(logits, labels, kappa)
            else:
                loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        grad = tape.gradient(loss, x_adv, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        # Clipping to the intersection of the eps-ball and [0,1] is one op: both are boxes.
        x_adv = tf.clip_by_value(x_adv + direction * step_size * tf.sign(grad), lower, upper)
    return x_adv


def sign_gradient_descent(model: Any, x: tf.Tensor, x_start: tf.Tensor, labels: tf.Tensor, *, eps: float,
                          step_size: float, steps: int, ascend: bool, margin_kappa: float | None = None
                          ) -> tf.Tensor:
    """arnkit.attacks.pgd.sign_gradient_descent on the TensorFlow backend."""
    args = (tf.constant(eps, tf.float32), tf.constant(step_size, tf.float32),
            tf.constant(1.0 if ascend else -1.0), tf.constant(margin_kappa or 0.0, tf.float32))
    x_adv = x_start
    with fast_input_gradients():  # traced here: the graphs keep the faster first-layer gradient
        for done in range(0, steps, STEPS_PER_GRAPH):
            x_adv = _sign_gradient_steps(model, x, x_adv, labels, *args, min(STEPS_PER_GRAPH, steps - done),
                                         margin_kappa is not None)
    return x_adv


def random_start(x: tf.Tensor, eps: float, seed: int, batch: int, restart: int) -> tf.Tensor:
    """A uniform point of the eps-ball around `x`, in [0,1], from a stateless draw keyed by (seed, batch, restart)."""
    draw = tf.constant([seed, batch * 1_000_003 + restart], tf.int64)
    noise = tf.random.stateless_uniform(tf.shape(x), draw, -eps, eps)
    return tf.clip_by_value(x + noise, 0.0, 1.0)


def keep_first_success(model: Any, x_adv: tf.Tensor, labels: tf.Tensor, targeted: bool, best: tf.Tensor | None,
                       done: tf.Tensor | None) -> tuple[tf.Tensor, tf.Tensor]:
    """Merge one restart into (best, done): examples that already succeeded keep their earlier restart."""
    pred = tf.argmax(model(x_adv, training=False), axis=-1, output_type=labels.dtype)
    success = tf.equal(pred, labels) if targeted else tf.not_equal(pred, labels)
    if best is None:
        return x_adv, success
    take = tf.logical_and(success, tf.logical_not(done))
    return tf.where(take[:, None, None, None], x_adv, best), tf.logical_or(done, success)
