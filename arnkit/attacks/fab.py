"""FAB-T, the targeted fast adaptive boundary attack, L-inf (Croce & Hein, "Minimally distorted adversarial
examples with a fast adaptive boundary attack", ICML 2020, arXiv:1907.02044), as AutoAttack runs it.
TensorFlow-only module.

Each iteration linearizes the decision boundary between the true class y and the target t at the current
iterate x_i: the hyperplane {z : f_t(x_i) - f_y(x_i) + <grad(f_t - f_y)(x_i), z - x_i> = 0}. It projects both
x_i and the original x onto that hyperplane intersected with the box [0,1] (minimal L-inf distance; a sort
solves it exactly), giving steps d_i and d_0, and moves to
x_{i+1} = clip((1 - a)(x_i + eta d_i) + a (x + eta d_0)), a = min(|d_i| / (|d_i| + |d_0|), alpha_max),
which biases the search toward points close to x. Whenever x_{i+1} is adversarial it is kept if it is the
closest one so far, and the iterate steps back toward x: x_{i+1} <- (1 - beta) x + beta x_{i+1}.

Distance: L-inf (minimized; success counts only within `eps`). Arguments: eps, n_iter (100), n_target_classes (9;
targets are the classes ranked 2..n+1 by the clean logits), alpha_max (.1), eta (1.05), beta (.9), targeted,
batch_size. One restart from the clean point, as in AutoAttack's standard version.

    from arnkit.attacks.fab import FABT
    result = FABT(eps=0.3)(model, x, y, seed=0)     # untargeted overall: success = misclassified within eps

With `targeted=True` it attacks the given (or seeded random) target only, and succeeds on hitting it.
Examples with no adversarial point within eps come back unchanged. A batch stops iterating once each of its
examples has an adversarial point within eps, so beyond eps this is not a minimum-norm search.
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
    n_targets_for,
    ranked_target,
    solve_unsolved,
)
from arnkit.attacks.base import Attack
from arnkit.errors import ArnkitError


def project_linf_hyperplane_box(point: tf.Tensor, w: tf.Tensor, c: tf.Tensor) -> tf.Tensor:
    """Smallest-L-inf step d with <w, d> = c and 0 <= point + d <= 1, per row of `point` [B, D].

    With c > 0 the optimum is d_i = sign(w_i) min(t, cap_i), cap_i the room left in the box in that direction,
    and g(t) = sum |w_i| min(t, cap_i) is increasing and piecewise linear: sorting the caps finds the piece
    where g(t) = |c|. If even the full box move falls short, that move is the best effort. (c < 0: flip w.)
    """
    flip = tf.where(c < 0.0, -1.0, 1.0)[:, None]
    w_dir = w * flip
    goal = tf.abs(c)
    weight = tf.abs(w_dir)
    cap = tf.where(w_dir > 0.0, 1.0 - point, point)
    order = tf.argsort(cap, axis=-1)
    cap_sorted = tf.gather(cap, order, batch_dims=1)
    weight_sorted = tf.gather(weight, order, batch_dims=1)
    below = tf.cumsum(weight_sorted * cap_sorted, axis=-1, exclusive=True)  # pieces already saturated
    rest = tf.cumsum(weight_sorted, axis=-1, reverse=True)  # weights still growing with t
    reach = below + cap_sorted * rest  # g at each sorted cap
    enough = reach >= goal[:, None]
    feasible = tf.reduce_any(enough, axis=-1)
    k = tf.argmax(tf.cast(enough, tf.int32), axis=-1, output_type=tf.int32)
    below_k = tf.gather(below, k, batch_dims=1)
    rest_k = tf.gather(rest, k, batch_dims=1)
    t = tf.where(feasible, (goal - below_k) / tf.maximum(rest_k, 1e-12), tf.reduce_max(cap, axis=-1))
    step = tf.sign(w_dir) * tf.minimum(t[:, None], cap)
    return tf.where(goal[:, None] > 0.0, step, 0.0)  # <w, step> = flip * goal = c


@tf.function(reduce_retracing=True)
def fab_targeted_loop(model: Any, x: tf.Tensor, y: tf.Tensor, target: tf.Tensor, eps: tf.Tensor,
                      n_iter: tf.Tensor, alpha_max: tf.Tensor, eta: tf.Tensor, beta: tf.Tensor,
                      hit_target: bool) -> tuple[tf.Tensor, tf.Tensor]:
    """FAB-T iterations from x; returns the closest adversarial point found and its L-inf distance (inf if none)."""
    n = tf.shape(x)[0]
    x0 = tf.reshape(x, [n, -1])
    to_image = tf.shape(x)

    def body(step, x_cur, best, best_norm):
        with tf.GradientTape() as tape:
            tape.watch(x_cur)
            logits = model(tf.reshape(x_cur, to_image), training=False)
            gap = tf.gather(logits, target, axis=1, batch_dims=1) - tf.gather(logits, y, axis=1, batch_dims=1)
            total = tf.reduce_sum(gap)
        w = tape.gradient(total, x_cur, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        # Hyperplane <w, z - x_cur> + gap = 0, for the iterate and for the original point.
        d_cur = project_linf_hyperplane_box(x_cur, w, -gap)
        d_orig = project_linf_hyperplane_box(x0, w, -gap - tf.reduce_sum(w * (x0 - x_cur), axis=-1))
        n_cur = tf.maximum(tf.reduce_max(tf.abs(d_cur), axis=-1), 1e-8)
        n_orig = tf.maximum(tf.reduce_max(tf.abs(d_orig), axis=-1), 1e-8)
        alpha = tf.minimum(n_cur / (n_cur + n_orig), alpha_max)[:, None]
        x_next = tf.clip_by_value((1.0 - alpha) * (x_cur + eta * d_cur) + alpha * (x0 + eta * d_orig), 0.0, 1.0)

        adversarial = is_success(model(tf.reshape(x_next, to_image), training=False), y, target, hit_target)
        dist = tf.reduce_max(tf.abs(x_next - x0), axis=-1)
        closer = tf.logical_and(adversarial, dist < best_norm)
        best = tf.where(closer[:, None], x_next, best)
        best_norm = tf.where(closer, dist, best_norm)
        # Backward step: once across the boundary, move back toward x to look for a closer crossing.
        x_next = tf.where(adversarial[:, None], x0 + beta * (x_next - x0), x_next)
        return step + 1, x_next, best, best_norm

    def keep_going(step, x_cur, best, best_norm):
        # Stop early once every example has an adversarial point inside the eps-ball.
        return tf.logical_and(step < n_iter, tf.logical_not(tf.reduce_all(best_norm <= eps)))

    start = (tf.constant(0), x0, x0, tf.fill([n], np.inf))
    _, _, best, best_norm = tf.while_loop(keep_going, body, start)
    return tf.reshape(best, to_image), best_norm


class FABT(Attack):
    """FAB-T, L-inf: the closest boundary crossing toward each of the top-ranked other classes in turn."""

    name: ClassVar[str] = "fab_t"
    distance: ClassVar[str] = "linf"
    targeted_by_default: ClassVar[bool] = False
    has_eps: ClassVar[bool] = True

    def __init__(self, *, eps: float = 0.3, n_iter: int = 100, n_target_classes: int = 9, alpha_max: float = 0.1,
                 eta: float = 1.05, beta: float = 0.9, targeted: bool | None = None, batch_size: int = 256) -> None:
        super().__init__(targeted=targeted, batch_size=batch_size)
        self.eps = check_eps(eps)
        self.n_iter = check_count("n_iter", n_iter)
        self.n_target_classes = check_count("n_target_classes", n_target_classes)
        if not 0.0 <= alpha_max <= 1.0:
            raise ArnkitError(f"alpha_max must be in [0, 1], got {alpha_max}")
        if not eta >= 1.0:
            raise ArnkitError(f"eta (overshoot) must be >= 1, got {eta}")
        if not 0.0 < beta < 1.0:
            raise ArnkitError(f"beta (backward step) must be in (0, 1), got {beta}")
        self.alpha_max = float(alpha_max)
        self.eta = float(eta)
        self.beta = float(beta)

    def _toward(self, model: Any, x: tf.Tensor, y: tf.Tensor, target: tf.Tensor, hit_target: bool,
                x_adv: tf.Tensor, solved: np.ndarray) -> tuple[tf.Tensor, np.ndarray]:
        def attack_subset(idx):
            xs, ys, ts = tf.gather(x, idx), tf.gather(y, idx), tf.gather(target, idx)
            best, best_norm = fab_targeted_loop(
                model, xs, ys, ts, tf.constant(self.eps, tf.float32), tf.constant(self.n_iter),
                tf.constant(self.alpha_max, tf.float32), tf.constant(self.eta, tf.float32),
                tf.constant(self.beta, tf.float32), hit_target)
            adv = tf.clip_by_value(best, *ball_box(xs, self.eps))
            ok = is_success(model(adv, training=False), ys, ts, hit_target).numpy()
            return adv, np.logical_and(ok, best_norm.numpy() <= self.eps + 1e-6)

        return solve_unsolved(x_adv, solved, attack_subset)

    def perturb(self, model: Any, x: tf.Tensor, y: tf.Tensor, target: tf.Tensor | None = None, *,
                seed: int = 0, salt: int = 0) -> tf.Tensor:
        """With `target`, attack that class (success = hitting it); else each ranked class in turn.

        FAB's standard run is deterministic: `seed` and `salt` are accepted for a uniform interface.
        """
        if self.eps == 0.0 or x.shape[0] == 0:
            return x
        logits = model(x, training=False)
        if target is not None:
            x_adv, _ = self._toward(model, x, y, target, True, x, is_success(logits, y, target, True).numpy())
            return x_adv
        x_adv, solved = x, is_success(logits, y, y, False).numpy()
        for rank in range(2, n_targets_for(self.n_target_classes, int(logits.shape[-1])) + 2):
            x_adv, solved = self._toward(model, x, y, ranked_target(logits, rank), False, x_adv, solved)
        return x_adv

    def run(self, model: Any, x: tf.Tensor, y: tf.Tensor, target: tf.Tensor | None, *, seed: int,
            batch: int) -> tf.Tensor:
        return self.perturb(model, x, y, target if self.targeted else None, seed=seed, salt=batch_salt(batch))
