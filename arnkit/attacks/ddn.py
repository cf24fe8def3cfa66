"""Decoupled Direction and Norm attack (Rony et al., "Decoupling Direction and Norm for Efficient Gradient-Based
L2 Adversarial Attacks and Defenses", CVPR 2019, arXiv:1811.09600). Distance: L2, no eps budget (it searches for
the smallest perturbation). TensorFlow-only module.

Each step moves the perturbation delta along the L2-normalized cross-entropy gradient (ascent when untargeted,
descent toward the target when targeted) with a step size annealed by a cosine from `step_size` to
`min_step_size`, then rescales delta to a norm eps that shrinks by (1 - gamma) while x + delta is adversarial and
grows by (1 + gamma) while it is not, capped at the largest norm that fits in [0,1]. The image is rounded to
`levels` grey levels (when `quantize`) and clipped to [0,1]. The smallest adversarial delta seen is returned,
not the last one; examples never fooled come back unchanged.

Arguments: steps, gamma, init_norm (the first eps), step_size, min_step_size, quantize, levels, targeted,
batch_size. Defaults are the paper's and ARN's (dwDavidxd/ARN via advertorch): 100 steps, gamma 0.05,
init_norm 1, cosine step 1 -> 0.01, 256 levels.

    from arnkit.attacks.ddn import DDN
    attack = DDN.for_dataset("mnist")
    result = attack(model, x, y, seed=0)               # model maps [0,1] images to logits
    result.success_rate
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import tensorflow as tf

from arnkit.attacks.base import Attack
from arnkit.errors import ArnkitError

_TINY = 1e-12


def _l2(t: tf.Tensor) -> tf.Tensor:
    return tf.sqrt(tf.reduce_sum(tf.square(t), axis=[1, 2, 3]))


def _per_example(v: tf.Tensor) -> tf.Tensor:
    return v[:, None, None, None]


def _is_adversarial(model: Any, x_adv: tf.Tensor, labels: tf.Tensor, targeted: bool,
                    logits: tf.Tensor | None = None) -> tf.Tensor:
    logits = model(x_adv, training=False) if logits is None else logits
    pred = tf.argmax(logits, axis=-1, output_type=labels.dtype)
    return tf.equal(pred, labels) if targeted else tf.not_equal(pred, labels)


@tf.function
def _ddn_steps(model: Any, x: tf.Tensor, labels: tf.Tensor, state: tuple, first_step: tf.Tensor,
               total_steps: tf.Tensor, hyper: tuple, seed: tf.Tensor, n: int, targeted: bool,
               quantize: bool) -> tuple:
    """Steps first_step .. first_step+n-1 of DDN. state = (delta, norm, best_l2, best_delta)."""
    delta, norm, best_l2, best_delta = state
    gamma, step_size, min_step_size, levels = hyper
    direction = -1.0 if targeted else 1.0
    # The farthest any image in [0,1] can be from x: caps the norm so that it cannot grow without limit.
    worst_norm = _l2(tf.maximum(x, 1.0 - x))
    last = tf.maximum(tf.cast(total_steps, tf.float32) - 1.0, 1.0)
    for j in range(n):
        k = first_step + j
        progress = tf.cast(k, tf.float32) / last
        alpha = min_step_size + (step_size - min_step_size) * 0.5 * (1.0 + tf.cos(math.pi * progress))
        with tf.GradientTape() as tape:
            tape.watch(delta)
            logits = model(x + delta, training=False)
            # Per-example losses: the tape sums them.
            loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        grad = direction * tape.gradient(loss, delta, unconnected_gradients=tf.UnconnectedGradients.ZERO)

        # Keep the smallest adversarial delta (the iterate the logits belong to).
        is_adv = _is_adversarial(model, x + delta, labels, targeted, logits)
        current_l2 = _l2(delta)
        improved = tf.logical_and(is_adv, current_l2 < best_l2)
        best_l2 = tf.where(improved, current_l2, best_l2)
        best_delta = tf.where(_per_example(improved), delta, best_delta)

        # Direction: the normalized gradient; a random one where the gradient vanished (saturated softmax).
        random_dir = tf.random.stateless_normal(tf.shape(x), tf.stack([seed, tf.cast(k, tf.int64)]))
        grad = tf.where(_per_example(_l2(grad) > 0.0), grad, random_dir)
        delta = delta + _per_example(alpha / tf.maximum(_l2(grad), _TINY)) * grad

        # Norm: shrink while adversarial, grow while not, never beyond what [0,1] allows.
        norm = tf.minimum(tf.where(is_adv, norm * (1.0 - gamma), norm * (1.0 + gamma)), worst_norm)
        delta = delta * _per_example(norm / tf.maximum(_l2(delta), _TINY))
        x_adv = x + delta
        if quantize:
            x_adv = tf.round(x_adv * (levels - 1.0)) / (levels - 1.0)
        delta = tf.clip_by_value(x_adv, 0.0, 1.0) - x
    return delta, norm, best_l2, best_delta


# Steps traced per graph (see STEPS_PER_GRAPH in pgd.py for why chunks and not a tf.while_loop).
_STEPS_PER_GRAPH = 10


class DDN(Attack):
    """Decoupled Direction and Norm L2 attack (Rony et al. 2019)."""

    name: ClassVar[str] = "ddn"
    distance: ClassVar[str] = "l2"
    targeted_by_default: ClassVar[bool] = False
    has_eps: ClassVar[bool] = False

    def __init__(self, *, steps: int = 100, gamma: float = 0.05, init_norm: float = 1.0, step_size: float = 1.0,
                 min_step_size: float = 0.01, quantize: bool = True, levels: int = 256,
                 targeted: bool | None = None, batch_size: int = 256) -> None:
        super().__init__(targeted=targeted, batch_size=batch_size)
        if int(steps) < 1:
            raise ArnkitError(f"steps must be >= 1, got {steps}")
        if not 0.0 < gamma < 1.0:
            raise ArnkitError(f"gamma must be in (0, 1), got {gamma}")
        if not init_norm > 0.0:
            raise ArnkitError(f"init_norm must be > 0, got {init_norm}")
        if not step_size >= min_step_size > 0.0:
            raise ArnkitError(f"need step_size >= min_step_size > 0, got {step_size} and {min_step_size}")
        if int(levels) < 2:
            raise ArnkitError(f"levels must be >= 2 (256 for 8-bit images), got {levels}")
        self.steps = int(steps)
        self.gamma = float(gamma)
        self.init_norm = float(init_norm)
        self.step_size = float(step_size)
        self.min_step_size = float(min_step_size)
        self.quantize = bool(quantize)
        self.levels = int(levels)

    def run(self, model: Any, x: tf.Tensor, y: tf.Tensor, target: tf.Tensor | None, *, seed: int,
            batch: int) -> tf.Tensor:
        labels = target if self.targeted else y
        n = int(x.shape[0])
        state = (tf.zeros_like(x), tf.fill([n], tf.constant(self.init_norm, tf.float32)),
                 tf.fill([n], tf.constant(np.inf, tf.float32)), tf.zeros_like(x))
        hyper = tuple(tf.constant(v, tf.float32) for v in
                      (self.gamma, self.step_size, self.min_step_size, float(self.levels)))
        draw = tf.constant(seed, tf.int64)  # seeded per call, not per batch (as ever: cached sets stay valid)
        for start in range(0, self.steps, _STEPS_PER_GRAPH):
            state = _ddn_steps(model, x, labels, state, tf.constant(start), tf.constant(self.steps), hyper,
                               draw, min(_STEPS_PER_GRAPH, self.steps - start), self.targeted, self.quantize)
        delta, _, best_l2, best_delta = state
        # The last update has not been scored yet.
        improved = tf.logical_and(_is_adversarial(model, x + delta, labels, self.targeted), _l2(delta) < best_l2)
        return x + tf.where(_per_example(improved), delta, best_delta)
