"""The input gradient dL/dx of an attack loss, on whichever Keras backend runs.

Keras 3 gives one op set (keras.ops) for every backend but no portable gradient, so this module holds the one
piece that must differ: `loss_gradient(model, x, labels, loss=..., kappa=...)`, one implementation per backend
(TF: GradientTape; JAX: jax.grad over `model.stateless_call`, jitted once per model with the weights passed as
arguments, so a model that keeps training is differentiated at its current weights; torch: autograd on an input
that requires grad). Everything around it (steps, projection, restarts: arnkit.attacks.pgd) is shared keras.ops
code. The loss is summed over the batch; each example's gradient is its own loss's, as the examples do not
interact. `jax_gradient_fn` exposes the pure JAX gradient so a caller can jit a whole attack loop around it.
TensorFlow, JAX and torch are imported only by the branch that runs.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import keras
from keras import ops

from arnkit import backend
from arnkit.errors import ArnkitError

LOSSES = ("ce", "margin", "dlr")
# Per model: jitted JAX functions keyed by what they were built for. The functions reach the model through a
# weak reference, so the cache never keeps a model alive.
_JAX_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def per_example_loss(logits: Any, labels: Any, loss: str, kappa: Any) -> Any:
    """Cross-entropy of `labels`, CW's margin min(max_{i != y} Z_i - Z_y, kappa), or Croce & Hein 2020's DLR
    (max_{i != y} Z_i - Z_y) / (Z_pi1 - Z_pi3), per example (keras.ops)."""
    logits = ops.cast(logits, "float32")  # a reduced-precision model still gives a float32 loss
    if loss == "ce":
        return ops.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    true_mask = ops.one_hot(labels, ops.shape(logits)[-1], dtype="float32")
    true_logit = ops.sum(logits * true_mask, axis=-1)
    best_other = ops.max(logits - 1e9 * true_mask, axis=-1)
    if loss == "dlr":
        # Scale-free: a defense that saturates the logits (so CE's gradient underflows) still has a margin.
        ranked = ops.sort(logits, axis=-1)
        third = min(3, int(logits.shape[-1]))
        return (best_other - true_logit) / (ranked[..., -1] - ranked[..., -third] + 1e-12)
    return ops.minimum(best_other - true_logit, kappa)


def check_loss(loss: str) -> str:
    if loss not in LOSSES:
        raise ArnkitError(f"unknown attack loss '{loss}'; choose one of: {', '.join(LOSSES)}")
    return loss


def loss_gradient(model: Any, x: Any, labels: Any, *, loss: str = "ce", kappa: float = 0.0) -> Any:
    """dL/dx for L = sum over the batch of `per_example_loss(model(x), labels)`, as a tensor of this backend."""
    check_loss(loss)
    name = backend.name()
    if name == "tensorflow":
        return _tf_gradient(model, x, labels, loss, kappa)
    if name == "jax":
        return _jax_gradient(model, x, labels, loss, kappa)
    if name == "torch":
        return _torch_gradient(model, x, labels, loss, kappa)
    raise ArnkitError(f"attack gradients run on the tensorflow, jax or torch backend, not {name}")


# -- TensorFlow --------------------------------------------------------------------------------------------
def _tf_gradient(model: Any, x: Any, labels: Any, loss: str, kappa: float) -> Any:
    import tensorflow as tf

    x = tf.convert_to_tensor(x, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(per_example_loss(model(x, training=False), labels, loss, kappa))
    return tape.gradient(total, x, unconnected_gradients=tf.UnconnectedGradients.ZERO)


# -- JAX ---------------------------------------------------------------------------------------------------
def model_values(model: Any) -> tuple[list[Any], list[Any]]:
    """The current (trainable, non-trainable) weight values of a Keras model: `stateless_call`'s arguments."""
    return ([v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables])


def ensure_built(model: Any, x: Any) -> None:
    """`stateless_call` needs built variables; a subclassed wrapper (compose, BPDA) builds on its first call."""
    if not model.built:
        model(x[:1], training=False)


def jax_gradient_fn(model: Any, loss: str) -> Callable[..., Any]:
    """A pure function (trainable, non_trainable, x, labels, kappa) -> dL/dx of Keras model `model` (not jitted:
    callers jit it, alone or inside a loop). It holds `model` by a weak reference."""
    import jax

    check_loss(loss)
    model_ref = weakref.ref(model)

    def total_loss(x, trainable, non_trainable, labels, kappa):
        logits, _ = model_ref().stateless_call(trainable, non_trainable, x, training=False)
        return ops.sum(per_example_loss(logits, labels, loss, kappa))

    grad = jax.grad(total_loss)
    return lambda trainable, non_trainable, x, labels, kappa: grad(x, trainable, non_trainable, labels, kappa)


def jax_cached(model: Any, key: tuple, build: Callable[[], Callable[..., Any]]) -> Callable[..., Any]:
    """`build()` once per (model, key); later calls reuse it (and JAX's compiled code for it)."""
    per_model = _JAX_CACHE.setdefault(model, {})
    if key not in per_model:
        per_model[key] = build()
    return per_model[key]


def _jax_gradient(model: Any, x: Any, labels: Any, loss: str, kappa: float) -> Any:
    import jax

    x = ops.convert_to_tensor(x, "float32")
    if not isinstance(model, keras.Model):
        # A plain callable has no weights to pass in: differentiate it eagerly (no jit: it could bake stale
        # weights into the compiled code).
        return jax.grad(lambda xx: ops.sum(per_example_loss(model(xx, training=False), labels, loss, kappa)))(x)
    fn = jax_cached(model, ("gradient", loss), lambda: jax.jit(jax_gradient_fn(model, loss)))
    ensure_built(model, x)
    trainable, non_trainable = model_values(model)
    return fn(trainable, non_trainable, x, labels, ops.convert_to_tensor(kappa, "float32"))


# -- torch -------------------------------------------------------------------------------------------------
def _torch_gradient(model: Any, x: Any, labels: Any, loss: str, kappa: float) -> Any:
    import torch

    x = ops.convert_to_tensor(x, "float32").detach().requires_grad_(True)
    with torch.enable_grad():
        total = ops.sum(per_example_loss(model(x, training=False), labels, loss, kappa))
        # Only the input's gradient: autograd skips the weights' (they are leaves nobody asked for).
        (grad,) = torch.autograd.grad(total, [x], allow_unused=True)
    return torch.zeros_like(x) if grad is None else grad.detach()
