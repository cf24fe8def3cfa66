"""Jacobian-based saliency map attack, JSMA (Papernot, McDaniel, Jha, Fredrikson, Celik & Swami, "The
limitations of deep learning in adversarial settings", EuroS&P 2016, arXiv:1511.07528). Distance: L0.
Targeted only. TensorFlow-only module.

Each iteration takes the derivatives of the model's outputs F with respect to every input feature (here a
feature is one channel of one pixel) and scores each pair (p, q) of features still in the search space by
  alpha = dF_t/dx_p + dF_t/dx_q        (how much the pair raises the target t)
  beta  = sum_{j!=t} (dF_j/dx_p + dF_j/dx_q)   (how much it raises every other class).
With theta > 0 a pair is admissible when alpha > 0 and beta < 0 (theta < 0: alpha < 0, beta > 0) and the
chosen pair maximizes -alpha * beta. Both features move by theta and are clipped to [0,1]; features that
reach the bound (1 for theta > 0, 0 for theta < 0) leave the search space. The attack stops when the model
predicts the target, when no admissible pair is left, or after int(n_features * gamma / 2) iterations, so at
most 2 * int(n_features * gamma / 2) features change.

F is the softmax output by default, as in the paper (`jacobian="probs"`); `jacobian="logits"` uses the logits
(the variant Carlini & Wagner call JSMA-Z). alpha and beta only need the gradients of F_t and of
sum_{j!=t} F_j: two backward passes per iteration give exactly the sums a full Jacobian (one backward per
class) would, at a fraction of the cost. The pair search costs n_features^2 memory per example (MNIST: 784^2 =
0.6M floats), hence the small default batch.

Arguments: theta (1.0), gamma (1.0; both as advertorch and the paper's MNIST runs), jacobian ("probs" or
"logits"), targeted (must be True), batch_size (32).

    from arnkit.attacks.jsma import JSMA
    result = JSMA()(model, x, y, seed=0)              # seeded random targets, never the true label
    result = JSMA()(model, x, y, target=t)            # or explicit targets
    result.success_rate                               # target-hit rate
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import tensorflow as tf

from arnkit.attacks.base import Attack
from arnkit.errors import ArnkitError


def _outputs(model: Any, features: tf.Tensor, image_shape: tf.Tensor, use_probs: bool) -> tuple[tf.Tensor, tf.Tensor]:
    logits = model(tf.reshape(features, image_shape), training=False)
    return (tf.nn.softmax(logits) if use_probs else logits), logits


def _hits(logits: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    return tf.equal(tf.argmax(logits, axis=-1, output_type=target.dtype), target)


def best_pair(alpha: tf.Tensor, beta: tf.Tensor, domain: tf.Tensor, increase: tf.Tensor) -> tuple[tf.Tensor, ...]:
    """argmax over admissible pairs p != q of -alpha_pq * beta_pq; returns (p, q, any admissible pair)."""
    n_features = alpha.shape[-1]
    sign = tf.where(increase, 1.0, -1.0)
    # Features outside the search space get a huge wrong-signed derivative: every pair with one is inadmissible.
    big = 1e9
    a = tf.where(domain, sign * alpha, -big)
    b = tf.where(domain, sign * beta, big)
    # relu(alpha_pq) * relu(-beta_pq) is -alpha_pq * beta_pq on admissible pairs and 0 elsewhere.
    score = tf.nn.relu(a[:, :, None] + a[:, None, :]) * tf.nn.relu(-(b[:, :, None] + b[:, None, :]))
    score = score * (1.0 - tf.eye(n_features))[None]
    flat = tf.reshape(score, [tf.shape(score)[0], -1])
    best = tf.argmax(flat, axis=-1, output_type=tf.int32)
    found = tf.reduce_max(flat, axis=-1) > 0.0
    return best // n_features, best % n_features, found


def best_pair_softmax(alpha: tf.Tensor, domain: tf.Tensor, increase: tf.Tensor) -> tuple[tf.Tensor, ...]:
    """`best_pair` for F = softmax, where sum_j F_j = 1 makes beta = -alpha exactly.

    Then a pair is admissible iff sign * alpha_pq > 0 and its score is alpha_pq^2, so the best pair is simply
    the two features of the search space with the largest sign * alpha: O(n) instead of O(n^2).
    """
    sign = tf.where(increase, 1.0, -1.0)
    big = 1e9
    a = tf.where(domain, sign * alpha, -big)
    top = tf.math.top_k(a, k=2)
    found = tf.logical_and(tf.reduce_sum(top.values, axis=-1) > 0.0, top.values[:, 1] > -big / 2)
    return top.indices[:, 0], top.indices[:, 1], found


@tf.function(reduce_retracing=True)
def jsma_steps(model: Any, x_flat: tf.Tensor, domain: tf.Tensor, target: tf.Tensor, image_shape: tf.Tensor,
               theta: tf.Tensor, n_steps: tf.Tensor, use_probs: bool) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Up to `n_steps` saliency-map iterations on flattened images; returns (x, search space, still active)."""
    n = tf.shape(x_flat)[0]
    n_features = x_flat.shape[-1]
    image_shape = tf.concat([[n], image_shape[1:]], axis=0)
    increase = theta > 0.0

    def body(step, x_flat, domain, active):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x_flat)
            out, _ = _outputs(model, x_flat, image_shape, use_probs)
            target_total = tf.reduce_sum(tf.gather(out, target, axis=1, batch_dims=1))
            others_total = tf.reduce_sum(out) - target_total
        alpha = tape.gradient(target_total, x_flat, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        if use_probs:
            p, q, found = best_pair_softmax(alpha, domain, increase)
        else:
            beta = tape.gradient(others_total, x_flat, unconnected_gradients=tf.UnconnectedGradients.ZERO)
            p, q, found = best_pair(alpha, beta, domain, increase)
        del tape
        move = tf.logical_and(active, found)
        chosen = tf.one_hot(p, n_features) + tf.one_hot(q, n_features)
        x_flat = tf.clip_by_value(x_flat + theta * chosen * tf.cast(move, tf.float32)[:, None], 0.0, 1.0)
        # Features that reached the bound they move toward leave the search space.
        domain = tf.logical_and(domain, tf.where(increase, x_flat < 1.0, x_flat > 0.0))
        _, logits = _outputs(model, x_flat, image_shape, use_probs)
        active = tf.logical_and(move, tf.logical_not(_hits(logits, target)))
        return step + 1, x_flat, domain, active

    def keep_going(step, x_flat, domain, active):
        return tf.logical_and(step < n_steps, tf.reduce_any(active))

    _, start_logits = _outputs(model, x_flat, image_shape, use_probs)
    active = tf.logical_not(_hits(start_logits, target))
    _, x_flat, domain, active = tf.while_loop(keep_going, body, (tf.constant(0), x_flat, domain, active))
    return x_flat, domain, active


class JSMA(Attack):
    """Targeted L0 attack that raises pairs of features chosen by the Jacobian saliency map."""

    name: ClassVar[str] = "jsma"
    distance: ClassVar[str] = "l0"
    targeted_by_default: ClassVar[bool] = True
    has_eps: ClassVar[bool] = False
    _CHUNK: ClassVar[int] = 8  # iterations per graph call between compactions of the batch
    _PAIR_BUDGET: ClassVar[int] = 2**25  # pair scores per graph call for the logits Jacobian (128 MB a tensor)

    def __init__(self, *, theta: float = 1.0, gamma: float = 1.0, jacobian: str = "probs",
                 targeted: bool | None = None, batch_size: int = 64) -> None:
        if targeted is False:
            raise ArnkitError("JSMA is a targeted attack; use targeted=True (or leave it unset)")
        super().__init__(targeted=True, batch_size=batch_size)
        if not (theta != 0.0 and -1.0 <= theta <= 1.0):
            raise ArnkitError(f"theta must be a non-zero change in [-1, 1] pixel units, got {theta}")
        if not 0.0 < gamma <= 1.0:
            raise ArnkitError(f"gamma (the largest fraction of features to change) must be in (0, 1], got {gamma}")
        if jacobian not in ("probs", "logits"):
            raise ArnkitError(f"jacobian must be 'probs' (the paper's softmax F) or 'logits', got '{jacobian}'")
        self.theta = float(theta)
        self.gamma = float(gamma)
        self.jacobian = jacobian

    def max_iter(self, n_features: int) -> int:
        """The iteration cap int(n_features * gamma / 2): each iteration changes at most two features."""
        return int(n_features * self.gamma / 2)

    def run(self, model: Any, x: tf.Tensor, y: tf.Tensor, target: tf.Tensor | None, *, seed: int,
            batch: int) -> tf.Tensor:
        if target is None:
            raise ArnkitError("JSMA needs a target class per example")
        n = int(x.shape[0])
        n_features = int(np.prod(x.shape[1:]))
        use_probs = self.jacobian == "probs"
        result = tf.reshape(x, [n, n_features])
        theta = tf.constant(self.theta, tf.float32)
        # A feature already at the bound it moves toward cannot help: it is never in the search space.
        domain = result < 1.0 if self.theta > 0 else result > 0.0
        # The full pair search holds n_features^2 scores per example: bound the rows per graph call.
        group = n if use_probs else max(1, self._PAIR_BUDGET // n_features**2)
        rows = np.arange(n)
        remaining = self.max_iter(n_features)
        # Run in chunks and keep only the examples still going: a few slow ones no longer hold up a whole batch.
        while remaining > 0 and rows.size:
            steps = min(self._CHUNK, remaining)
            still_active = []
            for start in range(0, rows.size, group):
                part = rows[start:start + group]
                index = part[:, None]
                cur, part_domain, active = jsma_steps(
                    model, tf.gather(result, part), tf.gather(domain, part), tf.gather(target, part),
                    tf.shape(x), theta, tf.constant(steps), use_probs)
                result = tf.tensor_scatter_nd_update(result, index, cur)
                domain = tf.tensor_scatter_nd_update(domain, index, part_domain)
                still_active.append(part[active.numpy()])
            rows = np.concatenate(still_active)
            remaining -= steps
        return tf.reshape(result, tf.shape(x))
