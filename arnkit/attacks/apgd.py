"""Auto-PGD, L-inf (Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks", ICML 2020, arXiv:2003.01690): the two gradient components of AutoAttack.
TensorFlow-only module.

`APGD` (APGD-CE) ascends the cross-entropy; `APGDT` (APGD-T) ascends the targeted DLR loss toward each of the
classes ranked 2..(n_target_classes+1) by the clean logits, one after the other, on the points not yet fooled.
Both follow Algorithm 1 of the paper: step size eta = 2*eps, a momentum step
x_{k+1} = P(x_k + alpha (z_{k+1} - x_k) + (1 - alpha)(x_k - x_{k-1})) with alpha = .75 (1 on the first step),
and checkpoints w_j = ceil(p_j * n_iter) with p_0 = 0, p_1 = .22, p_{j+1} = p_j + max(p_j - p_{j-1} - .03, .06).
At a checkpoint the step size halves and the iterate restarts from the best point so far when the loss rose
in fewer than rho = 75% of the steps since the last checkpoint, or when the step size was not halved at the
last checkpoint and the best loss has not improved since.

Distance: L-inf. Arguments: eps (radius in [0,1] pixel units), n_iter, n_restarts, loss ("ce" or "dlr";
APGD only), n_target_classes (APGDT only), rho, targeted, batch_size.

    from arnkit.attacks.apgd import APGD, APGDT
    result = APGD(eps=0.3)(model, x, y, seed=0)        # model maps [0,1] images to logits
    result = APGDT(eps=0.3)(model, x, y, seed=0)       # untargeted overall: success = misclassified

With `targeted=True` both attack the given (or seeded random) target and succeed only on hitting it.
DLR needs at least 3 classes and targeted DLR at least 4: with fewer, the attack falls back to the
cross-entropy (targeted: minus the cross-entropy of the target) and warns.
A batch's loop stops once every example in it is fooled (the outcome cannot change after that). Fooled
examples come back as the first fooling iterate; examples it cannot fool come back unchanged (as in the
reference implementation, so that an "adversarial" set never holds failed perturbations).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, ClassVar

import numpy as np
import tensorflow as tf

from arnkit.attacks.base import Attack
from arnkit.errors import ArnkitError


# ---- shared helpers for the AutoAttack components ------------------------------------------------------------
def check_eps(eps: float) -> float:
    if not eps >= 0.0:
        raise ArnkitError(f"eps must be >= 0 (an L-inf radius in [0,1] pixel units), got {eps}")
    if eps > 1.0:
        raise ArnkitError(f"eps {eps} is larger than the [0,1] pixel range; divide a 0-255 budget by 255")
    return float(eps)


def check_count(name: str, value: int, minimum: int = 1) -> int:
    if int(value) != value or int(value) < minimum:
        raise ArnkitError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def ball_box(x: tf.Tensor, eps: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The eps-ball intersected with [0,1] is a box: one clip projects onto it."""
    return tf.maximum(x - eps, 0.0), tf.minimum(x + eps, 1.0)


def is_success(logits: tf.Tensor, y: tf.Tensor, target: tf.Tensor, hit_target: bool) -> tf.Tensor:
    pred = tf.argmax(logits, axis=-1, output_type=y.dtype)
    return tf.equal(pred, target) if hit_target else tf.not_equal(pred, y)


def ranked_target(logits: tf.Tensor, rank: int) -> tf.Tensor:
    """The class with the `rank`-th largest logit (rank 1 = the predicted class)."""
    order = tf.argsort(logits, axis=-1, direction="DESCENDING")
    return tf.cast(order[:, rank - 1], tf.int64)


def n_targets_for(n_target_classes: int, num_classes: int) -> int:
    """AutoAttack's targets are ranks 2..n+1; a model has only num_classes - 1 classes besides its top one."""
    return max(0, min(int(n_target_classes), int(num_classes) - 1))


def stateless_seed(seed: int, salt: int) -> tf.Tensor:
    return tf.constant([int(seed), int(salt)], dtype=tf.int64)


