"""A faster input gradient for single-channel convolutions, for attacks. TensorFlow-only module.

Attacks differentiate the loss with respect to the *image*, so every step pays for the transposed convolution
of the first layer: 1 output channel from, say, 32. oneDNN runs that kernel (Conv2DBackpropInput) at a third of
its forward speed; on the paper's MNIST LeNet it was 21% of a PGD step (TF profiler, 2-core CPU, batch 256).
The same gradient is one matmul of the upstream gradient with the kernel, (N*Ho*Wo, Cout) x (Cout, kh*kw),
followed by a sum of kh*kw shifted slices: 5.1 -> 2.8 ms at that shape.

`fast_input_gradients()` swaps TensorFlow's registered gradient of the Conv2D op for one that takes that route
when the convolution's input has one channel, stride 1, no dilation, NHWC and a static spatial shape, and the
stock gradient otherwise. The math is the stock one: only the summation order differs (float round-off, well
under 1e-5 relative; tests/test_attacks_input_gradients.py checks it against the stock kernel). For 3-channel
inputs the stock kernel was faster (7.2 vs 11.5 ms), so they keep it. The swap is a process-wide registry entry
held for the duration of the `with` block; because the replacement computes the same quantity, another thread
that traces a gradient meanwhile gets a correct one too. Graphs traced inside the block keep the new gradient.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import tensorflow as tf

_LOCK = threading.Lock()
_DEPTH = 0
_STOCK = None


def _registry() -> dict | None:
    """TensorFlow's gradient registry (a private structure: None when a TF release moves it, and then the swap
    is skipped and attacks run on the stock gradient)."""
    try:
        from tensorflow.python.framework import ops

        entries = ops._gradient_registry._registry
    except (ImportError, AttributeError):
        return None
    entry = entries.get("Conv2D")
    return entries if isinstance(entry, dict) and callable(entry.get("type")) else None


def conv2d_input_gradient(grad: tf.Tensor, kernel: tf.Tensor, input_hw: tuple[int, int], padding: str) -> tf.Tensor:
    """dL/dx of y = conv2d(x, kernel, stride 1, padding) for x of spatial size `input_hw`, given grad = dL/dy.

    With x padded by p on top, y[i] = sum_d x[i + d - p] k[d], so dL/dx[r] = sum_d g[r + p - d] k[d]: the
    per-tap products g[i] k[d] come from one matmul, then each tap's map is shifted into place and summed.
    """
    kh, kw, cin, cout = (int(s) for s in kernel.shape)
    height, width = input_hw
    out_h, out_w = int(grad.shape[1]), int(grad.shape[2])
    pad_top = (kh - 1) // 2 if padding == "SAME" else 0
    pad_left = (kw - 1) // 2 if padding == "SAME" else 0
    taps = tf.matmul(tf.reshape(grad, [-1, cout]),
                     tf.reshape(tf.transpose(kernel, [3, 0, 1, 2]), [cout, kh * kw * cin]))
    taps = tf.reshape(taps, [-1, out_h, out_w, kh * kw, cin])
    # After padding by kh-1 on top, tap d's contribution to row r sits at row r + pad_top + kh-1 - d.
    taps = tf.pad(taps, [[0, 0], [kh - 1, height + pad_top - out_h], [kw - 1, width + pad_left - out_w],
                         [0, 0], [0, 0]])
    shifted = []
    for dy in range(kh):
        for dx in range(kw):
            top, left = pad_top + kh - 1 - dy, pad_left + kw - 1 - dx
            shifted.append(taps[:, top:top + height, left:left + width, dy * kw + dx, :])
    return tf.add_n(shifted)


def _applies(op) -> bool:
    x = op.inputs[0]
    try:
        return (op.get_attr("data_format") == b"NHWC" and list(op.get_attr("strides")) == [1, 1, 1, 1]
                and list(op.get_attr("dilations")) == [1, 1, 1, 1]
                and op.get_attr("padding") in (b"SAME", b"VALID")
                and x.shape.rank == 4 and x.shape[3] == 1 and x.shape[1] is not None and x.shape[2] is not None
                and op.inputs[1].shape.is_fully_defined())
    except (ValueError, TypeError):
        return False


def _conv2d_gradient(op, grad):
    if not (_applies(op) and grad.shape[1] is not None and grad.shape[2] is not None):
        return _STOCK(op, grad)
    x, kernel = op.inputs[0], op.inputs[1]
    padding = op.get_attr("padding")
    input_grad = conv2d_input_gradient(grad, kernel, (int(x.shape[1]), int(x.shape[2])), padding.decode())
    if 1 in (getattr(op, "skip_input_indices", None) or ()):
        return input_grad, None  # eager tape: nobody asked for the kernel's gradient
    kernel_grad = tf.raw_ops.Conv2DBackpropFilter(
        input=x, filter_sizes=tf.shape(kernel), out_backprop=grad, strides=[1, 1, 1, 1], padding=padding,
        data_format="NHWC", dilations=[1, 1, 1, 1])
    return input_grad, kernel_grad


@contextlib.contextmanager
def fast_input_gradients() -> Iterator[None]:
    """Within the block, gradients of single-channel Conv2D ops take the matmul route (see the module doc).
    Re-entrant; a no-op where TensorFlow's gradient registry is not where this module expects it."""
    global _DEPTH, _STOCK
    entries = _registry()
    if entries is None:
        yield
        return
    with _LOCK:
        if _DEPTH == 0:
            _STOCK = entries["Conv2D"]["type"]
            entries["Conv2D"]["type"] = _conv2d_gradient
        _DEPTH += 1
    try:
        yield
    finally:
        with _LOCK:
            _DEPTH -= 1
            if _DEPTH == 0:
                entries["Conv2D"]["type"] = _STOCK
