"""Carlini-Wagner L2 attack (Carlini & Wagner, "Towards Evaluating the Robustness of Neural Networks",
IEEE S&P 2017, arXiv:1608.04644). Distance: L2, no eps budget (it minimizes the perturbation). TensorFlow-only.

The image is reparameterized as x' = (tanh(w) + 1) / 2 so that it always lies in [0,1]. Adam minimizes
||x' - x||_2^2 + c * max(Z_y - max_{i != y} Z_i + kappa, 0) on the logits Z (targeted: max_{i != t} Z_i - Z_t + kappa).
A per-example binary search over c raises c where the attack failed and lowers it where it succeeded; Adam
restarts from w = atanh(2x - 1) at each search step. Each example keeps its smallest-L2 success; examples that
never succeed come back unchanged (the clean image).

Arguments: steps (Adam iterations per search step), confidence (kappa), initial_const (c at the first search
step), learning_rate, binary_search_steps, abort_early (Carlini's rule, applied to each example on its own: every
steps/10 iterations an example whose loss fell by less than 0.01% since its previous check stops for this search
step), targeted, batch_size.

Defaults. ARN attacks MNIST with 500 Adam iterations at learning rate 1e-2, 4 search steps, confidence 1,
initial_const 1 (dwDavidxd/ARN via advertorch): `ARN_MNIST` below, `make("cw_n", dataset="mnist", **ARN_MNIST)`.
The MNIST default keeps everything but the schedule: 60 iterations at learning rate 0.2 (x4 search steps), 8x
less work for a 5% larger mean L2 at the same 100% success on the paper LeNet (docs/attacks.md has the numbers).
CIFAR-10 / LISA follow the same first author's CIFAR code (dwDavidxd/CAFD): 100 iterations at 1e-2. These
per-dataset schedules live in the datasets' budgets (arnkit/data/budgets.py).

Each example's Adam trajectory depends on that example alone (a sum of per-example losses, elementwise Adam), so
examples that abort leave the batch and later chunks run on the rest: the same result as attacking one image
at a time, with batched speed.

    from arnkit.attacks.cw import CarliniWagnerL2
    attack = CarliniWagnerL2.for_dataset("mnist")
    result = attack(model, x, y, seed=0)               # model maps [0,1] images to logits
    result.success_rate

In-house because cleverhans 4's `carlini_wagner_l2` fails under Keras 3 (`optimizer.variables()` is a property
there). Adam is written out by hand as loop state so that it restarts with each search step.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import tensorflow as tf

from arnkit.attacks.base import Attack
from arnkit.data.budgets import CW_ARN
from arnkit.errors import ArnkitError

_ADAM_BETA1 = 0.9
_ADAM_BETA2 = 0.999
_ADAM_EPSILON = 1e-8
_TANH_SHRINK = 0.999999  # keeps atanh finite at pixels that are exactly 0 or 1
_NO_UPPER_BOUND = 1e10

# ARN's MNIST settings (dwDavidxd/ARN, advertorch's CW): the schedule each dataset's budgets start from.
ARN_MNIST = dict(CW_ARN)


def margin_loss(logits: tf.Tensor, labels: tf.Tensor, confidence: tf.Tensor, targeted: bool) -> tf.Tensor:
    """Per-example margin term before the hinge: negative once the attack succeeds with `confidence` to spare."""
    onehot = tf.one_hot(labels, tf.shape(logits)[-1], dtype=logits.dtype)
    label_logit = tf.reduce_sum(onehot * logits, axis=-1)
    best_other = tf.reduce_max(logits - onehot * 1e9, axis=-1)
    if targeted:
        return best_other - label_logit + confidence
    return label_logit - best_other + confidence


# Adam iterations traced per graph (see STEPS_PER_GRAPH in pgd.py for why chunks and not a tf.while_loop).
_MAX_STEPS_PER_GRAPH = 10


@tf.function(reduce_retracing=True)  # the batch shrinks as examples stop: one trace with a free batch size
def _adam_steps(model: Any, x: tf.Tensor, w0: tf.Tensor, labels: tf.Tensor, const: tf.Tensor,
                confidence: tf.Tensor, learning_rate: tf.Tensor, first_iteration: tf.Tensor, state: tuple,
                n: int, targeted: bool) -> tuple[tuple, tf.Tensor]:
    """`n` Adam iterations on the CW objective from `state`; returns the new state and each example's loss at
    the first of them (what abort-early compares)."""
    modifier, first_moment, second_moment, best_l2, best_adv, found = state
    first_loss = tf.zeros(tf.shape(labels))
    for j in range(n):
        with tf.GradientTape() as tape:
            tape.watch(modifier)
            x_new = (tf.tanh(w0 + modifier) + 1.0) / 2.0
            logits = model(x_new, training=False)
            l2_squared = tf.reduce_sum(tf.square(x_new - x), axis=[1, 2, 3])
            margin = margin_loss(logits, labels, confidence, targeted)
            # Per-example losses: the tape sums them.
            per_example_loss = l2_squared + const * tf.maximum(margin, 0.0)
        grad = tape.gradient(per_example_loss, modifier, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        if j == 0:
            first_loss = per_example_loss

        # Record successes of this iterate (the one the logits belong to) before moving.
        success = margin < 0.0
        improved = tf.logical_and(success, l2_squared < best_l2)
        best_l2 = tf.where(improved, l2_squared, best_l2)
        best_adv = tf.where(improved[:, None, None, None], x_new, best_adv)
        found = tf.logical_or(found, success)

        # Adam with bias correction; the caller restarts the moments at zero in every search step.
        t = tf.cast(first_iteration + j + 1, tf.float32)
        first_moment = _ADAM_BETA1 * first_moment + (1.0 - _ADAM_BETA1) * grad
        second_moment = _ADAM_BETA2 * second_moment + (1.0 - _ADAM_BETA2) * tf.square(grad)
        m_hat = first_moment / (1.0 - tf.pow(_ADAM_BETA1, t))
        v_hat = second_moment / (1.0 - tf.pow(_ADAM_BETA2, t))
        modifier = modifier - learning_rate * m_hat / (tf.sqrt(v_hat) + _ADAM_EPSILON)
    return (modifier, first_moment, second_moment, best_l2, best_adv, found), first_loss


def _steps_per_graph(check_every: int) -> int:
    """Largest chunk <= _MAX_STEPS_PER_GRAPH that divides the abort-early interval, so checks fall on chunk starts."""
    if check_every <= 0:
        return _MAX_STEPS_PER_GRAPH
    return max(k for k in range(1, _MAX_STEPS_PER_GRAPH + 1) if check_every % k == 0)


def cw_search_step(model: Any, x: tf.Tensor, labels: tf.Tensor, const: np.ndarray, best_l2: np.ndarray,
                   best_adv: np.ndarray, *, confidence: float, learning_rate: float, steps: int, check_every: int,
                   targeted: bool) -> np.ndarray:
    """One binary-search step: Adam from w0 = atanh(2x - 1) with fresh moments for up to `steps` iterations.
    Every `check_every` iterations (0 disables) each example whose own loss has not dropped by 0.01% since its
    previous check stops and leaves the batch. Updates `best_l2` / `best_adv` (numpy, in place) and returns
    which examples succeeded in this step."""
    n = int(x.shape[0])
    found = np.zeros(n, bool)
    active = np.arange(n)  # rows of the full batch that are still optimizing, in batch order
    xa, la = x, labels
    w0 = tf.atanh((2.0 * x - 1.0) * _TANH_SHRINK)
    zeros = tf.zeros_like(x)
    state = (zeros, zeros, zeros, tf.constant(best_l2), tf.constant(best_adv), tf.zeros([n], tf.bool))
    ca = tf.constant(const, tf.float32)
    scalars = (tf.constant(confidence, tf.float32), tf.constant(learning_rate, tf.float32))
    previous_loss = np.full(n, np.inf, np.float32)
    chunk = _steps_per_graph(check_every)

    def retire(rows: np.ndarray) -> None:  # copy the results of the given active rows out to the full batch
        _, _, _, s_l2, s_adv, s_found = state
        idx = active[rows]
        best_l2[idx] = s_l2.numpy()[rows]
        best_adv[idx] = s_adv.numpy()[rows]
        found[idx] = s_found.numpy()[rows]

    for start in range(0, steps, chunk):
        state, loss = _adam_steps(model, xa, w0, la, ca, *scalars, tf.constant(start), state,
                                  min(chunk, steps - start), targeted)
        # Carlini-Wagner abort early, per example. The check reads each loss at iteration `start`, after the
        # chunk that starts there has run: at most chunk-1 extra iterations, which can only improve the best.
        if check_every > 0 and start % check_every == 0:
            loss = loss.numpy()
            stalled = loss > previous_loss * 0.9999
            previous_loss = loss
            if stalled.any():
                retire(np.flatnonzero(stalled))
                keep = np.flatnonzero(~stalled)
                if len(keep) == 0:
                    return found
                # Compaction: later chunks run on the examples still improving only.
                keep_t = tf.constant(keep)
                state = tuple(tf.gather(s, keep_t) for s in state)
                xa, la, w0, ca = (tf.gather(t, keep_t) for t in (xa, la, w0, ca))
                active, previous_loss = active[keep], previous_loss[keep]
    retire(np.arange(len(active)))
    return found


class CarliniWagnerL2(Attack):
    """Carlini-Wagner L2 with per-example binary search over the constant c (Carlini & Wagner 2017)."""

    name: ClassVar[str] = "cw"
    distance: ClassVar[str] = "l2"
    targeted_by_default: ClassVar[bool] = False
    has_eps: ClassVar[bool] = False

    def __init__(self, *, steps: int = 60, confidence: float = 1.0, initial_const: float = 1.0,
                 learning_rate: float = 0.2, binary_search_steps: int = 4, abort_early: bool = True,
                 targeted: bool | None = None, batch_size: int = 256) -> None:
        super().__init__(targeted=targeted, batch_size=batch_size)
        if int(steps) < 1:
            raise ArnkitError(f"steps must be >= 1, got {steps}")
        if int(binary_search_steps) < 1:
            raise ArnkitError(f"binary_search_steps must be >= 1, got {binary_search_steps}")
        if not initial_const > 0.0:
            raise ArnkitError(f"initial_const must be > 0, got {initial_const}")
        if not learning_rate > 0.0:
            raise ArnkitError(f"learning_rate must be > 0, got {learning_rate}")
        if not confidence >= 0.0:
            raise ArnkitError(f"confidence must be >= 0, got {confidence}")
        self.steps = int(steps)
        self.confidence = float(confidence)
        self.initial_const = float(initial_const)
        self.learning_rate = float(learning_rate)
        self.binary_search_steps = int(binary_search_steps)
        self.abort_early = bool(abort_early)

    def run(self, model: Any, x: tf.Tensor, y: tf.Tensor, target: tf.Tensor | None, *, seed: int,
            batch: int) -> tf.Tensor:
        labels = target if self.targeted else y
        n = int(x.shape[0])
        const = np.full(n, self.initial_const, np.float32)
        lower = np.zeros(n, np.float32)
        upper = np.full(n, _NO_UPPER_BOUND, np.float32)
        best_l2 = np.full(n, np.inf, np.float32)
        best_adv = x.numpy().copy()
        check_every = max(self.steps // 10, 1) if self.abort_early else 0
        for _ in range(self.binary_search_steps):
            found = cw_search_step(
                model, x, labels, const, best_l2, best_adv, confidence=self.confidence,
                learning_rate=self.learning_rate, steps=self.steps, check_every=check_every,
                targeted=self.targeted)
            const, lower, upper = _update_constants(found, const, lower, upper)
        return tf.constant(best_adv)


def _update_constants(found: np.ndarray, const: np.ndarray, lower: np.ndarray,
                      upper: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Binary search on c: bisect once both bounds are known, otherwise multiply c by 10 after a failure."""
    upper = np.where(found, np.minimum(upper, const), upper)
    lower = np.where(found, lower, np.maximum(lower, const))
    bounded = upper < _NO_UPPER_BOUND * 0.1
    const = np.where(bounded, (lower + upper) / 2.0, np.where(found, const, const * 10.0)).astype(np.float32)
    return const, lower, upper

