"""Projected gradient descent, L-inf (Madry et al., "Towards Deep Learning Models Resistant to Adversarial
Attacks", ICLR 2018, arXiv:1706.06083) and its one-step special case FGSM (Goodfellow et al., "Explaining and
Harnessing Adversarial Examples", ICLR 2015, arXiv:1412.6572). Distance: L-inf. TensorFlow-only module.

PGD starts from a uniform random point of the eps-ball, then repeats: step `step_size` along the sign of the
cross-entropy gradient (ascent when untargeted, descent toward the target when targeted), project back onto the
eps-ball and onto [0,1]. With `restarts > 1` each example keeps the first restart that succeeds.

Arguments (PGD): eps (L-inf radius in [0,1] pixel units), steps, step_size, random_start, restarts, targeted,
batch_size, precision ("float32", or the opt-in "bfloat16": gradients from a bfloat16 twin of the model, see
arnkit.attacks.precision). FGSM: eps, targeted, batch_size, precision.

    from arnkit.attacks.pgd import PGD
    attack = PGD.for_dataset("mnist")                  # eps .3, 40 steps of .01, random start
    result = attack(model, x, y, seed=0)               # model maps [0,1] images to logits
    result.success_rate

The loop is ours rather than cleverhans's `projected_gradient_descent` (same update; a test checks that both
give the same images with the random start off): it runs the steps as traced chunks, tracing a long attack only
once per chunk size, and takes the first layer's input gradient by `arnkit.attacks.input_gradients` (the
same gradient, computed faster for single-channel images).
"""

from __future__ import annotations

from typing import Any, ClassVar

import tensorflow as tf

from arnkit.attacks.base import Attack
from arnkit.attacks.input_gradients import fast_input_gradients
from arnkit.attacks.precision import check_precision, gradient_model
from arnkit.errors import ArnkitError

# ARN's MNIST settings (advertorch in dwDavidxd/ARN). For CIFAR-10 and LISA we follow the same first author's
# CIFAR code (dwDavidxd/CAFD): eps 8/255, 40 steps of 0.01; the ARN paper itself does not state them.
_MNIST = {"eps": 0.3, "steps": 40, "step_size": 0.01, "random_start": True}
_CIFAR = {"eps": 8 / 255, "steps": 40, "step_size": 0.01, "random_start": True}


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
    """`steps` signed-gradient L-inf steps from `x_start`, each projected onto the eps-ball around `x` and [0,1];
    ascending the cross-entropy of `labels` (untargeted) or descending it (targeted). With `margin_kappa` the
    loss is CW's margin capped at kappa instead (the high-confidence attack of arnkit.detection)."""
    args = (tf.constant(eps, tf.float32), tf.constant(step_size, tf.float32),
            tf.constant(1.0 if ascend else -1.0), tf.constant(margin_kappa or 0.0, tf.float32))
    x_adv = x_start
    with fast_input_gradients():  # traced here: the graphs keep the faster first-layer gradient
        for done in range(0, steps, STEPS_PER_GRAPH):
            x_adv = _sign_gradient_steps(model, x, x_adv, labels, *args, min(STEPS_PER_GRAPH, steps - done),
                                         margin_kappa is not None)
    return x_adv


def _check_eps(eps: float) -> float:
    if not eps >= 0.0:
        raise ArnkitError(f"eps must be >= 0 (an L-inf radius in [0,1] pixel units), got {eps}")
    if eps > 1.0:
        raise ArnkitError(f"eps {eps} is larger than the [0,1] pixel range; divide a 0-255 budget by 255")
    return float(eps)


