"""Training batches that are a pure function of (seed, step): epoch e = step // steps_per_epoch is a
permutation seeded by (seed, e), so a resumed run sees exactly the batches an uninterrupted one would."""

from __future__ import annotations

import numpy as np

from arnkit.errors import ArnkitError


def numpy_batches(x_adv: np.ndarray, x_nat: np.ndarray, *, batch_size: int, seed: int):
    """`batch(step)` -> (x_adv, x_nat) for the JAX and torch loop: epoch e = step // steps_per_epoch is a
    permutation seeded by (seed, e), so a resumed run sees the batches an uninterrupted one would."""
    n = len(x_nat)
    if n < batch_size:
        raise ArnkitError(f"the pools hold {n} images, fewer than --batch-size {batch_size}; lower --batch-size")
    per_epoch = n // batch_size

    def batch(step: int):
        epoch, within = divmod(int(step), per_epoch)
        idx = np.random.default_rng([int(seed), epoch]).permutation(n)[within * batch_size:(within + 1) * batch_size]
        return x_adv[idx], x_nat[idx]

    return batch


def step_batches(x_adv: np.ndarray, x_nat: np.ndarray, *, batch_size: int, seed: int):
    """`batches(start)`: a tf.data.Dataset of training batches from step `start` on, where batch s is a pure
    function of (seed, s): epoch e = s // steps_per_epoch uses a stateless permutation seeded by (seed, e).
    So a resumed run sees exactly the batches an uninterrupted one would (tf.data's reshuffling shuffle
    draws a new order for every new iterator, which breaks that)."""
    import tensorflow as tf

    n = len(x_nat)
    if n < batch_size:
        raise ArnkitError(f"the pools hold {n} images, fewer than --batch-size {batch_size}; lower --batch-size")
    per_epoch = n // batch_size
    adv_t, nat_t = tf.constant(x_adv, tf.float32), tf.constant(x_nat, tf.float32)

    def batch(step):
        epoch, within = step // per_epoch, step % per_epoch
        keys = tf.random.stateless_uniform([n], seed=tf.stack([tf.cast(seed, tf.int64), epoch]))
        idx = tf.argsort(keys)[within * batch_size:(within + 1) * batch_size]
        return {"adversarial": tf.gather(adv_t, idx), "natural": tf.gather(nat_t, idx)}

    def batches(start: int):
        return tf.data.Dataset.range(int(start), 2**62).map(batch).prefetch(2)

    return batches
