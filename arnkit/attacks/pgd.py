"""Projected gradient descent, L-inf (Madry et al., "Towards Deep Learning Models Resistant to Adversarial
Attacks", ICLR 2018, arXiv:1706.06083) and its one-step special case FGSM (Goodfellow et al., "Explaining and
Harnessing Adversarial Examples", ICLR 2015, arXiv:1412.6572). Distance: L-inf. Runs on the TensorFlow, JAX
and torch backends.

PGD starts from a uniform random point of the eps-ball, then repeats: step `step_size` along the sign of the
cross-entropy gradient (ascent when untargeted, descent toward the target when targeted), project back onto the
eps-ball and onto [0,1]. With `restarts > 1` each example keeps the first restart that succeeds.

Arguments (PGD): eps (L-inf radius in [0,1] pixel units), steps, step_size, random_start, restarts, targeted,
batch_size, precision ("float32", or the opt-in "bfloat16": gradients from a bfloat16 twin of the model, see
arnkit.attacks.precision). FGSM: eps, targeted, batch_size, precision.

    from arnkit.attacks.pgd import PGD
    attack = PGD.for_dataset("mnist")                  # eps .3, 40 steps of .01, random start
    result = attack(model, x, y, seed=0)               # model maps [0,1] images to logits
    result.success_rate

The loop is ours rather than cleverhans's `projected_gradient_descent` (same update; a test checks that both
give the same images with the random start off): it runs the steps as traced chunks, tracing a long attack only
once per chunk size, and takes the first layer's input gradient by `arnkit.attacks.input_gradients` (the
same gradient, computed faster for single-channel images); that TensorFlow path lives in
arnkit.attacks.pgd_tf. On JAX and torch the same update is keras.ops around arnkit.attacks.gradients (on JAX
all steps are one jitted lax.fori_loop); the random start is drawn with numpy there, so with `random_start`
the images differ from TensorFlow's, and with it off they agree up to float round-off. `precision="bfloat16"`
runs on TensorFlow only.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from arnkit import backend
from arnkit.attacks.base import Attack
from arnkit.attacks.precision import check_precision, gradient_model
from arnkit.errors import ArnkitError


def sign_gradient_descent(model: Any, x: Any, x_start: Any, labels: Any, *, eps: float, step_size: float,
                          steps: int, ascend: bool, margin_kappa: float | None = None) -> Any:
    """`steps` signed-gradient L-inf steps from `x_start`, each projected onto the eps-ball around `x` and [0,1];
    ascending the cross-entropy of `labels` (untargeted) or descending it (targeted). With `margin_kappa` the
    loss is CW's margin capped at kappa instead (the high-confidence attack of arnkit.detection). Tensors of
    the running backend in and out (numpy arrays are accepted off TensorFlow)."""
    if backend.is_tensorflow():
        from arnkit.attacks import pgd_tf

        return pgd_tf.sign_gradient_descent(model, x, x_start, labels, eps=eps, step_size=step_size, steps=steps,
                                            ascend=ascend, margin_kappa=margin_kappa)
    return _portable_sign_gradient_descent(model, x, x_start, labels, eps=eps, step_size=step_size, steps=steps,
                                           direction=1.0 if ascend else -1.0, margin_kappa=margin_kappa)


# -- the JAX / torch path: keras.ops around arnkit.attacks.gradients ------------------------------------------
def _portable_sign_gradient_descent(model: Any, x: Any, x_start: Any, labels: Any, *, eps: float,
                                    step_size: float, steps: int, direction: float,
                                    margin_kappa: float | None) -> Any:
    from keras import ops

    x = ops.convert_to_tensor(x, "float32")
    x_adv = ops.convert_to_tensor(x_start, "float32")
    labels = ops.convert_to_tensor(labels, "int32")
    loss = "ce" if margin_kappa is None else "margin"
    kappa = float(margin_kappa or 0.0)
    if steps < 1:
        return x_adv
    if backend.name() == "jax":
        import keras

        if isinstance(model, keras.Model):
            return _jax_sign_steps(model, x, x_adv, labels, eps, step_size, steps, direction, loss, kappa)
    return _eager_sign_steps(model, x, x_adv, labels, eps, step_size, steps, direction, loss, kappa)


def _eager_sign_steps(model: Any, x: Any, x_adv: Any, labels: Any, eps: float, step_size: float, steps: int,
                      direction: float, loss: str, kappa: float) -> Any:
    """One Python iteration per step (torch; a JAX callable that is not a Keras model)."""
    from keras import ops

    from arnkit.attacks.gradients import loss_gradient

    # Clipping to the intersection of the eps-ball and [0,1] is one op: both are boxes.
    lower, upper = ops.maximum(x - eps, 0.0), ops.minimum(x + eps, 1.0)
    with _no_autograd():
        for _ in range(steps):
            grad = loss_gradient(model, x_adv, labels, loss=loss, kappa=kappa)
            x_adv = ops.clip(x_adv + (direction * step_size) * ops.sign(grad), lower, upper)
    return x_adv


def _no_autograd() -> Any:
    """torch.no_grad() on torch (only loss_gradient records a graph), a no-op elsewhere."""
    import contextlib

    if backend.name() == "torch":
        import torch

        return torch.no_grad()
    return contextlib.nullcontext()


def _jax_sign_steps(model: Any, x: Any, x_adv: Any, labels: Any, eps: float, step_size: float, steps: int,
                    direction: float, loss: str, kappa: float) -> Any:
    """All steps as one jitted lax.fori_loop, compiled once per (model, loss, batch shape): a 40-step PGD is one
    dispatch. The step count and the scalars are traced arguments, so changing them does not recompile."""
    from keras import ops

    from arnkit.attacks.gradients import ensure_built, jax_cached, model_values

    fn = jax_cached(model, ("sign_steps", loss), lambda: _build_jax_sign_steps(model, loss))
    ensure_built(model, x)
    trainable, non_trainable = model_values(model)
    scalars = [ops.convert_to_tensor(v, "float32") for v in (eps, step_size, direction, kappa)]
    return fn(trainable, non_trainable, x, x_adv, labels, *scalars, ops.convert_to_tensor(steps, "int32"))


def _build_jax_sign_steps(model: Any, loss: str) -> Any:
    import jax
    import jax.numpy as jnp

    from arnkit.attacks.gradients import jax_gradient_fn

    grad_fn = jax_gradient_fn(model, loss)

    def run(trainable, non_trainable, x, x_adv, labels, eps, step_size, direction, kappa, steps):
        lower, upper = jnp.maximum(x - eps, 0.0), jnp.minimum(x + eps, 1.0)

        def step(_, current):
            grad = grad_fn(trainable, non_trainable, current, labels, kappa)
            return jnp.clip(current + direction * step_size * jnp.sign(grad), lower, upper)

        return jax.lax.fori_loop(0, steps, step, x_adv)

    return jax.jit(run)


def _numpy_start(x: Any, eps: float, seed: int, batch: int, restart: int) -> Any:
    """The random start off TensorFlow: numpy draws from a generator keyed by (seed, batch, restart)."""
    from keras import ops

    x_np = ops.convert_to_numpy(x)
    rng = np.random.default_rng([int(seed) % 2**63, int(batch), int(restart)])
    noise = rng.uniform(-eps, eps, size=x_np.shape).astype(np.float32)
    return ops.convert_to_tensor(np.clip(x_np + noise, 0.0, 1.0), "float32")


def _keep_first_success(model: Any, x_adv: Any, labels: Any, targeted: bool, best: Any, done: Any
                        ) -> tuple[Any, Any]:
    """Merge one restart into (best, done): examples that already succeeded keep their earlier restart."""
    from keras import ops

    pred = ops.cast(ops.argmax(model(x_adv, training=False), axis=-1), "int32")
    labels = ops.cast(labels, "int32")
    success = ops.equal(pred, labels) if targeted else ops.not_equal(pred, labels)
    if best is None:
        return x_adv, success
    take = ops.logical_and(success, ops.logical_not(done))
    return ops.where(take[:, None, None, None], x_adv, best), ops.logical_or(done, success)


def _check_backend_precision(precision: str) -> None:
    if precision == "bfloat16" and not backend.is_tensorflow():
        raise ArnkitError("precision bfloat16 runs on the TensorFlow backend; use precision float32")


def _check_eps(eps: float) -> float:
    if not eps >= 0.0:
        raise ArnkitError(f"eps must be >= 0 (an L-inf radius in [0,1] pixel units), got {eps}")
    if eps > 1.0:
        raise ArnkitError(f"eps {eps} is larger than the [0,1] pixel range; divide a 0-255 budget by 255")
    return float(eps)


class PGD(Attack):
    """L-inf projected gradient descent with a random start (Madry et al. 2018)."""

    name: ClassVar[str] = "pgd"
    distance: ClassVar[str] = "linf"
    targeted_by_default: ClassVar[bool] = False
    has_eps: ClassVar[bool] = True

    def __init__(self, *, eps: float = 0.3, steps: int = 40, step_size: float = 0.01, random_start: bool = True,
                 restarts: int = 1, targeted: bool | None = None, batch_size: int = 256,
                 precision: str = "float32") -> None:
        super().__init__(targeted=targeted, batch_size=batch_size)
        self.precision = check_precision(precision)
        self.eps = _check_eps(eps)
        if int(steps) < 0:
            raise ArnkitError(f"steps must be >= 0, got {steps}")
        if not step_size > 0.0:
            raise ArnkitError(f"step_size must be > 0, got {step_size}")
        if int(restarts) < 1:
            raise ArnkitError(f"restarts must be >= 1, got {restarts}")
        self.steps = int(steps)
        self.step_size = float(step_size)
        self.random_start = bool(random_start)
        self.restarts = int(restarts)

    def _start(self, x: Any, seed: int, batch: int, restart: int) -> Any:
        """The random start: differs between batches and restarts of a call, repeats between calls."""
        if not self.random_start or self.eps == 0.0:
            return x
        if backend.is_tensorflow():
            from arnkit.attacks import pgd_tf

            return pgd_tf.random_start(x, self.eps, seed, batch, restart)
        return _numpy_start(x, self.eps, seed, batch, restart)

    def run(self, model: Any, x: Any, y: Any, target: Any | None, *, seed: int, batch: int) -> Any:
        _check_backend_precision(self.precision)
        if backend.is_tensorflow():
            from arnkit.attacks.pgd_tf import keep_first_success
        else:
            keep_first_success = _keep_first_success
        labels = target if self.targeted else y
        grad_model = gradient_model(model, self.precision)
        best = done = None
        for restart in range(self.restarts):
            x_start = self._start(x, seed, batch, restart)
            x_adv = sign_gradient_descent(grad_model, x, x_start, labels, eps=self.eps,
                                          step_size=self.step_size, steps=self.steps, ascend=not self.targeted)
            if self.restarts == 1:
                return x_adv
            best, done = keep_first_success(model, x_adv, labels, self.targeted, best, done)
        return best


class FGSM(Attack):
    """Fast gradient sign method: one signed-gradient step of size eps (Goodfellow et al. 2015)."""

    name: ClassVar[str] = "fgsm"
    distance: ClassVar[str] = "linf"
    targeted_by_default: ClassVar[bool] = False
    has_eps: ClassVar[bool] = True

    def __init__(self, *, eps: float = 0.3, targeted: bool | None = None, batch_size: int = 256,
                 precision: str = "float32") -> None:
        super().__init__(targeted=targeted, batch_size=batch_size)
        self.eps = _check_eps(eps)
        self.precision = check_precision(precision)

    def run(self, model: Any, x: Any, y: Any, target: Any | None, *, seed: int, batch: int) -> Any:
        _check_backend_precision(self.precision)
        labels = target if self.targeted else y
        grad_model = gradient_model(model, self.precision)
        return sign_gradient_descent(grad_model, x, x, labels, eps=self.eps, step_size=self.eps, steps=1,
                                     ascend=not self.targeted)
