"""SPSA off TensorFlow (JAX, torch): the estimator, Adam step, projection and early stop of arnkit.attacks.spsa,
vectorized over the images of a batch. It only queries the model's logits; the rest is numpy on the host.

Per image and iteration: `samples // 2` Rademacher directions v, mirrored to +v and -v; the margin loss L at
x + p + delta * v for each; the estimate mean(L * v) (delta cancels: the directions are delta * v and the mean is
divided by delta, as in cleverhans's SPSAAdam); one Adam step on the perturbation p; p projected onto the
eps-ball and so that x + p stays in [0,1]. With early stop an image stops once its loss is below zero (fooled).
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Keras 3 Adam's defaults, as on the TensorFlow path.
_BETA_1, _BETA_2, _EPSILON = 0.9, 0.999, 1e-7
# Queries per forward pass: images per chunk = MAX_QUERIES // samples (at least 1).
MAX_QUERIES = 8192


def _margin_loss(logits: np.ndarray, labels: np.ndarray, targeted: bool) -> np.ndarray:
    """Minimized: max_{k != t} z_k - z_t toward target t; z_y - max_{k != y} z_k away from label y."""
    true = logits[np.arange(len(labels)), labels]
    others = logits.copy()
    others[np.arange(len(labels)), labels] = -np.inf
    margin = others.max(axis=-1) - true
    return margin if targeted else -margin


def _project(x: np.ndarray, p: np.ndarray, eps: float) -> np.ndarray:
    return np.clip(x + np.clip(p, -eps, eps), 0.0, 1.0) - x


def spsa_batch(model: Any, x: Any, labels: Any, *, eps: float, nb_iter: int, samples: int, learning_rate: float,
               delta: float, targeted: bool, early_stop: bool, seed: int, batch: int) -> np.ndarray:
    """Adversarial images for one batch (numpy float32); draws keyed by (seed, batch, chunk)."""
    from keras import ops

    x_np = np.asarray(ops.convert_to_numpy(x), np.float32)
    labels_np = np.asarray(ops.convert_to_numpy(labels)).astype(np.int64)

    def logits(images: np.ndarray) -> np.ndarray:
        return np.asarray(ops.convert_to_numpy(model(ops.convert_to_tensor(images), training=False)), np.float32)

    per_chunk = max(1, MAX_QUERIES // samples)
    out = [
        _spsa_chunk(logits, x_np[s:s + per_chunk], labels_np[s:s + per_chunk], eps=eps, nb_iter=nb_iter,
                    samples=samples, learning_rate=learning_rate, delta=delta, targeted=targeted,
                    early_stop=early_stop, rng=np.random.default_rng([int(seed) % 2**63, int(batch), s]))
        for s in range(0, len(x_np), per_chunk)
    ]
    return np.concatenate(out) if out else x_np


def _spsa_chunk(logits: Any, x: np.ndarray, labels: np.ndarray, *, eps: float, nb_iter: int, samples: int,
                learning_rate: float, delta: float, targeted: bool, early_stop: bool,
                rng: np.random.Generator) -> np.ndarray:
    n, shape, half = len(x), x.shape[1:], samples // 2
    pert = _project(x, rng.uniform(-eps, eps, size=x.shape).astype(np.float32), eps)
    m, u = np.zeros_like(x), np.zeros_like(x)
    steps = np.zeros(n, np.float64)  # per image: a stopped image takes no more Adam steps
    active = np.ones(n, bool)
    expand = (slice(None),) + (None,) * len(shape)
    for _ in range(nb_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        xa, pa = x[idx], pert[idx]
        v = rng.integers(0, 2, size=(len(idx), half, *shape)).astype(np.float32) * 2.0 - 1.0
        dirs = np.concatenate([v, -v], axis=1)  # (b, samples, ...)
        queries = ((xa + pa)[:, None] + delta * dirs).reshape(-1, *shape)
        loss = _margin_loss(logits(queries), np.repeat(labels[idx], samples), targeted).reshape(len(idx), samples)
        grad = np.mean(loss.reshape(len(idx), samples, *([1] * len(shape))) * dirs, axis=1)
        steps[idx] += 1.0
        t = steps[idx][expand]
        m[idx] = _BETA_1 * m[idx] + (1.0 - _BETA_1) * grad
        u[idx] = _BETA_2 * u[idx] + (1.0 - _BETA_2) * grad * grad
        m_hat, u_hat = m[idx] / (1.0 - _BETA_1 ** t), u[idx] / (1.0 - _BETA_2 ** t)
        pa = _project(xa, pa - learning_rate * m_hat / (np.sqrt(u_hat) + _EPSILON), eps).astype(np.float32)
        pert[idx] = pa
        if early_stop:
            active[idx[_margin_loss(logits(xa + pa), labels[idx], targeted) < 0.0]] = False
    return (x + pert).astype(np.float32)
