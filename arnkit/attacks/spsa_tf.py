"""SPSA's TensorFlow path through cleverhans's optimizer (see arnkit.attacks.spsa). TensorFlow-only module."""

from __future__ import annotations

from typing import Any

import tensorflow as tf
from cleverhans.tf2.attacks import spsa as ch_spsa


class _SeededSPSAAdam:
    """cleverhans's SPSAAdam without the Keras optimizer underneath (no variables, nothing global): the
    estimator and the Adam step are its own methods; only the random directions are keyed by a seed."""

    _compute_gradients = ch_spsa.SPSAAdam._compute_gradients
    _apply_gradients = ch_spsa.SPSAAdam._apply_gradients
    init_state = ch_spsa.SPSAAdam.init_state

    # Keras 3 Adam's defaults, what SPSAAdam would have inherited.
    beta_1, beta_2, epsilon = 0.9, 0.999, 1e-7

    def __init__(self, lr: tf.Tensor, delta: tf.Tensor, num_samples: int, key: tf.Tensor) -> None:
        self.lr = lr
        self._delta = delta
        self._num_samples = num_samples // 2  # mirrored: +v and -v
        self._num_iters = 1
        self._key = key
        self._draw = key

    def _get_delta(self, x: tf.Tensor, delta: tf.Tensor) -> tf.Tensor:
        shape = [self._num_samples] + x.get_shape().as_list()[1:]
        return delta * tf.sign(tf.random.stateless_uniform(shape, self._draw, -1.0, 1.0))

    def minimize(self, loss_fn, x, optim_state):
        # A fresh draw per iteration: optim_state["t"] counts the steps taken.
        step = tf.cast(optim_state["t"], tf.int32)
        self._draw = tf.random.experimental.stateless_fold_in(self._key, step)
        return self._apply_gradients(self._compute_gradients(loss_fn, x), x, optim_state)


class _SeededStart:
    """`project_perturbation` for cleverhans's `projected_optimization`: its first call projects the random
    start, which it draws from the global random state; this replaces that draw with a seeded one."""

    def __init__(self, key: tf.Tensor) -> None:
        self._key = key
        self._started = False

    def __call__(self, perturbation, epsilon, input_image, clip_min=None, clip_max=None):
        if not self._started:
            self._started = True
            perturbation = tf.random.stateless_uniform(tf.shape(input_image), self._key, -epsilon, epsilon)
        return ch_spsa._project_perturbation(perturbation, epsilon, input_image, clip_min, clip_max)


@tf.function(reduce_retracing=True)
def spsa_one(model: Any, x: tf.Tensor, label: tf.Tensor, key: tf.Tensor, eps: tf.Tensor, lr: tf.Tensor,
              delta: tf.Tensor, nb_iter: int, samples: int, targeted: bool, early_stop: bool) -> tf.Tensor:
    """One image [1, H, W, C] through cleverhans's projected optimization with the seeded estimator."""
    sign = 1.0 if targeted else -1.0

    def loss_fn(images, labels):
        logits = tf.cast(model(images, training=False), tf.float32)
        return sign * ch_spsa.margin_logit_loss(logits, labels, nb_classes=logits.get_shape()[-1])

    optimizer = _SeededSPSAAdam(lr, delta, samples, tf.random.experimental.stateless_fold_in(key, 1))
    start = _SeededStart(tf.random.experimental.stateless_fold_in(key, 0))
    return ch_spsa.projected_optimization(loss_fn, x, label, eps, nb_iter, optimizer, 0.0, 1.0,
                                          0.0 if early_stop else None, project_perturbation=start)
