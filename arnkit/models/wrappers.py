"""Wrappers that make a user's classifier look like a zoo target: images in [0, 1] -> logits.

    model = rescaled(model, scale=255)                    # a model that expects [0, 255]
    model = rescaled(model, scale=1 / std, offset=-mean / std)   # one that expects (x - mean) / std
    logits = without_softmax(model)                       # None when the softmax is not a last layer
    scores = log_probabilities(model)                     # log of clipped probabilities (same argmax)

Each is a functional `keras.Model` built from serializable layers, so it clones (the classifier defenses
fine-tune a clone) and saves as `.keras` like a zoo model.
"""

from __future__ import annotations

from typing import Any

import keras

PROBABILITY_FLOOR = 1e-12  # log(0) would make the attacks' gradients infinite


@keras.saving.register_keras_serializable(package="arnkit")
class LogProbabilities(keras.layers.Layer):
    """log(clip(p, 1e-12, 1)): probabilities -> scores whose softmax is the same distribution."""

    def call(self, inputs: Any) -> Any:
        return keras.ops.log(keras.ops.clip(inputs, PROBABILITY_FLOOR, 1.0))

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape


def _input_shape(model: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in model.input_shape[1:])


def rescaled(model: Any, *, scale: float = 1.0, offset: float = 0.0) -> Any:
    """`model` fed `x * scale + offset` for images `x` in [0, 1]: `scale=255` for a model trained on [0, 255]
    pixels; `scale=1/std, offset=-mean/std` for one trained on normalized inputs."""
    inputs = keras.Input(_input_shape(model))
    outputs = keras.layers.Rescaling(float(scale), float(offset), name="input_scale")(inputs)
    if isinstance(model, keras.Sequential):
        # One flat graph of copies (same names, so the same weight paths), whose layers LID can read one by one.
        for layer in model.layers:
            outputs = type(layer).from_config(layer.get_config())(outputs)
        flat = keras.Model(inputs, outputs, name=f"{model.name}_rescaled")
        flat.set_weights(model.get_weights())
        return flat
    return keras.Model(inputs, model(outputs), name=f"{model.name}_rescaled")


def last_softmax(model: Any) -> bool:
    """Whether the model's last layer ends in a softmax (a Softmax layer, Activation('softmax') or a layer
    with activation='softmax')."""
    layer = model.layers[-1] if getattr(model, "layers", None) else None
    if layer is None:
        return False
    if isinstance(layer, keras.layers.Softmax):
        return True
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", str(activation)) == "softmax"


def without_softmax(model: Any) -> Any | None:
    """`model` rebuilt to output the logits its final softmax takes, or None when that cannot be done (the
    softmax is not a last Dense / Activation / Softmax layer of a functional or Sequential graph)."""
    if not last_softmax(model):
        return None
    layer = model.layers[-1]
    try:
        features = layer.input
        inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs  # a tensor in: no structure warning
    except (AttributeError, ValueError):  # a subclassed model has no graph to cut
        return None
    if isinstance(layer, keras.layers.Softmax | keras.layers.Activation):
        logits = features
    elif isinstance(layer, keras.layers.Dense):
        config = {**layer.get_config(), "activation": "linear", "name": f"{layer.name}_logits"}
        dense = keras.layers.Dense.from_config(config)
        logits = dense(features)
        dense.set_weights(layer.get_weights())
    else:
        return None
    return keras.Model(inputs, logits, name=f"{model.name}_logits")


def log_probabilities(model: Any) -> Any:
    """`model` (probabilities) followed by log(clip(p)): scores the attacks read as logits."""
    inputs = keras.Input(_input_shape(model))
    outputs = LogProbabilities(name="log_probabilities")(model(inputs))
    return keras.Model(inputs, outputs, name=f"{model.name}_log_probabilities")
