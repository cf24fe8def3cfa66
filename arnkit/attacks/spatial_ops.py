"""Tensor operations shared by the spatially-constrained attacks (stAdv / STA and FWA). TensorFlow-only.

Flow fields (stAdv, Xiao et al. 2018, arXiv:1801.02612): a flow has shape (N, H, W, 2) in pixels;
`flow[..., 0]` moves the sampling point along rows (down is positive) and `flow[..., 1]` along
columns (right is positive). Output pixel (i, j) is the input bilinearly sampled at
(i + flow[i, j, 0], j + flow[i, j, 1]).

Local transport plans (FWA, Wu et al. 2020, arXiv:2008.02883): a plan has shape (N, H, W, C, K*K);
entry [n, i, j, c, o] is the mass that pixel (i, j) of channel c sends to (i + dy_o, j + dx_o), with
the K*K offsets (dy, dx) in row-major order over [-r, r]^2, r = K // 2 (offset K*K // 2 is "stay").
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from arnkit.errors import ArnkitError

BORDERS = ("edge", "zeros")


# -- stAdv: flow warping and smoothness ----------------------------------------------------------------
def flow_warp(images: tf.Tensor, flow: tf.Tensor, border: str = "edge") -> tf.Tensor:
    """Bilinearly sample `images` (N,H,W,C) at the points displaced by `flow` (N,H,W,2); differentiable in both.

    border="edge": sampling points are clamped to the image (the border pixels repeat);
    border="zeros": samples outside the image read 0.
    """
    if border not in BORDERS:
        raise ArnkitError(f"border must be one of {BORDERS}, got {border!r}")
    images = tf.convert_to_tensor(images, tf.float32)
    flow = tf.convert_to_tensor(flow, tf.float32)
    shape = tf.shape(images)
    n, h, w, c = shape[0], shape[1], shape[2], shape[3]
    hf, wf = tf.cast(h, tf.float32), tf.cast(w, tf.float32)
    rows, cols = tf.meshgrid(tf.range(hf), tf.range(wf), indexing="ij")
    y = rows[None] + flow[..., 0]
    x = cols[None] + flow[..., 1]
    if border == "edge":
        y = tf.clip_by_value(y, 0.0, hf - 1.0)
        x = tf.clip_by_value(x, 0.0, wf - 1.0)
    # floor is piecewise constant: the gradient flows through the bilinear weights only
    y0 = tf.stop_gradient(tf.floor(y))
    x0 = tf.stop_gradient(tf.floor(x))
    wy1, wx1 = y - y0, x - x0
    wy0, wx0 = 1.0 - wy1, 1.0 - wx1
    flat = tf.reshape(images, [n, h * w, c])

    def corner(yc: tf.Tensor, xc: tf.Tensor) -> tf.Tensor:
        inside = (yc >= 0.0) & (yc <= hf - 1.0) & (xc >= 0.0) & (xc <= wf - 1.0)
        yi = tf.cast(tf.clip_by_value(yc, 0.0, hf - 1.0), tf.int32)
        xi = tf.cast(tf.clip_by_value(xc, 0.0, wf - 1.0), tf.int32)
        values = tf.gather(flat, tf.reshape(yi * w + xi, [n, h * w]), batch_dims=1)
        values = tf.reshape(values, [n, h, w, c])
        return values * tf.cast(inside, tf.float32)[..., None]

    out = (
        (wy0 * wx0)[..., None] * corner(y0, x0)
        + (wy0 * wx1)[..., None] * corner(y0, x0 + 1.0)
        + (wy1 * wx0)[..., None] * corner(y0 + 1.0, x0)
        + (wy1 * wx1)[..., None] * corner(y0 + 1.0, x0 + 1.0)
    )
    return out


def flow_smoothness(flow: tf.Tensor, sqrt_eps: float = 1e-10) -> tf.Tensor:
    """Per-example L_flow = sum_p sum_{q in N(p)} sqrt(||du_p - du_q||^2 + ||dv_p - dv_q||^2) (Eq. 4 of stAdv).

    N(p) is the 4-neighbourhood of p inside the image, so each adjacent pair counts twice (p->q and q->p)
    and the border adds no penalty. `sqrt_eps` keeps the gradient finite where neighbours move together;
    sqrt(sqrt_eps) is subtracted per pair so that a constant flow scores exactly 0.
    """
    flow = tf.convert_to_tensor(flow, tf.float32)
    offset = tf.sqrt(tf.constant(sqrt_eps, tf.float32))

    def pair_lengths(diff: tf.Tensor) -> tf.Tensor:
        return tf.reduce_sum(tf.sqrt(tf.reduce_sum(tf.square(diff), -1) + sqrt_eps) - offset, axis=[1, 2])

    vertical = pair_lengths(flow[:, 1:] - flow[:, :-1])
    horizontal = pair_lengths(flow[:, :, 1:] - flow[:, :, :-1])
    return 2.0 * (vertical + horizontal)


# -- FWA: local transport plans ------------------------------------------------------------------------
def transport_offsets(kernel_size: int) -> np.ndarray:
    """The (K*K, 2) integer (dy, dx) offsets of a K x K window, row-major; K must be odd."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ArnkitError(f"kernel_size must be a positive odd integer, got {kernel_size}")
    r = kernel_size // 2
    dy, dx = np.meshgrid(np.arange(-r, r + 1), np.arange(-r, r + 1), indexing="ij")
    return np.stack([dy.ravel(), dx.ravel()], axis=1)


