"""Building blocks for adaptive attacks on pre-processing defenses. keras.ops: runs on every Keras backend.

A defense here is anything that maps [0,1] images to [0,1] images: a Keras layer or model, or a plain callable
on tensors (a `keras.ops.round` quantizer, a `tf.numpy_function` filter on TensorFlow). Each wrapper below is a Keras model from
images to logits, so every registry attack runs through it unchanged:

    from arnkit import attacks
    from arnkit.attacks.adaptive import BPDA, EOT, compose
    attacks.make("pgd_n", dataset="mnist")(compose(defense, clf), x, y)       # white-box through the defense
    attacks.make("pgd_n", dataset="mnist")(BPDA(defense, clf), x, y)          # defense treated as identity
    attacks.make("pgd_n", dataset="mnist")(EOT(compose(noisy, clf), samples=30), x, y)

- `compose` (end-to-end white box): forward and gradient of classifier(defense(x)). A non-differentiable
  defense gives zero or missing gradients: the gradient masking that BPDA and EOT get around.
- `BPDA` (Athalye, Carlini & Wagner, "Obfuscated Gradients Give a False Sense of Security", ICML 2018,
  arXiv:1802.00420): forward classifier(defense(x)); backward through classifier(g(x)) where g is the
  identity by default (their straight-through case) or a differentiable approximation `backward` of the
  defense. Built as g(x) + stop_gradient(defense(x) - g(x)): the value is defense(x), the gradient g's.
- `EOT` (Athalye et al., "Synthesizing Robust Adversarial Examples", ICML 2018, arXiv:1707.07397): for a
  randomized pipeline, the output is the MEAN OF THE LOGITS over `samples` independent draws, so the
  gradient of any loss that is linear in the logits (margin, CW, DLR numerators) is exactly the mean of the
  per-draw gradients, and for cross-entropy it is the gradient at the averaged logits. The predicted class is
  that of the averaged logits too. `training` is passed through unchanged and attacks call models with
  training=False, so the randomness must be active at inference (Keras's GaussianNoise and Dropout are not).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
from keras import ops

from arnkit import backend
from arnkit.errors import ArnkitError

Transform = Callable[..., Any]


def apply_transform(fn: Transform, x: Any, training: bool | None, *, image_to_image: bool = False) -> Any:
    """Call a Keras layer with `training`, a plain callable without it. For a defense (`image_to_image`) on
    TensorFlow, give the output x's static shape back where the callable lost it (tf.numpy_function does)."""
    out = fn(x, training=training) if isinstance(fn, keras.layers.Layer) else fn(x)
    out = ops.convert_to_tensor(out, dtype=keras.backend.standardize_dtype(getattr(x, "dtype", "float32")))
    # The classifier's first layer needs the image shape; a classifier's own output is left alone.
    if image_to_image and backend.is_tensorflow():
        import tensorflow as tf

        if out.shape.rank is None or not out.shape[1:].is_fully_defined():
            return tf.ensure_shape(out, x.shape)
    return out


def _check_callable(name: str, value: Any) -> None:
    if not callable(value):
        raise ArnkitError(f"{name} must be a Keras layer/model or a callable on image tensors, got {type(value)}")


class ComposedModel(keras.Model):
    """classifier(defense(x)), differentiated end to end."""

    def __init__(self, defense: Transform, classifier: Transform, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _check_callable("defense", defense)
        _check_callable("classifier", classifier)
        self.defense = defense
        self.classifier = classifier

    def call(self, x: Any, training: bool | None = None) -> Any:
        return apply_transform(self.classifier, apply_transform(self.defense, x, training, image_to_image=True), training)


def compose(defense: Transform, classifier: Transform) -> keras.Model:
    """A model x -> classifier(defense(x)) for white-box attacks through the defense."""
    return ComposedModel(defense, classifier, name="composed")


class BPDA(keras.Model):
    """Forward classifier(defense(x)); gradient as if the defense were `backward` (default: the identity)."""

    def __init__(self, defense: Transform, classifier: Transform, backward: Transform | None = None,
                 **kwargs: Any) -> None:
        kwargs.setdefault("name", "bpda")
        super().__init__(**kwargs)
        _check_callable("defense", defense)
        _check_callable("classifier", classifier)
        if backward is not None:
            _check_callable("backward", backward)
        self.defense = defense
        self.classifier = classifier
        self.backward = backward

    def call(self, x: Any, training: bool | None = None) -> Any:
        forward = ops.stop_gradient(apply_transform(self.defense, x, training, image_to_image=True))
        surrogate = x if self.backward is None else apply_transform(self.backward, x, training, image_to_image=True)
        return apply_transform(self.classifier, surrogate + ops.stop_gradient(forward - surrogate), training)


class EOT(keras.Model):
    """Mean logits of `model` over `samples` random draws (expectation over transformation).

    `parallel=True` stacks the draws into one batch of samples x N images (fast, but only independent if the
    pipeline draws its randomness per image); `parallel=False` calls the model `samples` times (for pipelines
    that draw one random value per call).
    """

    def __init__(self, model: Transform, samples: int = 30, *, parallel: bool = True, **kwargs: Any) -> None:
        kwargs.setdefault("name", "eot")
        super().__init__(**kwargs)
        _check_callable("model", model)
        if int(samples) < 1:
            raise ArnkitError(f"samples must be >= 1, got {samples}")
        self.model = model
        self.samples = int(samples)
        self.parallel = bool(parallel)

    def call(self, x: Any, training: bool | None = None) -> Any:
        if self.parallel:
            logits = apply_transform(self.model, ops.tile(x, [self.samples, 1, 1, 1]), training)
            return ops.mean(ops.reshape(logits, [self.samples, ops.shape(x)[0], -1]), axis=0)
        total = apply_transform(self.model, x, training)
        for _ in range(self.samples - 1):
            total += apply_transform(self.model, x, training)
        return total / float(self.samples)


__all__ = ["BPDA", "EOT", "ComposedModel", "apply_transform", "compose"]