class PGD(Attack):
    """L-inf projected gradient descent with a random start (Madry et al. 2018)."""

    name: ClassVar[str] = "pgd"
    distance: ClassVar[str] = "linf"
    targeted_by_default: ClassVar[bool] = False
    has_eps: ClassVar[bool] = True
    dataset_defaults: ClassVar[dict[str, dict[str, Any]]] = {
        "mnist": dict(_MNIST),
        "synthetic": dict(_MNIST),
        "cifar10": dict(_CIFAR),
        "lisa": dict(_CIFAR),
    }

    def __init__(self, *, eps: float = 0.3, steps: int = 40, step_size: float = 0.01, random_start: bool = True,
                 restarts: int = 1, targeted: bool | None = None, batch_size: int = 256,
                 precision: str = "float32") -> None:
        super().__init__(targeted=targeted, batch_size=batch_size)
        self.precision = check_precision(precision)
        self.eps = _check_eps(eps)
        if int(steps) < 0:
            raise ArnkitError(f"steps must be >= 0, got {steps}")
        if not step_size > 0.0:
            raise ArnkitError(f"step_size must be > 0, got {step_size}")
        if int(restarts) < 1:
            raise ArnkitError(f"restarts must be >= 1, got {restarts}")
        self.steps = int(steps)
        self.step_size = float(step_size)
        self.random_start = bool(random_start)
        self.restarts = int(restarts)

    def _start(self, x: tf.Tensor, seed: int, batch: int, restart: int) -> tf.Tensor:
        """The random start: differs between batches and restarts of a call, repeats between calls."""
        if not self.random_start or self.eps == 0.0:
            return x
        draw = tf.constant([seed, batch * 1_000_003 + restart], tf.int64)
        noise = tf.random.stateless_uniform(tf.shape(x), draw, -self.eps, self.eps)
        return tf.clip_by_value(x + noise, 0.0, 1.0)

    def run(self, model: Any, x: tf.Tensor, y: tf.Tensor, target: tf.Tensor | None, *, seed: int,
            batch: int) -> tf.Tensor:
        labels = target if self.targeted else y
        grad_model = gradient_model(model, self.precision)
        best = None
        for restart in range(self.restarts):
            x_start = self._start(x, seed, batch, restart)
            x_adv = sign_gradient_descent(grad_model, x, x_start, labels, eps=self.eps,
                                          step_size=self.step_size, steps=self.steps, ascend=not self.targeted)
            if self.restarts == 1:
                best = x_adv
                break
            pred = tf.argmax(model(x_adv, training=False), axis=-1, output_type=labels.dtype)
            success = tf.equal(pred, labels) if self.targeted else tf.not_equal(pred, labels)
            if best is None:
                best, done = x_adv, success
            else:
                # Examples that already succeeded keep their earlier restart.
                take = tf.logical_and(success, tf.logical_not(done))
                best = tf.where(take[:, None, None, None], x_adv, best)
                done = tf.logical_or(done, success)
        return best


class FGSM(Attack):
    """Fast gradient sign method: one signed-gradient step of size eps (Goodfellow et al. 2015)."""

    name: ClassVar[str] = "fgsm"
    distance: ClassVar[str] = "linf"
    targeted_by_default: ClassVar[bool] = False
    has_eps: ClassVar[bool] = True
    dataset_defaults: ClassVar[dict[str, dict[str, Any]]] = {
        "mnist": {"eps": 0.3},
        "synthetic": {"eps": 0.3},
        "cifar10": {"eps": 8 / 255},
        "lisa": {"eps": 8 / 255},
    }

    def __init__(self, *, eps: float = 0.3, targeted: bool | None = None, batch_size: int = 256,
                 precision: str = "float32") -> None:
        super().__init__(targeted=targeted, batch_size=batch_size)
        self.eps = _check_eps(eps)
        self.precision = check_precision(precision)

    def run(self, model: Any, x: tf.Tensor, y: tf.Tensor, target: tf.Tensor | None, *, seed: int,
            batch: int) -> tf.Tensor:
        labels = target if self.targeted else y
        grad_model = gradient_model(model, self.precision)
        return sign_gradient_descent(grad_model, x, x, labels, eps=self.eps, step_size=self.eps, steps=1,
                                     ascend=not self.targeted)