def transport_cost(kernel_size: int) -> np.ndarray:
    """Euclidean distance moved by each offset, shape (K*K,)."""
    return np.sqrt((transport_offsets(kernel_size) ** 2).sum(axis=1)).astype(np.float32)


def transport_valid_mask(height: int, width: int, kernel_size: int) -> np.ndarray:
    """(H, W, K*K) bool: True where pixel (i, j) moved by offset o stays inside the image."""
    off = transport_offsets(kernel_size)
    rows = np.arange(height)[:, None, None] + off[None, None, :, 0]
    cols = np.arange(width)[None, :, None] + off[None, None, :, 1]
    return (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)


def identity_plan(images: tf.Tensor, kernel_size: int) -> tf.Tensor:
    """The plan that moves nothing: all of each pixel's mass on the "stay" offset. Shape (N,H,W,C,K*K)."""
    k2 = kernel_size * kernel_size
    stay = tf.one_hot(k2 // 2, k2, dtype=tf.float32)
    return tf.convert_to_tensor(images, tf.float32)[..., None] * stay


def _offset_kernel(kernel_size: int) -> tf.Tensor:
    """(K, K, 1, K*K) one-hot filter: output channel o of a conv reads the input at offset o."""
    r = kernel_size // 2
    offsets = transport_offsets(kernel_size)
    kernel = np.zeros((kernel_size, kernel_size, 1, len(offsets)), np.float32)
    kernel[offsets[:, 0] + r, offsets[:, 1] + r, 0, np.arange(len(offsets))] = 1.0
    return tf.constant(kernel)


def gather_neighbours(values: tf.Tensor, kernel_size: int) -> tf.Tensor:
    """out[n, i, j, c, o] = values[n, i + dy_o, j + dx_o, c] (0 outside the image); the adjoint of `plan_to_image`.

    One convolution with one-hot filters (an unfold), channels folded into the batch.
    """
    values = tf.convert_to_tensor(values, tf.float32)
    n, h, w, c = tf.unstack(tf.shape(values))
    per_channel = tf.reshape(tf.transpose(values, [0, 3, 1, 2]), [n * c, h, w, 1])
    patches = tf.nn.conv2d(per_channel, _offset_kernel(kernel_size), strides=1, padding="SAME")
    return tf.transpose(tf.reshape(patches, [n, c, h, w, -1]), [0, 2, 3, 1, 4])


def plan_to_image(plan: tf.Tensor, kernel_size: int) -> tf.Tensor:
    """Received mass per pixel: out[i, j] = sum_o plan[i - dy_o, j - dx_o, o] (the plan's column sums).

    The transposed convolution of `gather_neighbours` (a fold). Mass sent outside the image is dropped;
    plans built with `transport_valid_mask` never send any.
    """
    plan = tf.convert_to_tensor(plan, tf.float32)
    n, h, w, c, k2 = tf.unstack(tf.shape(plan))
    per_channel = tf.reshape(tf.transpose(plan, [0, 3, 1, 2, 4]), [n * c, h, w, k2])
    image = tf.nn.conv2d_transpose(per_channel, _offset_kernel(kernel_size), [n * c, h, w, 1], strides=1,
                                   padding="SAME")
    return tf.transpose(tf.reshape(image, [n, c, h, w]), [0, 2, 3, 1])


def plan_cost(plan: tf.Tensor, kernel_size: int) -> tf.Tensor:
    """Per-example transport cost <C, plan> summed over pixels and channels, shape (N,)."""
    cost = tf.constant(transport_cost(kernel_size))
    return tf.reduce_sum(plan * cost, axis=[1, 2, 3, 4])


__all__ = [
    "BORDERS",
    "flow_smoothness",
    "flow_warp",
    "gather_neighbours",
    "identity_plan",
    "plan_cost",
    "plan_to_image",
    "transport_cost",
    "transport_offsets",
    "transport_valid_mask",
]
