"""Square attack, L-inf (Andriushchenko, Croce, Flammarion & Hein, "Square Attack: a query-efficient black-box
adversarial attack via random search", ECCV 2020, arXiv:1912.00049). Score-based: it needs logits, never
gradients. TensorFlow-only module.

Start: vertical stripes, each column (and channel) shifted by +eps or -eps at random. Then random search: per
query, per example, pick a square window of side s = round(sqrt(p * H * W)) at a random position and set the
perturbation inside it to +eps or -eps per channel; keep the proposal if it lowers the margin loss
z_y - max_{k!=y} z_k (targeted: max_{k!=t} z_k - z_t). The fraction p starts at p_init and halves after
10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000 of 10,000 queries (the schedule is rescaled to n_queries).
A proposal that would leave the window unchanged is redrawn uniformly among the sign patterns that change it.
An example stops once its margin is negative (it is fooled); fooled examples leave the batch every 100 queries.

Distance: L-inf. Arguments: eps, n_queries (5000 in AutoAttack), p_init (.8), targeted, batch_size.

    from arnkit.attacks.square import Square
    result = Square(eps=0.3, n_queries=1000)(model, x, y, seed=0)
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import tensorflow as tf

from arnkit.attacks.apgd import (
    ball_box,
    batch_salt,
    check_count,
    check_eps,
    is_success,
    solve_unsolved,
    stateless_seed,
)
from arnkit.attacks.base import Attack
from arnkit.errors import ArnkitError

# Query counts (out of 10,000) after which p halves.
_P_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def p_schedule(query: tf.Tensor, n_queries: tf.Tensor, p_init: tf.Tensor) -> tf.Tensor:
    """The fraction of the image a square covers at this query (the paper's schedule rescaled to n_queries)."""
    scaled = tf.cast(query, tf.float32) / tf.cast(n_queries, tf.float32) * 10000.0
    halvings = tf.reduce_sum(tf.cast(scaled > tf.constant(_P_HALVINGS, tf.float32), tf.float32))
    return p_init / tf.pow(2.0, halvings)


def margin_loss(logits: tf.Tensor, y: tf.Tensor, target: tf.Tensor, hit_target: bool) -> tf.Tensor:
    """Negative exactly when the attack has succeeded."""
    mine = target if hit_target else y
    z_mine = tf.gather(logits, mine, axis=1, batch_dims=1)
    others = tf.where(tf.one_hot(mine, tf.shape(logits)[-1]) > 0, -np.inf, logits)
    z_other = tf.reduce_max(others, axis=-1)
    return z_other - z_mine if hit_target else z_mine - z_other


def _random_signs(shape: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    return 2.0 * tf.cast(tf.random.stateless_uniform(shape, seed, 0, 2, dtype=tf.int32), tf.float32) - 1.0


def stripes_start(x: tf.Tensor, eps: float, seed: tf.Tensor) -> tf.Tensor:
    """The initial point: every column of every channel shifted by +eps or -eps."""
    n, _, width, channels = x.shape
    stripes = _random_signs([n, 1, width, channels], seed)
    return tf.clip_by_value(x + eps * stripes, *ball_box(x, eps))


@tf.function(reduce_retracing=True)
def square_steps(model: Any, x: tf.Tensor, y: tf.Tensor, target: tf.Tensor, x_best: tf.Tensor, margin: tf.Tensor,
                 first_query: tf.Tensor, stop_query: tf.Tensor, eps: tf.Tensor, n_queries: tf.Tensor,
                 p_init: tf.Tensor, seed: tf.Tensor, hit_target: bool) -> tuple[tf.Tensor, tf.Tensor]:
    """Random-search queries first_query..stop_query-1, one model call per query for the whole batch."""
    lower, upper = ball_box(x, eps)
    n = tf.shape(x)[0]
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]  # static: images have a fixed size
    per_row = [-1, 1, 1, 1]
    rows = tf.range(height)[None, :]
    cols = tf.range(width)[None, :]
    bit_values = tf.constant([[2**c for c in range(channels)]], tf.int32)

    def body(query, x_best, margin):
        draw = tf.stack([seed[0], seed[1] * 7919 + tf.cast(query, tf.int64)])
        p = p_schedule(query, n_queries, p_init)
        side = tf.cast(tf.round(tf.sqrt(p * float(height * width))), tf.int32)
        side = tf.clip_by_value(side, 1, max(min(height, width) - 1, 1))
        top = tf.random.stateless_uniform([n], draw + [0, 1], 0, height - side + 1, dtype=tf.int32)
        left = tf.random.stateless_uniform([n], draw + [0, 2], 0, width - side + 1, dtype=tf.int32)
        in_rows = tf.logical_and(rows >= top[:, None], rows < top[:, None] + side)
        in_cols = tf.logical_and(cols >= left[:, None], cols < left[:, None] + side)
        window = tf.logical_and(in_rows[:, :, None], in_cols[:, None, :])[..., None]  # [n, H, W, 1]

        def propose(signs):
            delta = tf.where(window, eps * tf.reshape(signs, [n, 1, 1, channels]), x_best - x)
            return tf.clip_by_value(x + delta, lower, upper)

        signs = _random_signs(tf.stack([n, channels]), draw + [0, 3])
        x_new = propose(signs)
        # A proposal equal to the current window wastes a query: redraw it among the other 2^C - 1 sign
        # patterns (flip a random non-empty subset of channels), which is what rejection sampling would give.
        same = tf.reduce_all(tf.logical_or(tf.logical_not(window), tf.abs(x_new - x_best) < 1e-7), axis=[1, 2, 3])
        subset = tf.random.stateless_uniform([n], draw + [0, 4], 1, 2**channels, dtype=tf.int32)
        flips = tf.cast(tf.bitwise.bitwise_and(subset[:, None], bit_values) > 0, tf.float32)
        signs = tf.where(same[:, None], signs * (1.0 - 2.0 * flips), signs)
        x_new = tf.where(tf.reshape(same, per_row), propose(signs), x_new)

        new_margin = margin_loss(model(x_new, training=False), y, target, hit_target)
        accept = tf.logical_and(margin > 0.0, new_margin < margin)
        x_best = tf.where(tf.reshape(accept, per_row), x_new, x_best)
        margin = tf.where(accept, new_margin, margin)
        return query + 1, x_best, margin

    def keep_going(query, x_best, margin):
        return tf.logical_and(query < stop_query, tf.reduce_any(margin > 0.0))

    _, x_best, margin = tf.while_loop(keep_going, body, (first_query, x_best, margin))
    return x_best, margin


class Square(Attack):
    """Square attack, L-inf: score-based random search with square-shaped updates."""

    name: ClassVar[str] = "square"
    distance: ClassVar[str] = "linf"
    targeted_by_default: ClassVar[bool] = False
    has_eps: ClassVar[bool] = True
    gradient_free: ClassVar[bool] = True
    _CHUNK: ClassVar[int] = 100  # queries per graph call; fooled rows are dropped between calls

    def __init__(self, *, eps: float = 0.3, n_queries: int = 5000, p_init: float = 0.8, targeted: bool | None = None,
                 batch_size: int = 256) -> None:
        super().__init__(targeted=targeted, batch_size=batch_size)
        self.eps = check_eps(eps)
        self.n_queries = check_count("n_queries", n_queries)
        if not 0.0 < p_init <= 1.0:
            raise ArnkitError(f"p_init must be in (0, 1], got {p_init}")
        self.p_init = float(p_init)

    def perturb(self, model: Any, x: tf.Tensor, y: tf.Tensor, target: tf.Tensor | None = None, *,
                seed: int = 0, salt: int = 0) -> tf.Tensor:
        """Attack the rows not yet fooled; rows that stay robust come back unchanged."""
        if self.eps == 0.0 or x.shape[0] == 0:
            return x
        hit_target = target is not None
        labels = target if hit_target else y

        def attack_subset(idx):
            xs, ys, ts = tf.gather(x, idx), tf.gather(y, idx), tf.gather(labels, idx)
            return self._search(model, xs, ys, ts, hit_target, stateless_seed(seed, salt + 3000))

        solved = is_success(model(x, training=False), y, labels, hit_target).numpy()
        x_adv, _ = solve_unsolved(x, solved, attack_subset)
        return x_adv

    def _search(self, model: Any, x: tf.Tensor, y: tf.Tensor, target: tf.Tensor, hit_target: bool,
                seed: tf.Tensor) -> tuple[tf.Tensor, np.ndarray]:
        """The stripes start (query 1), then chunks of queries on the rows whose margin is still positive."""
        x_best = stripes_start(x, self.eps, seed)
        margin = margin_loss(model(x_best, training=False), y, target, hit_target)
        rows = np.flatnonzero(margin.numpy() > 0.0)
        consts = (tf.constant(self.eps, tf.float32), tf.constant(self.n_queries),
                  tf.constant(self.p_init, tf.float32), seed)
        query = 1
        while query < self.n_queries and rows.size:
            stop = min(query + self._CHUNK, self.n_queries)
            best_part, margin_part = square_steps(
                model, tf.gather(x, rows), tf.gather(y, rows), tf.gather(target, rows), tf.gather(x_best, rows),
                tf.gather(margin, rows), tf.constant(query), tf.constant(stop), *consts, hit_target)
            x_best = tf.tensor_scatter_nd_update(x_best, rows[:, None], best_part)
            margin = tf.tensor_scatter_nd_update(margin, rows[:, None], margin_part)
            rows = rows[margin_part.numpy() > 0.0]
            query = stop
        x_best = tf.clip_by_value(x_best, *ball_box(x, self.eps))
        return x_best, is_success(model(x_best, training=False), y, target, hit_target).numpy()

    def run(self, model: Any, x: tf.Tensor, y: tf.Tensor, target: tf.Tensor | None, *, seed: int,
            batch: int) -> tf.Tensor:
        return self.perturb(model, x, y, target if self.targeted else None, seed=seed, salt=batch_salt(batch))
