"""The attack families of ARN's multi-family adaptive step (`ARNConfig.adaptive_families`), TensorFlow only.

Beyond the paper: while ARN trains, each batch's leaked share is attacked by ONE family, drawn per batch, crafted
against the *current* pre-processor and the frozen target (`logits_of(x) = target(G(E(x)))`), so the defense
learns to restore examples of several kinds, not only L-inf PGD. The paper's discussion asks that the seen
types "approximately cover the unseen types"; these are cheap stand-ins for each kind of unseen attack:

- pgd_linf            L-inf PGD, untargeted (today's single family), in the eps-ball
- pgd_linf_targeted   L-inf PGD towards a random other class, in the eps-ball
- pgd_l2              L2 PGD, normalised-gradient steps projected onto the L2 ball of radius l2_eps
- flow                a smooth spatial flow (STA-like): a flow field at a quarter of the image's resolution,
                      bilinearly upsampled (so smooth by construction), signed steps, each displacement
                      clipped to flow_eps pixels; the image is resampled bilinearly
- patch               pixels free in [0, 1] inside one rectangle per image at a random place: a square of
                      side `patch` on grayscale images, a random shape of about the same area on colour ones

Every family makes `steps` signed (or, for L2, normalised) gradient steps of Madry's size 2.5 * budget / steps
from a random start, so an image whose gradient vanishes still moves off the natural one. Randomness is
stateless from `seed` (one (2,) int tensor), so a batch's example is a function of (seed, weights).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from arnkit.defenses.arn.config import ARNConfig

LogitsOf = Callable[[Any], Any]
FLOW_DOWNSAMPLING = 4  # the flow field lives on a grid this many times coarser: smooth displacements


def craft(name: str, logits_of: LogitsOf, x, labels, *, cfg: ARNConfig, seed) -> Any:
    """The family `name`'s examples for natural images x (M, H, W, C) of target labels `labels` (M,)."""
    steps = int(cfg.adaptive_steps)
    if name in ("pgd_linf", "pgd_linf_targeted"):
        return pgd_linf(logits_of, x, labels, eps=cfg.adaptive_eps, steps=steps, step=cfg.adaptive_step, seed=seed,
                        targeted=name == "pgd_linf_targeted")
    if name == "pgd_l2":
        return pgd_l2(logits_of, x, labels, eps=cfg.adaptive_l2_eps, steps=steps, seed=seed)
    if name == "flow":
        return flow(logits_of, x, labels, max_shift=cfg.adaptive_flow_eps, steps=steps, seed=seed)
    if name == "patch":
        return patch(logits_of, x, labels, side=int(cfg.adaptive_patch), steps=steps, seed=seed)
    raise ValueError(f"no crafting rule for adaptive family '{name}'")  # ARNConfig refuses unknown names first


def _cross_entropy(logits_of: LogitsOf, labels) -> Callable[[Any], Any]:
    import tensorflow as tf

    return lambda x: tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits_of(x)))


def _gradient(loss: Callable[[Any], Any], x):
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(x)
        value = loss(x)
    return tape.gradient(value, x)


def pgd_linf(logits_of: LogitsOf, x, labels, *, eps: float, steps: int, step: float, seed, targeted: bool = False):
    """Signed steps that raise the loss of `labels` (or, targeted, lower that of a random other class)."""
    import tensorflow as tf

    start_seed, target_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    if targeted:
        classes = int(logits_of(x[:1]).shape[-1])
        shift = tf.random.stateless_uniform(tf.shape(labels), seed=target_seed, minval=1, maxval=classes,
                                            dtype=labels.dtype)
        labels, direction = (labels + shift) % classes, -1.0  # never the label itself
    else:
        direction = 1.0
    loss = _cross_entropy(logits_of, labels)
    x_adv = tf.clip_by_value(x + tf.random.stateless_uniform(tf.shape(x), seed=start_seed, minval=-eps, maxval=eps),
                             0.0, 1.0)
    for _ in range(steps):
        moved = x_adv + direction * step * tf.sign(_gradient(loss, x_adv))
        x_adv = tf.clip_by_value(x + tf.clip_by_value(moved - x, -eps, eps), 0.0, 1.0)
    return x_adv


def _l2_norm(t):
    import tensorflow as tf

    return tf.sqrt(tf.reduce_sum(tf.square(t), axis=[1, 2, 3], keepdims=True) + 1e-12)


def pgd_l2(logits_of: LogitsOf, x, labels, *, eps: float, steps: int, seed):
    """Normalised-gradient steps of 2.5 * eps / steps, projected onto the L2 ball of radius eps."""
    import tensorflow as tf

    loss = _cross_entropy(logits_of, labels)
    direction = tf.random.stateless_normal(tf.shape(x), seed=seed)
    delta = direction / _l2_norm(direction) * (eps / 2)  # a random start inside the ball
    step = 2.5 * eps / steps
    for _ in range(steps):
        grad = _gradient(loss, tf.clip_by_value(x + delta, 0.0, 1.0))
        delta = delta + step * grad / _l2_norm(grad)
        delta = delta * tf.minimum(1.0, eps / _l2_norm(delta))
        delta = tf.clip_by_value(x + delta, 0.0, 1.0) - x  # clipping to [0, 1] only shortens delta
    return x + delta