def batch_salt(batch: int) -> int:
    """The salt of batch `batch` of a call: random draws differ between batches, repeat between calls."""
    return int(batch) * 1_000_003


def solve_unsolved(x_adv: tf.Tensor, solved: np.ndarray, attack_subset) -> tuple[tf.Tensor, np.ndarray]:
    """Run `attack_subset(indices) -> (x_adv_sub, success_sub)` on the unsolved rows; keep the first success."""
    idx = np.flatnonzero(~solved)
    if idx.size == 0:
        return x_adv, solved
    adv_sub, ok_sub = attack_subset(idx)
    ok_sub = np.asarray(ok_sub, bool)
    if ok_sub.any():
        rows = idx[ok_sub]
        x_adv = tf.tensor_scatter_nd_update(x_adv, rows[:, None], tf.gather(adv_sub, np.flatnonzero(ok_sub)))
        solved = solved.copy()
        solved[rows] = True
    return x_adv, solved


# ---- losses --------------------------------------------------------------------------------------------------
def _label_logit(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    return tf.gather(logits, labels, axis=1, batch_dims=1)


def dlr_loss(logits: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """Difference of logits ratio, -(z_y - max_{i!=y} z_i) / (z_pi1 - z_pi3); needs >= 3 classes."""
    ordered = tf.sort(logits, axis=-1, direction="DESCENDING")
    z_y = _label_logit(logits, y)
    others = tf.where(tf.one_hot(y, tf.shape(logits)[-1]) > 0, tf.fill(tf.shape(logits), -np.inf), logits)
    return -(z_y - tf.reduce_max(others, axis=-1)) / (ordered[:, 0] - ordered[:, 2] + 1e-12)


def targeted_dlr_loss(logits: tf.Tensor, y: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2); needs >= 4 classes."""
    ordered = tf.sort(logits, axis=-1, direction="DESCENDING")
    scale = ordered[:, 0] - 0.5 * (ordered[:, 2] + ordered[:, 3]) + 1e-12
    return -(_label_logit(logits, y) - _label_logit(logits, target)) / scale


def per_example_loss(name: str, logits: tf.Tensor, y: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """The loss APGD ascends, one value per example."""
    if name == "ce":
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
    if name == "ce_targeted":
        return -tf.nn.sparse_softmax_cross_entropy_with_logits(labels=target, logits=logits)
    if name == "dlr":
        return dlr_loss(logits, y)
    if name == "dlr_targeted":
        return targeted_dlr_loss(logits, y, target)
    raise ValueError(f"unknown APGD loss {name}")


def resolve_loss(loss: str, targeted: bool, num_classes: int, who: str) -> str:
    """Pick the loss name; DLR's denominator needs classes pi3 (pi4 targeted), else fall back to CE, and say so."""
    if loss == "ce":
        return "ce_targeted" if targeted else "ce"
    needed = 4 if targeted else 3
    if num_classes < needed:
        kind = "targeted DLR" if targeted else "DLR"
        warnings.warn(f"{who}: {kind} needs at least {needed} classes but the model has {num_classes}; "
                      "falling back to the cross-entropy loss", UserWarning, stacklevel=3)
        return "ce_targeted" if targeted else "ce"
    return "dlr_targeted" if targeted else "dlr"


# ---- the step-size schedule ----------------------------------------------------------------------------------
def checkpoints(n_iter: int) -> list[int]:
    """Checkpoints w_j = ceil(p_j * n_iter), p_0 = 0, p_1 = .22, p_{j+1} = p_j + max(p_j - p_{j-1} - .03, .06)."""
    fractions = [0.0, 0.22]
    while fractions[-1] < 1.0:
        fractions.append(fractions[-1] + max(fractions[-1] - fractions[-2] - 0.03, 0.06))
    # Round away float noise first: .41 + .16 must give ceil(57), not ceil(57.000000000000014).
    points = sorted({math.ceil(round(p * n_iter, 9)) for p in fractions})
    points = [w for w in points if w <= n_iter]
    return [w for w in points if w > 0]


def checkpoint_tables(n_iter: int) -> tuple[tf.Tensor, tf.Tensor]:
    """For step count s = 1..n_iter: whether s is a checkpoint and the length of the interval it closes."""
    is_ckpt = np.zeros(n_iter + 1, bool)
    length = np.ones(n_iter + 1, np.float32)
    previous = 0
    for w in checkpoints(n_iter):
        is_ckpt[w] = True
        length[w] = w - previous
        previous = w
    return tf.constant(is_ckpt), tf.constant(length)


def random_start(x: tf.Tensor, eps: float, seed: tf.Tensor) -> tf.Tensor:
    """x + eps * t / ||t||_inf with t ~ U[-1, 1]: a random point on the eps-ball's surface, clipped to [0,1]."""
    t = tf.random.stateless_uniform(tf.shape(x), seed, -1.0, 1.0)
    t_max = tf.reduce_max(tf.abs(t), axis=[1, 2, 3], keepdims=True)
    return tf.clip_by_value(x + eps * t / tf.maximum(t_max, 1e-12), 0.0, 1.0)


@tf.function(reduce_retracing=True)
def apgd_loop(model: Any, x: tf.Tensor, y: tf.Tensor, target: tf.Tensor, x_start: tf.Tensor, eps: tf.Tensor,
              n_iter: tf.Tensor, is_ckpt: tf.Tensor, ckpt_len: tf.Tensor, rho: tf.Tensor, loss_name: str,
              hit_target: bool) -> tf.Tensor:
    """Algorithm 1 of Croce & Hein (2020), batched; returns the first fooling iterate, else the best-loss one."""
    lower, upper = ball_box(x, eps)
    n = tf.shape(x)[0]
    per_row = [-1, 1, 1, 1]

    def evaluate(x_eval):
        with tf.GradientTape() as tape:
            tape.watch(x_eval)
            logits = model(x_eval, training=False)
            loss = per_example_loss(loss_name, logits, y, target)
            total = tf.reduce_sum(loss)
        return loss, tape.gradient(total, x_eval, unconnected_gradients=tf.UnconnectedGradients.ZERO), logits

    f0, g0, logits0 = evaluate(x_start)
    found0 = is_success(logits0, y, target, hit_target)
    state = dict(
        step=tf.constant(0), x_cur=x_start, x_prev=x_start, g_cur=g0, f_cur=f0,
        x_max=x_start, f_max=f0, g_max=g0, eta=tf.fill([n], 2.0 * eps),
        n_incr=tf.zeros([n]), f_max_last=f0, reduced_last=tf.zeros([n], tf.bool),
        x_found=x_start, found=found0,
    )

    def keep_going(s):
        return tf.logical_and(s["step"] < n_iter, tf.logical_not(tf.reduce_all(s["found"])))

    def body(s):
        momentum = tf.where(s["step"] == 0, 1.0, 0.75)
        eta = tf.reshape(s["eta"], per_row)
        z = tf.clip_by_value(s["x_cur"] + eta * tf.sign(s["g_cur"]), lower, upper)
        x_next = s["x_cur"] + momentum * (z - s["x_cur"]) + (1.0 - momentum) * (s["x_cur"] - s["x_prev"])
        x_next = tf.clip_by_value(x_next, lower, upper)
        f_next, g_next, logits = evaluate(x_next)

        n_incr = s["n_incr"] + tf.cast(f_next > s["f_cur"], tf.float32)
        better = f_next > s["f_max"]
        better4 = tf.reshape(better, per_row)
        x_max = tf.where(better4, x_next, s["x_max"])
        g_max = tf.where(better4, g_next, s["g_max"])
        f_max = tf.where(better, f_next, s["f_max"])
        new_hit = tf.logical_and(is_success(logits, y, target, hit_target), tf.logical_not(s["found"]))
        x_found = tf.where(tf.reshape(new_hit, per_row), x_next, s["x_found"])
        found = tf.logical_or(s["found"], new_hit)

        step = s["step"] + 1
        x_prev, x_cur, g_cur, f_cur = s["x_cur"], x_next, g_next, f_next
        eta_vec, f_max_last, reduced_last = s["eta"], s["f_max_last"], s["reduced_last"]
        # At a checkpoint (Condition 1: the loss rose in fewer than rho of the interval's steps; Condition 2:
        # the step size was kept at the last checkpoint and the best loss did not improve since) halve the
        # step size and restart from the best point. Off checkpoints nothing changes.
        at_ckpt = is_ckpt[step]
        few_rises = n_incr < rho * ckpt_len[step]
        stalled = tf.logical_and(tf.logical_not(reduced_last), f_max <= f_max_last)
        reduce = tf.logical_and(at_ckpt, tf.logical_or(few_rises, stalled))
        reduce4 = tf.reshape(reduce, per_row)
        eta_vec = tf.where(reduce, eta_vec / 2.0, eta_vec)
        x_cur = tf.where(reduce4, x_max, x_cur)
        g_cur = tf.where(reduce4, g_max, g_cur)
        f_cur = tf.where(reduce, f_max, f_cur)
        f_max_last = tf.where(at_ckpt, f_max, f_max_last)
        reduced_last = tf.where(at_ckpt, reduce, reduced_last)
        n_incr = tf.where(at_ckpt, tf.zeros_like(n_incr), n_incr)
        return [dict(step=step, x_cur=x_cur, x_prev=x_prev, g_cur=g_cur, f_cur=f_cur, x_max=x_max,
                     f_max=f_max, g_max=g_max, eta=eta_vec, n_incr=n_incr, f_max_last=f_max_last,
                     reduced_last=reduced_last, x_found=x_found, found=found)]

    (final,) = tf.while_loop(keep_going, body, [state])
    return tf.where(tf.reshape(final["found"], per_row), final["x_found"], final["x_max"])


class _APGDBase(Attack):
    distance: ClassVar[str] = "linf"
    has_eps: ClassVar[bool] = True
    salt_offset: ClassVar[int] = 0

    def _one_run(self, model: Any, x: tf.Tensor, y: tf.Tensor, target: tf.Tensor, loss_name: str,
                 hit_target: bool, seed: tf.Tensor) -> tf.Tensor:
        is_ckpt, ckpt_len = checkpoint_tables(self.n_iter)
        x_start = random_start(x, self.eps, seed)
        return apgd_loop(model, x, y, target, x_start, tf.constant(self.eps, tf.float32),
                         tf.constant(self.n_iter), is_ckpt, ckpt_len, tf.constant(self.rho, tf.float32),
                         loss_name, hit_target)

    def _restarts(self, model: Any, x: tf.Tensor, y: tf.Tensor, target: tf.Tensor, loss_name: str,
                  hit_target: bool, seed: int, salt: int, x_adv: tf.Tensor, solved: np.ndarray):
        """`n_restarts` runs, each on the rows not solved yet."""
        for restart in range(self.n_restarts):
            def attack_subset(idx, restart=restart):
                xs, ys, ts = tf.gather(x, idx), tf.gather(y, idx), tf.gather(target, idx)
                adv = self._one_run(model, xs, ys, ts, loss_name, hit_target,
                                    stateless_seed(seed, salt + self.salt_offset + restart))
                adv = tf.clip_by_value(adv, *ball_box(xs, self.eps))
                return adv, is_success(model(adv, training=False), ys, ts, hit_target).numpy()

            x_adv, solved = solve_unsolved(x_adv, solved, attack_subset)
        return x_adv, solved


class APGD(_APGDBase):
    """APGD with the cross-entropy (APGD-CE, the default) or the DLR loss; L-inf."""

    name: ClassVar[str] = "apgd"
    targeted_by_default: ClassVar[bool] = False
    salt_offset: ClassVar[int] = 0

    def __init__(self, *, eps: float = 0.3, n_iter: int = 100, n_restarts: int = 1, loss: str = "ce",
                 rho: float = 0.75, targeted: bool | None = None, batch_size: int = 256) -> None:
        super().__init__(targeted=targeted, batch_size=batch_size)
        self.eps = check_eps(eps)
        self.n_iter = check_count("n_iter", n_iter)
        self.n_restarts = check_count("n_restarts", n_restarts)
        if loss not in ("ce", "dlr"):
            raise ArnkitError(f"APGD loss must be 'ce' or 'dlr', got '{loss}'")
        self.loss = loss
        if not 0.0 < rho <= 1.0:
            raise ArnkitError(f"rho must be in (0, 1], got {rho}")
        self.rho = float(rho)

    def perturb(self, model: Any, x: tf.Tensor, y: tf.Tensor, target: tf.Tensor | None = None, *,
                seed: int = 0, salt: int = 0) -> tf.Tensor:
        """Attack one batch of tensors (no validation); examples already misclassified come back unchanged."""
        if self.eps == 0.0 or x.shape[0] == 0:
            return x
        logits = model(x, training=False)
        hit_target = target is not None
        labels = target if hit_target else y
        loss_name = resolve_loss(self.loss, hit_target, int(logits.shape[-1]), "APGD")
        solved = is_success(logits, y, labels, hit_target).numpy()
        x_adv, _ = self._restarts(model, x, y, labels, loss_name, hit_target, seed, salt, x, solved)
        return x_adv

    def run(self, model: Any, x: tf.Tensor, y: tf.Tensor, target: tf.Tensor | None, *, seed: int,
            batch: int) -> tf.Tensor:
        return self.perturb(model, x, y, target if self.targeted else None, seed=seed, salt=batch_salt(batch))


class APGDT(_APGDBase):
    """APGD-T: the targeted DLR loss toward the classes ranked 2..n_target_classes+1 in turn; L-inf."""

    name: ClassVar[str] = "apgd_t"
    targeted_by_default: ClassVar[bool] = False
    salt_offset: ClassVar[int] = 1000

    def __init__(self, *, eps: float = 0.3, n_iter: int = 100, n_restarts: int = 1, n_target_classes: int = 9,
                 rho: float = 0.75, targeted: bool | None = None, batch_size: int = 256) -> None:
        super().__init__(targeted=targeted, batch_size=batch_size)
        self.eps = check_eps(eps)
        self.n_iter = check_count("n_iter", n_iter)
        self.n_restarts = check_count("n_restarts", n_restarts)
        self.n_target_classes = check_count("n_target_classes", n_target_classes)
        if not 0.0 < rho <= 1.0:
            raise ArnkitError(f"rho must be in (0, 1], got {rho}")
        self.rho = float(rho)

    def perturb(self, model: Any, x: tf.Tensor, y: tf.Tensor, target: tf.Tensor | None = None, *,
                seed: int = 0, salt: int = 0) -> tf.Tensor:
        """With `target`, attack that class (success = hitting it); else each ranked class in turn."""
        if self.eps == 0.0 or x.shape[0] == 0:
            return x
        logits = model(x, training=False)
        num_classes = int(logits.shape[-1])
        loss_name = resolve_loss("dlr", True, num_classes, "APGD-T")
        if target is not None:
            solved = is_success(logits, y, target, True).numpy()
            x_adv, _ = self._restarts(model, x, y, target, loss_name, True, seed, salt, x, solved)
            return x_adv
        x_adv, solved = x, is_success(logits, y, y, False).numpy()
        for rank in range(2, n_targets_for(self.n_target_classes, num_classes) + 2):
            ranked = ranked_target(logits, rank)
            x_adv, solved = self._restarts(model, x, y, ranked, loss_name, False, seed,
                                           salt + 100 * rank, x_adv, solved)
        return x_adv

    def run(self, model: Any, x: tf.Tensor, y: tf.Tensor, target: tf.Tensor | None, *, seed: int,
            batch: int) -> tf.Tensor:
        return self.perturb(model, x, y, target if self.targeted else None, seed=seed, salt=batch_salt(batch))
