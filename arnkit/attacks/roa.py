"""Rectangular Occlusion Attack, ROA (Wu, Tong & Vorobeychik, "Defending Against Physically Realizable Attacks
on Image Classification", ICLR 2020, arXiv:1909.09552). Distance: "patch" (one rectangle, unbounded inside, so
there is no eps). TensorFlow-only module.

Two stages per image:
1. Placement. `search="exhaustive"`: paint a gray (0.5) `height` x `width` rectangle at every position of a
   grid with step `stride` (top-left corners 0, stride, ..., up to the last position that fits) and keep the
   position with the largest loss. `search="gradient"`: rank the positions by the sum of squared input
   gradients of the loss inside the window, then run the exhaustive test on the top `candidates` only.
2. Inside the chosen rectangle, start from gray 0.5 and take `steps` signed-gradient steps of `step_size`,
   clipped to [0,1] only.

Loss: untargeted, the cross-entropy of the true label (ascended); targeted, that of the target (descended).
Both stages use the log-odds s = logsumexp_{j != y} z_j - z_y (targeted: z_t - logsumexp_{j != t} z_j) in its
place. CE = softplus(s) is increasing in s, so placement picks the same rectangle and each signed step has the
same sign, but s does not round to a tie when the model is very confident. Ties keep the first position in
row-major order (the reference code draws a random one instead).

Defaults are the DOA code's LISA settings: 7x7 rectangle, stride 2, 30 steps of 0.01, 5 candidates.
For 28x28 images we scale the rectangle to 6x6 (7 * 28 / 32, rounded).

Arguments: width, height (rectangle size in pixels), stride, search ("exhaustive" or "gradient"),
candidates (gradient search), steps, step_size, targeted, batch_size.

    from arnkit.attacks.roa import ROA
    attack = ROA.for_dataset("lisa", search="gradient")
    result = attack(model, x, y, seed=0)                # model maps [0,1] images to logits
    rows_cols = attack.locate(model, x, y)              # top-left corner of each chosen rectangle
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import tensorflow as tf

from arnkit.attacks.base import Attack, validate_inputs
from arnkit.errors import ArnkitError

SEARCHES = ("exhaustive", "gradient")
GRAY = 0.5


def log_odds(logits: tf.Tensor, labels: tf.Tensor, targeted: tf.Tensor) -> tf.Tensor:
    """Per-example score to maximize: untargeted logsumexp_{j!=y} z_j - z_y, targeted z_t - logsumexp_{j!=t} z_j."""
    is_label = tf.one_hot(labels, tf.shape(logits)[-1], on_value=True, off_value=False)
    own = tf.reduce_sum(tf.where(is_label, logits, 0.0), axis=-1)
    others = tf.reduce_logsumexp(tf.where(is_label, -np.inf, logits), axis=-1)
    return tf.where(targeted, own - others, others - own)


def _windows(height: int, width: int, size: tuple[int, int], stride: int) -> tuple[np.ndarray, np.ndarray]:
    """All rectangle positions (top-left row, col) in row-major order and their masks (P, H, W, 1)."""
    rows = np.arange(0, height - size[0] + 1, stride)
    cols = np.arange(0, width - size[1] + 1, stride)
    corners = np.array([(r, c) for r in rows for c in cols], np.int32)
    masks = np.zeros((len(corners), height, width, 1), np.float32)
    for k, (r, c) in enumerate(corners):
        masks[k, r:r + size[0], c:c + size[1]] = 1.0
    return corners, masks


def _occlude(x: tf.Tensor, masks: tf.Tensor) -> tf.Tensor:
    return x * (1.0 - masks) + GRAY * masks


@tf.function(reduce_retracing=True)
def exhaustive_placement(model: Any, x: tf.Tensor, labels: tf.Tensor, targeted: tf.Tensor,
                         masks: tf.Tensor, candidates: tf.Tensor) -> tf.Tensor:
    """Index (into `masks`) of the best gray rectangle per example among `candidates` (B, K) indices."""
    batch = tf.shape(x)[0]
    best_score = tf.fill([batch], -np.inf)
    best_index = candidates[:, 0]
    for k in tf.range(tf.shape(candidates)[1]):
        index = candidates[:, k]
        score = log_odds(model(_occlude(x, tf.gather(masks, index)), training=False), labels, targeted)
        better = score > best_score  # strict: ties keep the earlier position
        best_index = tf.where(better, index, best_index)
        best_score = tf.where(better, score, best_score)
    return best_index


@tf.function(reduce_retracing=True)
def gradient_candidates(model: Any, x: tf.Tensor, labels: tf.Tensor, targeted: tf.Tensor,
                        size: tuple[int, int], stride: int, count: tf.Tensor) -> tf.Tensor:
    """The `count` window indices with the largest summed squared input gradient, per example (B, count)."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        score = tf.reduce_sum(log_odds(model(x, training=False), labels, targeted))
    grad = tape.gradient(score, x, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    energy = tf.reduce_sum(tf.square(grad), axis=-1, keepdims=True)
    # A VALID window sum with this stride visits the same row-major grid as `_windows`.
    sums = tf.nn.conv2d(energy, tf.ones([size[0], size[1], 1, 1]), strides=stride, padding="VALID")
    flat = tf.reshape(sums, [tf.shape(x)[0], -1])
    return tf.math.top_k(flat, k=count, sorted=True).indices


@tf.function(reduce_retracing=True)
def rectangle_sign_steps(model: Any, x: tf.Tensor, labels: tf.Tensor, targeted: tf.Tensor, mask: tf.Tensor,
                         steps: tf.Tensor, step_size: tf.Tensor) -> tf.Tensor:
    """Signed-gradient ascent of the log-odds inside `mask` (B, H, W, 1), starting from gray."""
    x_adv = _occlude(x, mask)
    for _ in tf.range(steps):
        with tf.GradientTape() as tape:
            tape.watch(x_adv)
            score = tf.reduce_sum(log_odds(model(x_adv, training=False), labels, targeted))
        grad = tape.gradient(score, x_adv, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        x_adv = tf.clip_by_value(x_adv + step_size * tf.sign(grad) * mask, 0.0, 1.0)
    return x_adv


class ROA(Attack):
    """Gray rectangle at the worst position, then signed-gradient steps inside it (Wu et al. 2020)."""

    name: ClassVar[str] = "roa"
    distance: ClassVar[str] = "patch"
    targeted_by_default: ClassVar[bool] = False
    has_eps: ClassVar[bool] = False

    def __init__(self, *, width: int = 7, height: int = 7, stride: int = 2, search: str = "exhaustive",
                 candidates: int = 5, steps: int = 30, step_size: float = 0.01, targeted: bool | None = None,
                 batch_size: int = 256) -> None:
        super().__init__(targeted=targeted, batch_size=batch_size)
        for pname, value in (("width", width), ("height", height), ("stride", stride), ("candidates", candidates)):
            if int(value) < 1:
                raise ArnkitError(f"{pname} must be >= 1, got {value}")
        if search not in SEARCHES:
            raise ArnkitError(f"search must be one of {SEARCHES}, got {search!r}")
        if int(steps) < 0:
            raise ArnkitError(f"steps must be >= 0, got {steps}")
        if not step_size > 0.0:
            raise ArnkitError(f"step_size must be > 0, got {step_size}")
        self.width = int(width)
        self.height = int(height)
        self.stride = int(stride)
        self.search = search
        self.candidates = int(candidates)
        self.steps = int(steps)
        self.step_size = float(step_size)

    def _grid(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        h, w = int(shape[0]), int(shape[1])
        if self.height > h or self.width > w:
            raise ArnkitError(f"a {self.height}x{self.width} rectangle does not fit {h}x{w} images; "
                              f"pass smaller height/width")
        return _windows(h, w, (self.height, self.width), self.stride)

    def _place(self, model: Any, x: tf.Tensor, labels: tf.Tensor, masks: np.ndarray) -> tf.Tensor:
        targeted = tf.constant(self.targeted)
        positions = len(masks)
        if self.search == "exhaustive":
            candidates = tf.tile(tf.range(positions)[None], [tf.shape(x)[0], 1])
        else:
            candidates = gradient_candidates(model, x, labels, targeted, (self.height, self.width), self.stride,
                                             tf.constant(min(self.candidates, positions)))
        return exhaustive_placement(model, x, labels, targeted, tf.constant(masks), candidates)

    def locate(self, model: Any, x: Any, y: Any, *, target: Any = None) -> np.ndarray:
        """Top-left (row, col) of the rectangle the placement stage picks for each image, shape (N, 2)."""
        x_np, y_np = validate_inputs(x, y)
        labels = y_np if not self.targeted else np.asarray(target, np.int64).reshape(-1)
        if self.targeted and labels.shape != y_np.shape:
            raise ArnkitError("locate() on a targeted ROA needs `target` with one class per image")
        corners, masks = self._grid(x_np.shape[1:])
        out = []
        for start in range(0, len(x_np), self.batch_size):
            sl = slice(start, start + self.batch_size)
            out.append(self._place(model, tf.constant(x_np[sl]), tf.constant(labels[sl]), masks).numpy())
        return corners[np.concatenate(out)] if out else np.zeros((0, 2), np.int32)

    def run(self, model: Any, x: tf.Tensor, y: tf.Tensor, target: tf.Tensor | None, *, seed: int,
            batch: int) -> tf.Tensor:
        labels = target if self.targeted else y
        _, masks = self._grid(tuple(x.shape[1:]))
        chosen = tf.gather(tf.constant(masks), self._place(model, x, labels, masks))
        return rectangle_sign_steps(model, x, labels, tf.constant(self.targeted), chosen,
                                    tf.constant(self.steps), tf.constant(self.step_size))