def warp(x, shift):
    """x (B, H, W, C) resampled bilinearly at each pixel's position + shift (B, H, W, 2) in pixels (dy, dx);
    positions are clamped to the image. Differentiable in `shift`."""
    import tensorflow as tf

    height, width = x.shape[1], x.shape[2]
    grid_y, grid_x = tf.meshgrid(tf.range(height, dtype=tf.float32), tf.range(width, dtype=tf.float32), indexing="ij")
    y = tf.clip_by_value(grid_y + shift[..., 0], 0.0, height - 1.0)
    xs = tf.clip_by_value(grid_x + shift[..., 1], 0.0, width - 1.0)
    y0, x0 = tf.floor(y), tf.floor(xs)
    wy, wx = (y - y0)[..., None], (xs - x0)[..., None]
    y0, x0 = tf.cast(y0, tf.int32), tf.cast(x0, tf.int32)
    y1, x1 = tf.minimum(y0 + 1, height - 1), tf.minimum(x0 + 1, width - 1)

    def at(rows, cols):
        return tf.gather_nd(x, tf.stack([rows, cols], axis=-1), batch_dims=1)

    return ((1 - wy) * ((1 - wx) * at(y0, x0) + wx * at(y0, x1))
            + wy * ((1 - wx) * at(y1, x0) + wx * at(y1, x1)))


def flow(logits_of: LogitsOf, x, labels, *, max_shift: float, steps: int, seed):
    """A smooth flow field (a coarse grid upsampled bilinearly), signed steps, each shift within max_shift."""
    import tensorflow as tf

    height, width = x.shape[1], x.shape[2]
    coarse = (-(-height // FLOW_DOWNSAMPLING), -(-width // FLOW_DOWNSAMPLING))
    field = tf.random.stateless_uniform(tf.stack([tf.shape(x)[0], *coarse, 2]), seed=seed, minval=-max_shift,
                                        maxval=max_shift)
    loss = _cross_entropy(logits_of, labels)

    def warped(f):  # bilinear upsampling keeps every shift a convex mix of the coarse ones: within max_shift
        return warp(x, tf.image.resize(f, (height, width), method="bilinear"))

    step = 2.5 * max_shift / steps
    for _ in range(steps):
        grad = _gradient(lambda f: loss(warped(f)), field)
        field = tf.clip_by_value(field + step * tf.sign(grad), -max_shift, max_shift)
    return warped(field)


def patch_mask(x, side: int, seed):
    """(B, H, W, 1) masks of one rectangle per image at a random place: side x side on grayscale images; on colour
    ones a random height in [side / 2, 2 * side] with the width that keeps about side**2 pixels."""
    import tensorflow as tf

    batch, (height, width, channels) = tf.shape(x)[0], (int(s) for s in x.shape[1:])
    shape_seed, y_seed, x_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    side = min(side, height, width)
    if channels == 1:
        h = tf.fill([batch], side)
        w = h
    else:
        h = tf.random.stateless_uniform([batch], seed=shape_seed, minval=max(1, side // 2),
                                        maxval=min(height, 2 * side) + 1, dtype=tf.int32)
        w = tf.clip_by_value(tf.cast(tf.round(side * side / tf.cast(h, tf.float32)), tf.int32), 1, width)
    top = tf.cast(tf.floor(tf.random.stateless_uniform([batch], seed=y_seed) * tf.cast(height - h + 1, tf.float32)),
                  tf.int32)
    left = tf.cast(tf.floor(tf.random.stateless_uniform([batch], seed=x_seed) * tf.cast(width - w + 1, tf.float32)),
                   tf.int32)
    rows = tf.range(height)[None, :, None]
    cols = tf.range(width)[None, None, :]
    inside = ((rows >= top[:, None, None]) & (rows < (top + h)[:, None, None])
              & (cols >= left[:, None, None]) & (cols < (left + w)[:, None, None]))
    return tf.cast(inside, tf.float32)[..., None]


def patch(logits_of: LogitsOf, x, labels, *, side: int, steps: int, seed):
    """Pixels inside a random rectangle free in [0, 1] (random start), signed steps; the rest is untouched."""
    import tensorflow as tf

    mask_seed, start_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    mask = patch_mask(x, side, mask_seed)
    x_adv = x * (1 - mask) + mask * tf.random.stateless_uniform(tf.shape(x), seed=start_seed)
    loss = _cross_entropy(logits_of, labels)
    step = 2.5 / steps  # the whole [0, 1] range is the budget inside the patch
    for _ in range(steps):
        x_adv = tf.clip_by_value(x_adv + step * mask * tf.sign(_gradient(loss, x_adv)), 0.0, 1.0)
    return x * (1 - mask) + mask * x_adv
